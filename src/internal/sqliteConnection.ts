/**
 * The SQLite store's one connection (better-sqlite3): opened with its
 * pragmas, its folder created, migrated by `@effect/sql`'s Migrator over that
 * same connection, and closed with the scope. Apart from `SqliteStore` so
 * the pragmas can be tested on the very connection the store gets.
 *
 * @internal
 */
import { mkdirSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname } from "node:path"
import { Worker } from "node:worker_threads"
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

/**
 * The WAL size, in pages, at which a commit checkpoints it (SQLite's
 * `wal_autocheckpoint`; its default is 1 000, 4 MB). A checkpoint flushes the
 * WAL and the database file to the disk and copies every page changed since
 * the last one: every 8 000 pages (about 32 MB of WAL, some 1 300
 * registrations) a page changed by many writes is copied once, and a
 * registration costs a fifth less than with the default (measured, issue 6).
 * Lookups do not get slower with a WAL of this size (its index is hashed).
 */
export const autocheckpointPages = 8_000

/**
 * How often the background checkpointer looks for new WAL pages while there
 * are writes, and while there are none.
 */
export const checkpointIntervalMillis = { busy: 10, idle: 250 } as const

export interface ConnectOptions {
  /** A file path (its folder is created when missing) or `:memory:`. */
  readonly filename: string
  readonly synchronous?: "normal" | "full" | undefined
  /**
   * Copy WAL pages into the database file from a worker thread, so that the
   * commits on the event loop rarely do it themselves (default true; files
   * only).
   */
  readonly backgroundCheckpoints?: boolean | undefined
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
        db.pragma(`wal_autocheckpoint = ${autocheckpointPages}`)
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
    if (options.filename !== ":memory:" && options.backgroundCheckpoints !== false) {
      yield* backgroundCheckpoints(options.filename, options.synchronous)
    }
    return db
  })

/**
 * The checkpointer thread's program (CommonJS, run with `eval`). It opens its
 * own connection and runs PASSIVE checkpoints: they never wait for a lock and
 * never block a reader or the writer, they copy what no reader still needs.
 * Every 10 ms while the WAL grows, every 250 ms while it does not. On "stop"
 * it closes its connection and ends.
 *
 * The event loop's own commits still checkpoint at `autocheckpointPages`:
 * only a checkpoint that finds the whole WAL copied lets the next write start
 * the WAL over, and while writes keep coming only the writer itself sees that
 * moment. By then this thread has copied and flushed nearly all of it, so
 * that checkpoint is short.
 */
const checkpointerSource = `
const { parentPort, workerData } = require("node:worker_threads")
const Sqlite = require(workerData.driver)
const db = new Sqlite(workerData.filename, { timeout: 0 })
db.pragma(workerData.synchronous === "full" ? "synchronous = FULL" : "synchronous = NORMAL")
const checkpoint = db.prepare("PRAGMA wal_checkpoint(PASSIVE)")
let timer
let last = -1
const tick = () => {
  let frames = last
  try {
    const row = checkpoint.get()
    frames = row.log
  } catch {
    // Busy or failing: the writer's own checkpoints still run.
  }
  const grew = frames !== last
  last = frames
  timer = setTimeout(tick, grew ? workerData.busy : workerData.idle)
}
parentPort.on("message", () => {
  clearTimeout(timer)
  db.close()
  parentPort.close()
})
tick()
`

/**
 * Starts the checkpointer thread for `filename`, stopped (its connection
 * closed) before the scope closes the store's own connection. A thread that
 * fails (it cannot open the file, say) only costs its help: the writer's
 * checkpoints keep the WAL bounded without it.
 */
const backgroundCheckpoints = (
  filename: string,
  synchronous: ConnectOptions["synchronous"]
): Effect.Effect<void, StoreError, Scope.Scope> =>
  Effect.asVoid(
    Effect.acquireRelease(
      attempt("start the checkpointer", () => {
        const worker = new Worker(checkpointerSource, {
          eval: true,
          workerData: {
            filename,
            synchronous,
            driver: createRequire(import.meta.url).resolve("better-sqlite3"),
            ...checkpointIntervalMillis
          },
          stdout: true,
          stderr: true
        })
        // Never what keeps a process alive, and never a crash of it.
        worker.unref()
        worker.on("error", () => {})
        return worker
      }),
      (worker) =>
        Effect.async<void>((resume) => {
          // Once: after a terminate, both its promise and the exit event call it.
          let stopped = false
          const done = () => {
            if (stopped) return
            stopped = true
            clearTimeout(deadline)
            resume(Effect.void)
          }
          // A thread stuck in a checkpoint is not waited for forever.
          const deadline = setTimeout(() => void worker.terminate().then(done, done), 5_000)
          worker.once("exit", done)
          if (worker.threadId === -1) done()
          else worker.postMessage("stop")
        })
    )
  )
