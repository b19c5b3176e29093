/**
 * The SQLite store's operations over an open, migrated better-sqlite3
 * connection: every statement prepared once, reads one synchronous call,
 * writes committed in groups (`groupCommit.ts`). `SqliteStore.layer` builds
 * it; apart from it so tests can run it on a connection they hold.
 *
 * @internal
 */
import type Sqlite from "better-sqlite3"
import { Effect, Option } from "effect"
import type { RegisteredClient } from "../ClientInformation.js"
import type {
  ClientStoreService,
  InitialTokenRecord,
  InitialTokenUse,
  InsertOutcome,
  TokenRotation,
  UpdateOutcome
} from "../ClientStore.js"
import type { GroupCommit } from "./groupCommit.js"
import * as SqlRows from "./sqlRows.js"
import { attempt } from "./sqlRows.js"

/** Ends a transaction early with this outcome; throwing it rolls the transaction back. */
class Abort {
  constructor(readonly outcome: UpdateOutcome) {}
}

/**
 * The store over an open, migrated database, its writes committed by `writes`.
 *
 * A read is one synchronous call of the driver (in `attempt`, a cheaper
 * `Effect.try`), run at once: it sees what has been committed, and not a
 * write still waiting in the group commit's queue (that write has not been
 * acknowledged yet either).
 *
 * A write is a better-sqlite3 transaction function queued in `writes`: it
 * runs in the group's `BEGIN IMMEDIATE` transaction as a savepoint of its
 * own, in which a client and its tokens change together or not at all. The
 * port's interruption contract: before the commit point a write seals the
 * secret (JWE, asynchronous) and then waits in the queue, both interruptible
 * with nothing written; from the group's BEGIN to its COMMIT nothing can
 * interrupt it, and once it has committed the answer is the outcome it had.
 */
export const make = (db: Sqlite.Database, sealer: SqlRows.Sealer, writes: GroupCommit): ClientStoreService => {
  // Prepared once; the parameters are typed, the rows are `unknown` and decoded by SqlRows.
  const ping = db.prepare<[]>("SELECT 1").pluck()
  const clientById = db.prepare<[clientId: string]>("SELECT * FROM dcr_clients WHERE client_id = ?")
  const clientExists = db.prepare<[clientId: string]>("SELECT 1 FROM dcr_clients WHERE client_id = ?").pluck()
  const tokenOwner = db
    .prepare<[tokenId: string]>("SELECT client_id FROM dcr_registration_tokens WHERE token_id = ?")
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
      version: number
    ]
  >(
    `INSERT INTO dcr_clients
      (client_id, client_id_issued_at, client_secret, client_secret_expires_at, metadata, policy, version)
      VALUES (?, ?, ?, ?, ?, ?, ?)`
  )
  const insertToken = db.prepare<[tokenId: string, clientId: string]>(
    "INSERT INTO dcr_registration_tokens (token_id, client_id) VALUES (?, ?)"
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
  const deleteOwnToken = db.prepare<[tokenId: string, clientId: string]>(
    "DELETE FROM dcr_registration_tokens WHERE token_id = ? AND client_id = ?"
  )
  const deleteClient = db.prepare<[clientId: string]>("DELETE FROM dcr_clients WHERE client_id = ?")
  const deleteClientAt = db.prepare<[clientId: string, expectedVersion: number]>(
    "DELETE FROM dcr_clients WHERE client_id = ? AND version = ?"
  )
  const deleteTokensOf = db.prepare<[clientId: string]>("DELETE FROM dcr_registration_tokens WHERE client_id = ?")
  const deleteToken = db.prepare<[tokenId: string]>("DELETE FROM dcr_registration_tokens WHERE token_id = ?")
  const insertInitialToken = db.prepare<
    [tokenId: string, expiresAt: number, usesRemaining: number | null, policy: string | null, createdAt: number]
  >(
    `INSERT INTO dcr_initial_tokens (token_id, expires_at, uses_remaining, policy, created_at)
      VALUES (?, ?, ?, ?, ?)`
  )
  const initialTokenById = db.prepare<[tokenId: string]>("SELECT * FROM dcr_initial_tokens WHERE token_id = ?")

  const insert = db.transaction(
    (
      client: RegisteredClient,
      secret: string | null,
      tokenId: string,
      initialToken: InitialTokenUse | undefined
    ): InsertOutcome => {
      if (initialToken !== undefined && spendInitialToken.run(initialToken.tokenId, initialToken.now).changes === 0) {
        return "initial-token-unavailable"
      }
      insertClient.run(
        client.clientId,
        client.clientIdIssuedAt,
        secret,
        client.clientSecretExpiresAt,
        SqlRows.metadataText(client.metadata),
        SqlRows.policyOf(client.policy),
        client.version
      )
      insertToken.run(tokenId, client.clientId)
      return "inserted"
    }
  )

  const update = db.transaction(
    (
      client: RegisteredClient,
      secret: string | null,
      expectedVersion: number,
      rotation: TokenRotation | undefined
    ): UpdateOutcome => {
      const replaced = replaceClient.run(
        secret,
        client.clientSecretExpiresAt,
        SqlRows.metadataText(client.metadata),
        SqlRows.policyOf(client.policy),
        client.version,
        client.clientId,
        expectedVersion
      )
      if (replaced.changes === 0) return clientExists.get(client.clientId) === undefined ? "missing" : "conflict"
      if (rotation !== undefined) {
        // Only one of two racing rotations finds the old token still there;
        // the other rolls back the client row it has just replaced.
        if (deleteOwnToken.run(rotation.revoke, client.clientId).changes === 0) throw new Abort("conflict")
        insertToken.run(rotation.issue, client.clientId)
      }
      return "updated"
    }
  )

  const remove = db.transaction((clientId: string, expectedVersion: number | undefined): boolean => {
    const removed =
      expectedVersion === undefined ? deleteClient.run(clientId) : deleteClientAt.run(clientId, expectedVersion)
    if (removed.changes === 0) return false
    // R7592-5-f: every token it owns goes in the same transaction.
    deleteTokensOf.run(clientId)
    return true
  })

  // Each write is a transaction function, so that in the group's transaction
  // it is a savepoint of its own: a failing one undoes itself only.
  const revoke = db.transaction((tokenId: string): void => {
    deleteToken.run(tokenId)
  })

  const storeInitialToken = db.transaction((record: InitialTokenRecord): void => {
    insertInitialToken.run(
      record.tokenId,
      record.expiresAt,
      record.usesRemaining ?? null,
      SqlRows.policyOf(record.policy),
      record.createdAt
    )
  })

  return {
    ping: Effect.asVoid(attempt("ping", () => ping.get())),

    // The secret is sealed (async) before the write is queued.
    insert: (client, tokenId, initialToken) =>
      Effect.flatMap(sealer.seal(client.clientSecret), (secret) =>
        writes.write("insert", () => insert(client, secret, tokenId, initialToken))
      ),

    findById: (clientId) =>
      Effect.flatMap(
        attempt("findById", () => clientById.get(clientId)),
        (row) =>
          row === undefined ? Effect.succeed(Option.none()) : Effect.map(SqlRows.decodeClient(sealer, row), Option.some)
      ),

    findTokenOwner: (tokenId) =>
      attempt("findTokenOwner", () => {
        const owner = tokenOwner.get(tokenId)
        return owner === undefined ? Option.none() : Option.some(SqlRows.text(owner))
      }),

    update: (client, expectedVersion, rotation) =>
      Effect.flatMap(sealer.seal(client.clientSecret), (secret) =>
        writes.write("update", () => {
          try {
            return update(client, secret, expectedVersion, rotation)
          } catch (error) {
            // Its savepoint is rolled back already.
            if (error instanceof Abort) return error.outcome
            throw error
          }
        })
      ),

    remove: (clientId, expectedVersion) => writes.write("remove", () => remove(clientId, expectedVersion)),

    revokeToken: (tokenId) => writes.write("revokeToken", () => revoke(tokenId)),

    insertInitialToken: (record) => writes.write("insertInitialToken", () => storeInitialToken(record)),

    findInitialToken: (tokenId) =>
      Effect.flatMap(
        attempt("findInitialToken", () => initialTokenById.get(tokenId)),
        (row) =>
          row === undefined ? Effect.succeed(Option.none()) : Effect.map(SqlRows.decodeInitialToken(row), Option.some)
      )
  }
}
