/**
 * The IPC messages between the runner, the targets and the load generator,
 * as schemas: every message that crosses a process boundary is decoded, not
 * trusted.
 */
import { Schema } from "effect"
import { Workload } from "./workload.js"

/** A target tells the runner it listens (after seeding its clients). */
export const TargetReady = Schema.Struct({ type: Schema.Literal("ready"), port: Schema.Number })

/** The runner asks a target for its resource usage (when /proc cannot be read). */
export const UsageRequest = Schema.Struct({ type: Schema.Literal("usage?") })

/** A target's `process.cpuUsage()` (user + system, µs) and RSS (bytes). */
export const Usage = Schema.Struct({ type: Schema.Literal("usage"), cpuMicros: Schema.Number, rss: Schema.Number })

export const TargetMessage = Schema.Union(TargetReady, Usage)

/** One load run for the load generator. */
export const Job = Schema.Struct({
  type: Schema.Literal("run"),
  id: Schema.Number,
  url: Schema.String,
  connections: Schema.Number,
  seconds: Schema.Number,
  workload: Workload,
  /** The clients to rotate over (see `CredentialsFile`). */
  clientsFile: Schema.String
})
export type Job = typeof Job.Type

export const LoadgenReady = Schema.Struct({ type: Schema.Literal("loadgen-ready") })

/** Sent when autocannon starts sending, so the runner samples the target's CPU then. */
export const JobStarted = Schema.Struct({ type: Schema.Literal("started"), id: Schema.Number })

/** What one load run measured. Latencies are of every response, in milliseconds. */
export const JobResult = Schema.Struct({
  type: Schema.Literal("result"),
  id: Schema.Number,
  /** Responses received between the start and the end of the run. */
  responses: Schema.Number,
  /** Wall time from the start event to the end, seconds. */
  seconds: Schema.Number,
  non2xx: Schema.Number,
  errors: Schema.Number,
  timeouts: Schema.Number,
  /** Status code → count. */
  statuses: Schema.Record({ key: Schema.String, value: Schema.Number }),
  p50: Schema.Number,
  p99: Schema.Number,
  max: Schema.Number,
  /** Mean bytes per response, headers included. */
  bytesPerResponse: Schema.Number,
  /** The load generator's own CPU use during the run, as a fraction of one core. */
  cpuFraction: Schema.Number
})
export type JobResult = typeof JobResult.Type

export const JobFailed = Schema.Struct({ type: Schema.Literal("failed"), id: Schema.Number, message: Schema.String })

export const LoadgenMessage = Schema.Union(LoadgenReady, JobStarted, JobResult, JobFailed)
export type LoadgenMessage = typeof LoadgenMessage.Type

export const RunnerMessage = Schema.Union(Job, UsageRequest)
