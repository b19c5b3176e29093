/**
 * Credential material: client ids, client secrets and registration access
 * tokens from the CSPRNG, token hashing, and constant-time comparison (D15).
 *
 * @since 0.1.0
 */
import { hash as digest, randomFillSync, timingSafeEqual } from "node:crypto"
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
// `crypto.hash` (Node ≥ 20.12) is the one-shot digest: a third of the cost of createHash().update().digest().
export const sha256 = (value: string): string => digest("sha256", value, "base64url")

/**
 * Constant-time equality of two strings: both are hashed first, so the
 * comparison neither depends on where they differ nor leaks their lengths.
 *
 * @since 0.1.0
 * @category utils
 */
export const constantTimeEquals = (a: string, b: string): boolean =>
  timingSafeEqual(digest("sha256", a, "buffer"), digest("sha256", b, "buffer"))

// Random bytes are drawn from the CSPRNG a pool at a time, as Node's own
// randomUUID does: one call into OpenSSL per 4 KiB instead of one per value
// (that call dominated a registration when profiled). Every byte is used once
// and zeroed as soon as it has been encoded.
const pool = Buffer.alloc(4096)
let poolOffset = pool.length

/** `bytes` fresh random bytes from the CSPRNG, base64url-encoded. */
const randomBase64url = (bytes: number): string => {
  if (poolOffset + bytes > pool.length) {
    randomFillSync(pool)
    poolOffset = 0
  }
  const end = poolOffset + bytes
  const encoded = pool.toString("base64url", poolOffset, end)
  pool.fill(0, poolOffset, end)
  poolOffset = end
  return encoded
}

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
  clientId: Effect.sync(() => randomBase64url(16)),
  clientSecret: Effect.sync(() => Redacted.make(randomBase64url(32))),
  registrationToken: Effect.sync(() => Redacted.make(randomBase64url(32))),
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
