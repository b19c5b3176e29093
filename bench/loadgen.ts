/**
 * The load generator: a child process of the runner, pinned to its own core,
 * that runs autocannon (its programmatic API) for each job it is sent over
 * IPC and answers with what it measured. It exits when the runner goes away.
 *
 * Every request is prebuilt (autocannon's `requests`, one list per
 * connection set in `setupClient`), so generating load costs the same for
 * every target. Latencies are kept in our own 10 µs histogram, because
 * autocannon's has a 1 ms resolution.
 */
import { readFileSync } from "node:fs"
import autocannon from "autocannon"
import { Schema } from "effect"
import { type Job, type JobResult, type LoadgenMessage, RunnerMessage } from "./lib/messages.js"
import { type BenchRequest, type Credential, CredentialsFile, requestsFor, slices } from "./lib/workload.js"

const send = (message: LoadgenMessage): void => {
  if (process.send !== undefined) process.send(message)
}

const decodeMessage = Schema.decodeUnknownEither(RunnerMessage)
const decodeCredentials = Schema.decodeUnknownSync(CredentialsFile)

const credentialsCache = new Map<string, ReadonlyArray<Credential>>()
const credentials = (file: string): ReadonlyArray<Credential> => {
  let clients = credentialsCache.get(file)
  if (clients === undefined) {
    clients = decodeCredentials(JSON.parse(readFileSync(file, "utf8")))
    credentialsCache.set(file, clients)
  }
  return clients
}

/** 10 µs buckets up to 10 s; slower responses land in the last one. */
const bucketMicros = 10
const histogram = new Uint32Array(1_000_000)

const percentile = (count: number, p: number): number => {
  if (count === 0) return 0
  const rank = Math.ceil(count * p)
  let seen = 0
  for (let i = 0; i < histogram.length; i++) {
    seen += histogram[i] ?? 0
    if (seen >= rank) return ((i + 1) * bucketMicros) / 1000
  }
  return (histogram.length * bucketMicros) / 1000
}

const toAutocannon = (request: BenchRequest): autocannon.Request => ({
  method: request.method,
  path: request.path,
  headers: { ...request.headers },
  ...(request.body === undefined ? {} : { body: request.body })
})

const run = (job: Job): Promise<JobResult> =>
  new Promise((resolve, reject) => {
    const clients = credentials(job.clientsFile)
    const perConnection = slices(clients, job.connections).map((slice) =>
      requestsFor(job.workload, slice).map(toAutocannon)
    )
    const first = perConnection[0]
    if (first === undefined || first.length === 0) return reject(new Error("no requests to send"))
    histogram.fill(0)
    let responses = 0
    let bytes = 0
    let max = 0
    let connection = 0
    let started = process.hrtime.bigint()
    let cpuAtStart = process.cpuUsage()
    const instance = autocannon(
      {
        url: job.url,
        connections: job.connections,
        duration: job.seconds,
        timeout: 10,
        requests: first.slice(0, 1),
        setupClient: (client) => {
          const requests = perConnection[connection++ % perConnection.length]
          if (requests !== undefined) client.setRequests(requests)
        }
      },
      (error: unknown, result) => {
        const seconds = Number(process.hrtime.bigint() - started) / 1e9
        const cpu = process.cpuUsage(cpuAtStart)
        if (error !== null && error !== undefined)
          return reject(error instanceof Error ? error : new Error(String(error)))
        const statuses: Record<string, number> = {}
        for (const [code, stat] of Object.entries(result.statusCodeStats ?? {})) statuses[code] = stat.count ?? 0
        resolve({
          type: "result",
          id: job.id,
          responses,
          seconds,
          non2xx: result.non2xx,
          errors: result.errors,
          timeouts: result.timeouts,
          statuses,
          p50: percentile(responses, 0.5),
          p99: percentile(responses, 0.99),
          max,
          bytesPerResponse: responses === 0 ? 0 : Math.round(bytes / responses),
          cpuFraction: (cpu.user + cpu.system) / 1e6 / seconds
        })
      }
    )
    instance.on("start", () => {
      started = process.hrtime.bigint()
      cpuAtStart = process.cpuUsage()
      send({ type: "started", id: job.id })
    })
    instance.on("response", (_client, _status, resBytes, responseTime) => {
      responses++
      bytes += resBytes
      if (responseTime > max) max = responseTime
      const bucket = Math.min(histogram.length - 1, Math.floor((responseTime * 1000) / bucketMicros))
      histogram[bucket] = (histogram[bucket] ?? 0) + 1
    })
  })

// Jobs run one at a time, in the order they arrive.
let queue: Promise<void> = Promise.resolve()

process.on("message", (raw: unknown) => {
  const decoded = decodeMessage(raw)
  if (decoded._tag === "Left" || decoded.right.type !== "run") return
  const job = decoded.right
  queue = queue.then(() =>
    run(job).then(send, (error: unknown) =>
      send({ type: "failed", id: job.id, message: error instanceof Error ? error.message : String(error) })
    )
  )
})

// The runner is gone (finished, crashed or killed): so are we.
process.on("disconnect", () => process.exit(0))

send({ type: "loadgen-ready" })
