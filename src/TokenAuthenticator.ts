/**
 * Step 1 of RFC 7592: authenticate the registration access token presented as
 * an RFC 6750 Bearer credential (R7592-2-b). It also issues and revokes
 * tokens, since only the component that understands a token's format can.
 *
 * @since 0.1.0
 */
import { Clock, Context, Effect, Layer, Option, Redacted } from "effect"
import * as Jose from "jose"
import type { RegisteredClient } from "./ClientInformation.js"
import { ClientStore, type ClientStoreService } from "./ClientStore.js"
import { Credentials } from "./Credentials.js"
import { InvalidToken, type StoreError } from "./ProtocolError.js"
import { ServerMetadata } from "./ServerMetadata.js"

/**
 * An authenticated registration access token.
 *
 * @since 0.1.0
 * @category models
 */
export interface RegistrationToken {
  /** The one client this token is bound to (R7592-1.2-b, D1). */
  readonly clientId: string
  /** How the store knows the token (the SHA-256 of an opaque token). */
  readonly tokenId: string
  /** The token as presented. */
  readonly value: Redacted.Redacted<string>
  /**
   * The client as stored, when the authenticator read it in the same step as
   * the token (a store with `findByToken`): `ClientLookup` then reads
   * nothing more. Absent otherwise.
   */
  readonly client?: RegisteredClient | undefined
}

/**
 * A newly issued token: the value goes to the client, the id to the store.
 *
 * @since 0.1.0
 * @category models
 */
export interface IssuedToken {
  readonly value: Redacted.Redacted<string>
  readonly tokenId: string
}

/**
 * @since 0.1.0
 * @category models
 */
export interface TokenAuthenticatorService {
  /** Bearer credential → token, or `InvalidToken` (R6750-3.1-c). */
  readonly authenticate: (
    credential: Redacted.Redacted<string>
  ) => Effect.Effect<RegistrationToken, InvalidToken | StoreError>
  /** A new token for a client; the caller stores its id with the client. */
  readonly issue: (clientId: string) => Effect.Effect<IssuedToken>
  /** Makes a token stop working at once (D2). */
  readonly revoke: (token: RegistrationToken) => Effect.Effect<void, StoreError>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class TokenAuthenticator extends Context.Tag("effect-dcr/TokenAuthenticator")<
  TokenAuthenticator,
  TokenAuthenticatorService
>() {}

const invalid = new InvalidToken({ description: "the registration access token is invalid" })

const orInvalid = (token: RegistrationToken | undefined): Effect.Effect<RegistrationToken, InvalidToken> =>
  token === undefined ? Effect.fail(invalid) : Effect.succeed(token)

/**
 * The token whose id the store knows as live, with its client read in the
 * same step when the store can (`findByToken`); undefined when it is not live.
 */
const liveToken = (
  store: ClientStoreService,
  tokenId: string,
  value: Redacted.Redacted<string>
): Effect.Effect<RegistrationToken | undefined, StoreError> =>
  store.findByToken === undefined
    ? Effect.map(store.findTokenOwner(tokenId), (owner) =>
        Option.isNone(owner) ? undefined : { clientId: owner.value, tokenId, value }
      )
    : Effect.map(store.findByToken(tokenId), (found) =>
        Option.isNone(found) ? undefined : { clientId: found.value.clientId, tokenId, value, client: found.value }
      )

/**
 * Opaque random tokens (D15), known to the store only by their SHA-256.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerOpaque: Layer.Layer<TokenAuthenticator, never, ClientStore | Credentials> = Layer.effect(
  TokenAuthenticator,
  Effect.gen(function* () {
    const store = yield* ClientStore
    const credentials = yield* Credentials
    return {
      authenticate: (credential) =>
        Effect.flatMap(liveToken(store, credentials.hash(credential), credential), orInvalid),
      issue: () => Effect.map(credentials.registrationToken, (value) => ({ value, tokenId: credentials.hash(value) })),
      revoke: (token) => store.revokeToken(token.tokenId)
    }
  })
)

/**
 * Options of signed registration access tokens.
 *
 * @since 0.1.0
 * @category models
 */
export interface JwtOptions {
  /**
   * The signing key as a JWK: a private key (RS256, PS256, ES256, EdDSA…) or
   * an `oct` key for HS256. Its `alg` member, or `alg` below, picks the algorithm.
   */
  readonly key: Jose.JWK
  readonly alg?: string | undefined
  /** `iss` of the tokens; default the server's issuer. */
  readonly issuer?: string | undefined
  /** `aud` of the tokens; default the registration endpoint. */
  readonly audience?: string | undefined
}

const publicPart = (jwk: Jose.JWK): Jose.JWK => {
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, oth: _oth, ...rest } = jwk
  return rest
}

/**
 * Registration access tokens as signed JWTs (`sub` the client, `jti` the
 * token id) with no expiry (R7592-5-a). The store keeps each live `jti`, so
 * rotation, revocation and deletion work exactly as for opaque tokens: a
 * token with a valid signature but a `jti` the store no longer knows is
 * refused.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerJwt = (
  options: JwtOptions
): Layer.Layer<TokenAuthenticator, never, ClientStore | Credentials | ServerMetadata> =>
  Layer.effect(
    TokenAuthenticator,
    Effect.gen(function* () {
      const store = yield* ClientStore
      const credentials = yield* Credentials
      const server = yield* ServerMetadata
      const alg = options.alg ?? options.key.alg
      if (alg === undefined || alg === "none") {
        return yield* Effect.dieMessage("TokenAuthenticator.layerJwt: the key needs an alg")
      }
      const symmetric = options.key.kty === "oct"
      const signingKey = yield* Effect.promise(() => Jose.importJWK(options.key, alg))
      const verificationKey = symmetric
        ? signingKey
        : yield* Effect.promise(() => Jose.importJWK(publicPart(options.key), alg))
      const issuer = options.issuer ?? server.issuer
      const audience = options.audience ?? server.registrationEndpoint
      const kid = options.key.kid

      return {
        issue: (clientId) =>
          Effect.gen(function* () {
            const jti = yield* credentials.clientId
            const now = Math.floor((yield* Clock.currentTimeMillis) / 1000)
            const jwt = yield* Effect.promise(() =>
              new Jose.SignJWT({})
                .setProtectedHeader(kid === undefined ? { alg, typ: "JWT" } : { alg, typ: "JWT", kid })
                .setIssuer(issuer)
                .setAudience(audience)
                .setSubject(clientId)
                .setJti(jti)
                .setIssuedAt(now)
                .sign(signingKey)
            )
            return { value: Redacted.make(jwt), tokenId: jti }
          }),
        authenticate: (credential) =>
          Effect.gen(function* () {
            const now = yield* Clock.currentTimeMillis
            const verified = yield* Effect.tryPromise({
              try: () =>
                Jose.jwtVerify(Redacted.value(credential), verificationKey, {
                  algorithms: [alg],
                  issuer,
                  audience,
                  currentDate: new Date(now)
                }),
              catch: () => invalid
            })
            const { sub, jti } = verified.payload
            if (typeof sub !== "string" || typeof jti !== "string") return yield* Effect.fail(invalid)
            // Revoked, rotated or deleted tokens are gone from the store.
            const token = yield* liveToken(store, jti, credential)
            if (token === undefined || token.clientId !== sub) return yield* Effect.fail(invalid)
            return token
          }),
        revoke: (token) => store.revokeToken(token.tokenId)
      }
    })
  )
