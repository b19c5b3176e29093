/**
 * Credential material: client ids, client secrets and registration access
 * tokens from the CSPRNG, token hashing, and constant-time comparison (D15).
 *
 * @since 0.1.0
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto"
import { Context, Effect, Layer, Redacted } from "effect"

/**
 * @since 0.1.0
 * @category models
 */
export interface CredentialsService {
  /** A new client identifier (128 bits, base64url). */
  readonly clientId: Effect.Effect<string>
  /** A new client secret (256 bits, base64url). */
  readonly clientSecret: Effect.Effect<Redacted.Redacted<string>>
  /** A new opaque registration access token (256 bits, base64url). */
  readonly registrationToken: Effect.Effect<Redacted.Redacted<string>>
  /** The SHA-256 of a token, base64url: what the store keeps instead of the token. */
  readonly hash: (value: Redacted.Redacted<string>) => string
  /** Compares two secrets in constant time, over equal-length digests. */
  readonly equals: (a: Redacted.Redacted<string>, b: Redacted.Redacted<string>) => boolean
}

/**
 * @since 0.1.0
 * @category tags
 */
export class Credentials extends Context.Tag("effect-dcr/Credentials")<Credentials, CredentialsService>() {}

/**
 * SHA-256, base64url.
 *
 * @since 0.1.0
 * @category utils
 */
export const sha256 = (value: string): string => createHash("sha256").update(value, "utf8").digest("base64url")

/**
 * Constant-time equality of two strings: both are hashed first, so the
 * comparison neither depends on where they differ nor leaks their lengths.
 *
 * @since 0.1.0
 * @category utils
 */
export const constantTimeEquals = (a: string, b: string): boolean =>
  timingSafeEqual(createHash("sha256").update(a, "utf8").digest(), createHash("sha256").update(b, "utf8").digest())

const equals = (a: Redacted.Redacted<string>, b: Redacted.Redacted<string>): boolean =>
  constantTimeEquals(Redacted.value(a), Redacted.value(b))

const hash = (value: Redacted.Redacted<string>): string => sha256(Redacted.value(value))

/**
 * Cryptographically random material from `node:crypto`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<Credentials> = Layer.succeed(Credentials, {
  clientId: Effect.sync(() => randomBytes(16).toString("base64url")),
  clientSecret: Effect.sync(() => Redacted.make(randomBytes(32).toString("base64url"))),
  registrationToken: Effect.sync(() => Redacted.make(randomBytes(32).toString("base64url"))),
  hash,
  equals
})

/**
 * Deterministic material for tests: `client-1`, `secret-1`, `rat-1`, … in the
 * order they are asked for, each layer build starting again at 1.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerTest: Layer.Layer<Credentials> = Layer.sync(Credentials, () => {
  let counter = 0
  const next = (prefix: string) => Effect.sync(() => `${prefix}-${++counter}`)
  return {
    clientId: next("client"),
    clientSecret: Effect.map(next("secret"), Redacted.make),
    registrationToken: Effect.map(next("rat"), Redacted.make),
    hash,
    equals
  }
})
