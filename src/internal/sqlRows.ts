/**
 * What the SQL stores share, written once: decoding a stored row into a
 * `RegisteredClient` or an `InitialTokenRecord` (JSON text columns, BIGINT as
 * a number or a string), and sealing client secrets at rest. Used by
 * `SqlClientStore` (any `SqlClient`) and `SqliteStore` (better-sqlite3
 * directly), so both read and write the very same cells.
 *
 * @internal
 */
import { Effect, Option, Redacted } from "effect"
import * as Jose from "jose"
import type { RegisteredClient } from "../ClientInformation.js"
import type { ClientMetadata } from "../ClientMetadata.js"
import type { InitialTokenRecord } from "../ClientStore.js"
import { StoreError } from "../ProtocolError.js"
import type { RegistrationPolicy } from "../RegistrationPolicy.js"
import { isJsonObject, rememberText, stringifyOnce } from "./json.js"

/** A row as a driver returns it: column name to value. */
type Row = { readonly [column: string]: unknown }

export const text = (value: unknown): string => (typeof value === "string" ? value : String(value))
// PostgreSQL returns BIGINT as a string, SQLite as a number.
const integer = (value: unknown): number => (typeof value === "number" ? value : Number(value))

/** Metadata is written only by these stores, from validated values. */
const isMetadata = (value: unknown): value is ClientMetadata => isJsonObject(value)
const isPolicy = (value: unknown): value is RegistrationPolicy => isJsonObject(value)

const parseJson = <A>(value: unknown, guard: (value: unknown) => value is A, what: string): A => {
  const parsed: unknown = JSON.parse(text(value))
  if (!guard(parsed)) throw new Error(`stored ${what} is not a JSON object`)
  return parsed
}

const notARow = "a stored row is not an object"

/** A driver's row, checked to be one (better-sqlite3 rows are `unknown` to the checker). */
const rowOf = (value: unknown): Row => {
  if (!isJsonObject(value)) throw new Error(notARow)
  return value
}

/** The metadata column's value: the text the response will splice in too (`stringifyOnce`). */
export const metadataText = (metadata: ClientMetadata): string => stringifyOnce(metadata)

const toMetadata = (value: unknown): ClientMetadata => {
  const stored = text(value)
  const metadata = parseJson(stored, isMetadata, "metadata")
  // Written by `metadataText`, so it is this object's JSON text: rendering it
  // needs no stringify. `toJsonText` splices it between other members, so
  // only text shaped as JSON.stringify writes an object is remembered.
  if (/^\{(?:\}|")/.test(stored) && stored.endsWith("}")) rememberText(metadata, stored)
  return metadata
}

const toClient = (row: Row, clientSecret: Redacted.Redacted<string> | undefined): RegisteredClient => ({
  clientId: text(row.client_id),
  clientIdIssuedAt: integer(row.client_id_issued_at),
  clientSecret,
  clientSecretExpiresAt: integer(row.client_secret_expires_at),
  metadata: toMetadata(row.metadata),
  version: integer(row.version),
  policy: row.policy === null ? undefined : parseJson(row.policy, isPolicy, "policy")
})

const toInitialToken = (row: Row): InitialTokenRecord => ({
  tokenId: text(row.token_id),
  expiresAt: integer(row.expires_at),
  usesRemaining: row.uses_remaining === null ? undefined : integer(row.uses_remaining),
  policy: row.policy === null ? undefined : parseJson(row.policy, isPolicy, "policy"),
  createdAt: integer(row.created_at)
})

/** The policy column's value. */
export const policyOf = (policy: RegistrationPolicy | undefined): string | null =>
  policy === undefined ? null : JSON.stringify(policy)

/**
 * A key sealing client secrets at rest: 256 bits for `dir` + `A256GCM`.
 */
export interface SealingKey {
  /** Names the key in each sealed value, so old keys keep opening old values. */
  readonly kid: string
  readonly key: Redacted.Redacted<Uint8Array>
}

/** Seals client secrets before they are written and opens them after they are read. */
export interface Sealer {
  /** The `client_secret` column's value. */
  readonly seal: (secret: Redacted.Redacted<string> | undefined) => Effect.Effect<string | null>
  readonly open: (stored: unknown) => Effect.Effect<Redacted.Redacted<string> | undefined, StoreError>
}

const sealedPrefix = "jwe:"
const isSealed = (stored: unknown): boolean => typeof stored === "string" && stored.startsWith(sealedPrefix)

/** An unsealed `client_secret` cell as a secret (none when the cell is empty). */
const plainSecret = (stored: unknown): Redacted.Redacted<string> | undefined =>
  stored === null || stored === undefined ? undefined : Redacted.make(text(stored))
const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** Throws when a key is not 32 bytes or two keys share a kid. */
export const makeSealer = (keys: ReadonlyArray<SealingKey>): Sealer => {
  const current = keys[0]
  const byKid = new Map(keys.map((key) => [key.kid, Redacted.value(key.key)]))
  for (const key of keys) {
    if (Redacted.value(key.key).length !== 32) throw new Error(`sealing key ${key.kid} must be 32 bytes`)
  }
  if (byKid.size !== keys.length) throw new Error("sealing keys must have distinct kids")
  const seal = (secret: Redacted.Redacted<string> | undefined): Effect.Effect<string | null> => {
    if (secret === undefined) return Effect.succeed(null)
    if (current === undefined) return Effect.succeed(Redacted.value(secret))
    // Before any write: interrupting it leaves nothing written (ClientStore's contract).
    return Effect.promise(() =>
      new Jose.CompactEncrypt(encoder.encode(Redacted.value(secret)))
        .setProtectedHeader({ alg: "dir", enc: "A256GCM", kid: current.kid })
        .encrypt(Redacted.value(current.key))
    ).pipe(
      Effect.map((jwe) => sealedPrefix + jwe),
      Effect.interruptible
    )
  }
  const open = (stored: unknown): Effect.Effect<Redacted.Redacted<string> | undefined, StoreError> => {
    if (!isSealed(stored)) return Effect.succeed(plainSecret(stored))
    const value = text(stored)
    return Effect.tryPromise({
      try: () =>
        Jose.compactDecrypt(value.slice(sealedPrefix.length), (header) => {
          const key = header.kid === undefined ? undefined : byKid.get(header.kid)
          if (key === undefined) throw new Error(`no sealing key ${String(header.kid)}`)
          return key
        }),
      catch: (cause) => new StoreError({ operation: "open a sealed client secret", cause })
    }).pipe(Effect.map((result) => Redacted.make(decoder.decode(result.plaintext))))
  }
  return { seal, open }
}

/**
 * Runs `run`; what it throws becomes a `StoreError` for `operation`. The same
 * as `Effect.try`, which costs about 0.8 µs more per call (measured on Effect
 * 3.22): on the SQLite store's hot path, where a whole query costs 2–4 µs,
 * that is worth avoiding.
 */
export const attempt = <A>(operation: string, run: () => A): Effect.Effect<A, StoreError> =>
  Effect.suspend(() => {
    try {
      return Effect.succeed(run())
    } catch (cause) {
      return Effect.fail(new StoreError({ operation, cause }))
    }
  })

/** A `dcr_clients` row as a client, its secret opened; a bad row is a `StoreError` ("decode"). */
export const decodeClient = (sealer: Sealer, value: unknown): Effect.Effect<RegisteredClient, StoreError> => {
  if (!isJsonObject(value)) return Effect.fail(new StoreError({ operation: "decode", cause: new Error(notARow) }))
  const stored = value.client_secret
  // Only a sealed secret needs the asynchronous JWE decryption.
  if (!isSealed(stored)) return attempt("decode", () => toClient(value, plainSecret(stored)))
  return Effect.flatMap(sealer.open(stored), (secret) => attempt("decode", () => toClient(value, secret)))
}

/** The first row a lookup returned, if any, as a client. */
export const decodeFoundClient = (
  sealer: Sealer,
  row: unknown
): Effect.Effect<Option.Option<RegisteredClient>, StoreError> =>
  row === undefined ? Effect.succeed(Option.none()) : Effect.map(decodeClient(sealer, row), Option.some)

/** A `dcr_initial_tokens` row as a record; a bad row is a `StoreError` ("decode"). */
export const decodeInitialToken = (value: unknown): Effect.Effect<InitialTokenRecord, StoreError> =>
  attempt("decode", () => toInitialToken(rowOf(value)))
