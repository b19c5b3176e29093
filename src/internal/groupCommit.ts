/**
 * Group commit for the SQLite store's writes (issue 6).
 *
 * A commit costs about 60 µs of CPU, mostly system calls (the WAL frames, the
 * lock taken and released with fcntl, the WAL index), whatever the size of
 * the transaction. Under load many requests are parsed in one turn of the
 * event loop and each issues its write in it; committing them together pays
 * that cost once per turn instead of once per write.
 *
 * A write is a job in a queue. The queue is flushed once per turn
 * (`setImmediate`, scheduled when a job arrives in an empty queue), or at
 * once when it holds {@link maxGroupSize} jobs. A flush is one
 * `BEGIN IMMEDIATE` transaction in which every job runs, in queue order, as
 * its own nested transaction (the job is a better-sqlite3 transaction
 * function, which inside an open transaction is a SAVEPOINT): a job that
 * throws rolls back its own changes only, and later jobs see the changes of
 * earlier ones, exactly as if they had run one after the other. Then one
 * COMMIT; every job's outcome, or its error, is delivered after it. When
 * BEGIN or COMMIT fails, or SQLite rolls the whole transaction back after a
 * job's error (it does so for a few errors, e.g. a full disk), every job of
 * the group fails with a `StoreError` and nothing of the group is kept (a
 * failed COMMIT is rolled back by better-sqlite3's transaction function).
 *
 * Interruption (`ClientStore`'s contract): waiting in the queue is the part
 * of a write before its commit point, and it is interruptible (marked so
 * even inside the programs' uninterruptible regions): a job whose fiber is
 * interrupted there is taken out of the queue, and nothing of it is
 * written. A flush runs synchronously from its BEGIN to its COMMIT, so no
 * fiber can be interrupted half way through one; a job that was in it is
 * answered with its outcome even when its fiber is interrupted as that
 * answer arrives, so a committed write is always answered as committed.
 *
 * @internal
 */
import type Sqlite from "better-sqlite3"
import { Effect, Exit } from "effect"
import { StoreError } from "../ProtocolError.js"

/** A flush starts at once when this many jobs are queued, without waiting for the end of the turn. */
export const maxGroupSize = 256

/** A queued write, its outcome type hidden in its closures. */
interface Job {
  /** Runs the write inside the group's transaction and keeps its outcome or its error. */
  readonly run: () => void
  /** The whole group failed: this job's outcome is that failure. */
  readonly fail: (cause: unknown) => void
  /** Resumes the job's fiber with its outcome. */
  readonly deliver: () => void
}

/**
 * @internal
 */
export interface GroupCommit {
  /**
   * Queues `run` (a better-sqlite3 transaction function, so that it is a
   * savepoint in the group's transaction) and answers with what it returned,
   * after the group has committed; what it throws is a `StoreError` for
   * `operation`.
   */
  readonly write: <A>(operation: string, run: () => A) => Effect.Effect<A, StoreError>
  /** Runs the queued jobs now, in one transaction (for closing the store). */
  readonly flush: () => void
}

/**
 * @internal
 */
export const make = (db: Sqlite.Database): GroupCommit => {
  const queue = new Set<Job>()
  let scheduled = false

  const group = db.transaction((jobs: ReadonlyArray<Job>): void => {
    for (const job of jobs) {
      job.run()
      // After some errors (SQLITE_FULL, SQLITE_IOERR, ...) SQLite rolls the
      // whole transaction back: what the earlier jobs did is gone, and the
      // later ones would run outside any transaction.
      if (!db.inTransaction) throw new Error("SQLite rolled back the group's transaction after a write failed")
    }
  })

  const flush = (): void => {
    if (queue.size === 0) return
    const jobs = Array.from(queue)
    queue.clear()
    try {
      group.immediate(jobs)
    } catch (cause) {
      for (const job of jobs) job.fail(cause)
    }
    for (const job of jobs) job.deliver()
  }

  const onImmediate = (): void => {
    scheduled = false
    flush()
  }

  const write = <A>(operation: string, run: () => A): Effect.Effect<A, StoreError> =>
    Effect.suspend(() => {
      let exit: Exit.Exit<A, StoreError> | undefined
      let resume: ((exit: Exit.Exit<A, StoreError>) => void) | undefined
      const job: Job = {
        run: () => {
          try {
            exit = Exit.succeed(run())
          } catch (cause) {
            exit = Exit.fail(new StoreError({ operation, cause }))
          }
        },
        fail: (cause) => {
          exit = Exit.fail(new StoreError({ operation, cause }))
        },
        deliver: () => {
          if (resume !== undefined && exit !== undefined) resume(exit)
        }
      }
      const queued = Effect.async<A, StoreError>((callback) => {
        resume = callback
        queue.add(job)
        if (queue.size >= maxGroupSize) {
          flush()
        } else if (!scheduled) {
          scheduled = true
          setImmediate(onImmediate)
        }
        // No canceler: an interruption resumes this with the interruption,
        // and the handler below takes the job out of the queue. (A canceler
        // would cost an `onInterrupt` per write, and the handler is needed
        // anyway for the cases a canceler does not see.)
      })
      return Effect.uninterruptible(
        Effect.catchAllCause(Effect.interruptible(queued), (cause) => {
          // The job was in a flush: its outcome arrived with, or just before,
          // an interruption. It was written (or failed) whole: answer it as it is.
          if (exit !== undefined) return exit
          // Interrupted while queued, or before it was queued (the fiber was
          // already interrupted): out of the queue, nothing is written.
          queue.delete(job)
          return Effect.failCause(cause)
        })
      )
    })

  return { write, flush }
}
