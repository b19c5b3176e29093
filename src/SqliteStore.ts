/**
 * The store on SQLite: a file, or `:memory:`. A subpath module, so importing
 * `effect-dcr` never loads the native driver.
 *
 * It runs on better-sqlite3 directly rather than through `@effect/sql`
 * (issue 6): the driver is synchronous, and per statement `@effect/sql` adds
 * a compilation of the tagged template, a span, a semaphore, a prepared
 * statement cache with a TTL and scheduler hops — over 70 % of a read's CPU.
 * Here every statement is prepared once, when the layer is built, and every
 * read is one synchronous call, run at once.
 *
 * Writes are committed in groups (issue 6): a commit costs about 60 µs of
 * CPU (system calls: WAL frames, locks, the WAL index) however little it
 * writes, and under load many requests issue their writes in the same turn
 * of the event loop. Every write (`insert`, `update`, `remove`,
 * `revokeToken`, `insertInitialToken`) is queued, and the queue is flushed at
 * the end of the turn (`setImmediate`; at once when it holds 256 writes) in
 * one `BEGIN IMMEDIATE` transaction, each write a savepoint of its own in
 * it, in the order they were issued, then one COMMIT; each write is answered
 * after that COMMIT. The semantics are those of writes run one after the
 * other: each is whole or not at all, a failing one (a compare-and-set or
 * rotation conflict, a constraint) undoes only itself, and each sees the
 * writes before it. When BEGIN or COMMIT fails, every write of the group
 * fails with a `StoreError` and none of them is kept. An isolated write waits
 * only for the end of the current turn.
 *
 * A read issued while a write is queued sees the state before that write:
 * the write has not been acknowledged yet, as it would not have been if it
 * were still running.
 *
 * Interruption (`ClientStore`'s contract): before its commit point a write
 * seals the client secret (JWE, asynchronous) and then waits in the queue;
 * both are interruptible, and a write interrupted there is taken out of the
 * queue with nothing written. A flush runs synchronously from its BEGIN to
 * its COMMIT, with no point at which a fiber can be interrupted, and a write
 * that was in a committed group is answered as committed, even when its
 * fiber is interrupted as the answer arrives.
 *
 * The tables, the migrations and their bookkeeping (`dcr_migrations`) are
 * `SqlClientStore`'s, run by `@effect/sql`'s Migrator over the same
 * connection, so a file written by the earlier `SqlClientStore`-on-SQLite
 * store opens and works unchanged, and the other way round.
 *
 * @since 0.1.0
 */
import { Effect, Layer } from "effect"
import { ClientStore } from "./ClientStore.js"
import type { StoreError } from "./ProtocolError.js"
import type * as SqlClientStore from "./SqlClientStore.js"
import * as GroupCommit from "./internal/groupCommit.js"
import * as SqlRows from "./internal/sqlRows.js"
import { attempt } from "./internal/sqlRows.js"
import { connect } from "./internal/sqliteConnection.js"
import { make } from "./internal/sqliteStore.js"

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
   *   each commit (one per group of writes, see above) then waits for the
   *   disk (an fsync), and being synchronous, so does every other request of
   *   the process meanwhile.
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
      const sealer = yield* attempt("check the sealing keys", () => SqlRows.makeSealer(options.sealingKeys ?? []))
      const db = yield* connect(options)
      const writes = GroupCommit.make(db)
      // Added after the connection's own finalizer, so it runs before the
      // connection closes: writes still queued are committed, not dropped.
      yield* Effect.addFinalizer(() => Effect.sync(writes.flush))
      return yield* attempt("prepare the statements", () => make(db, sealer, writes))
    })
  )
