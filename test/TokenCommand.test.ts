/**
 * `effect-dcr token create` as an operator uses it: mint into the server's
 * SQLite file, then register with the token against a server started on that
 * file in issued mode (D22).
 */
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { ConfigError } from "../src/Environment.js"
import { parseCreateArgs } from "../src/TokenCommand.js"
import { parseObject } from "./support/json.js"
import { bash, freePort, start, type Started } from "./support/process.js"

describe("token create", () => {
  const database = join(mkdtempSync(join(tmpdir(), "effect-dcr-token-")), "dcr.sqlite")
  let server: Started | undefined
  afterAll(() => server?.stop())

  it("D22 a minted token registers exactly max-uses clients, with its policy", async () => {
    const minted = await bash(
      `DATABASE_URL=file:${database} node --import tsx src/bin.ts token create --max-uses 2 --expires-in 600 --policy '{"scopes":["openid"],"fixed":{"software_id":"com.example.cli"}}'`
    )
    expect(minted.stderr).toBe("")
    expect(minted.code).toBe(0)
    const [token, expires, uses, policy] = minted.stdout.trim().split("\n")
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(expires).toMatch(/^expires: \d{4}-\d\d-\d\dT/)
    expect(uses).toBe("uses: 2")
    expect(policy).toBe('policy: {"scopes":["openid"],"fixed":{"software_id":"com.example.cli"}}')

    const port = await freePort()
    server = await start(
      "node",
      ["--import", "tsx", "src/bin.ts", "serve"],
      { PORT: String(port), DATABASE_URL: `file:${database}`, REGISTRATION_MODE: "issued" },
      /registration endpoint: .*\n/
    )
    const register = (body: Record<string, unknown>, bearer: string | undefined) =>
      fetch(`http://127.0.0.1:${port}/register`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          ...(bearer === undefined ? {} : { authorization: `Bearer ${bearer}` })
        },
        body: JSON.stringify(body)
      })
    const client = { grant_types: ["client_credentials"], scope: "openid", software_id: "mine" }
    expect((await register(client, undefined)).status).toBe(401)
    expect((await register({ ...client, scope: "openid profile" }, token)).status).toBe(400)
    const first = await register(client, token)
    expect(first.status).toBe(201)
    expect(parseObject(await first.text()).software_id).toBe("com.example.cli")
    expect((await register(client, token)).status).toBe(201)
    const third = await register(client, token)
    expect(third.status).toBe(401)
    expect(third.headers.get("www-authenticate")).toContain('error="invalid_token"')
  })

  it("refuses bad options with one line naming them", async () => {
    expect(() => parseCreateArgs(["--max-uses", "0"])).toThrow(ConfigError)
    expect(() => parseCreateArgs(["--expires-in", "soon"])).toThrow("--expires-in")
    expect(() => parseCreateArgs(["--policy", '{"scopes":"openid"}'])).toThrow("--policy")
    expect(() => parseCreateArgs(["--colour", "red"])).toThrow("unknown option --colour")
    expect(parseCreateArgs(["--max-uses", "unlimited", "--expires-in", "0"])).toStrictEqual({
      expiresInSeconds: 0,
      maxUses: undefined,
      policy: undefined
    })
    const memory = await bash("DATABASE_URL=memory: node --import tsx src/bin.ts token create")
    expect(memory.code).toBe(1)
    expect(memory.stderr.trim()).toBe("effect-dcr: token create needs a database the server shares: set DATABASE_URL")
  })
})
