/**
 * Child processes of the runner: spawned with `node --import tsx`, pinned to
 * a core with `taskset` when it exists, talked to over IPC, and always
 * killed — when stopped, when the runner fails, and on SIGINT/SIGTERM.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { readFileSync } from "node:fs"

export const root = new URL("../../", import.meta.url).pathname

const hasCommand = (command: string): boolean => {
  try {
    execFileSync("sh", ["-c", `command -v ${command}`], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
}

/** Whether children are pinned to cores: `taskset` exists and the machine has two cores or more. */
export const tasksetAvailable: boolean = hasCommand("taskset")

export interface Child {
  readonly name: string
  readonly pid: number
  readonly send: (message: object) => void
  /** The first message (already received or still to come) `guard` accepts; rejects on exit or timeout. */
  readonly waitFor: <A>(guard: (message: unknown) => message is A, timeoutMs: number, what: string) => Promise<A>
  /** The last few kilobytes of its output, for error messages. */
  readonly output: () => string
  readonly exited: () => boolean
  readonly stop: () => Promise<void>
}

const live = new Set<ChildProcess>()

const killAll = (signal: NodeJS.Signals) => {
  for (const child of live) child.kill(signal)
}

let handlersInstalled = false
const installHandlers = () => {
  if (handlersInstalled) return
  handlersInstalled = true
  // Whatever happens to the runner, no child outlives it.
  process.on("exit", () => killAll("SIGKILL"))
  const signals: ReadonlyArray<NodeJS.Signals> = ["SIGINT", "SIGTERM"]
  for (const signal of signals) {
    process.on(signal, () => {
      process.stderr.write(`\n${signal}: stopping ${live.size} child process(es)\n`)
      killAll("SIGKILL")
      process.exit(130)
    })
  }
}

/** Spawns `node --import tsx script`, pinned to `core` when `taskset` exists. */
export const spawnNode = (
  name: string,
  script: string,
  options: {
    readonly core: number | undefined
    readonly env?: Readonly<Record<string, string>>
    readonly nodeArgs?: ReadonlyArray<string>
  }
): Child => {
  installHandlers()
  const nodeArgs = [...(options.nodeArgs ?? []), "--import", "tsx", script]
  const pinned = options.core !== undefined && tasksetAvailable
  const command = pinned ? "taskset" : process.execPath
  const args = pinned ? ["-c", String(options.core), process.execPath, ...nodeArgs] : nodeArgs
  const child = spawn(command, args, {
    cwd: root,
    env: { ...process.env, ...options.env },
    stdio: ["ignore", "pipe", "pipe", "ipc"]
  })
  if (child.pid === undefined) throw new Error(`${name}: could not start ${command}`)
  live.add(child)
  let output = ""
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString("utf8")).slice(-8_192)
  }
  child.stdout?.on("data", keep)
  child.stderr?.on("data", keep)

  const inbox: Array<unknown> = []
  const waiters = new Set<(message: unknown) => boolean>()
  child.on("message", (message: unknown) => {
    for (const waiter of waiters) if (waiter(message)) return
    inbox.push(message)
  })
  let exitListeners: Array<() => void> = []
  child.once("exit", () => {
    live.delete(child)
    for (const listener of exitListeners) listener()
    exitListeners = []
  })
  const exited = () => child.exitCode !== null || child.signalCode !== null

  const waitFor = <A>(guard: (message: unknown) => message is A, timeoutMs: number, what: string): Promise<A> =>
    new Promise((resolve, reject) => {
      const index = inbox.findIndex(guard)
      if (index !== -1) {
        const [message] = inbox.splice(index, 1)
        if (guard(message)) return resolve(message)
      }
      const done = () => {
        clearTimeout(timer)
        waiters.delete(waiter)
        exitListeners = exitListeners.filter((listener) => listener !== onExit)
      }
      const waiter = (message: unknown): boolean => {
        if (!guard(message)) return false
        done()
        resolve(message)
        return true
      }
      const onExit = () => {
        done()
        reject(new Error(`${name} exited while waiting for ${what}:\n${output}`))
      }
      const timer = setTimeout(() => {
        done()
        reject(new Error(`${name}: no ${what} after ${timeoutMs} ms:\n${output}`))
      }, timeoutMs)
      if (exited()) return onExit()
      waiters.add(waiter)
      exitListeners.push(onExit)
    })

  const stop = () =>
    new Promise<void>((resolve) => {
      if (exited()) return resolve()
      const kill = setTimeout(() => child.kill("SIGKILL"), 3_000)
      child.once("exit", () => {
        clearTimeout(kill)
        resolve()
      })
      child.kill("SIGTERM")
    })

  return {
    name,
    pid: child.pid,
    send: (message) => {
      if (child.connected) child.send(message)
    },
    waitFor,
    output: () => output,
    exited,
    stop
  }
}

// --- resource usage from /proc ----------------------------------------------

const getconf = (name: string, fallback: number): number => {
  try {
    const value = Number(execFileSync("getconf", [name], { encoding: "utf8" }).trim())
    return Number.isFinite(value) && value > 0 ? value : fallback
  } catch {
    return fallback
  }
}

const clockTicks = getconf("CLK_TCK", 100)
const pageSize = getconf("PAGESIZE", 4096)

/** CPU time (user + system, every thread) of a process in µs, from /proc; undefined where there is no /proc. */
export const procCpuMicros = (pid: number): number | undefined => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    // Fields after the command name, which may hold spaces: state is the first, utime the 12th, stime the 13th.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    const ticks = Number(fields[11]) + Number(fields[12])
    return Number.isFinite(ticks) ? (ticks * 1e6) / clockTicks : undefined
  } catch {
    return undefined
  }
}

/** Resident set size of a process in bytes, from /proc; undefined where there is no /proc. */
export const procRss = (pid: number): number | undefined => {
  try {
    const resident = Number(readFileSync(`/proc/${pid}/statm`, "utf8").split(" ")[1])
    return Number.isFinite(resident) ? resident * pageSize : undefined
  } catch {
    return undefined
  }
}

/**
 * CPU time (µs) every core of the machine spent busy (user, nice, system,
 * irq, softirq, steal), from /proc/stat; undefined where there is none. Less
 * the target's and the load generator's own, it shows how much else ran.
 */
export const machineBusyMicros = (): number | undefined => {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0] ?? ""
    const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number)
    const ticks = [user, nice, system, irq, softirq, steal].reduce<number>((sum, value) => sum + (value ?? 0), 0)
    return Number.isFinite(ticks) ? (ticks * 1e6) / clockTicks : undefined
  } catch {
    return undefined
  }
}
