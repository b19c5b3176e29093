/**
 * The benchmark harness works end to end (issue 6): `bench/run.ts --smoke`
 * starts the bare ceiling and the node listener on the memory store as
 * child processes, drives each with autocannon, and writes its results.
 * Nothing here asserts speed — targets are read from the benchmark's own
 * output, never from timed unit tests — only that every workload was
 * measured, answered 2xx, and was reported in a well-formed table and JSON.
 */
import { spawn } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Schema } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import { root } from "./support/process.js"

const Row = Schema.Struct({
  id: Schema.String,
  kind: Schema.String,
  workload: Schema.String,
  responses: Schema.Number,
  reqPerSec: Schema.Number,
  p50Ms: Schema.Number,
  p99Ms: Schema.Number,
  non2xx: Schema.Number,
  errors: Schema.Number,
  timeouts: Schema.Number,
  bytesPerResponse: Schema.Number,
  serverCpuMicrosPerRequest: Schema.Number,
  ratioToBare: Schema.Number
})

const Results = Schema.Struct({
  mode: Schema.Literal("smoke"),
  rows: Schema.Array(Row),
  ceiling: Schema.Struct({ reqPerSec: Schema.Number })
})

const run = (args: ReadonlyArray<string>) =>
  new Promise<{ readonly code: number | null; readonly output: string }>((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", ...args], { cwd: root, stdio: "pipe" })
    let output = ""
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")))
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")))
    child.once("exit", (code) => resolve({ code, output }))
  })

const dir = mkdtempSync(join(tmpdir(), "effect-dcr-bench-test-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe("npm run bench -- --smoke", () => {
  it("measures the ceiling and every workload on the node listener, with no failed request", async () => {
    const out = join(dir, "smoke.json")
    const { code, output } = await run(["bench/run.ts", "--smoke", "--out", out])
    expect(code, output).toBe(0)

    const results = Schema.decodeUnknownSync(Results)(JSON.parse(readFileSync(out, "utf8")))
    expect(results.rows.map((row) => row.id)).toEqual([
      "bare:read",
      "node/memory:read",
      "node/memory:update",
      "node/memory:mixed",
      "node/memory:register"
    ])
    expect(results.ceiling.reqPerSec).toBeGreaterThan(0)
    for (const row of results.rows) {
      expect(row.responses, row.id).toBeGreaterThan(0)
      expect(row.reqPerSec, row.id).toBeGreaterThan(0)
      expect(row.non2xx, row.id).toBe(0)
      expect(row.errors + row.timeouts, row.id).toBe(0)
      expect(row.p50Ms, row.id).toBeGreaterThan(0)
      expect(row.p99Ms, row.id).toBeGreaterThanOrEqual(row.p50Ms)
      expect(row.bytesPerResponse, row.id).toBeGreaterThan(0)
      expect(row.serverCpuMicrosPerRequest, row.id).toBeGreaterThan(0)
      expect(row.ratioToBare, row.id).toBeGreaterThan(0)
    }

    // The printed table: a header, and one line per row with its ratio to the ceiling.
    expect(output).toMatch(/^row +req\/s +p50 ms +p99 ms +non2xx +err +cpu µs\/req/m)
    for (const row of results.rows) expect(output).toMatch(new RegExp(`^${row.id} +[\\d,]+ `, "m"))
    expect(output).toContain("bare ceiling:")
    expect(output).toContain("node/memory:read req/s ÷ bare ceiling")
  }, 120_000)
})
