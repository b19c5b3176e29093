/**
 * The standalone server as a user meets it: `npm start`'s program started as
 * a process, and the README's curl walk-through run against it as written
 * (only the port differs, so tests never fight over port 3000).
 */
import { existsSync, mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { parseObject } from "./support/json.js"
import { bash, freePort, root, start, type Started } from "./support/process.js"

const readme = readFileSync(`${root}README.md`, "utf8")

/** The fenced block that follows a heading in the README. */
const blockAfter = (heading: string, fence: string): string => {
  const from = readme.indexOf(heading)
  if (from === -1) throw new Error(`README has no ${heading}`)
  const open = readme.indexOf("```" + fence + "\n", from)
  const close = readme.indexOf("\n```", open + 1)
  return readme.slice(open + fence.length + 4, close)
}

const databaseFile = join(mkdtempSync(join(tmpdir(), "effect-dcr-server-")), "data", "effect-dcr.sqlite")

describe("npm start", () => {
  let server: Started
  let url: string

  beforeAll(async () => {
    const port = await freePort()
    url = `http://127.0.0.1:${port}`
    server = await start(
      "node",
      ["--import", "tsx", "src/bin.ts", "serve"],
      { PORT: String(port), DATABASE_URL: `file:${databaseFile}` },
      /registration endpoint: .*\n/
    )
  })
  afterAll(() => server.stop())

  it("prints where it listens and its registration endpoint", () => {
    expect(server.output()).toContain(`effect-dcr listening on ${url}`)
    expect(server.output()).toContain(`registration endpoint: ${url}/register`)
  })

  it("the README walk-through works as written (R7592-1.3-a: register, read, update, delete, then 401)", async () => {
    const script = blockAfter("## Walk-through with curl", "sh").replaceAll("http://127.0.0.1:3000", url)
    const { code, stdout, stderr } = await bash(script)
    expect(stderr).toBe("")
    expect(code).toBe(0)
    const lines = stdout.split("\n")
    const registered = parseObject(lines[0] ?? "")
    const read = parseObject(lines[1] ?? "")
    const updated = parseObject(lines[2] ?? "")
    expect(registered.client_name).toBe("My App")
    expect(registered.registration_client_uri).toBe(`${url}/register/${registered.client_id}`)
    expect(read).toEqual(registered)
    expect(updated.client_name).toBe("My App, renamed")
    expect(updated.scope).toBeUndefined()
    expect(updated.registration_access_token).not.toBe(registered.registration_access_token)
    expect(lines[3]).toBe("204")
    // The answer the README shows, header by header and the body.
    const expected = blockAfter("The last answer is", "http").replaceAll("http://127.0.0.1:3000", url)
    for (const line of expected.split("\n").filter((line) => line !== "")) {
      expect(stdout.replaceAll("\r", "")).toContain(line)
    }
  })

  it("keeps clients in the SQLite file it creates, across a restart", async () => {
    expect(existsSync(databaseFile)).toBe(true)
    const registered = await fetch(`${url}/register`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ redirect_uris: ["https://app.example/cb"], client_name: "Survivor" })
    })
    expect(registered.status).toBe(201)
    const client = parseObject(await registered.text())
    await server.stop()
    server = await start(
      "node",
      ["--import", "tsx", "src/bin.ts", "serve"],
      { PORT: new URL(url).port, DATABASE_URL: `file:${databaseFile}` },
      /registration endpoint: .*\n/
    )
    const read = await fetch(String(client.registration_client_uri), {
      headers: { authorization: `Bearer ${String(client.registration_access_token)}` }
    })
    expect(read.status).toBe(200)
    const body = parseObject(await read.text())
    expect(body.client_name).toBe("Survivor")
    expect(body.client_secret).toBe(client.client_secret)
  })

  it("refuses a bad PORT before listening", async () => {
    const { code, stderr } = await bash("PORT=notaport node --import tsx src/bin.ts serve")
    expect(code).toBe(1)
    expect(stderr).toContain("PORT must be a whole number up to 65535")
  })
})
