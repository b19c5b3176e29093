/**
 * The SQL store's migrations on SQLite (a fresh file) and PostgreSQL (a
 * database created for the test and dropped after it): what an empty
 * database gets, that running them again changes nothing and keeps the data,
 * and (PostgreSQL) that instances starting together all come up.
 * PostgreSQL runs when EFFECT_DCR_TEST_PG_URL names a database (CI always
 * sets it); the tests create their own databases next to it.
 */
import { randomUUID } from "node:crypto"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Migrator, SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { Context, Effect, Either, Layer, Option, Redacted } from "effect"
import { describe, expect, it } from "vitest"
import type { RegisteredClient } from "../src/ClientInformation.js"
import { ClientStore } from "../src/ClientStore.js"
import * as SqlClientStore from "../src/SqlClientStore.js"
import { pgUrl } from "./support/pg.js"

const ourTables = ["dcr_clients", "dcr_initial_tokens", "dcr_migrations"]

/** What the bookkeeping table must hold: one `[id, name]` per migration, from the record's `<id>_<name>` keys. */
const expectedMigrations = Object.keys(SqlClientStore.migrations)
  .map((key): readonly [number, string] => {
    const match = /^(\d+)_(.+)$/.exec(key)
    if (match === null) throw new Error(`migration key ${key} is not <id>_<name>`)
    return [Number(match[1]), match[2] ?? ""]
  })
  .sort(([a], [b]) => a - b)

interface Dialect {
  readonly name: string
  /**
   * Runs `use` on a database nobody has used. `connect()` gives a new
   * `SqlClient` layer on it each time it is called (a new process, as far as
   * the database can tell).
   */
  readonly withEmptyDatabase: <A>(use: (connect: () => Layer.Layer<SqlClient.SqlClient>) => Promise<A>) => Promise<A>
  /** The names of the tables the application can see, sorted. */
  readonly tables: Effect.Effect<ReadonlyArray<string>, unknown, SqlClient.SqlClient>
}

const names = (rows: ReadonlyArray<Record<string, unknown>>, column: string): ReadonlyArray<string> =>
  rows.map((row) => String(row[column])).sort()

const sqlite: Dialect = {
  name: "SQLite",
  withEmptyDatabase: (use) => {
    const filename = join(mkdtempSync(join(tmpdir(), "effect-dcr-migrations-")), "store.sqlite")
    return use(() => Layer.orDie(SqliteClient.layer({ filename })))
  },
  tables: Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(sql`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`, (rows) =>
      names(rows, "name")
    )
  )
}

const postgres = (adminUrl: string): Dialect => {
  /** Runs one statement on the test database's server, outside any transaction. */
  const admin = (statement: (sql: SqlClient.SqlClient) => Effect.Effect<unknown, unknown>) =>
    Effect.runPromise(
      Effect.flatMap(SqlClient.SqlClient, statement).pipe(
        Effect.provide(PgClient.layer({ url: Redacted.make(adminUrl) })),
        Effect.orDie
      )
    )
  return {
    name: "PostgreSQL",
    withEmptyDatabase: async (use) => {
      const database = `effect_dcr_migrations_${randomUUID().replaceAll("-", "")}`
      const url = new URL(adminUrl)
      url.pathname = `/${database}`
      await admin((sql) => sql`CREATE DATABASE ${sql(database)}`)
      try {
        return await use(() => Layer.orDie(PgClient.layer({ url: Redacted.make(url.toString()) })))
      } finally {
        await admin((sql) => sql`DROP DATABASE IF EXISTS ${sql(database)} WITH (FORCE)`)
      }
    },
    tables: Effect.flatMap(SqlClient.SqlClient, (sql) =>
      Effect.map(sql`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`, (rows) =>
        names(rows, "table_name")
      )
    )
  }
}

const migrationRows = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(sql`SELECT migration_id, name, created_at FROM dcr_migrations ORDER BY migration_id`, (rows) => rows)
)

const idsAndNames = (rows: ReadonlyArray<Record<string, unknown>>) =>
  rows.map((row) => [Number(row.migration_id), String(row.name)])

const sampleClient = (clientId: string): RegisteredClient => ({
  clientId,
  clientIdIssuedAt: 1_700_000_000,
  clientSecret: Redacted.make(`secret-of-${clientId}`),
  clientSecretExpiresAt: 0,
  metadata: {
    redirect_uris: ["https://client.example.org/cb"],
    client_name: "Kept Across Migrations",
    token_endpoint_auth_method: "client_secret_basic",
    grant_types: ["authorization_code"],
    response_types: ["code"]
  },
  version: 3
})

const run = <A>(layer: Layer.Layer<SqlClient.SqlClient>, program: Effect.Effect<A, unknown, SqlClient.SqlClient>) =>
  Effect.runPromise(Effect.orDie(Effect.provide(program, layer)))

const migrationSuite = (dialect: Dialect) =>
  describe(`SqlClientStore migrations on ${dialect.name}`, () => {
    it(`an empty database gets the two store tables and dcr_migrations with one row per migration (${dialect.name})`, () =>
      dialect.withEmptyDatabase(async (connect) => {
        const layer = connect()
        expect(await run(layer, dialect.tables)).toStrictEqual([])

        const applied = await run(layer, SqlClientStore.migrate)

        expect(applied.map(([id, name]) => [id, name])).toStrictEqual(expectedMigrations)
        expect(await run(layer, dialect.tables)).toStrictEqual(ourTables)
        expect(idsAndNames(await run(layer, migrationRows))).toStrictEqual(expectedMigrations)
      }))

    it(`running the migrations again is a no-op and keeps the data written before (${dialect.name})`, () =>
      dialect.withEmptyDatabase(async (connect) => {
        const clientId = `client-${randomUUID()}`
        const tokenId = `token-${randomUUID()}`
        const initialTokenId = `initial-${randomUUID()}`
        // First start: migrate, then write a client, its RAT and an initial access token.
        const firstRows = await run(
          connect(),
          Effect.gen(function* () {
            yield* SqlClientStore.migrate
            const store = yield* SqlClientStore.make
            expect(yield* store.insert(sampleClient(clientId), tokenId)).toBe("inserted")
            yield* store.insertInitialToken({
              tokenId: initialTokenId,
              expiresAt: 0,
              usesRemaining: 2,
              policy: undefined,
              createdAt: 1_700_000_000
            })
            return yield* migrationRows
          })
        )

        // Second start, on a new connection: nothing to run, nothing changed, nothing lost.
        const second = await run(
          connect(),
          Effect.gen(function* () {
            const applied = yield* SqlClientStore.migrate
            const rows = yield* migrationRows
            const tables = yield* dialect.tables
            const store = yield* SqlClientStore.make
            return {
              applied,
              rows,
              tables,
              client: yield* store.findById(clientId),
              owner: yield* store.findTokenOwner(tokenId),
              initial: yield* store.findInitialToken(initialTokenId)
            }
          })
        )
        expect(second.applied).toStrictEqual([])
        expect(second.rows).toStrictEqual(firstRows)
        expect(second.tables).toStrictEqual(ourTables)
        expect(Option.map(second.client, (client) => client.metadata)).toStrictEqual(
          Option.some(sampleClient(clientId).metadata)
        )
        expect(Option.map(second.client, (client) => client.version)).toStrictEqual(Option.some(3))
        expect(second.owner).toStrictEqual(Option.some(clientId))
        expect(Option.map(second.initial, (record) => record.usesRemaining)).toStrictEqual(Option.some(2))

        // Third start, through the layer the servers use (it migrates when built).
        const third = await run(
          connect(),
          Effect.scoped(
            Effect.gen(function* () {
              const store = Context.get(yield* Layer.build(SqlClientStore.layer), ClientStore)
              return { client: yield* store.findById(clientId), rows: yield* migrationRows }
            })
          )
        )
        expect(Option.map(third.client, (client) => client.clientId)).toStrictEqual(Option.some(clientId))
        expect(third.rows).toStrictEqual(firstRows)
      }))

    it(`migration 2 moves a database written under migration 1: each client's RAT becomes a column of its row, tokens of vanished clients go, and a token id stays unique (${dialect.name})`, () =>
      dialect.withEmptyDatabase(async (connect) => {
        const [first, second] = [`client-${randomUUID()}`, `client-${randomUUID()}`]
        const [firstToken, secondToken, orphanToken] = [randomUUID(), randomUUID(), randomUUID()]
        // The database as the release with only migration 1 left it.
        await run(
          connect(),
          Effect.gen(function* () {
            const onlyFirst = Object.fromEntries(
              Object.entries(SqlClientStore.migrations).filter(([key]) => key.startsWith("1_"))
            )
            yield* Migrator.make({})({ loader: Migrator.fromRecord(onlyFirst), table: "dcr_migrations" })
            const sql = yield* SqlClient.SqlClient
            for (const clientId of [first, second]) {
              yield* sql`INSERT INTO dcr_clients
                (client_id, client_id_issued_at, client_secret, client_secret_expires_at, metadata, policy, version)
                VALUES (${clientId}, 1700000000, NULL, 0, ${JSON.stringify(sampleClient(clientId).metadata)}, NULL, 3)`
            }
            yield* sql`INSERT INTO dcr_registration_tokens (token_id, client_id) VALUES
              (${firstToken}, ${first}), (${secondToken}, ${second}), (${orphanToken}, ${"vanished"})`
          })
        )

        const after = await run(
          connect(),
          Effect.gen(function* () {
            const applied = yield* SqlClientStore.migrate
            const store = yield* SqlClientStore.make
            const owners = yield* Effect.forEach([firstToken, secondToken, orphanToken], store.findTokenOwner)
            const client = yield* store.findById(first)
            // The column is unique: a second client cannot take a live token id.
            const duplicate = yield* Effect.either(store.insert(sampleClient(`client-${randomUUID()}`), firstToken))
            // And a rotation replaces the one token.
            const rotated = yield* store.update({ ...sampleClient(second), version: 4 }, 3, {
              revoke: secondToken,
              issue: "rotated"
            })
            return {
              applied,
              owners,
              client,
              duplicate,
              rotated,
              afterRotation: yield* Effect.forEach([secondToken, "rotated"], store.findTokenOwner),
              tables: yield* dialect.tables
            }
          })
        )
        expect(after.applied.map(([id, name]) => [id, name])).toStrictEqual(expectedMigrations.slice(1))
        expect(after.owners).toStrictEqual([Option.some(first), Option.some(second), Option.none()])
        expect(Option.map(after.client, (client) => client.metadata)).toStrictEqual(
          Option.some(sampleClient(first).metadata)
        )
        expect(Either.isLeft(after.duplicate)).toBe(true)
        expect(after.rotated).toBe("updated")
        expect(after.afterRotation).toStrictEqual([Option.none(), Option.some(second)])
        expect(after.tables).toStrictEqual(ourTables)
      }))
  })

migrationSuite(sqlite)

if (pgUrl !== undefined) {
  const dialect = postgres(pgUrl)
  migrationSuite(dialect)

  describe("SqlClientStore migrations on PostgreSQL: instances starting together", () => {
    it("building SqlClientStore.layer on several connections at once on an empty database succeeds for every one (PostgreSQL)", () =>
      dialect.withEmptyDatabase(async (connect) => {
        const instances = 4
        const clientId = `client-${randomUUID()}`
        // Each build has its own PgClient (its own pool), as separate processes would.
        interface Outcome {
          readonly failed: string | undefined
          readonly found: boolean
        }
        const results = await Effect.runPromise(
          Effect.scoped(
            Effect.gen(function* () {
              const built = yield* Effect.forEach(
                Array.from({ length: instances }, (_, i) => i),
                (i) =>
                  Effect.gen(function* () {
                    const context = yield* Layer.build(SqlClientStore.layer.pipe(Layer.provide(connect())))
                    const store = Context.get(context, ClientStore)
                    // Every instance can use the store it got: one writes, all read.
                    if (i === 0) yield* store.insert(sampleClient(clientId), `token-${randomUUID()}`)
                    return store
                  }).pipe(Effect.either),
                { concurrency: "unbounded" }
              )
              const outcomes: Array<Outcome> = []
              for (const result of built) {
                if (Either.isLeft(result)) outcomes.push({ failed: String(result.left), found: false })
                else outcomes.push({ failed: undefined, found: Option.isSome(yield* result.right.findById(clientId)) })
              }
              return outcomes
            })
          ).pipe(Effect.orDie)
        )

        expect(results.map((result) => result.failed)).toStrictEqual(results.map(() => undefined))
        expect(results.map((result) => result.found)).toStrictEqual(results.map(() => true))
        const after = connect()
        expect(await run(after, dialect.tables)).toStrictEqual(ourTables)
        // Each migration ran once.
        expect(idsAndNames(await run(after, migrationRows))).toStrictEqual(expectedMigrations)
      }))
  })
} else {
  describe("SqlClientStore migrations on PostgreSQL", () => {
    it.skip("needs EFFECT_DCR_TEST_PG_URL=postgres://… (set by .ci/run)", () => {})
  })
}
