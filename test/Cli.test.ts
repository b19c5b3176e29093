/**
 * The command line: flags and their environment variables, precedence,
 * errors before listening, and `token create` feeding a registration.
 */
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { NodeContext } from "@effect/platform-node"
import { Cause, Effect, Exit, Option } from "effect"
import { describe, expect, it } from "vitest"
import { run } from "../src/Cli.js"
import { parseObject } from "./support/json.js"
import { bash, freePort } from "./support/process.js"

interface Outcome {
  readonly exit: Exit.Exit<void, unknown>
  readonly lines: ReadonlyArray<string>
  /** What the server answered on discovery while it ran. */
  readonly discovery: Record<string, unknown> | undefined
}

/** Runs `effect-dcr <args>` in-process; a started server is asked for its discovery document, then closed. */
const cli = async (args: ReadonlyArray<string>, env: Record<string, string> = {}): Promise<Outcome> => {
  const lines: Array<string> = []
  let discovery: Record<string, unknown> | undefined
  const program = run({
    env: { DATABASE_URL: "memory:", ...env },
    print: (line) => lines.push(line),
    onListening: async (server) => {
      const response = await fetch(`${server.url}/.well-known/oauth-authorization-server`)
      discovery = parseObject(await response.text())
      await server.close()
    }
  })(["node", "effect-dcr", ...args])
  const exit = await Effect.runPromiseExit(Effect.provide(program, NodeContext.layer))
  return { exit, lines, discovery }
}

const failureMessage = (exit: Exit.Exit<void, unknown>): string => {
  if (Exit.isSuccess(exit)) return ""
  const failure = Cause.failureOption(exit.cause)
  return Option.isSome(failure) && failure.value instanceof Error ? failure.value.message : Cause.pretty(exit.cause)
}

describe("effect-dcr serve", () => {
  it("serves with flags, and prints where it listens", async () => {
    const port = await freePort()
    const outcome = await cli([
      "serve",
      "--port",
      String(port),
      "--public-url",
      "https://auth.example.com",
      "--scopes",
      "openid email"
    ])
    expect(Exit.isSuccess(outcome.exit)).toBe(true)
    expect(outcome.lines).toStrictEqual([
      `effect-dcr listening on http://127.0.0.1:${port}`,
      "registration endpoint: https://auth.example.com/register"
    ])
    expect(outcome.discovery?.scopes_supported).toStrictEqual(["openid", "email"])
  })

  it("reads the environment when no flag is given", async () => {
    const port = await freePort()
    const outcome = await cli(["serve"], {
      PORT: String(port),
      PUBLIC_URL: "https://env.example.com",
      SCOPES: "profile"
    })
    expect(outcome.lines[1]).toBe("registration endpoint: https://env.example.com/register")
    expect(outcome.discovery?.scopes_supported).toStrictEqual(["profile"])
  })

  it("a flag wins over its environment variable", async () => {
    const port = await freePort()
    const outcome = await cli(["serve", "--public-url", "https://flag.example.com", "--port", String(port)], {
      PORT: "1",
      PUBLIC_URL: "https://env.example.com"
    })
    expect(Exit.isSuccess(outcome.exit)).toBe(true)
    expect(outcome.lines).toStrictEqual([
      `effect-dcr listening on http://127.0.0.1:${port}`,
      "registration endpoint: https://flag.example.com/register"
    ])
  })

  it("names the flag, or the variable, in a configuration error and never listens", async () => {
    const byFlag = await cli(["serve", "--registration-mode", "closed"])
    expect(failureMessage(byFlag.exit)).toBe('--registration-mode must be open, static or issued, got "closed"')
    expect(byFlag.lines).toStrictEqual([])
    const byEnv = await cli(["serve"], { REGISTRATION_MODE: "closed" })
    expect(failureMessage(byEnv.exit)).toBe('REGISTRATION_MODE must be open, static or issued, got "closed"')
    const badUrl = await cli(["serve", "--database-url", "mysql://db"])
    expect(failureMessage(badUrl.exit)).toContain("--database-url must start with file:")
    const unreadable = await cli(["serve", "--rat-format", "jwt", "--rat-signing-key", "@/nonexistent/key.json"])
    expect(failureMessage(unreadable.exit)).toBe("--rat-signing-key: cannot read /nonexistent/key.json")
  })

  it("refuses an unknown flag with a non-zero exit", async () => {
    const result = await bash("node --import tsx src/bin.ts serve --no-such-flag 1")
    expect(result.code).toBe(1)
    expect(result.stdout + result.stderr).toContain("--no-such-flag")
    expect(result.stdout).not.toContain("listening")
  })

  it("--help documents every flag with its environment variable", async () => {
    const result = await bash("node --import tsx src/bin.ts serve --help")
    expect(result.code).toBe(0)
    for (const [flag, variable] of [
      ["--port", "PORT"],
      ["--host", "HOST"],
      ["--public-url", "PUBLIC_URL"],
      ["--database-url", "DATABASE_URL"],
      ["--sqlite-synchronous", "SQLITE_SYNCHRONOUS"],
      ["--registration-mode", "REGISTRATION_MODE"],
      ["--initial-access-token", "INITIAL_ACCESS_TOKEN"],
      ["--rat-rotation", "RAT_ROTATION"],
      ["--delete-enabled", "DELETE_ENABLED"],
      ["--secret-lifetime", "SECRET_LIFETIME"],
      ["--max-body-bytes", "MAX_BODY_BYTES"],
      ["--cors-origins", "CORS_ORIGINS"],
      ["--log-format", "LOG_FORMAT"],
      ["--log-level", "LOG_LEVEL"]
    ] as const) {
      expect(result.stdout).toContain(flag)
      expect(result.stdout).toContain(`[env ${variable}]`)
    }
  })
})

describe("effect-dcr token create", () => {
  it("D22 prints a token that a server in issued mode on the same database accepts", async () => {
    const database = `file:${join(mkdtempSync(join(tmpdir(), "effect-dcr-cli-")), "dcr.sqlite")}`
    const minted = await cli(["token", "create", "--database-url", database, "--max-uses", "1"])
    expect(Exit.isSuccess(minted.exit)).toBe(true)
    const token = (minted.lines[0] ?? "").split("\n")[0] ?? ""
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/)
    const port = await freePort()
    const lines: Array<string> = []
    const statuses: Array<number> = []
    const program = run({
      env: { DATABASE_URL: database, REGISTRATION_MODE: "issued", PORT: String(port) },
      print: (line) => lines.push(line),
      onListening: async (server) => {
        for (let i = 0; i < 2; i++) {
          const response = await fetch(`${server.url}/register`, {
            method: "POST",
            headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
            body: JSON.stringify({ grant_types: ["client_credentials"] })
          })
          statuses.push(response.status)
        }
        await server.close()
      }
    })(["node", "effect-dcr", "serve"])
    await Effect.runPromise(Effect.provide(program, NodeContext.layer))
    expect(statuses).toStrictEqual([201, 401])
  })
})
