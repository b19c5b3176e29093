/**
 * Step 1 of RFC 7592: authenticate the registration access token presented as
 * an RFC 6750 Bearer credential (R7592-2-b). It also issues and revokes
 * tokens, since only the component that understands a token's format can.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Option, Redacted } from "effect"
import { ClientStore } from "./ClientStore.js"
import { Credentials } from "./Credentials.js"
import { InvalidToken, type StoreError } from "./ProtocolError.js"

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
      authenticate: (credential) => {
        const tokenId = credentials.hash(credential)
        return Effect.flatMap(
          store.findTokenOwner(tokenId),
          Option.match({
            onNone: () => Effect.fail(invalid),
            onSome: (clientId) => Effect.succeed({ clientId, tokenId, value: credential })
          })
        )
      },
      issue: () => Effect.map(credentials.registrationToken, (value) => ({ value, tokenId: credentials.hash(value) })),
      revoke: (token) => store.revokeToken(token.tokenId)
    }
  })
)
