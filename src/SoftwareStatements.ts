/**
 * Software statements (RFC 7591 §2.3, §3.1.1; D21): signed JWTs in which a
 * trusted party asserts client metadata. Verified with jose against a
 * configured set of trusted issuers, each with a JWK Set given inline or
 * fetched from its `jwks_uri`.
 *
 * @since 0.1.0
 */
import { HttpClient } from "@effect/platform"
import { Clock, Context, Duration, Effect, Layer } from "effect"
import * as Jose from "jose"
import { InvalidSoftwareStatement, UnapprovedSoftwareStatement } from "./ProtocolError.js"
import { isJsonObject, type JsonObject, withoutDangerousMembers } from "./internal/json.js"

/**
 * A verified statement.
 *
 * @since 0.1.0
 * @category models
 */
export interface VerifiedStatement {
  /** The statement exactly as presented, echoed unchanged (R7591-3.2.1-h). */
  readonly statement: string
  readonly issuer: string
  /** The metadata it asserts: every claim but the registered JWT claims. */
  readonly claims: JsonObject
}

/**
 * @since 0.1.0
 * @category models
 */
export type StatementError = InvalidSoftwareStatement | UnapprovedSoftwareStatement

/**
 * @since 0.1.0
 * @category models
 */
export interface SoftwareStatementsService {
  /** False when statements are not supported: they are then ignored (R7591-3.1.1-a). */
  readonly supported: boolean
  /** Every registration (and update) must carry a statement (D21, configurable). */
  readonly required: boolean
  readonly verify: (statement: unknown) => Effect.Effect<VerifiedStatement, StatementError>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class SoftwareStatements extends Context.Tag("effect-dcr/SoftwareStatements")<
  SoftwareStatements,
  SoftwareStatementsService
>() {}

/**
 * A party whose statements are trusted.
 *
 * @since 0.1.0
 * @category models
 */
export interface TrustedIssuer {
  /** The `iss` its statements carry. */
  readonly issuer: string
  /** Its public keys, inline. */
  readonly jwks?: { readonly keys: ReadonlyArray<Jose.JWK> } | undefined
  /** Where its public keys are published; fetched, cached, refetched on an unknown `kid`. */
  readonly jwksUri?: string | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly issuers: ReadonlyArray<TrustedIssuer>
  /** Statements must be presented; default false. */
  readonly required?: boolean | undefined
  /** Accepted JWS algorithms; default RS256, PS256, ES256, EdDSA. `none` is never accepted. */
  readonly algorithms?: ReadonlyArray<string> | undefined
  /** Leeway for `exp`, `nbf` and `iat`, in seconds; default 60. */
  readonly clockToleranceSeconds?: number | undefined
  /** How long a fetched JWK Set is used before it is fetched again; default 300 s. */
  readonly jwksCacheTtlSeconds?: number | undefined
  /** The shortest time between two fetches caused by unknown `kid`s; default 30 s. */
  readonly jwksRefetchCooldownSeconds?: number | undefined
  /** Timeout of one JWK Set fetch; default 5000 ms. */
  readonly jwksFetchTimeoutMillis?: number | undefined
}

/**
 * The default algorithms (RFC 7591 §2.3 recommends RS256).
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultAlgorithms: ReadonlyArray<string> = ["RS256", "PS256", "ES256", "EdDSA"]

const registeredClaims: ReadonlySet<string> = new Set(["iss", "sub", "aud", "exp", "nbf", "iat", "jti"])

const invalid = (description: string) => new InvalidSoftwareStatement({ description })
const unapproved = (description: string) => new UnapprovedSoftwareStatement({ description })

/**
 * Statements are not supported: a `software_statement` member is ignored like
 * any member the server does not understand (R7591-3.1.1-a).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerNone: Layer.Layer<SoftwareStatements> = Layer.succeed(SoftwareStatements, {
  supported: false,
  required: false,
  verify: () => Effect.fail(unapproved("this server does not accept software statements"))
})

type KeySet = { readonly keys: ReadonlyArray<Jose.JWK> }

const isKeySet = (value: unknown): value is KeySet =>
  isJsonObject(value) && Array.isArray(value.keys) && value.keys.every(isJsonObject)

/**
 * Verifies statements against trusted issuers. Fetching a `jwks_uri` needs an
 * `HttpClient` (for example `FetchHttpClient.layer`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<SoftwareStatementsService, never, HttpClient.HttpClient> =>
  Effect.gen(function* () {
    const client = yield* HttpClient.HttpClient
    const algorithms = (options.algorithms ?? defaultAlgorithms).filter((alg) => alg !== "none")
    const tolerance = options.clockToleranceSeconds ?? 60
    const ttl = (options.jwksCacheTtlSeconds ?? 300) * 1000
    const cooldown = (options.jwksRefetchCooldownSeconds ?? 30) * 1000
    const timeout = Duration.millis(options.jwksFetchTimeoutMillis ?? 5000)
    const issuers = new Map(options.issuers.map((issuer) => [issuer.issuer, issuer]))
    // jwks_uri -> the last fetched key set and when it was fetched (Clock millis)
    const cache = new Map<string, { readonly keys: KeySet; readonly fetchedAt: number }>()

    const fetchKeys = (uri: string) =>
      client.get(uri, { headers: { accept: "application/jwk-set+json, application/json" } }).pipe(
        Effect.flatMap((response) =>
          response.status === 200 ? response.json : Effect.fail(new Error(`status ${response.status}`))
        ),
        Effect.timeout(timeout),
        Effect.flatMap((body) => (isKeySet(body) ? Effect.succeed(body) : Effect.fail(new Error("not a JWK Set")))),
        Effect.tap((keys) => Effect.map(Clock.currentTimeMillis, (now) => cache.set(uri, { keys, fetchedAt: now }))),
        Effect.tapError((error) =>
          Effect.logWarning("software statement issuer keys could not be fetched", uri, error)
        ),
        Effect.mapError(() => unapproved("the issuer's keys are not available"))
      )

    /** The issuer's keys; `refresh` asks for a fetch unless one happened within the cooldown. */
    const keysOf = (issuer: TrustedIssuer, refresh: boolean): Effect.Effect<KeySet, StatementError> => {
      if (issuer.jwks !== undefined) return Effect.succeed(issuer.jwks)
      const uri = issuer.jwksUri
      if (uri === undefined) return Effect.fail(unapproved("the issuer has no keys configured"))
      return Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const cached = cache.get(uri)
        if (cached !== undefined) {
          const age = now - cached.fetchedAt
          if (age < ttl && (!refresh || age < cooldown)) return Effect.succeed(cached.keys)
        }
        return fetchKeys(uri)
      })
    }

    const verifyWith = (statement: string, keys: KeySet, issuer: string, now: number) =>
      Effect.tryPromise({
        try: () =>
          Jose.jwtVerify(statement, Jose.createLocalJWKSet({ keys: [...keys.keys] }), {
            algorithms,
            issuer,
            clockTolerance: tolerance,
            currentDate: new Date(now)
          }),
        catch: (error): StatementError | "no-key" => {
          if (error instanceof Jose.errors.JWKSNoMatchingKey) return "no-key"
          if (error instanceof Jose.errors.JWTExpired) return invalid("the software statement has expired")
          if (error instanceof Jose.errors.JWTClaimValidationFailed) {
            return invalid(`the software statement's ${error.claim} claim is not valid now`)
          }
          if (error instanceof Jose.errors.JWSSignatureVerificationFailed) {
            return invalid("the software statement's signature does not verify")
          }
          return invalid("the software statement could not be verified")
        }
      })

    const verify = (statement: unknown): Effect.Effect<VerifiedStatement, StatementError> =>
      Effect.gen(function* () {
        if (typeof statement !== "string" || statement.length === 0) {
          return yield* Effect.fail(invalid("software_statement must be a JWT string"))
        }
        let header: Jose.ProtectedHeaderParameters
        let unverified: Jose.JWTPayload
        try {
          header = Jose.decodeProtectedHeader(statement)
          unverified = Jose.decodeJwt(statement)
        } catch {
          return yield* Effect.fail(invalid("software_statement is not a well-formed JWT"))
        }
        if (statement.split(".").length !== 3) return yield* Effect.fail(invalid("software_statement must be a JWS"))
        // R7591-2.3-b, D21: signed, with an accepted algorithm; never `none`.
        if (typeof header.alg !== "string" || !algorithms.includes(header.alg)) {
          return yield* Effect.fail(invalid("the software statement's algorithm is not accepted"))
        }
        if (typeof unverified.iss !== "string" || unverified.iss === "") {
          return yield* Effect.fail(invalid("the software statement has no iss claim"))
        }
        const issuer = issuers.get(unverified.iss)
        if (issuer === undefined)
          return yield* Effect.fail(unapproved("the software statement's issuer is not trusted"))
        const now = yield* Clock.currentTimeMillis
        if (typeof unverified.iat === "number" && unverified.iat > now / 1000 + tolerance) {
          return yield* Effect.fail(invalid("the software statement's iat claim is in the future"))
        }
        let verified = yield* Effect.either(verifyWith(statement, yield* keysOf(issuer, false), issuer.issuer, now))
        if (verified._tag === "Left" && verified.left === "no-key" && issuer.jwksUri !== undefined) {
          // An unknown kid may be a key the issuer published since the last fetch.
          verified = yield* Effect.either(verifyWith(statement, yield* keysOf(issuer, true), issuer.issuer, now))
        }
        if (verified._tag === "Left") {
          const error = verified.left
          return yield* Effect.fail(
            error === "no-key" ? unapproved("the statement's signing key is not trusted") : error
          )
        }
        const claims: Record<string, unknown> = {}
        const payload = withoutDangerousMembers(verified.right.payload)
        if (isJsonObject(payload)) {
          for (const name of Object.keys(payload)) {
            if (!registeredClaims.has(name) && name !== "software_statement") claims[name] = payload[name]
          }
        }
        return { statement, issuer: issuer.issuer, claims }
      })

    return { supported: true, required: options.required ?? false, verify }
  })

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<SoftwareStatements, never, HttpClient.HttpClient> =>
  Layer.effect(SoftwareStatements, make(options))
