/**
 * Starts a server as a child process, as a user would, and waits until it
 * says where it listens.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { createServer } from "node:net"

export const root = new URL("../../", import.meta.url).pathname

/** A TCP port that was free a moment ago. */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() => {
        if (address === null || typeof address === "string") reject(new Error("no port"))
        else resolve(address.port)
      })
    })
  })

export interface Started {
  readonly child: ChildProcess
  /** Everything the process printed so far. */
  readonly output: () => string
  readonly stop: () => Promise<void>
}

/** Spawns `command args` in the project root and resolves when `ready` matches its output. */
export const start = (
  command: string,
  args: ReadonlyArray<string>,
  env: Record<string, string>,
  ready: RegExp,
  timeoutMs = 20_000
): Promise<Started> =>
  new Promise((resolve, reject) => {
    const child = spawn(command, [...args], { cwd: root, env: { ...process.env, ...env }, stdio: "pipe" })
    let output = ""
    const stop = () =>
      new Promise<void>((done) => {
        if (child.exitCode !== null || child.signalCode !== null) return done()
        child.once("exit", () => done())
        child.kill("SIGTERM")
      })
    const timer = setTimeout(() => {
      void stop()
      reject(new Error(`${command} did not become ready:\n${output}`))
    }, timeoutMs)
    const onData = (chunk: Buffer) => {
      output += chunk.toString("utf8")
      if (ready.test(output)) {
        clearTimeout(timer)
        resolve({ child, output: () => output, stop })
      }
    }
    child.stdout.on("data", onData)
    child.stderr.on("data", onData)
    child.once("exit", (code) => {
      clearTimeout(timer)
      reject(new Error(`${command} exited with ${code}:\n${output}`))
    })
  })

/** Runs a bash script and resolves with its standard output. */
export const bash = (
  script: string
): Promise<{ readonly code: number | null; readonly stdout: string; readonly stderr: string }> =>
  new Promise((resolve) => {
    const child = spawn("bash", ["-c", script], { cwd: root, stdio: "pipe" })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")))
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")))
    child.once("exit", (code) => resolve({ code, stdout, stderr }))
  })
