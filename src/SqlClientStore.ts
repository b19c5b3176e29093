/**
 * The `ClientStore` written once against `@effect/sql`'s `SqlClient`: for
 * PostgreSQL (`PgStore`) and for hosts that bring their own `SqlClient`
 * (SQLite included). Versioned migrations run when the layer is built.
 * `SqliteStore` runs these same migrations and reads and writes the same
 * cells (the row codec and the sealing are shared, in `internal/sqlRows`),
 * but talks to better-sqlite3 directly (issue 6).
 *
 * A client's registration access token is a column of its row
 * (`registration_token_id`, unique; migration 2): registering writes one row,
 * a rotation is part of the update's compare-and-set, deleting the row
 * deletes the token with it, and finding a token's owner is one index
 * lookup. Every mutation is atomic: one statement, or one transaction where
 * it takes two (spending an initial access token is a conditional decrement
 * in the same transaction as the insert it pays for).
 *
 * Tokens are kept as their SHA-256 (or, for JWT tokens, their `jti`), never
 * as the token; metadata and policies are JSON text in both dialects.
 *
 * @since 0.1.0
 */
import { Migrator, SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Effect, Layer, Option, Schedule } from "effect"
import { ClientStore, type ClientStoreService, type InsertOutcome, type UpdateOutcome } from "./ClientStore.js"
import { StoreError } from "./ProtocolError.js"
import * as SqlRows from "./internal/sqlRows.js"

/**
 * The migrations, in order. Never edit one that has shipped: add another.
 *
 * @since 0.1.0
 * @category migrations
 */
export const migrations: Record<string, Effect.Effect<void, SqlError, SqlClient.SqlClient>> = {
  "1_create_tables": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE TABLE dcr_clients (
      client_id TEXT PRIMARY KEY,
      client_id_issued_at BIGINT NOT NULL,
      client_secret TEXT,
      client_secret_expires_at BIGINT NOT NULL,
      metadata TEXT NOT NULL,
      policy TEXT,
      version BIGINT NOT NULL
    )`
    // token_id is the SHA-256 of an opaque token or a JWT's jti (D15).
    yield* sql`CREATE TABLE dcr_registration_tokens (
      token_id TEXT PRIMARY KEY,
      client_id TEXT NOT NULL
    )`
    yield* sql`CREATE INDEX dcr_registration_tokens_client_id ON dcr_registration_tokens (client_id)`
    yield* sql`CREATE TABLE dcr_initial_tokens (
      token_id TEXT PRIMARY KEY,
      expires_at BIGINT NOT NULL,
      uses_remaining BIGINT,
      policy TEXT,
      created_at BIGINT NOT NULL
    )`
  }),
  // Issue 6: the token as a column of its client's row. A client holds one
  // registration access token at a time (registering issues it, a rotation
  // replaces it in the update's compare-and-set, a revocation clears it), so
  // a second table only cost a registration two more B-trees to write and a
  // read a second lookup. Copies every live token (tokens whose client row is
  // gone are dropped: no request could use them). The programs never give a
  // client two tokens; should a database hold two for one client (written by
  // hand), the smallest token id is kept.
  "2_registration_token_on_client": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`ALTER TABLE dcr_clients ADD COLUMN registration_token_id TEXT`
    yield* sql`UPDATE dcr_clients SET registration_token_id = (
      SELECT MIN(t.token_id) FROM dcr_registration_tokens t WHERE t.client_id = dcr_clients.client_id
    )`
    yield* sql`CREATE UNIQUE INDEX dcr_clients_registration_token_id ON dcr_clients (registration_token_id)`
    yield* sql`DROP TABLE dcr_registration_tokens`
  })
}

/**
 * Runs the migrations that have not run yet. Safe to run from several
 * instances at once: PostgreSQL serialises them on a table lock, and a
 * start-up race on creating the bookkeeping table is retried.
 *
 * @since 0.1.0
 * @category migrations
 */
export const migrate = Migrator.make({})({
  loader: Migrator.fromRecord(migrations),
  table: "dcr_migrations"
}).pipe(Effect.retry({ times: 5, schedule: Schedule.spaced("100 millis") }))

/**
 * A key sealing client secrets at rest: 256 bits for `dir` + `A256GCM`.
 *
 * @since 0.1.0
 * @category models
 */
export type SealingKey = SqlRows.SealingKey

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * Seal client secrets at rest as compact JWEs (`dir`, `A256GCM`). The first
   * key seals; every key opens values sealed with it, so a key is rotated by
   * putting the new one first and keeping the old ones until every secret has
   * been rewritten. Values stored unsealed stay readable. Off by default.
   */
  readonly sealingKeys?: ReadonlyArray<SealingKey> | undefined
}

const inserted: InsertOutcome = "inserted"
const updatedOutcome: UpdateOutcome = "updated"
const missing: UpdateOutcome = "missing"
const conflict: UpdateOutcome = "conflict"

/** A transaction ends early, rolling back, with this outcome. */
class Abort<A> {
  readonly _tag = "Abort"
  constructor(readonly outcome: A) {}
}

/**
 * Builds the store over the `SqlClient` in context. Does not migrate; see
 * {@link layer}.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeWith = (options: Options): Effect.Effect<ClientStoreService, never, SqlClient.SqlClient> =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const sealer = SqlRows.makeSealer(options.sealingKeys ?? [])

    const storeError =
      (operation: string) =>
      <A, R>(self: Effect.Effect<A, SqlError, R>): Effect.Effect<A, StoreError, R> =>
        Effect.mapError(self, (cause) => new StoreError({ operation, cause }))

    /** Runs `body` in a transaction; an `Abort` rolls it back and becomes the result. */
    const transaction = <A, B>(
      operation: string,
      body: Effect.Effect<A, SqlError | Abort<B>>
    ): Effect.Effect<A | B, StoreError> =>
      // The body may be interrupted (the transaction rolls back); the commit
      // may not, and once it is done the caller's region is uninterruptible
      // again, so the write is answered as it happened (ClientStore's contract).
      sql.withTransaction(Effect.interruptible(body)).pipe(
        Effect.catchIf(
          (error): error is Abort<B> => error instanceof Abort,
          (abort) => Effect.succeed(abort.outcome)
        ),
        Effect.mapError((cause) => new StoreError({ operation, cause }))
      )

    return {
      ping: sql`SELECT 1 AS ok`.pipe(storeError("ping"), Effect.asVoid),
      insert: (client, tokenId, initialToken) =>
        Effect.flatMap(sealer.seal(client.clientSecret), (secret) =>
          transaction<InsertOutcome, InsertOutcome>(
            "insert",
            Effect.gen(function* () {
              if (initialToken !== undefined) {
                // D22: spend one use, only while the token is live and has one left.
                const spent = yield* sql`UPDATE dcr_initial_tokens
              SET uses_remaining = uses_remaining - 1
              WHERE token_id = ${initialToken.tokenId}
                AND (expires_at = 0 OR expires_at > ${initialToken.now})
                AND (uses_remaining IS NULL OR uses_remaining > 0)
              RETURNING token_id`
                if (spent.length === 0) return yield* Effect.fail(new Abort<InsertOutcome>("initial-token-unavailable"))
              }
              yield* sql`INSERT INTO dcr_clients
            (client_id, client_id_issued_at, client_secret, client_secret_expires_at, metadata, policy, version,
              registration_token_id)
            VALUES (${client.clientId}, ${client.clientIdIssuedAt}, ${secret},
              ${client.clientSecretExpiresAt}, ${SqlRows.metadataText(client.metadata)}, ${SqlRows.policyOf(client.policy)},
              ${client.version}, ${tokenId})`
              return inserted
            })
          )
        ),

      findById: (clientId) =>
        sql`SELECT * FROM dcr_clients WHERE client_id = ${clientId}`.pipe(
          storeError("findById"),
          Effect.flatMap((rows) => SqlRows.decodeFoundClient(sealer, rows[0]))
        ),

      findByToken: (tokenId) =>
        sql`SELECT * FROM dcr_clients WHERE registration_token_id = ${tokenId}`.pipe(
          storeError("findByToken"),
          Effect.flatMap((rows) => SqlRows.decodeFoundClient(sealer, rows[0]))
        ),

      findTokenOwner: (tokenId) =>
        sql`SELECT client_id FROM dcr_clients WHERE registration_token_id = ${tokenId}`.pipe(
          storeError("findTokenOwner"),
          Effect.map((rows) => Option.map(Option.fromNullable(rows[0]), (row) => SqlRows.text(row.client_id)))
        ),

      update: (client, expectedVersion, rotation) =>
        Effect.flatMap(sealer.seal(client.clientSecret), (secret) =>
          transaction<UpdateOutcome, never>(
            "update",
            Effect.gen(function* () {
              const metadata = SqlRows.metadataText(client.metadata)
              const policy = SqlRows.policyOf(client.policy)
              // One compare-and-set: on the version and, for a rotation, on the
              // token still being the live one too, so only one of two racing
              // rotations can win. Two statements, so that an update that does
              // not rotate never names the token's indexed column.
              const updated =
                rotation === undefined
                  ? yield* sql`UPDATE dcr_clients SET
                  client_secret = ${secret}, client_secret_expires_at = ${client.clientSecretExpiresAt},
                  metadata = ${metadata}, policy = ${policy}, version = ${client.version}
                WHERE client_id = ${client.clientId} AND version = ${expectedVersion}
                RETURNING client_id`
                  : yield* sql`UPDATE dcr_clients SET
                  client_secret = ${secret}, client_secret_expires_at = ${client.clientSecretExpiresAt},
                  metadata = ${metadata}, policy = ${policy}, version = ${client.version},
                  registration_token_id = ${rotation.issue}
                WHERE client_id = ${client.clientId} AND version = ${expectedVersion}
                  AND registration_token_id = ${rotation.revoke}
                RETURNING client_id`
              if (updated.length > 0) return updatedOutcome
              const exists = yield* sql`SELECT 1 AS found FROM dcr_clients WHERE client_id = ${client.clientId}`
              return exists.length === 0 ? missing : conflict
            })
          )
        ),

      remove: (clientId, expectedVersion) =>
        // R7592-5-f: the client's token is a column of its row and goes with it.
        transaction<boolean, never>(
          "remove",
          Effect.map(
            expectedVersion === undefined
              ? sql`DELETE FROM dcr_clients WHERE client_id = ${clientId} RETURNING client_id`
              : sql`DELETE FROM dcr_clients WHERE client_id = ${clientId} AND version = ${expectedVersion}
                RETURNING client_id`,
            (removed) => removed.length > 0
          )
        ),

      revokeToken: (tokenId) =>
        sql`UPDATE dcr_clients SET registration_token_id = NULL WHERE registration_token_id = ${tokenId}`.pipe(
          storeError("revokeToken"),
          Effect.asVoid
        ),

      insertInitialToken: (record) =>
        sql`INSERT INTO dcr_initial_tokens (token_id, expires_at, uses_remaining, policy, created_at)
        VALUES (${record.tokenId}, ${record.expiresAt}, ${record.usesRemaining ?? null},
          ${SqlRows.policyOf(record.policy)}, ${record.createdAt})`.pipe(
          storeError("insertInitialToken"),
          Effect.asVoid
        ),

      findInitialToken: (tokenId) =>
        sql`SELECT * FROM dcr_initial_tokens WHERE token_id = ${tokenId}`.pipe(
          storeError("findInitialToken"),
          Effect.flatMap((rows) =>
            rows[0] === undefined
              ? Effect.succeed(Option.none())
              : Effect.map(SqlRows.decodeInitialToken(rows[0]), Option.some)
          )
        )
    }
  })

/**
 * The store over the `SqlClient` in context, after running the migrations,
 * with client secrets sealed when `sealingKeys` are given.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerWith = (options: Options): Layer.Layer<ClientStore, StoreError, SqlClient.SqlClient> =>
  Layer.effect(
    ClientStore,
    Effect.zipRight(
      Effect.mapError(migrate, (cause) => new StoreError({ operation: "migrate", cause })),
      makeWith(options)
    )
  )

/**
 * `layerWith` without sealing.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<ClientStore, StoreError, SqlClient.SqlClient> = layerWith({})

/**
 * `makeWith` without sealing.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<ClientStoreService, never, SqlClient.SqlClient> = makeWith({})
