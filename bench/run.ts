/**
 * `npm run bench`: the HTTP benchmark of issue 6.
 *
 * Each server under test runs as a child process pinned to core 0; the load
 * generator (autocannon, `loadgen.ts`) runs as another child pinned to core 1;
 * both talk to this runner over IPC. For every target and workload: start
 * the target (which seeds its clients), warm up, measure, and read the
 * target's CPU time from /proc around the measured window. The bare
 * `node:http` ceiling is measured in the same run, and every row is reported
 * as a ratio to it.
 *
 *   npm run bench                      full run (about 10 minutes)
 *   npm run bench -- --quick           under a minute: fewer variants, 3 s runs
 *   npm run bench -- --only 'memory'   the full run's rows whose id matches the pattern (a RegExp)
 *   npm run bench -- --duration 20     seconds per measured run
 *
 * See bench/README.md for what each number means.
 */
import { execFileSync } from "node:child_process"
import { randomBytes } from "node:crypto"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { cpus, loadavg, tmpdir } from "node:os"
import { join } from "node:path"
import { parseArgs } from "node:util"
import { Schema } from "effect"
import {
  type Child,
  machineBusyMicros,
  procCpuMicros,
  procRss,
  root,
  spawnNode,
  tasksetAvailable
} from "./lib/children.js"
import { freePort } from "../test/support/process.js"
import { JobFailed, JobResult, JobStarted, LoadgenReady, TargetReady, Usage } from "./lib/messages.js"
import type { Credential, Workload } from "./lib/workload.js"

// --- options -----------------------------------------------------------------

const { values: flags } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    smoke: { type: "boolean", default: false },
    duration: { type: "string" },
    warmup: { type: "string" },
    only: { type: "string" },
    connections: { type: "string" },
    clients: { type: "string" },
    soak: { type: "string" },
    out: { type: "string" },
    "cpu-prof": { type: "string" },
    "node-flags": { type: "string" },
    help: { type: "boolean", default: false }
  }
})

if (flags.help) {
  process.stdout.write(`npm run bench -- [options]
  --quick            under a minute: node listener (memory, SQLite), platform router (memory, read),
                     the two ceilings; 1 s warm-up, 3 s runs
  --smoke            a few seconds: bare ceiling and node listener on memory, 1 s runs, no warm-up (tests)
  --duration S       seconds per measured run (default 10, quick 3, smoke 1)
  --warmup S         seconds of warm-up before each measured run (default 3, quick 1, smoke 0)
  --only PATTERN     only the full run's rows whose id (e.g. node/sqlite:update, scale/sqlite-100k:read)
                     matches this RegExp, with the durations of the mode; the bare ceiling always runs
  --connections N    concurrent connections (default 50)
  --clients N        clients seeded per target (default 1000, smoke 100)
  --soak S           length of the RSS soak run (default 60; full mode only)
  --out FILE         where to write the JSON results (default bench-results/<timestamp>.json)
  --node-flags "F"   extra node flags for every server under test, the ceilings included (e.g.
                     "--max-semi-space-size=32"); recorded in the JSON
  --cpu-prof DIR     run every library target and the platform constant with node --cpu-prof, writing
                     its profiles into DIR/<group>
                     (the profiler costs CPU: ratios measured so are not comparable)
`)
  process.exit(0)
}

const numberFlag = (name: string, raw: string | undefined, fallback: number, least: number): number => {
  if (raw === undefined) return fallback
  const value = Number(raw)
  if (!Number.isFinite(value) || value < least) throw new Error(`--${name} must be a number ≥ ${least}`)
  return value
}

const mode: "full" | "quick" | "smoke" = flags.smoke ? "smoke" : flags.quick ? "quick" : "full"
const seconds = numberFlag("duration", flags.duration, mode === "full" ? 10 : mode === "quick" ? 3 : 1, 1)
const warmup = numberFlag("warmup", flags.warmup, mode === "full" ? 3 : mode === "quick" ? 1 : 0, 0)
const connections = Math.round(numberFlag("connections", flags.connections, 50, 1))
const clientCount = Math.round(numberFlag("clients", flags.clients, mode === "smoke" ? 100 : 1000, 1))
const soakSeconds = numberFlag("soak", flags.soak, 60, 15)
const only = flags.only === undefined ? undefined : new RegExp(flags.only)
const nodeFlags = flags["node-flags"] === undefined ? [] : flags["node-flags"].split(" ").filter((flag) => flag !== "")
const pgUrl = process.env.BENCH_PG_URL ?? process.env.EFFECT_DCR_TEST_PG_URL

// --- the plan ----------------------------------------------------------------

type Adapter = "node" | "fetch" | "platform"
type StoreKind = "memory" | "sqlite" | "pg"

interface Group {
  /** e.g. `node/sqlite`; a row's id is `group:workload`. */
  readonly id: string
  readonly kind: "ceiling" | "platform-constant" | "library" | "scale" | "soak"
  readonly script: string
  readonly adapter: Adapter | undefined
  readonly store: StoreKind | undefined
  readonly clients: number
  readonly workloads: ReadonlyArray<Workload>
  /** Overrides the measured duration (the soak run). */
  readonly seconds?: number
}

const scripts: Record<Adapter, string> = {
  node: "bench/targets/node-listener.ts",
  fetch: "bench/targets/fetch-handler.ts",
  platform: "bench/targets/platform-router.ts"
}

const allWorkloads: ReadonlyArray<Workload> = ["read", "update", "mixed", "register"]

const bare: Group = {
  id: "bare",
  kind: "ceiling",
  script: "bench/targets/bare.ts",
  adapter: undefined,
  store: undefined,
  clients: clientCount,
  workloads: ["read"]
}
const platformConstant: Group = {
  id: "platform-constant",
  kind: "platform-constant",
  script: "bench/targets/platform-constant.ts",
  adapter: undefined,
  store: undefined,
  clients: clientCount,
  workloads: ["read"]
}

const library = (adapter: Adapter, store: StoreKind, workloads = allWorkloads): Group => ({
  id: `${adapter}/${store}`,
  kind: "library",
  script: scripts[adapter],
  adapter,
  store,
  clients: clientCount,
  workloads
})

const stores: ReadonlyArray<StoreKind> = pgUrl === undefined ? ["memory", "sqlite"] : ["memory", "sqlite", "pg"]

const inOrder = (adapter: Adapter): ReadonlyArray<Group> => stores.map((store) => library(adapter, store))

// The bare ceiling is not in the plans: it is measured first, then again between groups (see `main`).
// platform-constant sits right before the platform-router rows it is compared with, so the two are
// measured close together in time.
const fullPlan: ReadonlyArray<Group> = [
  ...inOrder("node"),
  ...inOrder("fetch"),
  platformConstant,
  ...inOrder("platform"),
  { ...library("node", "sqlite", ["read"]), id: "scale/sqlite-1k", kind: "scale", clients: 1_000 },
  { ...library("node", "sqlite", ["read"]), id: "scale/sqlite-100k", kind: "scale", clients: 100_000 },
  { ...library("node", "sqlite", ["mixed"]), id: "soak/node/sqlite", kind: "soak", seconds: soakSeconds }
]

const quickPlan: ReadonlyArray<Group> = [
  library("node", "memory", ["read", "update", "register"]),
  library("node", "sqlite", ["read", "update", "register"]),
  ...(pgUrl === undefined ? [] : [library("node", "pg", ["read", "update", "register"])]),
  platformConstant,
  library("platform", "memory", ["read"])
]

const smokePlan: ReadonlyArray<Group> = [library("node", "memory")]

const plan = ((): ReadonlyArray<Group> => {
  if (only === undefined) return mode === "full" ? fullPlan : mode === "quick" ? quickPlan : smokePlan
  const selected = fullPlan
    .map((group) => ({
      ...group,
      workloads: group.workloads.filter((workload) => only.test(`${group.id}:${workload}`))
    }))
    .filter((group) => group.workloads.length > 0)
  // The platform rows are compared with platform-constant: measure it with them.
  const firstPlatform = selected.findIndex((group) => group.adapter === "platform")
  if (firstPlatform === -1 || selected.some((group) => group.kind === "platform-constant")) return selected
  return [...selected.slice(0, firstPlatform), platformConstant, ...selected.slice(firstPlatform)]
})()

/** The bare ceiling is measured again after this many groups (full mode), and once more at the end (not in smoke mode). */
const ceilingEvery = mode === "full" ? 2 : Number.POSITIVE_INFINITY
const ceilingAtEnd = mode !== "smoke"
const ceilingRuns =
  1 +
  (Number.isFinite(ceilingEvery) ? Math.max(0, Math.floor((plan.length - 1) / ceilingEvery)) : 0) +
  (ceilingAtEnd ? 1 : 0)

const rowCount = ceilingRuns + plan.reduce((count, group) => count + group.workloads.length, 0)

// --- measuring -----------------------------------------------------------------

const isTargetReady = Schema.is(TargetReady)
const isUsage = Schema.is(Usage)
const isJobStarted =
  (id: number) =>
  (message: unknown): message is typeof JobStarted.Type =>
    Schema.is(JobStarted)(message) && message.id === id
const isJobEnd =
  (id: number) =>
  (message: unknown): message is JobResult | typeof JobFailed.Type =>
    (Schema.is(JobResult)(message) || Schema.is(JobFailed)(message)) && message.id === id

/** The target's CPU time (µs) and RSS (bytes): from /proc, or asked over IPC where there is none. */
const usage = async (target: Child): Promise<{ readonly cpuMicros: number; readonly rss: number }> => {
  const cpuMicros = procCpuMicros(target.pid)
  const rss = procRss(target.pid)
  if (cpuMicros !== undefined && rss !== undefined) return { cpuMicros, rss }
  target.send({ type: "usage?" })
  return target.waitFor(isUsage, 10_000, "usage")
}

interface Measured {
  readonly result: JobResult
  readonly serverCpuMicros: number
  readonly serverSeconds: number
  /** CPU the rest of the machine used during the run (µs): other processes, and kernel work no process is charged for. */
  readonly otherCpuMicros: number | undefined
  readonly rss: number
  /** [seconds since the start, RSS bytes] */
  readonly rssSamples: ReadonlyArray<readonly [number, number]>
}

let jobs = 0

/** One autocannon run against `target`; samples the target's usage around it (and its RSS every 5 s). */
const load = async (
  loadgen: Child,
  target: Child,
  port: number,
  workload: Workload,
  clientsFile: string,
  runSeconds: number
): Promise<Measured> => {
  const id = ++jobs
  loadgen.send({
    type: "run",
    id,
    url: `http://127.0.0.1:${port}`,
    connections,
    seconds: runSeconds,
    workload,
    clientsFile
  })
  await loadgen.waitFor(isJobStarted(id), 120_000, "the start of a load run")
  const startedAt = process.hrtime.bigint()
  const before = await usage(target)
  const busyBefore = machineBusyMicros()
  const rssSamples: Array<readonly [number, number]> = []
  const sampler = setInterval(() => {
    const elapsed = Number(process.hrtime.bigint() - startedAt) / 1e9
    void usage(target).then(
      (now) => rssSamples.push([Math.round(elapsed * 10) / 10, now.rss]),
      () => undefined
    )
  }, 5_000)
  try {
    const end = await loadgen.waitFor(isJobEnd(id), (runSeconds + 60) * 1000, "the end of a load run")
    const after = await usage(target)
    const busyAfter = machineBusyMicros()
    const serverSeconds = Number(process.hrtime.bigint() - startedAt) / 1e9
    if (end.type === "failed") throw new Error(`load run failed: ${end.message}`)
    rssSamples.push([Math.round(serverSeconds * 10) / 10, after.rss])
    const serverCpuMicros = after.cpuMicros - before.cpuMicros
    const otherCpuMicros =
      busyBefore === undefined || busyAfter === undefined
        ? undefined
        : Math.max(0, busyAfter - busyBefore - serverCpuMicros - end.cpuFraction * end.seconds * 1e6)
    return { result: end, serverCpuMicros, serverSeconds, otherCpuMicros, rss: after.rss, rssSamples }
  } finally {
    clearInterval(sampler)
  }
}

// --- results ------------------------------------------------------------------

interface Check {
  readonly id: string
  readonly description: string
  readonly target: string
  readonly measured: string
  readonly pass: boolean
}

interface Row {
  readonly id: string
  /** 1 for most rows; the bare ceiling is measured several times. */
  readonly run: number
  readonly group: string
  readonly kind: Group["kind"]
  readonly adapter: Adapter | undefined
  readonly store: StoreKind | undefined
  readonly workload: Workload
  readonly clients: number
  readonly connections: number
  readonly seconds: number
  readonly responses: number
  readonly reqPerSec: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly maxMs: number
  readonly non2xx: number
  readonly errors: number
  readonly timeouts: number
  readonly statuses: Readonly<Record<string, number>>
  readonly bytesPerResponse: number
  /** Server CPU time (user + system, all threads) per response, µs. */
  readonly serverCpuMicrosPerRequest: number
  /** Server CPU time over wall time: 1 is one core fully busy. */
  readonly serverCpuFraction: number
  readonly loadgenCpuFraction: number
  /**
   * CPU used by everything else on the machine during the run, as a fraction
   * of one core: other processes, and kernel network work charged to no
   * process. Well above its usual level, the row was disturbed.
   */
  readonly otherCpuFraction: number | undefined
  readonly rssBytes: number
  readonly rssSamples: ReadonlyArray<readonly [number, number]>
  /** req/s over the bare ceiling (the median of its runs in this benchmark). */
  ratioToBare?: number
  /** For platform-router rows: req/s over platform-constant's. */
  ratioToPlatformConstant?: number
  checks: Array<Check>
}

const rows: Array<Row> = []

const toRow = (group: Group, workload: Workload, measured: Measured, run: number): Row => {
  const r = measured.result
  return {
    id: `${group.id}:${workload}`,
    run,
    group: group.id,
    kind: group.kind,
    adapter: group.adapter,
    store: group.store,
    workload,
    clients: group.clients,
    connections,
    seconds: Math.round(r.seconds * 100) / 100,
    responses: r.responses,
    reqPerSec: r.seconds === 0 ? 0 : Math.round(r.responses / r.seconds),
    p50Ms: r.p50,
    p99Ms: r.p99,
    maxMs: Math.round(r.max * 100) / 100,
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    statuses: r.statuses,
    bytesPerResponse: r.bytesPerResponse,
    serverCpuMicrosPerRequest: r.responses === 0 ? 0 : Math.round((measured.serverCpuMicros / r.responses) * 10) / 10,
    serverCpuFraction: Math.round((measured.serverCpuMicros / 1e6 / measured.serverSeconds) * 100) / 100,
    loadgenCpuFraction: Math.round(r.cpuFraction * 100) / 100,
    otherCpuFraction:
      measured.otherCpuMicros === undefined
        ? undefined
        : Math.round((measured.otherCpuMicros / 1e6 / measured.serverSeconds) * 100) / 100,
    rssBytes: measured.rss,
    rssSamples: measured.rssSamples,
    checks: []
  }
}

/** One line naming the rows during which the rest of the machine took a good part of a core. */
const disturbedNote = (): Array<string> => {
  const noisy = rows.filter((row) => (row.otherCpuFraction ?? 0) >= disturbed)
  if (noisy.length === 0) return []
  const list = noisy.map((row) => `${label(row)} (${percent(row.otherCpuFraction ?? 0)})`).join(", ")
  return [`  note: disturbed — other work used ≥ ${percent(disturbed)} of a core during: ${list}`]
}

/** A row's name in the table: a repeated ceiling run shows its number. */
const label = (row: Row): string => (row.run === 1 ? row.id : `${row.id} (${row.run})`)

/** Other CPU use, as a fraction of one core, above which a row is reported as disturbed. */
const disturbed = 0.3

const percent = (ratio: number): string => `${(ratio * 100).toFixed(1)}%`

const ratioTargets: Readonly<Record<string, number>> = {
  "node/memory:read": 0.4,
  "node/memory:update": 0.25,
  "node/memory:register": 0.25,
  "node/sqlite:read": 0.3,
  "node/sqlite:update": 0.15,
  "node/sqlite:register": 0.15
}
const p99TargetRows: ReadonlyArray<string> = ["node/memory:read", "node/sqlite:read"]
const p99TargetMs = 5

/** Ratios and the targets, once every row is in. */
const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? (sorted[middle] ?? 0) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2
}

const failures = (involved: ReadonlyArray<Row>): number =>
  involved.reduce((count, row) => count + row.non2xx + row.errors + row.timeouts, 0)

/** A target check; it cannot pass when a request of a row it reads failed (the numbers would be of the wrong work). */
const check = (
  id: string,
  description: string,
  target: string,
  measured: string,
  pass: boolean,
  involved: ReadonlyArray<Row>
): Check => {
  const failed = failures(involved)
  return {
    id,
    description,
    target,
    measured: failed === 0 ? measured : `${measured}, but ${integer(failed)} requests failed`,
    pass: pass && failed === 0
  }
}

const evaluate = (): { readonly extra: Array<Check>; readonly summary: Record<string, unknown> } => {
  const find = (id: string) => rows.find((row) => row.id === id)
  const ceilingRows = rows.filter((row) => row.kind === "ceiling")
  const ceiling = median(ceilingRows.map((row) => row.reqPerSec))
  const constant = find("platform-constant:read")
  for (const row of rows) {
    if (ceiling > 0) row.ratioToBare = row.reqPerSec / ceiling
    if (row.adapter === "platform" && constant !== undefined && constant.reqPerSec > 0) {
      row.ratioToPlatformConstant = row.reqPerSec / constant.reqPerSec
    }
    const target = ratioTargets[row.id]
    if (target !== undefined && row.ratioToBare !== undefined) {
      row.checks.push(
        check(
          `${row.id} ratio`,
          `${row.id} req/s ÷ bare ceiling`,
          `≥ ${percent(target)}`,
          percent(row.ratioToBare),
          row.ratioToBare >= target,
          [row, ...ceilingRows]
        )
      )
    }
    if (p99TargetRows.includes(row.id)) {
      row.checks.push(
        check(
          `${row.id} p99`,
          `${row.id} p99 latency at ${connections} connections`,
          `≤ ${p99TargetMs} ms`,
          `${row.p99Ms.toFixed(2)} ms`,
          row.p99Ms <= p99TargetMs,
          [row]
        )
      )
    }
    if (row.id === "platform/memory:read" && constant !== undefined && row.ratioToPlatformConstant !== undefined) {
      row.checks.push(
        check(
          "platform overhead",
          "platform router read req/s ÷ platform-node constant req/s (the library adds at most 15 %)",
          "≥ 85.0%",
          percent(row.ratioToPlatformConstant),
          row.ratioToPlatformConstant >= 0.85,
          [row, constant]
        )
      )
    }
  }
  const extra: Array<Check> = []
  const summary: Record<string, unknown> = {
    ceiling: {
      reqPerSec: ceiling,
      runs: ceilingRows.map((row) => row.reqPerSec),
      note: "the median of the bare runs; every ratio to bare uses it"
    }
  }
  const small = find("scale/sqlite-1k:read")
  const large = find("scale/sqlite-100k:read")
  if (small !== undefined && large !== undefined && small.reqPerSec > 0) {
    const ratio = large.reqPerSec / small.reqPerSec
    summary.scale = { reqPerSec1k: small.reqPerSec, reqPerSec100k: large.reqPerSec, ratio }
    extra.push(
      check("scale", "SQLite read req/s with 100 000 clients ÷ with 1 000", "≥ 90.0%", percent(ratio), ratio >= 0.9, [
        small,
        large
      ])
    )
  }
  const soak = find("soak/node/sqlite:mixed")
  if (soak !== undefined) {
    const at10 = soak.rssSamples.find(([at]) => at >= 9.5)
    const last = soak.rssSamples[soak.rssSamples.length - 1]
    if (at10 !== undefined && last !== undefined) {
      const growth = last[1] / at10[1] - 1
      summary.soak = { rssAt10s: at10[1], rssAtEnd: last[1], endSeconds: last[0], growth }
      extra.push(
        check(
          "soak",
          `server RSS growth from 10 s to ${Math.round(last[0])} s of the mixed run (node/sqlite)`,
          "< 10.0%",
          `${percent(growth)} (${mb(at10[1])} → ${mb(last[1])})`,
          growth < 0.1,
          [soak]
        )
      )
    }
  }
  return { extra, summary }
}

/** How the ceiling was taken, and how much it moved during the run. */
const ceilingLine = (): string => {
  const runs = rows.filter((row) => row.kind === "ceiling").map((row) => row.reqPerSec)
  if (runs.length === 0) return "no bare ceiling measured"
  const spread =
    runs.length === 1
      ? ""
      : `; runs ${runs.map(integer).join(", ")} (spread ${percent((Math.max(...runs) - Math.min(...runs)) / median(runs))})`
  return `bare ceiling: ${integer(median(runs))} req/s, the median of ${runs.length} run(s)${spread}; "vs bare" divides by it`
}

const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MB`
const integer = (value: number): string => Math.round(value).toLocaleString("en-US")

const table = (): string => {
  const header = [
    "row",
    "req/s",
    "p50 ms",
    "p99 ms",
    "non2xx",
    "err",
    "cpu µs/req",
    "srv cpu",
    "gen cpu",
    "other",
    "B/resp",
    "vs bare",
    "targets"
  ]
  const cells = rows.map((row) => [
    label(row),
    integer(row.reqPerSec),
    row.p50Ms.toFixed(2),
    row.p99Ms.toFixed(2),
    integer(row.non2xx),
    integer(row.errors + row.timeouts),
    row.serverCpuMicrosPerRequest.toFixed(1),
    percent(row.serverCpuFraction),
    percent(row.loadgenCpuFraction),
    row.otherCpuFraction === undefined ? "-" : percent(row.otherCpuFraction),
    integer(row.bytesPerResponse),
    row.ratioToBare === undefined ? "-" : percent(row.ratioToBare),
    [
      row.ratioToPlatformConstant === undefined ? undefined : `${percent(row.ratioToPlatformConstant)} of p-const`,
      ...row.checks.map((check) => `${check.target.replace(" ", "")} ${check.pass ? "PASS" : "MISS"}`)
    ]
      .filter((text) => text !== undefined)
      .join(", ")
  ])
  const widths = header.map((title, i) => Math.max(title.length, ...cells.map((line) => (line[i] ?? "").length)))
  const format = (line: ReadonlyArray<string>) =>
    line
      .map((cell, i) => {
        const width = widths[i] ?? 0
        return i === 0 || i === line.length - 1 ? cell.padEnd(width) : cell.padStart(width)
      })
      .join("  ")
      .trimEnd()
  return [format(header), widths.map((width) => "-".repeat(width)).join("  "), ...cells.map(format)].join("\n")
}

// --- main ------------------------------------------------------------------------

const gitDescription = (): string | undefined => {
  try {
    const commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: root, encoding: "utf8" }).trim()
    const dirty = execFileSync("git", ["status", "--porcelain", "src"], { cwd: root, encoding: "utf8" }).trim() !== ""
    return dirty ? `${commit} (src modified)` : commit
  } catch {
    return undefined
  }
}

const syntheticClients = (count: number): ReadonlyArray<Credential> =>
  Array.from({ length: count }, () => ({
    clientId: randomBytes(16).toString("base64url"),
    token: randomBytes(32).toString("base64url")
  }))

const main = async () => {
  const began = Date.now()
  const elapsed = () => `${Math.round((Date.now() - began) / 1000)} s`
  const work = mkdtempSync(join(tmpdir(), "effect-dcr-bench-"))
  // Also when stopped by a signal (children.ts exits the process then).
  process.on("exit", () => rmSync(work, { recursive: true, force: true }))
  const cores = cpus().length
  const pin = tasksetAvailable && cores >= 2
  const machine = {
    cpu: cpus()[0]?.model ?? "unknown",
    cores,
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    pinned: pin ? "target on core 0, load generator on core 1 (taskset)" : "not pinned (no taskset or one core)",
    loadAverageAtStart: loadavg().map((value) => Math.round(value * 100) / 100)
  }
  process.stdout.write(
    `effect-dcr bench (${mode}): ${rowCount} runs of ${seconds} s after ${warmup} s warm-up, ` +
      `${connections} connections; ${machine.pinned}\n`
  )
  if (!pin) process.stdout.write("warning: without pinning the target and the load generator share cores\n")

  const loadgen = spawnNode("load generator", "bench/loadgen.ts", { core: pin ? 1 : undefined })
  const children: Array<Child> = [loadgen]
  let done = 0
  const report = (row: Row) => {
    rows.push(row)
    done++
    process.stdout.write(
      `[${String(done).padStart(String(rowCount).length)}/${rowCount}] ${row.id}: ${integer(row.reqPerSec)} req/s, ` +
        `p99 ${row.p99Ms.toFixed(2)} ms, non-2xx ${row.non2xx}, ${row.serverCpuMicrosPerRequest.toFixed(1)} µs CPU/req ` +
        `(${elapsed()})\n`
    )
  }
  /** Starts a group's target and waits until it has seeded its clients and listens. */
  const start = async (group: Group) => {
    const port = await freePort()
    const safe = group.id.replaceAll("/", "-")
    const clientsFile =
      group.kind === "ceiling" || group.kind === "platform-constant" ? synthetic : join(work, `${safe}.json`)
    const env: Record<string, string> = {
      BENCH_PORT: String(port),
      BENCH_CLIENTS: String(group.clients),
      BENCH_CLIENTS_FILE: clientsFile,
      BENCH_STORE: group.store ?? "memory",
      BENCH_SQLITE_FILE: join(work, `${safe}.sqlite`),
      ...(pgUrl === undefined ? {} : { BENCH_PG_URL: pgUrl })
    }
    const startedAt = Date.now()
    const profile =
      flags["cpu-prof"] === undefined || group.kind === "ceiling"
        ? []
        : ["--cpu-prof", "--cpu-prof-dir", join(flags["cpu-prof"], safe)]
    const target = spawnNode(group.id, group.script, {
      core: pin ? 0 : undefined,
      env,
      nodeArgs: [...nodeFlags, ...profile]
    })
    children.push(target)
    await target.waitFor(isTargetReady, 600_000, "ready")
    process.stdout.write(
      `${group.id}: ready in ${((Date.now() - startedAt) / 1000).toFixed(1)} s ` +
        `(${group.clients.toLocaleString("en-US")} clients)\n`
    )
    return { target, port, clientsFile }
  }
  const synthetic = join(work, "synthetic-clients.json")
  try {
    await loadgen.waitFor(Schema.is(LoadgenReady), 60_000, "ready")
    // The bare server's requests have the shape of reads, with ids and tokens of the same lengths.
    writeFileSync(synthetic, JSON.stringify(syntheticClients(clientCount)))
    // The bare server stays up (idle) for the whole run: the ceiling is measured again between groups.
    const ceiling = await start(bare)
    let ceilingRun = 0
    const measureCeiling = async (warm: boolean) => {
      if (warm && warmup > 0) await load(loadgen, ceiling.target, ceiling.port, "read", synthetic, warmup)
      const measured = await load(loadgen, ceiling.target, ceiling.port, "read", synthetic, seconds)
      report(toRow(bare, "read", measured, ++ceilingRun))
    }
    await measureCeiling(true)
    for (const [index, group] of plan.entries()) {
      const { target, port, clientsFile } = await start(group)
      for (const workload of group.workloads) {
        if (warmup > 0 && group.kind !== "soak") await load(loadgen, target, port, workload, clientsFile, warmup)
        report(
          toRow(group, workload, await load(loadgen, target, port, workload, clientsFile, group.seconds ?? seconds), 1)
        )
      }
      await target.stop()
      if ((index + 1) % ceilingEvery === 0 && index + 1 < plan.length) await measureCeiling(false)
    }
    if (ceilingAtEnd) await measureCeiling(false)
  } finally {
    for (const child of children.reverse()) await child.stop()
    rmSync(work, { recursive: true, force: true })
  }

  const { extra, summary } = evaluate()
  const checks = [...rows.flatMap((row) => row.checks), ...extra]
  const lines = [
    "",
    table(),
    "",
    ceilingLine(),
    ...(checks.length === 0 ? [] : ["targets (issue 6):"]),
    ...checks.map(
      (check) => `  ${check.pass ? "PASS" : "MISS"}  ${check.description}: ${check.measured} (target ${check.target})`
    ),
    ...disturbedNote(),
    ...rows
      .filter((row) => row.loadgenCpuFraction >= 0.9 && row.serverCpuFraction < 0.9)
      .map((row) => `  note: ${label(row)}: the load generator was busier than the server; its req/s may be a floor`),
    ""
  ]
  process.stdout.write(lines.join("\n"))

  const out = flags.out ?? join(root, "bench-results", `${new Date().toISOString().replaceAll(":", "-")}.json`)
  mkdirSync(join(out, ".."), { recursive: true })
  writeFileSync(
    out,
    JSON.stringify(
      {
        date: new Date().toISOString(),
        mode,
        commit: gitDescription(),
        machine,
        options: {
          seconds,
          warmup,
          connections,
          clients: clientCount,
          soakSeconds,
          only: flags.only,
          nodeFlags
        },
        rows,
        checks,
        ...summary,
        totalSeconds: Math.round((Date.now() - began) / 1000)
      },
      null,
      2
    ) + "\n"
  )
  process.stdout.write(`results: ${out} (${elapsed()})\n`)
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
    process.exit(1)
  }
)
