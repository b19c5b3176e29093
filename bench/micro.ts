/**
 * `npm run bench:micro`: the protocol without HTTP. Read, update and register
 * go straight through `Protocol.handle` on a `ManagedRuntime` (as every
 * adapter runs them), one after the other, so the protocol's cost is seen
 * apart from the transport's. A `noop` row runs `Effect.succeed` through the
 * same `runPromise`: the floor any adapter pays per request.
 *
 * For each operation it prints:
 * - ops/s and µs/op: sequential operations for `--duration` seconds after a
 *   warm-up, on one core (pinned to core 0 when `taskset` exists);
 * - heap KB/op: bytes allocated on the V8 heap per operation, measured as the
 *   growth of `heapUsed` over a batch during which no garbage collection ran
 *   (checked with a `gc` PerformanceObserver; the young generation is made
 *   large with `--max-semi-space-size` so a batch fits). It counts garbage
 *   and retained objects alike, and not memory outside the JS heap (Buffers).
 *
 *   npm run bench:micro                 memory and SQLite stores, 3 s per operation
 *   npm run bench:micro -- --quick      1 s per operation
 *   npm run bench:micro -- --only read  operations whose id (e.g. sqlite:update) matches
 */
import { spawn } from "node:child_process"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { PerformanceObserver } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import { Effect } from "effect"
import { handle, type ProtocolRequest } from "../src/Protocol.js"
import type { ProtocolResponse } from "../src/ProtocolError.js"
import { machineBusyMicros, root, tasksetAvailable } from "./lib/children.js"
import { type DcrRuntime, makeRuntime, seed, type StoreSpec } from "./lib/dcr.js"
import { type BenchRequest, type Credential, readRequest, registerRequest, updateRequest } from "./lib/workload.js"

// --- the measurement --------------------------------------------------------------------

interface Options {
  readonly seconds: number
  readonly warmup: number
  readonly clients: number
  readonly only: RegExp | undefined
  readonly out: string | undefined
}

interface Result {
  readonly id: string
  readonly store: string
  readonly op: string
  readonly ops: number
  readonly opsPerSec: number
  readonly microsPerOp: number
  /** undefined when every batch saw a garbage collection. */
  readonly heapBytesPerOp: number | undefined
  /** CPU the rest of the machine used while the operations were timed, as a fraction of one core (disturbance). */
  readonly otherCpuFraction: number | undefined
  readonly batch: number
}

const encoder = new TextEncoder()

const toProtocol = (request: BenchRequest): ProtocolRequest => ({
  method: request.method,
  url: request.path,
  authorization: request.headers.authorization === undefined ? [] : [request.headers.authorization],
  contentType: request.headers["content-type"],
  body: request.body === undefined ? undefined : encoder.encode(request.body)
})

/** An operation: the next call, round-robin over the clients. */
type Operation = () => Promise<ProtocolResponse>

const operations = (runtime: DcrRuntime, clients: ReadonlyArray<Credential>): Record<string, Operation> => {
  const cycle = (requests: ReadonlyArray<ProtocolRequest>): Operation => {
    let i = 0
    return () => {
      const request = requests[i++ % requests.length]
      if (request === undefined) throw new Error("no request")
      return runtime.runPromise(handle(request))
    }
  }
  const noop: ProtocolResponse = { status: 200, headers: {}, body: "{}" }
  return {
    noop: () => runtime.runPromise(Effect.succeed(noop)),
    read: cycle(clients.map((client) => toProtocol(readRequest(client)))),
    update: cycle(clients.map((client) => toProtocol(updateRequest(client)))),
    register: cycle([toProtocol(registerRequest)])
  }
}

const check = (id: string, response: ProtocolResponse) => {
  if (response.status < 200 || response.status > 299) {
    throw new Error(`${id}: answered ${response.status} ${response.body ?? ""}`)
  }
}

/** Garbage collections seen since it was last reset (observed once `main` starts). */
let gcCount = 0

const settle = () => new Promise((resolve) => setTimeout(resolve, 20))

/** Heap bytes per operation over a batch with no collection in it; smaller batches when one ran. */
const allocation = async (
  id: string,
  operation: Operation,
  collect: () => void
): Promise<{ readonly bytes: number | undefined; readonly batch: number }> => {
  for (let batch = 400; batch >= 25; batch = Math.floor(batch / 2)) {
    collect()
    collect()
    await settle()
    gcCount = 0
    const before = process.memoryUsage().heapUsed
    for (let i = 0; i < batch; i++) check(id, await operation())
    const after = process.memoryUsage().heapUsed
    await settle()
    if (gcCount === 0) return { bytes: (after - before) / batch, batch }
  }
  return { bytes: undefined, batch: 0 }
}

const time = async (
  id: string,
  operation: Operation,
  seconds: number
): Promise<{ ops: number; elapsed: number; other: number | undefined }> => {
  const busyBefore = machineBusyMicros()
  const cpuBefore = process.cpuUsage()
  const started = process.hrtime.bigint()
  const limit = BigInt(Math.round(seconds * 1e9))
  let ops = 0
  for (;;) {
    check(id, await operation())
    ops++
    if ((ops & 31) === 0 && process.hrtime.bigint() - started >= limit) break
  }
  const elapsed = Number(process.hrtime.bigint() - started) / 1e9
  const cpu = process.cpuUsage(cpuBefore)
  const busyAfter = machineBusyMicros()
  const other =
    busyBefore === undefined || busyAfter === undefined
      ? undefined
      : Math.max(0, busyAfter - busyBefore - cpu.user - cpu.system) / 1e6 / elapsed
  return { ops, elapsed, other }
}

const measureStore = async (spec: StoreSpec, options: Options, collect: () => void): Promise<Array<Result>> => {
  const runtime = makeRuntime(spec, "http://127.0.0.1:3000")
  try {
    const clients = await seed(runtime, spec, options.clients)
    const results: Array<Result> = []
    for (const [op, operation] of Object.entries(operations(runtime, clients))) {
      const id = `${spec.kind}:${op}`
      if (options.only !== undefined && !options.only.test(id)) continue
      await time(id, operation, options.warmup)
      const { ops, elapsed, other } = await time(id, operation, options.seconds)
      const { bytes, batch } = await allocation(id, operation, collect)
      const result: Result = {
        id,
        store: spec.kind,
        op,
        ops,
        opsPerSec: Math.round(ops / elapsed),
        microsPerOp: Math.round((elapsed / ops) * 1e7) / 10,
        heapBytesPerOp: bytes === undefined ? undefined : Math.round(bytes),
        otherCpuFraction: other === undefined ? undefined : Math.round(other * 100) / 100,
        batch
      }
      process.stdout.write(
        `${id}: ${result.opsPerSec.toLocaleString("en-US")} ops/s, ${result.microsPerOp} µs/op, ` +
          `${bytes === undefined ? "n/a" : (bytes / 1024).toFixed(1)} heap KB/op\n`
      )
      results.push(result)
    }
    return results
  } finally {
    await runtime.dispose()
  }
}

const table = (results: ReadonlyArray<Result>): string => {
  const header = ["op", "ops/s", "µs/op", "heap KB/op", "other"]
  const cells = results.map((result) => [
    result.id,
    result.opsPerSec.toLocaleString("en-US"),
    result.microsPerOp.toFixed(1),
    result.heapBytesPerOp === undefined ? "n/a" : (result.heapBytesPerOp / 1024).toFixed(1),
    result.otherCpuFraction === undefined ? "-" : `${Math.round(result.otherCpuFraction * 100)}%`
  ])
  const widths = header.map((title, i) => Math.max(title.length, ...cells.map((line) => (line[i] ?? "").length)))
  const format = (line: ReadonlyArray<string>) =>
    line.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join("  ")
  return [
    format(header),
    widths.map((width) => "-".repeat(width)).join("  "),
    ...cells.map(format),
    "",
    "other: CPU the rest of the machine used while an operation was timed, as a share of one core; much above a few %, that row was disturbed"
  ].join("\n")
}

async function main(collect: () => void): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: "boolean", default: false },
      duration: { type: "string" },
      clients: { type: "string" },
      only: { type: "string" },
      out: { type: "string" }
    }
  })
  const options: Options = {
    seconds: values.duration === undefined ? (values.quick ? 1 : 3) : Number(values.duration),
    warmup: values.quick ? 0.5 : 1,
    clients: values.clients === undefined ? 1000 : Number(values.clients),
    only: values.only === undefined ? undefined : new RegExp(values.only),
    out: values.out
  }
  if (!(options.seconds > 0) || !(options.clients > 0)) throw new Error("--duration and --clients must be positive")
  new PerformanceObserver((list) => {
    gcCount += list.getEntries().length
  }).observe({ entryTypes: ["gc"] })
  const began = Date.now()
  process.stdout.write(
    `effect-dcr micro-benchmark: Protocol.handle on a ManagedRuntime, no HTTP; ${options.seconds} s per operation, ` +
      `${options.clients} clients; ${tasksetAvailable ? "pinned to core 0" : "not pinned"}\n`
  )
  const work = mkdtempSync(join(tmpdir(), "effect-dcr-micro-"))
  process.on("exit", () => rmSync(work, { recursive: true, force: true }))
  process.on("SIGINT", () => process.exit(130))
  process.on("SIGTERM", () => process.exit(143))
  const pgUrl = process.env.BENCH_PG_URL ?? process.env.EFFECT_DCR_TEST_PG_URL
  const specs: Array<StoreSpec> = [{ kind: "memory" }, { kind: "sqlite", filename: join(work, "micro.sqlite") }]
  if (pgUrl !== undefined) specs.push({ kind: "pg", url: pgUrl })
  const results: Array<Result> = []
  try {
    for (const spec of specs) results.push(...(await measureStore(spec, options, collect)))
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
  process.stdout.write(`\n${table(results)}\n`)
  const out = options.out ?? join(root, "bench-results", `micro-${new Date().toISOString().replaceAll(":", "-")}.json`)
  mkdirSync(join(out, ".."), { recursive: true })
  writeFileSync(
    out,
    JSON.stringify(
      {
        date: new Date().toISOString(),
        node: process.version,
        options: { ...options, only: values.only },
        measures: {
          opsPerSec: "sequential operations through runtime.runPromise(Protocol.handle(request)), after a warm-up",
          heapBytesPerOp: "V8 heapUsed growth over a batch with no GC in it, divided by the batch size"
        },
        results
      },
      null,
      2
    ) + "\n"
  )
  process.stdout.write(`results: ${out} (${Math.round((Date.now() - began) / 1000)} s)\n`)
}

// --- re-run with the V8 flags the allocation measurement needs, pinned ------------

if (globalThis.gc === undefined) {
  const self = fileURLToPath(import.meta.url)
  const nodeArgs = ["--expose-gc", "--max-semi-space-size=128", "--import", "tsx", self, ...process.argv.slice(2)]
  const child = tasksetAvailable
    ? spawn("taskset", ["-c", "0", process.execPath, ...nodeArgs], { cwd: root, stdio: "inherit" })
    : spawn(process.execPath, nodeArgs, { cwd: root, stdio: "inherit" })
  const forward = (signal: NodeJS.Signals) => () => {
    child.kill(signal)
  }
  process.on("SIGINT", forward("SIGINT"))
  process.on("SIGTERM", forward("SIGTERM"))
  process.on("exit", () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
  })
  child.on("exit", (code, signal) => process.exit(code ?? (signal === null ? 1 : 130)))
} else {
  main(globalThis.gc).catch((error: unknown) => {
    console.error(error)
    process.exit(1)
  })
}
