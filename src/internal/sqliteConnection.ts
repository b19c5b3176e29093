/**
 * The SQLite store's one connection (better-sqlite3): opened with its
 * pragmas, its folder created, migrated by `@effect/sql`'s Migrator over that
 * same connection, and closed with the scope. Apart from `SqliteStore` so
 * the pragmas can be tested on the very connection the store gets.
 *
 * @internal
 */
import { mkdirSync } from "node:fs"
import { dirname } from "node:path"
import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import * as Statement from "@effect/sql/Statement"
import Sqlite from "better-sqlite3"
import { Effect, type Scope, Stream } from "effect"
import { StoreError } from "../ProtocolError.js"
import { migrate } from "../SqlClientStore.js"
import { attempt } from "./sqlRows.js"

/**
 * How long a write waits for another process's write to finish before it
 * fails (SQLite's `busy_timeout`, also better-sqlite3's default). Writes are
 * a few statements long, so a wait is short; being synchronous, it blocks
 * the process meanwhile.
 */
export const busyTimeoutMillis = 5_000

export interface ConnectOptions {
  /** A file path (its folder is created when missing) or `:memory:`. */
  readonly filename: string
  readonly synchronous?: "normal" | "full" | undefined
}

/**
 * An `@effect/sql` client over the store's own connection, for the Migrator
 * only (so a `:memory:` database is migrated in place, and the bookkeeping is
 * exactly the one `SqlClientStore` keeps). It runs once, from one fiber, at
 * layer build: no statement cache, no semaphore.
 */
const migrationClient = (db: Sqlite.Database): Effect.Effect<SqlClient.SqlClient> => {
  const run = (sql: string, params: ReadonlyArray<unknown>, raw: boolean) =>
    Effect.try({
      try: (): ReadonlyArray<unknown> => {
        const statement = db.prepare(sql)
        if (!statement.reader) {
          statement.run(...params)
          return []
        }
        return statement.raw(raw).all(...params)
      },
      catch: (cause) => new SqlError({ cause, message: "Failed to execute statement" })
    })
  const connection: Connection = {
    // No row transforms are configured on this client, so `transformRows` is always undefined.
    execute: (sql, params) => run(sql, params, false),
    executeRaw: (sql, params) =>
      Effect.try({
        try: () => db.prepare(sql).run(...params),
        catch: (cause) => new SqlError({ cause, message: "Failed to execute statement" })
      }),
    executeValues: (sql, params) => Effect.map(run(sql, params, true), (rows) => rows.filter(Array.isArray)),
    executeUnprepared: (sql, params) => run(sql, params ?? [], false),
    executeStream: () => Stream.dieMessage("executeStream is not used by the migrations")
  }
  return SqlClient.make({
    acquirer: Effect.succeed(connection),
    compiler: Statement.makeCompilerSqlite(),
    spanAttributes: [["db.system.name", "sqlite"]],
    // Take the write lock first: processes starting together on one file wait
    // for each other (busy_timeout) instead of failing to upgrade a read lock.
    beginTransaction: "BEGIN IMMEDIATE"
  }).pipe(Effect.provide(Reactivity.layer))
}

/** Opens the database with its pragmas; closed when the scope closes. */
const open = (options: ConnectOptions): Effect.Effect<Sqlite.Database, StoreError, Scope.Scope> =>
  Effect.acquireRelease(
    attempt("open the database", () => {
      const db = new Sqlite(options.filename, { timeout: busyTimeoutMillis })
      try {
        db.pragma("journal_mode = WAL")
        db.pragma(`synchronous = ${options.synchronous === "full" ? "FULL" : "NORMAL"}`)
        return db
      } catch (cause) {
        db.close()
        throw cause
      }
    }),
    (db) => Effect.sync(() => db.close())
  )

/**
 * The connection, open and migrated (the same migrations and `dcr_migrations`
 * bookkeeping as `SqlClientStore.layer`), closed when the scope closes.
 */
export const connect = (options: ConnectOptions): Effect.Effect<Sqlite.Database, StoreError, Scope.Scope> =>
  Effect.gen(function* () {
    if (options.filename !== ":memory:") {
      yield* attempt("create the database folder", () => mkdirSync(dirname(options.filename), { recursive: true }))
    }
    const db = yield* open(options)
    const sql = yield* migrationClient(db)
    yield* migrate.pipe(
      Effect.provideService(SqlClient.SqlClient, sql),
      Effect.mapError((cause) => new StoreError({ operation: "migrate", cause }))
    )
    return db
  })
