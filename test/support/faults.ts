/**
 * Fault injection for the `ClientStore` (issue 7): a layer wrapper that makes
 * a chosen store operation fail (with `StoreError`) or stall, before the inner
 * operation runs or after it, and database-level faults (triggers) that make
 * one statement fail in the middle of the SQL store's own transaction.
 *
 * "After" means: the inner operation ran, then the fault hits. When the inner
 * layer also provides the `SqlClient` the store runs on (see
 * `Backend.store` in harness.ts), the inner operation and the fault run in one
 * real database transaction, so the database rolls the write back — the
 * store's own transaction is nested in it as a savepoint. A store without
 * transactions (memory) cannot roll back: there "after" is a commit whose
 * acknowledgement is lost, and the write stays (`FaultPlan.afterRollsBack`
 * tells which of the two a built layer does).
 */
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Clock, Effect, FiberRef, Layer, Option } from "effect"
import { ClientStore, type ClientStoreService } from "../../src/ClientStore.js"
import { StoreError } from "../../src/ProtocolError.js"

/** The operations of the `ClientStore` port. */
export type StoreOperation =
  | "insert"
  | "findById"
  | "findTokenOwner"
  | "findByToken"
  | "update"
  | "remove"
  | "revokeToken"
  | "insertInitialToken"
  | "findInitialToken"
  | "ping"

export const storeOperations: ReadonlyArray<StoreOperation> = [
  "insert",
  "findById",
  "findTokenOwner",
  "findByToken",
  "update",
  "remove",
  "revokeToken",
  "insertInitialToken",
  "findInitialToken",
  "ping"
]

/** The operations that change stored state. */
export const writeOperations: ReadonlySet<StoreOperation> = new Set([
  "insert",
  "update",
  "remove",
  "revokeToken",
  "insertInitialToken"
])

export type FaultPoint = "before" | "after"

/**
 * `fail`: a `StoreError`. `stall`: the store does not answer for `stallMillis`
 * (default: never). `slowCommit` (after a write only): the write and a delay
 * of `stallMillis` after it cannot be interrupted, like a COMMIT in flight —
 * the write commits, late.
 */
export type FaultKind = "fail" | "stall" | "slowCommit"

export interface Fault {
  readonly operation: StoreOperation
  readonly point: FaultPoint
  readonly kind: FaultKind
  /** How many calls it hits before the store heals by itself; default: every call until `disarm`. */
  readonly times?: number | undefined
}

/** One fault that hit, with the tag of the request it hit (see `requestTag`). */
export interface InjectedFault {
  readonly operation: StoreOperation
  readonly point: FaultPoint
  readonly kind: FaultKind
  readonly request: string | undefined
  /** When it hit, and (for a stall) when the stall ended or was interrupted, in ms. */
  readonly startedAt: number
  endedAt: number | undefined
}

/**
 * Set around a request (`Effect.locally(requestTag, id)`) so that each injected
 * fault is recorded with the request it hit, also under concurrency.
 */
export const requestTag: FiberRef.FiberRef<string | undefined> = FiberRef.unsafeMake<string | undefined>(undefined)

export interface RandomFaults {
  /** Chance that one store call gets a fault. */
  readonly probability: number
  /** The source of randomness in [0, 1): seed it to replay a run. */
  readonly random: () => number
  readonly operations?: ReadonlyArray<StoreOperation> | undefined
  readonly points?: ReadonlyArray<FaultPoint> | undefined
  /** Share of faults that are stalls rather than failures; default 0. */
  readonly stallShare?: number | undefined
}

/**
 * What to inject, changeable while the service runs: `arm` a fault, `disarm`
 * to let the store heal, or inject `randomly`.
 */
export class FaultPlan {
  private armed: Array<{ readonly fault: Fault; remaining: number }> = []
  private randomFaults: RandomFaults | undefined
  private interleaved: Array<{ readonly operation: StoreOperation; readonly run: () => Promise<unknown> }> = []
  /** Every fault that hit, in order. */
  readonly injected: Array<InjectedFault> = []
  /** Calls per operation, faulted or not. */
  readonly calls = new Map<StoreOperation, number>()
  /** Set when the layer is built: true when "after" faults roll the write back (a SQL store). */
  afterRollsBack: boolean | undefined = undefined
  /**
   * While true, the wrapped store offers no `findByToken`, as a host's own
   * store may not: a request then finds its token's owner and its client in
   * two steps (and another instance can delete the client in between).
   */
  splitLookups = false

  /** @param stallMillis how long a stall lasts; undefined: until interrupted. */
  constructor(public stallMillis: number | undefined = undefined) {}

  arm(fault: Fault): this {
    this.armed.push({ fault, remaining: fault.times ?? Infinity })
    return this
  }

  randomly(faults: RandomFaults | undefined): this {
    this.randomFaults = faults
    return this
  }

  disarm(): this {
    this.armed = []
    this.randomFaults = undefined
    this.interleaved = []
    return this
  }

  /**
   * Runs `run` once, just before the next call of `operation` reaches the
   * store: what another instance does between two steps of a request.
   */
  interleave(operation: StoreOperation, run: () => Promise<unknown>): this {
    this.interleaved.push({ operation, run })
    return this
  }

  /** The interleaved step due before this call of `operation`, taken off the plan. */
  takeInterleaved(operation: StoreOperation): (() => Promise<unknown>) | undefined {
    const index = this.interleaved.findIndex((entry) => entry.operation === operation)
    if (index < 0) return undefined
    const [entry] = this.interleaved.splice(index, 1)
    return entry?.run
  }

  /** The faults that hit requests tagged `request`. */
  injectedInto(request: string): ReadonlyArray<InjectedFault> {
    return this.injected.filter((fault) => fault.request === request)
  }

  /** Decides whether this call gets a fault at this point. */
  decide(operation: StoreOperation, point: FaultPoint): FaultKind | undefined {
    for (const entry of this.armed) {
      if (entry.fault.operation === operation && entry.fault.point === point && entry.remaining > 0) {
        entry.remaining--
        return entry.fault.kind
      }
    }
    const chance = this.randomFaults
    if (chance === undefined) return undefined
    if (chance.operations !== undefined && !chance.operations.includes(operation)) return undefined
    if (chance.points !== undefined && !chance.points.includes(point)) return undefined
    if (chance.random() >= chance.probability) return undefined
    return chance.random() < (chance.stallShare ?? 0) ? "stall" : "fail"
  }

  countCall(operation: StoreOperation): void {
    this.calls.set(operation, (this.calls.get(operation) ?? 0) + 1)
  }
}

/** The error an injected failure raises: its text must never reach a response (D20). */
export const injectedMessage = "injected fault"

/** Records a fault that hits now; `endedAt` is set when it is over. */
const record = (plan: FaultPlan, operation: StoreOperation, point: FaultPoint, kind: FaultKind) =>
  Effect.gen(function* () {
    const injected: InjectedFault = {
      operation,
      point,
      kind,
      request: yield* FiberRef.get(requestTag),
      startedAt: yield* Clock.currentTimeMillis,
      endedAt: undefined
    }
    plan.injected.push(injected)
    return injected
  })

/** Runs `self` as the time a fault lasts, whatever its exit. */
const lasting = <A, E>(injected: InjectedFault, self: Effect.Effect<A, E>): Effect.Effect<A, E> =>
  Effect.onExit(self, () =>
    Effect.map(Clock.currentTimeMillis, (now) => {
      injected.endedAt = now
    })
  )

const inject = (plan: FaultPlan, operation: StoreOperation, point: FaultPoint, kind: "fail" | "stall") =>
  Effect.flatMap(record(plan, operation, point, kind), (injected) =>
    kind === "fail"
      ? lasting(injected, Effect.fail(new StoreError({ operation: `${injectedMessage}: ${operation} (${point})` })))
      : // A stall is a store not answering: interruptible, as ClientStore's
        // contract asks of everything before a commit point.
        lasting(
          injected,
          Effect.interruptible(plan.stallMillis === undefined ? Effect.never : Effect.sleep(plan.stallMillis))
        )
  )

/**
 * Wraps a store layer so that `plan` decides, on every call, whether to fail
 * or stall it before or after the inner operation. When `inner` also provides
 * the `SqlClient` its store runs on, an "after" fault on a write runs inside a
 * transaction around the inner write, so the database rolls the write back.
 */
export const faulty = <E, R>(inner: Layer.Layer<ClientStore, E, R>, plan: FaultPlan): Layer.Layer<ClientStore, E, R> =>
  Layer.effect(
    ClientStore,
    Effect.gen(function* () {
      const store = yield* ClientStore
      const sql = yield* Effect.serviceOption(SqlClient.SqlClient)
      plan.afterRollsBack = Option.isSome(sql)

      const inTransaction = <A>(self: Effect.Effect<A, StoreError>): Effect.Effect<A, StoreError> =>
        Option.match(sql, {
          onNone: () => self,
          onSome: (client) =>
            client.withTransaction(self).pipe(
              Effect.catchIf(
                (error): error is SqlError => error._tag === "SqlError",
                (cause) => Effect.fail(new StoreError({ operation: "transaction around an injected fault", cause }))
              )
            )
        })

      const wrap = <A>(operation: StoreOperation, call: Effect.Effect<A, StoreError>): Effect.Effect<A, StoreError> =>
        Effect.suspend(() => {
          const interleaved = plan.takeInterleaved(operation)
          return interleaved === undefined
            ? faulted(operation, call)
            : Effect.zipRight(Effect.promise(interleaved), faulted(operation, call))
        })

      const faulted = <A>(
        operation: StoreOperation,
        call: Effect.Effect<A, StoreError>
      ): Effect.Effect<A, StoreError> =>
        Effect.suspend(() => {
          plan.countCall(operation)
          const before = plan.decide(operation, "before")
          if (before === "slowCommit") return call
          if (before !== undefined) return Effect.zipRight(inject(plan, operation, "before", before), call)
          const after = plan.decide(operation, "after")
          if (after === undefined) return call
          if (after === "slowCommit") {
            // The write and the delay after it cannot be interrupted, as a COMMIT in flight cannot.
            const delay = Effect.sleep(plan.stallMillis ?? 0)
            return Effect.flatMap(record(plan, operation, "after", after), (injected) =>
              lasting(injected, Effect.uninterruptible(inTransaction(Effect.zipLeft(call, delay))))
            )
          }
          const faulted = Effect.zipLeft(call, inject(plan, operation, "after", after))
          return writeOperations.has(operation) ? inTransaction(faulted) : faulted
        })

      const findByToken = store.findByToken
      const wrappedFindByToken =
        findByToken === undefined ? undefined : (tokenId: string) => wrap("findByToken", findByToken(tokenId))
      const service: ClientStoreService = {
        insert: (client, tokenId, initialToken) => wrap("insert", store.insert(client, tokenId, initialToken)),
        findById: (clientId) => wrap("findById", store.findById(clientId)),
        findTokenOwner: (tokenId) => wrap("findTokenOwner", store.findTokenOwner(tokenId)),
        // Read on every call by the token authenticators, so `splitLookups` takes effect at once.
        get findByToken() {
          return plan.splitLookups ? undefined : wrappedFindByToken
        },
        update: (client, expectedVersion, rotation) => wrap("update", store.update(client, expectedVersion, rotation)),
        remove: (clientId, expectedVersion) => wrap("remove", store.remove(clientId, expectedVersion)),
        revokeToken: (tokenId) => wrap("revokeToken", store.revokeToken(tokenId)),
        ping: wrap("ping", store.ping ?? Effect.void),
        insertInitialToken: (record) => wrap("insertInitialToken", store.insertInitialToken(record)),
        findInitialToken: (tokenId) => wrap("findInitialToken", store.findInitialToken(tokenId))
      }
      return service
    })
  ).pipe(Layer.provide(inner))

// ---------------------------------------------------------------------------
// Database-level faults: one statement fails inside the store's transaction.

/** A table the SQL store writes, and a statement on it. */
export type DatabaseFault =
  | "dcr_clients:insert"
  | "dcr_clients:update"
  | "dcr_clients:delete"
  | "dcr_initial_tokens:insert"
  | "dcr_initial_tokens:update"

const faultTriggers: ReadonlyArray<readonly [table: string, statement: string]> = [
  ["dcr_clients", "insert"],
  ["dcr_clients", "update"],
  ["dcr_clients", "delete"],
  ["dcr_initial_tokens", "insert"],
  ["dcr_initial_tokens", "update"]
]

/**
 * Installs triggers that raise an error on a statement while a row naming it
 * is in `dcr_test_faults`. Run once after the migrations, on a database (or
 * PostgreSQL schema) of the test's own: the triggers apply to every writer.
 */
export const installDatabaseFaults: Effect.Effect<void, SqlError, SqlClient.SqlClient> = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE IF NOT EXISTS dcr_test_faults (name TEXT PRIMARY KEY)`
  yield* sql.onDialectOrElse({
    pg: () =>
      Effect.gen(function* () {
        yield* sql.unsafe(`CREATE OR REPLACE FUNCTION dcr_test_fault() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN
            IF EXISTS (SELECT 1 FROM dcr_test_faults WHERE name = TG_TABLE_NAME || ':' || lower(TG_OP)) THEN
              RAISE EXCEPTION '${injectedMessage}: % on %', TG_OP, TG_TABLE_NAME;
            END IF;
            IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
            RETURN NEW;
          END $$`)
        for (const table of ["dcr_clients", "dcr_initial_tokens"]) {
          yield* sql.unsafe(`CREATE TRIGGER ${table}_test_fault BEFORE INSERT OR UPDATE OR DELETE ON ${table}
            FOR EACH ROW EXECUTE FUNCTION dcr_test_fault()`)
        }
      }),
    orElse: () =>
      Effect.forEach(
        faultTriggers,
        ([table, statement]) =>
          sql.unsafe(`CREATE TRIGGER ${table}_test_fault_${statement} BEFORE ${statement.toUpperCase()} ON ${table}
            WHEN EXISTS (SELECT 1 FROM dcr_test_faults WHERE name = '${table}:${statement}')
            BEGIN SELECT RAISE(ABORT, '${injectedMessage}: ${statement} on ${table}'); END`),
        { discard: true }
      )
  })
})

export const armDatabaseFault = (fault: DatabaseFault): Effect.Effect<void, SqlError, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql`INSERT INTO dcr_test_faults (name) VALUES (${fault})`.pipe(Effect.asVoid)
  )

export const disarmDatabaseFaults: Effect.Effect<void, SqlError, SqlClient.SqlClient> = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => sql`DELETE FROM dcr_test_faults`.pipe(Effect.asVoid)
)

/** A seeded source of randomness in [0, 1) (mulberry32), so a run can be replayed. */
export const seededRandom = (seed: number): (() => number) => {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
