/**
 * `SqliteStore` on better-sqlite3 directly (issue 6: SQLite read ≲ 30 µs,
 * update and register ≲ 100 µs of protocol CPU). The contract suite runs on
 * it from SqlClientStore.test.ts; here is what only it has: the files the
 * previous implementation (`SqlClientStore` over `@effect/sql-sqlite-node`)
 * wrote open and work unchanged, and the other way round; a new file is
 * migrated exactly as that implementation migrates one; the pragmas (WAL,
 * `synchronous`, `busy_timeout`) and a second process's write being waited
 * for; the connection closed with the layer; every failure a `StoreError`
 * naming its operation, with no secret in its message (D20).
 */
import { spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { existsSync, mkdtempSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { SqlClient } from "@effect/sql"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { Cause, Context, Effect, Exit, Layer, ManagedRuntime, Option, Redacted } from "effect"
import { describe, expect, it } from "vitest"
import type { RegisteredClient } from "../src/ClientInformation.js"
import { ClientStore, type ClientStoreService, type InitialTokenRecord } from "../src/ClientStore.js"
import { StoreError } from "../src/ProtocolError.js"
import * as SqlClientStore from "../src/SqlClientStore.js"
import * as SqliteStore from "../src/SqliteStore.js"
import { autocheckpointPages, busyTimeoutMillis, connect } from "../src/internal/sqliteConnection.js"
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
          busyTimeout: db.pragma("busy_timeout", { simple: true }),
          autocheckpoint: db.pragma("wal_autocheckpoint", { simple: true })
        }))
      )
    )

  it("issue 6: WAL, synchronous NORMAL by default and FULL when asked, a busy_timeout, and an 8 000-page autocheckpoint", async () => {
    // SQLite's codes: 1 is NORMAL, 2 is FULL.
    const common = { journal: "wal", busyTimeout: busyTimeoutMillis, autocheckpoint: autocheckpointPages }
    expect(await pragmas(undefined)).toStrictEqual({ ...common, synchronous: 1 })
    expect(await pragmas("normal")).toStrictEqual({ ...common, synchronous: 1 })
    expect(await pragmas("full")).toStrictEqual({ ...common, synchronous: 2 })
    expect(autocheckpointPages).toBe(8_000)
  })

  /**
   * Writes `count` clients (far fewer WAL pages than the autocheckpoint
   * size, so no commit checkpoints), then watches the database file for
   * `waitMillis`: it grows only when something else copies the WAL into it.
   */
  const fileGrowth = (backgroundCheckpoints: boolean | undefined, count: number, waitMillis: number) =>
    Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const filename = freshFile("checkpointer")
          const store = yield* Layer.build(SqliteStore.layer({ filename, backgroundCheckpoints }))
          const clients = Context.get(store, ClientStore)
          // Let a first background checkpoint take the migrations' pages.
          yield* Effect.sleep("600 millis")
          for (let i = 0; i < count; i++) {
            yield* Effect.orDie(clients.insert(makeClient(`checkpointed-${i}`), `checkpointed-token-${i}`))
          }
          const before = statSync(filename).size
          const deadline = Date.now() + waitMillis
          while (Date.now() < deadline && statSync(filename).size === before) yield* Effect.sleep("20 millis")
          return { before, after: statSync(filename).size, wal: statSync(`${filename}-wal`).size }
        })
      )
    )

  it("issue 6: a worker thread copies the WAL into the database file without any commit reaching the autocheckpoint size", async () => {
    const { before, after, wal } = await fileGrowth(undefined, 200, 5_000)
    // 200 clients are about a thousand WAL pages: far below 8 000, so only the checkpointer copies them.
    expect(wal).toBeLessThan(autocheckpointPages * 4096)
    expect(after).toBeGreaterThan(before)
  })

  it("issue 6: without the checkpointer (backgroundCheckpoints: false) the pages stay in the WAL until the autocheckpoint size", async () => {
    const { before, after } = await fileGrowth(false, 200, 600)
    expect(after).toBe(before)
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
