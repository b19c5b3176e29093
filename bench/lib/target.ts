/**
 * What every target process shares: its settings from the environment, the
 * ready message, answering the runner's usage requests, and stopping when
 * the runner goes away or asks it to.
 */
import type { Server } from "node:http"
import { Schema } from "effect"
import { UsageRequest } from "./messages.js"

/** A required environment variable. */
export const env = (name: string): string => {
  const value = process.env[name]
  if (value === undefined || value === "") throw new Error(`${name} is not set`)
  return value
}

export const envNumber = (name: string): number => {
  const value = Number(env(name))
  if (!Number.isFinite(value)) throw new Error(`${name} is not a number`)
  return value
}

/** Listens on 127.0.0.1 only. */
export const listen = (server: Server, port: number): Promise<void> =>
  new Promise((resolve, reject) => {
    server.once("error", reject)
    server.listen(port, "127.0.0.1", () => {
      server.off("error", reject)
      resolve()
    })
  })

const isUsageRequest = Schema.is(UsageRequest)

/**
 * Tells the runner the target listens, answers its usage requests, and runs
 * `stop` before exiting when the runner disconnects or sends SIGTERM/SIGINT.
 */
export const ready = (port: number, stop: () => Promise<void>): void => {
  let stopping = false
  const exit = () => {
    if (stopping) return
    stopping = true
    // A stop that hangs must not keep the process alive.
    setTimeout(() => process.exit(0), 2_000).unref()
    stop().then(
      () => process.exit(0),
      () => process.exit(1)
    )
  }
  process.on("disconnect", exit)
  process.on("SIGTERM", exit)
  process.on("SIGINT", exit)
  process.on("message", (message: unknown) => {
    if (!isUsageRequest(message) || process.send === undefined) return
    const cpu = process.cpuUsage()
    process.send({ type: "usage", cpuMicros: cpu.user + cpu.system, rss: process.memoryUsage.rss() })
  })
  if (process.send !== undefined) process.send({ type: "ready", port })
  else console.log(`listening on http://127.0.0.1:${port}`)
}

/** Runs a target's main, printing the failure and exiting non-zero when it fails. */
export const main = (program: () => Promise<void>): void => {
  program().catch((error: unknown) => {
    console.error(error)
    process.exit(1)
  })
}

/** Closes a `node:http` server, its keep-alive connections too. */
export const closeServer = (server: Server): Promise<void> =>
  new Promise((resolve) => {
    server.close(() => resolve())
    server.closeAllConnections()
  })
