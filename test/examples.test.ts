/**
 * The examples run as a user runs them: `examples/effect-server.ts` started
 * as a process, then driven over HTTP.
 */
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { ManagedRuntime } from "effect"
import * as Jose from "jose"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { makeLive } from "../examples/configured-layer.js"
import * as Protocol from "../src/Protocol.js"
import { parseObject } from "./support/json.js"
import { freePort, start, type Started } from "./support/process.js"

describe("examples/effect-server.ts", () => {
  let server: Started
  let base: string

  beforeAll(async () => {
    const port = await freePort()
    base = `http://127.0.0.1:${port}/oauth`
    server = await start(
      "node",
      ["--import", "tsx", "examples/effect-server.ts"],
      { PORT: String(port) },
      /Listening on/
    )
  })
  afterAll(() => server.stop())

  const register = async (metadata: Record<string, unknown>) => {
    const response = await fetch(`${base}/register`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(metadata)
    })
    expect(response.status).toBe(201)
    return parseObject(await response.text())
  }

  const call = (method: string, uri: unknown, token: unknown, body?: unknown) =>
    fetch(String(uri), {
      method,
      headers: { authorization: `Bearer ${String(token)}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) })
    })

  it("mounts the router under /oauth and issues dcr_-prefixed tokens (custom TokenAuthenticator)", async () => {
    const client = await register({ redirect_uris: ["https://app.example/cb"] })
    expect(client.registration_client_uri).toBe(`${base}/register/${String(client.client_id)}`)
    expect(String(client.registration_access_token)).toMatch(/^dcr_[A-Za-z0-9_-]{43}$/)
    const read = await call("GET", client.registration_client_uri, client.registration_access_token)
    expect(read.status).toBe(200)
    // The token handed back on read is the prefixed one the client holds.
    expect(parseObject(await read.text()).registration_access_token).toBe(client.registration_access_token)
    // Without its prefix the same token is refused before the store is asked.
    const bare = String(client.registration_access_token).slice(4)
    const refused = await call("GET", client.registration_client_uri, bare)
    expect(refused.status).toBe(401)
    expect(refused.headers.get("www-authenticate")).toContain('error="invalid_token"')
  })

  it("kiosk clients may read but not update or delete (custom PermissionPolicy, D3)", async () => {
    const kiosk = await register({ redirect_uris: ["https://kiosk.example/cb"], software_id: "com.example.kiosk" })
    const token = kiosk.registration_access_token
    expect((await call("GET", kiosk.registration_client_uri, token)).status).toBe(200)
    const update = await call("PUT", kiosk.registration_client_uri, token, {
      client_id: kiosk.client_id,
      redirect_uris: ["https://kiosk.example/cb"]
    })
    expect(update.status).toBe(403)
    expect(update.headers.get("www-authenticate")).toContain('error="insufficient_scope"')
    expect((await call("DELETE", kiosk.registration_client_uri, token)).status).toBe(403)
    // Other clients keep every right.
    const other = await register({ redirect_uris: ["https://app.example/cb"] })
    expect((await call("DELETE", other.registration_client_uri, other.registration_access_token)).status).toBe(204)
  })
})

describe("examples/configured-layer.ts", () => {
  it("builds, gates registration with the static token and issues JWT registration access tokens", async () => {
    const { privateKey } = await Jose.generateKeyPair("ES256", { extractable: true })
    const ratSigningKey = { ...(await Jose.exportJWK(privateKey)), alg: "ES256", kid: "rat-1" }
    const databaseFile = join(mkdtempSync(join(tmpdir(), "effect-dcr-example-")), "dcr.sqlite")
    const runtime = ManagedRuntime.make(makeLive({ ratSigningKey, databaseFile }))
    try {
      const post = (authorization: ReadonlyArray<string>) =>
        runtime.runPromise(
          Protocol.handle({
            method: "POST",
            url: "/register",
            authorization,
            contentType: "application/json",
            body: new TextEncoder().encode(JSON.stringify({ grant_types: ["client_credentials"] }))
          })
        )
      expect((await post([])).status).toBe(401)
      const created = await post(["Bearer change-me"])
      expect(created.status).toBe(201)
      const body = parseObject(created.body ?? "")
      const rat = String(body.registration_access_token)
      const claims = Jose.decodeJwt(rat)
      expect(claims.sub).toBe(body.client_id)
      expect(claims.aud).toBe("https://as.example.com/oauth/register")
      expect(body.client_secret_expires_at).toBe(Number(body.client_id_issued_at) + 90 * 86400)
    } finally {
      await runtime.dispose()
    }
  })
})
