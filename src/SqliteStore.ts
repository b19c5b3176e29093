/**
 * The store on SQLite: a file, or `:memory:`. A subpath module, so importing
 * `effect-dcr` never loads the native driver.
 *
 * It runs on better-sqlite3 directly rather than through `@effect/sql`
 * (issue 6): the driver is synchronous, and per statement `@effect/sql` adds
 * a compilation of the tagged template, a span, a semaphore, a prepared
 * statement cache with a TTL and scheduler hops — over 70 % of a read's CPU.
 * Here every statement is prepared once, when the layer is built, and every
 * operation is one synchronous call.
 *
 * The tables, the migrations and their bookkeeping (`dcr_migrations`) are
 * `SqlClientStore`'s, run by `@effect/sql`'s Migrator over the same
 * connection, so a file written by the earlier `SqlClientStore`-on-SQLite
 * store opens and works unchanged, and the other way round.
 *
 * @since 0.1.0
 */
import type Sqlite from "better-sqlite3"
import { Effect, Layer, Option } from "effect"
import type { RegisteredClient } from "./ClientInformation.js"
import {
  ClientStore,
  type ClientStoreService,
  type InitialTokenUse,
  type InsertOutcome,
  type TokenRotation,
  type UpdateOutcome
} from "./ClientStore.js"
import { StoreError } from "./ProtocolError.js"
import type * as SqlClientStore from "./SqlClientStore.js"
import * as SqlRows from "./internal/sqlRows.js"
import { connect } from "./internal/sqliteConnection.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** A file path (its folder is created when missing) or `:memory:`. */
  readonly filename: string
  /** Seal client secrets at rest (see `SqlClientStore.Options`). */
  readonly sealingKeys?: ReadonlyArray<SqlClientStore.SealingKey> | undefined
  /**
   * SQLite's `synchronous` setting (the journal is always WAL).
   *
   * - `"normal"` (the default): a commit is written to the WAL but not
   *   flushed to the disk; the WAL is flushed at each checkpoint. A committed
   *   write survives a crash of the process; on a power loss or an OS crash
   *   the last transactions before it may be lost (never a half transaction,
   *   never a corrupt file). The usual choice for WAL (Rails 8, Django and
   *   most SQLite-backed servers default to it).
   * - `"full"`: every commit is flushed to the disk before it is answered,
   *   so an acknowledged registration or update also survives a power loss;
   *   each write then waits for the disk (an fsync), and being synchronous,
   *   so does every other request of the process meanwhile.
   *
   * What a lost write means here: a registration answered just before a
   * power loss is gone (the client registers again), or an update is (the
   * client is as it was before it, with — when rotation is on — the
   * registration access token the client has already replaced). Measured on
   * a virtual disk, FULL took an update through `Protocol.handle` from about
   * 80 to 310 µs and a registration from 150 to 390 µs. See
   * docs/operations.md.
   */
  readonly synchronous?: "normal" | "full" | undefined
  /**
   * Checkpoint from a worker thread (default true; ignored for `:memory:`).
   *
   * In WAL mode a commit appends pages to the WAL; a checkpoint copies them
   * into the database file and flushes both to the disk. SQLite runs one in
   * the commit that takes the WAL past a size (here 8 000 pages, about
   * 32 MB), on the event loop, where it holds up every request for several
   * milliseconds. With this option a worker thread with its own connection
   * runs PASSIVE checkpoints (they never block a reader or the writer) every
   * 10 ms while the WAL grows, so the commit that reaches the size finds
   * almost everything copied and flushed already. Measured for a stream of
   * registrations (issue 6): 52 → 44 µs each and the longest stall
   * 28 → 13 ms on two cores; on one core 55 → 52 µs. The thread is stopped,
   * and its connection closed, before the store's own connection closes.
   */
  readonly backgroundCheckpoints?: boolean | undefined
}

/**
 * The store over an open, migrated database.
 *
 * Every operation is one synchronous call of the driver (in `attempt`, a
 * cheaper `Effect.try`): it runs whole or not at all and no fiber can be
 * interrupted half way through it, because there is no point inside it at
 * which a fiber waits. A client and its registration access token are one
 * row, so each write is one statement — its own transaction, which SQLite
 * begins by taking the write lock, as `BEGIN IMMEDIATE` would, so a writer
 * in another process is waited for rather than a lock upgrade failing —
 * except a registration that spends an initial access token, which is one
 * `BEGIN IMMEDIATE` transaction of two. That is how this store keeps the
 * port's interruption contract: the only part of a write before its commit
 * point that takes time is sealing the secret (JWE, asynchronous), which
 * runs before the statement and is interruptible with nothing written; from
 * the statement's start to its commit nothing can interrupt it, and once it
 * has committed the answer is the outcome it had.
 */
const make = (db: Sqlite.Database, sealer: SqlRows.Sealer): ClientStoreService => {
  // Prepared once; the parameters are typed, the rows are `unknown` and decoded by SqlRows.
  const ping = db.prepare<[]>("SELECT 1").pluck()
  const clientById = db.prepare<[clientId: string]>("SELECT * FROM dcr_clients WHERE client_id = ?")
  const clientByToken = db.prepare<[tokenId: string]>("SELECT * FROM dcr_clients WHERE registration_token_id = ?")
  const clientExists = db.prepare<[clientId: string]>("SELECT 1 FROM dcr_clients WHERE client_id = ?").pluck()
  const tokenOwner = db
    .prepare<[tokenId: string]>("SELECT client_id FROM dcr_clients WHERE registration_token_id = ?")
    .pluck()
  // D22: spend one use, only while the token is live and has one left.
  const spendInitialToken = db.prepare<[tokenId: string, now: number]>(
    `UPDATE dcr_initial_tokens SET uses_remaining = uses_remaining - 1
      WHERE token_id = ? AND (expires_at = 0 OR expires_at > ?) AND (uses_remaining IS NULL OR uses_remaining > 0)`
  )
  const insertClient = db.prepare<
    [
      clientId: string,
      issuedAt: number,
      secret: string | null,
      secretExpiresAt: number,
      metadata: string,
      policy: string | null,
      version: number,
      tokenId: string
    ]
  >(
    `INSERT INTO dcr_clients
      (client_id, client_id_issued_at, client_secret, client_secret_expires_at, metadata, policy, version,
        registration_token_id)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?)`
  )
  const replaceClient = db.prepare<
    [
      secret: string | null,
      secretExpiresAt: number,
      metadata: string,
      policy: string | null,
      version: number,
      clientId: string,
      expectedVersion: number
    ]
  >(
    `UPDATE dcr_clients
      SET client_secret = ?, client_secret_expires_at = ?, metadata = ?, policy = ?, version = ?
      WHERE client_id = ? AND version = ?`
  )
  // The compare-and-set of an update with a rotation: on the version and on
  // the old token still being the live one. Its own statement rather than one
  // with optional parameters: an update that does not rotate (the common
  // case) then never names the token column, so its index is not touched.
  const replaceClientRotating = db.prepare<
    [
      secret: string | null,
      secretExpiresAt: number,
      metadata: string,
      policy: string | null,
      version: number,
      issue: string,
      clientId: string,
      expectedVersion: number,
      revoke: string
    ]
  >(
    `UPDATE dcr_clients
      SET client_secret = ?, client_secret_expires_at = ?, metadata = ?, policy = ?, version = ?,
        registration_token_id = ?
      WHERE client_id = ? AND version = ? AND registration_token_id = ?`
  )
  const deleteClient = db.prepare<[clientId: string]>("DELETE FROM dcr_clients WHERE client_id = ?")
  const deleteClientAt = db.prepare<[clientId: string, expectedVersion: number]>(
    "DELETE FROM dcr_clients WHERE client_id = ? AND version = ?"
  )
  const clearToken = db.prepare<[tokenId: string]>(
    "UPDATE dcr_clients SET registration_token_id = NULL WHERE registration_token_id = ?"
  )
  const insertInitialToken = db.prepare<
    [tokenId: string, expiresAt: number, usesRemaining: number | null, policy: string | null, createdAt: number]
  >(
    `INSERT INTO dcr_initial_tokens (token_id, expires_at, uses_remaining, policy, created_at)
      VALUES (?, ?, ?, ?, ?)`
  )
  const initialTokenById = db.prepare<[tokenId: string]>("SELECT * FROM dcr_initial_tokens WHERE token_id = ?")

  const insertRow = (client: RegisteredClient, secret: string | null, tokenId: string): void => {
    insertClient.run(
      client.clientId,
      client.clientIdIssuedAt,
      secret,
      client.clientSecretExpiresAt,
      SqlRows.metadataText(client.metadata),
      SqlRows.policyOf(client.policy),
      client.version,
      tokenId
    )
  }

  // D22: the use is spent and the row inserted in one transaction.
  const insertSpending = db.transaction(
    (
      client: RegisteredClient,
      secret: string | null,
      tokenId: string,
      initialToken: InitialTokenUse
    ): InsertOutcome => {
      if (spendInitialToken.run(initialToken.tokenId, initialToken.now).changes === 0) {
        return "initial-token-unavailable"
      }
      insertRow(client, secret, tokenId)
      return "inserted"
    }
  )

  const update = (
    client: RegisteredClient,
    secret: string | null,
    expectedVersion: number,
    rotation: TokenRotation | undefined
  ): UpdateOutcome => {
    const metadata = SqlRows.metadataText(client.metadata)
    const policy = SqlRows.policyOf(client.policy)
    const replaced =
      rotation === undefined
        ? replaceClient.run(
            secret,
            client.clientSecretExpiresAt,
            metadata,
            policy,
            client.version,
            client.clientId,
            expectedVersion
          )
        : replaceClientRotating.run(
            secret,
            client.clientSecretExpiresAt,
            metadata,
            policy,
            client.version,
            rotation.issue,
            client.clientId,
            expectedVersion,
            rotation.revoke
          )
    if (replaced.changes > 0) return "updated"
    return clientExists.get(client.clientId) === undefined ? "missing" : "conflict"
  }

  return {
    ping: Effect.asVoid(SqlRows.attempt("ping", () => ping.get())),

    // The secret is sealed (async) before the synchronous transaction starts.
    insert: (client, tokenId, initialToken) =>
      Effect.flatMap(sealer.seal(client.clientSecret), (secret) =>
        SqlRows.attempt("insert", (): InsertOutcome => {
          if (initialToken !== undefined) return insertSpending.immediate(client, secret, tokenId, initialToken)
          insertRow(client, secret, tokenId)
          return "inserted"
        })
      ),

    findById: (clientId) =>
      Effect.flatMap(
        SqlRows.attempt("findById", () => clientById.get(clientId)),
        (row) => SqlRows.decodeFoundClient(sealer, row)
      ),

    findByToken: (tokenId) =>
      Effect.flatMap(
        SqlRows.attempt("findByToken", () => clientByToken.get(tokenId)),
        (row) => SqlRows.decodeFoundClient(sealer, row)
      ),

    findTokenOwner: (tokenId) =>
      SqlRows.attempt("findTokenOwner", () => {
        const owner = tokenOwner.get(tokenId)
        return owner === undefined ? Option.none() : Option.some(SqlRows.text(owner))
      }),

    update: (client, expectedVersion, rotation) =>
      Effect.flatMap(sealer.seal(client.clientSecret), (secret) =>
        SqlRows.attempt("update", () => update(client, secret, expectedVersion, rotation))
      ),

    // R7592-5-f: the client's token is a column of its row and goes with it.
    remove: (clientId, expectedVersion) =>
      SqlRows.attempt(
        "remove",
        () =>
          (expectedVersion === undefined ? deleteClient.run(clientId) : deleteClientAt.run(clientId, expectedVersion))
            .changes > 0
      ),

    revokeToken: (tokenId) => Effect.asVoid(SqlRows.attempt("revokeToken", () => clearToken.run(tokenId))),

    insertInitialToken: (record) =>
      Effect.asVoid(
        SqlRows.attempt("insertInitialToken", () =>
          insertInitialToken.run(
            record.tokenId,
            record.expiresAt,
            record.usesRemaining ?? null,
            SqlRows.policyOf(record.policy),
            record.createdAt
          )
        )
      ),

    findInitialToken: (tokenId) =>
      Effect.flatMap(
        SqlRows.attempt("findInitialToken", () => initialTokenById.get(tokenId)),
        (row) =>
          row === undefined ? Effect.succeed(Option.none()) : Effect.map(SqlRows.decodeInitialToken(row), Option.some)
      )
  }
}

/**
 * A `ClientStore` on SQLite, migrated at start. One connection, opened when
 * the layer is built and closed when its scope closes; WAL journal,
 * `synchronous` as {@link Options} says (NORMAL by default), and writes
 * wait up to 5 s for another process's write (`busy_timeout`) before they
 * fail.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<ClientStore, StoreError> =>
  Layer.scoped(
    ClientStore,
    Effect.gen(function* () {
      const sealer = yield* SqlRows.attempt("check the sealing keys", () =>
        SqlRows.makeSealer(options.sealingKeys ?? [])
      )
      const db = yield* connect(options)
      return yield* SqlRows.attempt("prepare the statements", () => make(db, sealer))
    })
  )
