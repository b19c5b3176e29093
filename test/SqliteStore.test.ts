/**
 * `SqliteStore` on better-sqlite3 directly (issue 6: SQLite read ≲ 30 µs,
 * update and register ≲ 100 µs of protocol CPU). The contract suite runs on
 * it from SqlClientStore.test.ts; here is what only it has: the files the
 * previous implementation (`SqlClientStore` over `@effect/sql-sqlite-node`)
 * wrote open and work unchanged, and the other way round; a new file is
 * migrated exactly as that implementation migrates one; the pragmas (WAL,
 * `synchronous`, `busy_timeout`) and a second process's write being waited
 * for; the connection closed with the layer; every failure a `StoreError`
 * naming its operation, with no secret in its message (D20); and the group
 * commit of its writes (issue 6): the writes issued in one turn of the event
 * loop commit in one transaction, each with the outcome it would have alone.
 */
import { spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { SqlClient } from "@effect/sql"
import { SqliteClient } from "@effect/sql-sqlite-node"
import Sqlite from "better-sqlite3"
import { Cause, Effect, Exit, Fiber, Layer, ManagedRuntime, Option, Redacted } from "effect"
import { describe, expect, it } from "vitest"
import type { RegisteredClient } from "../src/ClientInformation.js"
import { ClientStore, type ClientStoreService, type InitialTokenRecord } from "../src/ClientStore.js"
import { StoreError } from "../src/ProtocolError.js"
import * as SqlClientStore from "../src/SqlClientStore.js"
import * as SqliteStore from "../src/SqliteStore.js"
import * as GroupCommit from "../src/internal/groupCommit.js"
import * as SqlRows from "../src/internal/sqlRows.js"
import { busyTimeoutMillis, connect } from "../src/internal/sqliteConnection.js"
import { make as makeSqliteStore } from "../src/internal/sqliteStore.js"
import { makeClient } from "./ClientStore.contract.js"

const freshFile = (label: string) => join(mkdtempSync(join(tmpdir(), `effect-dcr-sqlite-${label}-`)), "store.sqlite")

/** The store `SqliteStore.layer` built before issue 6: `SqlClientStore` over `@effect/sql-sqlite-node`. */
const previousStore = (filename: string, sealingKeys?: ReadonlyArray<SqlClientStore.SealingKey>) =>
  SqlClientStore.layerWith({ sealingKeys }).pipe(Layer.provide(SqliteClient.layer({ filename })))

/** Builds `layer`, runs `use` on its store, and closes the layer. */
const withStore = <A, E, LE>(
  layer: Layer.Layer<ClientStore, LE>,
  use: (store: ClientStoreService) => Effect.Effect<A, E>
): Promise<A> => Effect.runPromise(Effect.orDie(Effect.provide(Effect.flatMap(ClientStore, use), layer)))

/** Runs `effect` on a raw `@effect/sql` connection to `filename`. */
const rawSql = <A, E>(filename: string, effect: Effect.Effect<A, E, SqlClient.SqlClient>): Promise<A> =>
  Effect.runPromise(Effect.orDie(Effect.provide(effect, SqliteClient.layer({ filename }))))

/** Comparable: `Redacted` hides its value from deep equality; an absent policy is undefined. */
const plain = (client: Option.Option<RegisteredClient>) =>
  Option.map(client, (found) => ({
    clientId: found.clientId,
    clientIdIssuedAt: found.clientIdIssuedAt,
    clientSecret: found.clientSecret === undefined ? undefined : Redacted.value(found.clientSecret),
    clientSecretExpiresAt: found.clientSecretExpiresAt,
    metadata: found.metadata,
    version: found.version,
    policy: found.policy
  }))

const keyOf = (kid: string): SqlClientStore.SealingKey => ({
  kid,
  key: Redacted.make(new Uint8Array(randomBytes(32)))
})

const schemaOf = (filename: string) =>
  rawSql(
    filename,
    Effect.flatMap(SqlClient.SqlClient, (sql) =>
      Effect.all({
        objects: sql`SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name`,
        migrations: sql`SELECT migration_id, name FROM dcr_migrations ORDER BY migration_id`,
        journal: sql`PRAGMA journal_mode`
      })
    )
  )

describe("issue 6: SqliteStore reads and writes the files of the previous SQLite store", () => {
  it("issue 6 D15 D22: a file written by SqlClientStore over @effect/sql-sqlite-node is read and updated by the new SqliteStore, and the other way round", async () => {
    const filename = freshFile("previous")
    const keys = [keyOf("k1")]
    const confidential: RegisteredClient = {
      ...makeClient("confidential-client", 1, "Written Before"),
      policy: { redirectUriHosts: ["client.example.org"], scopes: ["openid"] }
    }
    const publicClient: RegisteredClient = {
      ...makeClient("public-client", 4, "Public"),
      clientSecret: undefined,
      metadata: { token_endpoint_auth_method: "none", grant_types: ["client_credentials"], response_types: [] }
    }
    const initialToken: InitialTokenRecord = {
      tokenId: "initial-token",
      expiresAt: 0,
      usesRemaining: 2,
      policy: { scopes: ["openid"] },
      createdAt: 1_700_000_000
    }

    // The previous implementation writes the file (secrets sealed) and is closed.
    await withStore(previousStore(filename, keys), (store) =>
      Effect.gen(function* () {
        expect(yield* store.insert(confidential, "token-confidential")).toBe("inserted")
        expect(yield* store.insert(publicClient, "token-public")).toBe("inserted")
        yield* store.insertInitialToken(initialToken)
      })
    )
    const migrationsBefore = await rawSql(
      filename,
      Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT * FROM dcr_migrations`)
    )

    // The new store opens it unchanged: every record reads back as written.
    const updated: RegisteredClient = {
      ...confidential,
      metadata: { ...confidential.metadata, client_name: "Updated After" },
      version: 2
    }
    const registered = makeClient("registered-after", 1, "Registered After")
    await withStore(SqliteStore.layer({ filename, sealingKeys: keys }), (store) =>
      Effect.gen(function* () {
        expect(plain(yield* store.findById(confidential.clientId))).toStrictEqual(plain(Option.some(confidential)))
        expect(plain(yield* store.findById(publicClient.clientId))).toStrictEqual(plain(Option.some(publicClient)))
        expect(yield* store.findTokenOwner("token-confidential")).toStrictEqual(Option.some(confidential.clientId))
        expect(yield* store.findInitialToken(initialToken.tokenId)).toStrictEqual(Option.some(initialToken))

        // ... and updates it with the same semantics (D15 compare-and-set and rotation, D22 spending).
        expect(yield* store.update(updated, 1, { revoke: "token-confidential", issue: "token-rotated" })).toBe(
          "updated"
        )
        expect(yield* store.update(updated, 1)).toBe("conflict")
        expect(yield* store.insert(registered, "token-registered", { tokenId: initialToken.tokenId, now: 1 })).toBe(
          "inserted"
        )
        expect(yield* store.remove(publicClient.clientId, 4)).toBe(true)
      })
    )

    // Nothing was migrated again, and the previous implementation reads what the new one wrote.
    expect(
      await rawSql(
        filename,
        Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT * FROM dcr_migrations`)
      )
    ).toStrictEqual(migrationsBefore)
    await withStore(previousStore(filename, keys), (store) =>
      Effect.gen(function* () {
        expect(plain(yield* store.findById(confidential.clientId))).toStrictEqual(plain(Option.some(updated)))
        expect(yield* store.findTokenOwner("token-confidential")).toStrictEqual(Option.none())
        expect(yield* store.findTokenOwner("token-rotated")).toStrictEqual(Option.some(confidential.clientId))
        expect(plain(yield* store.findById(registered.clientId))).toStrictEqual(plain(Option.some(registered)))
        expect(Option.map(yield* store.findInitialToken(initialToken.tokenId), (found) => found.usesRemaining)).toEqual(
          Option.some(1)
        )
        expect(yield* store.findById(publicClient.clientId)).toStrictEqual(Option.none())
        expect(yield* store.findTokenOwner("token-public")).toStrictEqual(Option.none())
      })
    )
  })

  it("issue 6: a new file gets exactly the schema and dcr_migrations rows the previous implementation gives one, once", async () => {
    const previous = freshFile("schema-previous")
    const current = freshFile("schema-current")
    await withStore(previousStore(previous), () => Effect.void)
    await withStore(SqliteStore.layer({ filename: current }), () => Effect.void)
    // Opening it again runs nothing again.
    await withStore(SqliteStore.layer({ filename: current }), () => Effect.void)

    const expected = await schemaOf(previous)
    const actual = await schemaOf(current)
    expect(actual).toStrictEqual(expected)
    expect(actual.migrations).toHaveLength(Object.keys(SqlClientStore.migrations).length)
    expect(actual.journal).toStrictEqual([{ journal_mode: "wal" }])
  })
})

describe("issue 6: SqliteStore's connection", () => {
  const pragmas = (synchronous: SqliteStore.Options["synchronous"]) =>
    Effect.runPromise(
      Effect.scoped(
        Effect.map(connect({ filename: freshFile("pragmas"), synchronous }), (db) => ({
          journal: db.pragma("journal_mode", { simple: true }),
          synchronous: db.pragma("synchronous", { simple: true }),
          busyTimeout: db.pragma("busy_timeout", { simple: true })
        }))
      )
    )

  it("issue 6: WAL, synchronous NORMAL by default and FULL when asked, and a busy_timeout", async () => {
    // SQLite's codes: 1 is NORMAL, 2 is FULL.
    expect(await pragmas(undefined)).toStrictEqual({ journal: "wal", synchronous: 1, busyTimeout: busyTimeoutMillis })
    expect(await pragmas("normal")).toStrictEqual({ journal: "wal", synchronous: 1, busyTimeout: busyTimeoutMillis })
    expect(await pragmas("full")).toStrictEqual({ journal: "wal", synchronous: 2, busyTimeout: busyTimeoutMillis })
  })

  it("issue 6: a store with synchronous FULL stores and reads like the default one", async () => {
    const filename = freshFile("full")
    const client = makeClient("full-client")
    await withStore(SqliteStore.layer({ filename, synchronous: "full" }), (store) =>
      Effect.gen(function* () {
        expect(yield* store.insert(client, "full-token")).toBe("inserted")
        expect(yield* store.update({ ...client, version: 2 }, 1)).toBe("updated")
      })
    )
    await withStore(SqliteStore.layer({ filename }), (store) =>
      Effect.map(store.findById(client.clientId), (found) => {
        expect(plain(found)).toStrictEqual(plain(Option.some({ ...client, version: 2 })))
      })
    )
  })

  it("issue 6: a write waits for another process's transaction on the same file instead of failing", async () => {
    const filename = freshFile("busy")
    await withStore(SqliteStore.layer({ filename }), () => Effect.void)
    const holdMillis = 400
    // Another process takes the write lock and keeps it for holdMillis.
    const holder = spawn(
      process.execPath,
      [
        "-e",
        `const db = new (require("better-sqlite3"))(process.argv[1]);
         db.exec("BEGIN IMMEDIATE"); db.prepare("UPDATE dcr_initial_tokens SET uses_remaining = 0").run();
         process.stdout.write("locked\\n");
         setTimeout(() => { db.exec("COMMIT"); db.close(); }, ${holdMillis});`,
        filename
      ],
      { cwd: process.cwd(), stdio: ["ignore", "pipe", "inherit"] }
    )
    const exited = new Promise<number | null>((resolve) => holder.on("exit", resolve))
    await new Promise<void>((resolve, reject) => {
      holder.stdout.on("data", (chunk: Buffer) => {
        if (chunk.toString().includes("locked")) resolve()
      })
      holder.on("exit", () => reject(new Error("the lock holder exited before locking")))
    })

    const client = makeClient("waited-for")
    const started = performance.now()
    const outcome = await withStore(SqliteStore.layer({ filename }), (store) => store.insert(client, "waited-token"))
    const waited = performance.now() - started

    expect(outcome).toBe("inserted")
    expect(waited).toBeGreaterThanOrEqual(holdMillis / 2)
    expect(waited).toBeLessThan(busyTimeoutMillis)
    expect(await exited).toBe(0)
    await withStore(SqliteStore.layer({ filename }), (store) =>
      Effect.map(store.findTokenOwner("waited-token"), (owner) => {
        expect(owner).toStrictEqual(Option.some(client.clientId))
      })
    )
  })

  it("issue 6: the connection is closed with the layer (the WAL is checkpointed away) and a call after it is a StoreError", async () => {
    const filename = freshFile("close")
    const runtime = ManagedRuntime.make(SqliteStore.layer({ filename }))
    const store = await runtime.runPromise(ClientStore)
    await runtime.runPromise(store.insert(makeClient("closing"), "closing-token"))
    expect(existsSync(`${filename}-wal`)).toBe(true)
    await runtime.dispose()
    // SQLite removes the WAL when its last connection closes.
    expect(existsSync(`${filename}-wal`)).toBe(false)
    const exit = await Effect.runPromiseExit(store.findById("closing"))
    expect(Exit.isFailure(exit) && Cause.failureOption(exit.cause)).toStrictEqual(
      Option.some(expect.objectContaining({ _tag: "StoreError", operation: "findById" }))
    )
  })
})

describe("D20 issue 6: SqliteStore's failures", () => {
  const failureOf = <A>(effect: Effect.Effect<A, StoreError>) =>
    Effect.map(Effect.flip(effect), (error) => {
      expect(error).toBeInstanceOf(StoreError)
      return error
    })

  it("D20: a failing statement is a StoreError naming the operation, with the driver's error as cause, and no secret in any message", async () => {
    const filename = freshFile("errors")
    const secret = `very-secret-${randomBytes(8).toString("hex")}`
    const client: RegisteredClient = { ...makeClient("taken"), clientSecret: Redacted.make(secret) }
    await withStore(SqliteStore.layer({ filename }), (store) =>
      Effect.gen(function* () {
        yield* store.insert(client, "taken-token")
        const taken = yield* failureOf(store.insert(client, "another-token"))
        expect(taken.operation).toBe("insert")
        expect(taken.cause).toBeInstanceOf(Error)
        expect(String(taken.cause)).toMatch(/UNIQUE constraint failed: dcr_clients\.client_id/)
        for (const text of [taken.message, String(taken), String(taken.cause)]) expect(text).not.toContain(secret)
        // The failed insert left nothing: the second token is not there.
        expect(yield* store.findTokenOwner("another-token")).toStrictEqual(Option.none())

        // A rotation onto a token id another client holds fails after the client row and the old token changed.
        yield* store.insert(makeClient("other"), "other-token")
        const rotatedOnto = yield* failureOf(
          store.update({ ...client, version: 2 }, 1, { revoke: "taken-token", issue: "other-token" })
        )
        expect(rotatedOnto.operation).toBe("update")
        // Rolled back whole: the version and the old token are as they were.
        expect(Option.map(yield* store.findById(client.clientId), (found) => found.version)).toStrictEqual(
          Option.some(1)
        )
        expect(yield* store.findTokenOwner("taken-token")).toStrictEqual(Option.some(client.clientId))
        expect(yield* store.findTokenOwner("other-token")).toStrictEqual(Option.some("other"))
      })
    )
  })

  it("D20: a stored row that does not decode is a StoreError for decode, not a defect", async () => {
    const filename = freshFile("decode")
    await withStore(SqliteStore.layer({ filename }), (store) => store.insert(makeClient("garbled"), "garbled-token"))
    await withStore(SqliteStore.layer({ filename }), (store) =>
      store.insertInitialToken({
        tokenId: "garbled-initial",
        expiresAt: 0,
        usesRemaining: undefined,
        policy: undefined,
        createdAt: 1
      })
    )
    await rawSql(
      filename,
      Effect.flatMap(SqlClient.SqlClient, (sql) =>
        Effect.zipRight(
          sql`UPDATE dcr_clients SET metadata = 'not json' WHERE client_id = 'garbled'`,
          sql`UPDATE dcr_initial_tokens SET policy = '[1]' WHERE token_id = 'garbled-initial'`
        )
      )
    )
    await withStore(SqliteStore.layer({ filename }), (store) =>
      Effect.gen(function* () {
        expect((yield* failureOf(store.findById("garbled"))).operation).toBe("decode")
        expect((yield* failureOf(store.findInitialToken("garbled-initial"))).operation).toBe("decode")
      })
    )
  })

  it("D20: a file that is not a database fails the layer with a StoreError", async () => {
    const filename = freshFile("not-a-database")
    writeFileSync(filename, "this is not a SQLite database, only text long enough to have a header".repeat(10))
    const exit = await Effect.runPromiseExit(Effect.provide(ClientStore, SqliteStore.layer({ filename })))
    expect(Exit.isFailure(exit) && Cause.failureOption(exit.cause)).toStrictEqual(
      Option.some(expect.objectContaining({ _tag: "StoreError" }))
    )
  })
})

/**
 * The transactions committed to `filename` so far (since the WAL last
 * restarted): the commit frames of its write-ahead log. Each frame header
 * carries the database size after the commit in a commit frame and 0 in the
 * others; frames whose salts differ from the header's are left over from
 * before a restart. A black-box count: it needs nothing from the store.
 */
const walCommits = (filename: string): number => {
  const wal = readFileSync(`${filename}-wal`)
  if (wal.length < 32) return 0
  const pageSize = wal.readUInt32BE(8)
  const salts = [wal.readUInt32BE(16), wal.readUInt32BE(20)]
  let commits = 0
  for (let at = 32; at + 24 + pageSize <= wal.length; at += 24 + pageSize) {
    if (wal.readUInt32BE(at + 8) !== salts[0] || wal.readUInt32BE(at + 12) !== salts[1]) break
    if (wal.readUInt32BE(at + 4) !== 0) commits++
  }
  return commits
}

/** One turn of the event loop, so the writes queued before it have been flushed. */
const nextTurn = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

/** Runs every effect concurrently: all of them are issued in the same turn. */
const inOneTurn = <const T extends ReadonlyArray<Effect.Effect<unknown, unknown>>>(effects: T) =>
  Effect.all(
    effects.map((effect) => Effect.exit(effect)),
    { concurrency: "unbounded" }
  )

const storeErrorOf = (exit: Exit.Exit<unknown, unknown>) =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

const versionOf = (store: ClientStoreService, clientId: string) =>
  Effect.map(
    store.findById(clientId),
    Option.map((found) => found.version)
  )

describe("issue 6: SqliteStore commits the writes of one turn together (group commit)", () => {
  it("issue 6 D15 D22 R7592: many registrations, updates, a rotation, a delete, a revocation and an initial token issued in one turn commit in one transaction, each with its own outcome", async () => {
    const filename = freshFile("group")
    const existing = Array.from({ length: 20 }, (_, i) => makeClient(`existing-${i}`))
    const fresh = Array.from({ length: 30 }, (_, i) => makeClient(`fresh-${i}`))
    const initial: InitialTokenRecord = {
      tokenId: "group-initial",
      expiresAt: 0,
      usesRemaining: 1,
      policy: undefined,
      createdAt: 1
    }
    await withStore(SqliteStore.layer({ filename }), (store) =>
      Effect.gen(function* () {
        // One after the other: one commit each.
        const before = walCommits(filename)
        for (const client of existing) yield* store.insert(client, `token-of-${client.clientId}`)
        yield* store.insertInitialToken(initial)
        expect(walCommits(filename) - before).toBe(existing.length + 1)

        const start = walCommits(filename)
        const [inserted, updated, rotated, removed, revoked, spent, issued] = yield* Effect.all(
          [
            Effect.all(
              fresh.map((client) => store.insert(client, `token-of-${client.clientId}`)),
              { concurrency: "unbounded" }
            ),
            Effect.all(
              existing.slice(0, 15).map((client) => store.update({ ...client, version: 2 }, 1)),
              { concurrency: "unbounded" }
            ),
            store.update({ ...makeClient("existing-15"), version: 2 }, 1, {
              revoke: "token-of-existing-15",
              issue: "rotated-15"
            }),
            store.remove("existing-16", 1),
            store.revokeToken("token-of-existing-17"),
            store.insert(makeClient("with-initial"), "token-with-initial", { tokenId: initial.tokenId, now: 2 }),
            store.insertInitialToken({ ...initial, tokenId: "issued-in-group" })
          ],
          { concurrency: "unbounded" }
        )
        // One transaction for all 51 writes.
        expect(walCommits(filename) - start).toBe(1)

        expect(inserted).toStrictEqual(fresh.map(() => "inserted"))
        expect(updated).toStrictEqual(existing.slice(0, 15).map(() => "updated"))
        expect([rotated, removed, revoked, spent, issued]).toStrictEqual([
          "updated",
          true,
          undefined,
          "inserted",
          undefined
        ])
        for (const client of fresh) {
          expect(plain(yield* store.findById(client.clientId))).toStrictEqual(plain(Option.some(client)))
          expect(yield* store.findTokenOwner(`token-of-${client.clientId}`)).toStrictEqual(Option.some(client.clientId))
        }
        for (const client of existing.slice(0, 16)) {
          expect(yield* versionOf(store, client.clientId)).toStrictEqual(Option.some(2))
        }
        expect(yield* store.findTokenOwner("token-of-existing-15")).toStrictEqual(Option.none())
        expect(yield* store.findTokenOwner("rotated-15")).toStrictEqual(Option.some("existing-15"))
        // R7592-5-f: the deleted client and every token it owned are gone.
        expect(yield* store.findById("existing-16")).toStrictEqual(Option.none())
        expect(yield* store.findTokenOwner("token-of-existing-16")).toStrictEqual(Option.none())
        expect(yield* store.findTokenOwner("token-of-existing-17")).toStrictEqual(Option.none())
        expect(yield* versionOf(store, "existing-17")).toStrictEqual(Option.some(1))
        // D22: the use was spent in the same transaction as the insert.
        expect(
          Option.map(yield* store.findInitialToken(initial.tokenId), (found) => found.usesRemaining)
        ).toStrictEqual(Option.some(0))
        expect(yield* store.findInitialToken("issued-in-group")).toStrictEqual(
          Option.some({ ...initial, tokenId: "issued-in-group" })
        )
      })
    )
  })

  it("issue 6 D15 D22: in one group, a write that fails (a taken id, a stale version, a lost rotation, a spent initial token) undoes only itself, and later writes see the earlier ones", async () => {
    const filename = freshFile("group-failures")
    const a = makeClient("a")
    const b = makeClient("b")
    const initial: InitialTokenRecord = {
      tokenId: "one-use",
      expiresAt: 0,
      usesRemaining: 1,
      policy: undefined,
      createdAt: 1
    }
    await withStore(SqliteStore.layer({ filename }), (store) =>
      Effect.gen(function* () {
        yield* store.insert(a, "token-a")
        yield* store.insert(b, "token-b")
        yield* store.insertInitialToken(initial)
        const start = walCommits(filename)

        const exits = yield* inOneTurn([
          store.insert(makeClient("first"), "token-first"),
          // The client id is taken: a constraint violation, a StoreError.
          store.insert(makeClient("a", 1, "Impostor"), "token-impostor"),
          // Spends the initial token's one use ...
          store.insert(makeClient("spender"), "token-spender", { tokenId: initial.tokenId, now: 2 }),
          // ... so this one, later in the same group, finds it spent.
          store.insert(makeClient("too-late"), "token-too-late", { tokenId: initial.tokenId, now: 2 }),
          // A stale version.
          store.update({ ...a, version: 3 }, 2),
          // The rotation replaces b's row, then finds its old token gone: rolled back whole.
          store.update({ ...b, version: 2 }, 1, { revoke: "not-b-token", issue: "token-b-2" }),
          // The rotation's new id is taken: a StoreError after the row was replaced; rolled back whole.
          store.update({ ...a, version: 2 }, 1, { revoke: "token-a", issue: "token-first" }),
          store.insert(makeClient("last"), "token-last")
        ])
        expect(walCommits(filename) - start).toBe(1)

        expect(exits.slice(0, 1).concat(exits.slice(2, 6), exits.slice(7))).toStrictEqual([
          Exit.succeed("inserted"),
          Exit.succeed("inserted"),
          Exit.succeed("initial-token-unavailable"),
          Exit.succeed("conflict"),
          Exit.succeed("conflict"),
          Exit.succeed("inserted")
        ])
        const taken = storeErrorOf(exits[1] ?? Exit.void)
        expect(taken).toBeInstanceOf(StoreError)
        expect(taken).toMatchObject({ operation: "insert" })
        expect(String(taken instanceof StoreError ? taken.cause : "")).toMatch(/UNIQUE constraint failed/)
        expect(storeErrorOf(exits[6] ?? Exit.void)).toMatchObject({ _tag: "StoreError", operation: "update" })

        // The successful writes are all there ...
        for (const id of ["first", "spender", "last"]) {
          expect(plain(yield* store.findById(id))).toStrictEqual(plain(Option.some(makeClient(id))))
          expect(yield* store.findTokenOwner(`token-${id}`)).toStrictEqual(Option.some(id))
        }
        // ... and nothing of the failed ones.
        expect(plain(yield* store.findById("a"))).toStrictEqual(plain(Option.some(a)))
        expect(plain(yield* store.findById("b"))).toStrictEqual(plain(Option.some(b)))
        expect(yield* store.findTokenOwner("token-a")).toStrictEqual(Option.some("a"))
        expect(yield* store.findTokenOwner("token-b")).toStrictEqual(Option.some("b"))
        expect(yield* store.findTokenOwner("token-impostor")).toStrictEqual(Option.none())
        expect(yield* store.findTokenOwner("token-b-2")).toStrictEqual(Option.none())
        expect(yield* store.findTokenOwner("token-first")).toStrictEqual(Option.some("first"))
        expect(yield* store.findById("too-late")).toStrictEqual(Option.none())
        expect(yield* store.findTokenOwner("token-too-late")).toStrictEqual(Option.none())
        expect(
          Option.map(yield* store.findInitialToken(initial.tokenId), (found) => found.usesRemaining)
        ).toStrictEqual(Option.some(0))
      })
    )
  })

  it("issue 6 D15: two updates of one client with the same expected version in one group: exactly one is updated, the other a conflict; likewise two rotations of one token", async () => {
    const filename = freshFile("group-cas")
    const client = makeClient("contended")
    const rotating = makeClient("rotating")
    await withStore(SqliteStore.layer({ filename }), (store) =>
      Effect.gen(function* () {
        yield* store.insert(client, "token-contended")
        yield* store.insert(rotating, "token-rotating")
        const start = walCommits(filename)

        const first = makeClient(client.clientId, 2, "First writer")
        const second = makeClient(client.clientId, 2, "Second writer")
        const rotationOne = makeClient(rotating.clientId, 2, "Rotation one")
        const rotationTwo = makeClient(rotating.clientId, 2, "Rotation two")
        const outcomes = yield* Effect.all(
          [
            store.update(first, 1),
            store.update(second, 1),
            store.update(rotationOne, 1, { revoke: "token-rotating", issue: "rotated-one" }),
            store.update(rotationTwo, 1, { revoke: "token-rotating", issue: "rotated-two" })
          ],
          { concurrency: "unbounded" }
        )
        expect(walCommits(filename) - start).toBe(1)

        // Serial order is queue order: the first of each pair wins.
        expect(outcomes).toStrictEqual(["updated", "conflict", "updated", "conflict"])
        expect(plain(yield* store.findById(client.clientId))).toStrictEqual(plain(Option.some(first)))
        expect(plain(yield* store.findById(rotating.clientId))).toStrictEqual(plain(Option.some(rotationOne)))
        expect(yield* store.findTokenOwner("token-rotating")).toStrictEqual(Option.none())
        expect(yield* store.findTokenOwner("rotated-one")).toStrictEqual(Option.some(rotating.clientId))
        expect(yield* store.findTokenOwner("rotated-two")).toStrictEqual(Option.none())
      })
    )
  })

  it("D20 issue 6: a COMMIT that fails fails every write of its group with a StoreError, keeps none of them, and is rolled back so the next group commits", async () => {
    const filename = freshFile("group-commit-fails")
    const kept = makeClient("kept")
    await withStore(SqliteStore.layer({ filename }), (store) => store.insert(kept, "token-kept"))
    // A deferred foreign key is checked at COMMIT, not by the statement: a
    // trigger makes inserting a "poison-" client violate one, so the COMMIT of
    // the group holding that insert fails (better-sqlite3 enables foreign keys).
    const other = new Sqlite(filename)
    other.exec(`
      CREATE TABLE probe_parent (id TEXT PRIMARY KEY);
      CREATE TABLE probe_child (parent TEXT REFERENCES probe_parent (id) DEFERRABLE INITIALLY DEFERRED);
      CREATE TRIGGER probe_poison AFTER INSERT ON dcr_clients WHEN NEW.client_id LIKE 'poison-%'
        BEGIN INSERT INTO probe_child (parent) VALUES ('missing'); END;
    `)
    const rows = () => ({
      clients: other.prepare("SELECT client_id, version FROM dcr_clients ORDER BY client_id").all(),
      tokens: other.prepare("SELECT token_id, client_id FROM dcr_registration_tokens ORDER BY token_id").all(),
      initial: other.prepare("SELECT token_id FROM dcr_initial_tokens ORDER BY token_id").all()
    })
    try {
      await withStore(SqliteStore.layer({ filename }), (store) =>
        Effect.gen(function* () {
          const before = rows()
          const start = walCommits(filename)
          const exits = yield* inOneTurn([
            store.insert(makeClient("innocent"), "token-innocent"),
            store.update({ ...kept, version: 2 }, 1),
            store.insert(makeClient("poison-1"), "token-poison"),
            store.revokeToken("token-kept"),
            store.insertInitialToken({
              tokenId: "initial-in-failed-group",
              expiresAt: 0,
              usesRemaining: undefined,
              policy: undefined,
              createdAt: 1
            })
          ])
          const operations = ["insert", "update", "insert", "revokeToken", "insertInitialToken"]
          expect(exits.map(storeErrorOf)).toStrictEqual(
            operations.map((operation) => expect.objectContaining({ _tag: "StoreError", operation }))
          )
          for (const exit of exits) {
            const error = storeErrorOf(exit)
            expect(String(error instanceof StoreError ? error.cause : "")).toMatch(/FOREIGN KEY constraint failed/)
          }
          // Nothing of the group was kept, not even the writes that were fine.
          expect(walCommits(filename)).toBe(start)
          expect(rows()).toStrictEqual(before)
          expect(yield* store.findById("innocent")).toStrictEqual(Option.none())
          expect(yield* versionOf(store, "kept")).toStrictEqual(Option.some(1))
          expect(yield* store.findTokenOwner("token-kept")).toStrictEqual(Option.some("kept"))

          // Rolled back: the next group begins and commits on the same connection.
          yield* nextTurn
          expect(yield* store.insert(makeClient("after"), "token-after")).toBe("inserted")
          expect(yield* store.update({ ...kept, version: 2 }, 1)).toBe("updated")
          expect(walCommits(filename)).toBe(start + 2)
        })
      )
    } finally {
      other.close()
    }
  })

  it("D20 issue 6: a BEGIN that fails (another connection holds the write lock past busy_timeout) fails every write of its group with a StoreError and writes nothing", async () => {
    const filename = freshFile("group-begin-fails")
    await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          // The store's own code on a connection this test holds, so its
          // busy_timeout can be short (the layer's is 5 s).
          const db = yield* connect({ filename })
          db.pragma("busy_timeout = 20")
          const store = makeSqliteStore(db, SqlRows.makeSealer([]), GroupCommit.make(db))
          yield* store.insert(makeClient("kept"), "token-kept")

          const other = new Sqlite(filename)
          other.exec("BEGIN IMMEDIATE")
          const exits = yield* inOneTurn([
            store.insert(makeClient("blocked"), "token-blocked"),
            store.update({ ...makeClient("kept"), version: 2 }, 1),
            store.remove("kept")
          ])
          other.exec("ROLLBACK")
          other.close()

          expect(exits.map(storeErrorOf)).toStrictEqual(
            ["insert", "update", "remove"].map((operation) =>
              expect.objectContaining({ _tag: "StoreError", operation })
            )
          )
          const busy = storeErrorOf(exits[0] ?? Exit.void)
          expect(String(busy instanceof StoreError ? busy.cause : "")).toMatch(/database is locked/)
          expect(yield* store.findById("blocked")).toStrictEqual(Option.none())
          expect(yield* versionOf(store, "kept")).toStrictEqual(Option.some(1))
          expect(yield* store.findTokenOwner("token-kept")).toStrictEqual(Option.some("kept"))
          // The lock is free again: the next group commits.
          expect(yield* store.remove("kept")).toBe(true)
        })
      )
    )
  })

  it("issue 6: a write whose fiber is interrupted while it waits in the queue is taken out of it and writes nothing, even from an uninterruptible caller; the rest of its group commits", async () => {
    const filename = freshFile("group-interrupted")
    await withStore(SqliteStore.layer({ filename }), (store) =>
      Effect.gen(function* () {
        const start = walCommits(filename)
        const witness = yield* Effect.fork(store.insert(makeClient("witness"), "token-witness"))
        const interrupted = yield* Effect.fork(store.insert(makeClient("interrupted"), "token-interrupted"))
        // The programs call writes from an uninterruptible region; the wait in the queue is still interruptible.
        const guarded = yield* Effect.fork(
          Effect.uninterruptible(store.update({ ...makeClient("witness"), version: 2 }, 1))
        )
        yield* Effect.yieldNow()
        // All three are queued, none flushed yet: a read sees the state before them.
        for (const fiber of [witness, interrupted, guarded]) {
          expect((yield* Fiber.status(fiber))._tag).toBe("Suspended")
        }
        expect(yield* store.findById("witness")).toStrictEqual(Option.none())

        expect(Exit.isInterrupted(yield* Fiber.interrupt(interrupted))).toBe(true)
        expect(Exit.isInterrupted(yield* Fiber.interrupt(guarded))).toBe(true)
        expect(yield* Fiber.join(witness)).toBe("inserted")
        yield* nextTurn

        expect(walCommits(filename) - start).toBe(1)
        expect(yield* store.findById("interrupted")).toStrictEqual(Option.none())
        expect(yield* store.findTokenOwner("token-interrupted")).toStrictEqual(Option.none())
        expect(yield* versionOf(store, "witness")).toStrictEqual(Option.some(1))
      })
    )
  })

  it("issue 6 D20: a write that committed is answered as committed even when its fiber is interrupted as the answer arrives", async () => {
    const filename = freshFile("group-answered")
    await withStore(SqliteStore.layer({ filename }), (store) =>
      Effect.gen(function* () {
        const answers: Array<string> = []
        let target: Fiber.RuntimeFiber<void, StoreError> | undefined
        // Queued first, so resumed first: it interrupts the other fiber,
        // whose answer has arrived but has not been taken yet.
        const interrupter = yield* Effect.fork(
          Effect.flatMap(store.insert(makeClient("interrupter"), "token-interrupter"), () =>
            target === undefined ? Effect.void : Effect.asVoid(Fiber.interrupt(target))
          )
        )
        yield* Effect.yieldNow()
        // As the programs call it: uninterruptible, answering with what the store says.
        target = yield* Effect.fork(
          Effect.uninterruptible(
            Effect.map(store.insert(makeClient("target"), "token-target"), (outcome) => {
              answers.push(outcome)
            })
          )
        )
        const exit = yield* Fiber.await(target)
        yield* Fiber.join(interrupter)

        // The interruption reached the target after the commit ...
        expect(Exit.isInterrupted(exit)).toBe(true)
        expect(yield* store.findTokenOwner("token-target")).toStrictEqual(Option.some("target"))
        // ... and the write was still answered as the success it is.
        expect(answers).toStrictEqual(["inserted"])
      })
    )
  })

  it("issue 6: writes still queued when the layer closes are committed before the connection closes", async () => {
    const filename = freshFile("group-close")
    const runtime = ManagedRuntime.make(SqliteStore.layer({ filename }))
    const store = await runtime.runPromise(ClientStore)
    const pending = runtime.runPromise(store.insert(makeClient("late"), "token-late"))
    await runtime.dispose()
    expect(await pending).toBe("inserted")
    await withStore(SqliteStore.layer({ filename }), (reopened) =>
      Effect.map(reopened.findTokenOwner("token-late"), (owner) => {
        expect(owner).toStrictEqual(Option.some("late"))
      })
    )
  })
})
