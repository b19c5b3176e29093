/**
 * examples/embedding.ts runs: each replaced hook does its job inside the
 * protocol. And docs/embedding.md quotes that file verbatim.
 */
import { readFileSync } from "node:fs"
import { ManagedRuntime } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import { host, HostLive } from "../examples/embedding.js"
import * as Protocol from "../src/Protocol.js"
import { parseObject } from "./support/json.js"
import { root } from "./support/process.js"

const runtime = ManagedRuntime.make(HostLive)
afterAll(() => runtime.dispose())

const call = (method: string, url: string, token?: string, body?: unknown) =>
  runtime.runPromise(
    Protocol.handle({
      method,
      url,
      authorization: token === undefined ? [] : [`Bearer ${token}`],
      contentType: "application/json",
      body: body === undefined ? undefined : new TextEncoder().encode(JSON.stringify(body))
    })
  )

const registerClient = async (metadata: Record<string, unknown>) => {
  const created = await call("POST", "/register", undefined, metadata)
  expect(created.status).toBe(201)
  const body = parseObject(created.body ?? "")
  return { id: String(body.client_id), token: String(body.registration_access_token), body }
}

describe("examples/embedding.ts", () => {
  it("runs every replaced hook: audit, suspension, first-party policy, revocation on delete", async () => {
    const client = await registerClient({ grant_types: ["client_credentials"], scope: "payments:read" })
    host.accessTokens.set(client.id, new Set(["at-1"]))
    expect(host.audit).toContain(`registered ${client.id}`)

    const read = await call("GET", `/register/${client.id}`, client.token)
    expect(read.status).toBe(200)
    expect(host.audit).toContain(`token used for ${client.id}`)
    expect(host.storeReads).toBeGreaterThan(0)

    const updated = await call("PUT", `/register/${client.id}`, client.token, {
      client_id: client.id,
      grant_types: ["client_credentials"],
      client_secret: client.body.client_secret
    })
    expect(updated.status).toBe(200)
    expect(host.audit).toContain(`updated ${client.id} v1→v2`)
    const rotated = String(parseObject(updated.body ?? "").registration_access_token)

    host.suspended.add(client.id)
    expect((await call("GET", `/register/${client.id}`, rotated)).status).toBe(401)
    host.suspended.delete(client.id)

    expect((await call("DELETE", `/register/${client.id}`, rotated)).status).toBe(204)
    expect(host.accessTokens.has(client.id)).toBe(false)
    expect(host.audit).toContain(`deleted ${client.id}; its access tokens revoked`)

    const firstParty = await registerClient({
      grant_types: ["client_credentials"],
      software_id: "com.example.first-party"
    })
    const refused = await call("DELETE", `/register/${firstParty.id}`, firstParty.token)
    expect(refused.status).toBe(403)
    expect(refused.headers["www-authenticate"]).toContain('error="insufficient_scope"')

    const discovery = await call("GET", "/.well-known/oauth-authorization-server/oauth")
    expect(parseObject(discovery.body ?? "").token_endpoint).toBe("https://as.example.com/oauth/token")
  })

  it("docs/embedding.md quotes the example verbatim", () => {
    const guide = readFileSync(`${root}docs/embedding.md`, "utf8")
    const source = readFileSync(`${root}examples/embedding.ts`, "utf8")
    const blocks = [...guide.matchAll(/```ts\n([\s\S]*?)\n```/g)].map((match) => match[1] ?? "")
    expect(blocks.length).toBeGreaterThanOrEqual(6)
    for (const block of blocks) expect(source).toContain(block)
  })
})
