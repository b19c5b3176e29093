/**
 * Operations: CORS, GET /healthz, graceful shutdown, and logs that never
 * carry a secret.
 */
import { request as httpRequest } from "node:http"
import { connect } from "node:net"
import { Effect, Layer } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import * as ClientStore from "../src/ClientStore.js"
import { StoreError } from "../src/ProtocolError.js"
import { serversDisposedAfterEach, webClient, register } from "./support/http.js"
import { parseObject } from "./support/json.js"
import { bash, freePort, start, type Started } from "./support/process.js"

const serve = serversDisposedAfterEach()
const app = "https://app.example.com"

describe("CORS", () => {
  it("is off unless origins are configured: no CORS headers, OPTIONS is 405", async () => {
    const server = serve()
    const created = await server.request("POST", "/register", { json: webClient, headers: { origin: app } })
    expect(created.status).toBe(201)
    expect(created.headers.get("access-control-allow-origin")).toBeNull()
    const preflight = await server.request("OPTIONS", "/register", {
      headers: { origin: app, "access-control-request-method": "POST" }
    })
    expect(preflight.status).toBe(405)
    expect(preflight.headers.get("access-control-allow-origin")).toBeNull()
  })

  it("answers the preflight of an allowed origin with the endpoint's methods and Authorization allowed", async () => {
    const server = serve({ server: { corsOrigins: [app] } })
    const { clientId } = await register(server)
    const registration = await server.request("OPTIONS", "/register", {
      headers: { origin: app, "access-control-request-method": "POST" }
    })
    expect(registration.status).toBe(204)
    expect(registration.headers.get("access-control-allow-origin")).toBe(app)
    expect(registration.headers.get("access-control-allow-methods")).toBe("POST")
    expect(registration.headers.get("access-control-allow-headers")).toBe("Authorization, Content-Type")
    expect(registration.headers.get("vary")).toBe("Origin")
    const configuration = await server.request("OPTIONS", `/register/${clientId}`, {
      headers: {
        origin: app,
        "access-control-request-method": "PUT",
        "access-control-request-headers": "authorization"
      }
    })
    expect(configuration.status).toBe(204)
    expect(configuration.headers.get("access-control-allow-methods")).toBe("GET, PUT, DELETE")
  })

  it("labels actual responses, errors included, and exposes WWW-Authenticate", async () => {
    const server = serve({ server: { corsOrigins: [app] } })
    const { clientId, token } = await register(server)
    const read = await server.request("GET", `/register/${clientId}`, { token, headers: { origin: app } })
    expect(read.status).toBe(200)
    expect(read.headers.get("access-control-allow-origin")).toBe(app)
    const refused = await server.request("GET", `/register/${clientId}`, { token: "wrong", headers: { origin: app } })
    expect(refused.status).toBe(401)
    expect(refused.headers.get("access-control-allow-origin")).toBe(app)
    expect(refused.headers.get("access-control-expose-headers")).toContain("WWW-Authenticate")
  })

  it("ignores origins that are not allowed", async () => {
    const server = serve({ server: { corsOrigins: [app] } })
    const other = "https://evil.example"
    const created = await server.request("POST", "/register", { json: webClient, headers: { origin: other } })
    expect(created.status).toBe(201)
    expect(created.headers.get("access-control-allow-origin")).toBeNull()
    const preflight = await server.request("OPTIONS", "/register", {
      headers: { origin: other, "access-control-request-method": "POST" }
    })
    expect(preflight.status).toBe(405)
  })

  it('"*" allows any origin', async () => {
    const server = serve({ server: { corsOrigins: "*" } })
    const created = await server.request("POST", "/register", { json: webClient, headers: { origin: app } })
    expect(created.headers.get("access-control-allow-origin")).toBe("*")
  })
})

describe("GET /healthz", () => {
  it("is 200 when the store answers", async () => {
    const server = serve()
    const response = await server.request("GET", "/healthz")
    expect(response.status).toBe(200)
    expect(response.json).toStrictEqual({ status: "ok" })
    expect(response.headers.get("cache-control")).toBe("no-store")
  })

  it("is 503 when the store does not, with no detail", async () => {
    const failing = Layer.sync(ClientStore.ClientStore, () => ({
      ...ClientStore.makeMemory(),
      ping: Effect.fail(new StoreError({ operation: "ping", cause: new Error("connection refused to db:5432") }))
    }))
    const server = serve({ store: failing })
    const response = await server.request("GET", "/healthz")
    expect(response.status).toBe(503)
    expect(response.text).toBe('{"status":"unavailable"}')
  })

  it("answers only GET", async () => {
    const response = await serve().request("POST", "/healthz")
    expect(response.status).toBe(405)
    expect(response.headers.get("allow")).toBe("GET")
  })
})

describe("the server process", () => {
  let server: Started | undefined
  afterEach(async () => {
    await server?.stop()
    server = undefined
  })

  const launch = async (env: Record<string, string>) => {
    const port = await freePort()
    server = await start(
      "node",
      ["--import", "tsx", "src/bin.ts", "serve"],
      { PORT: String(port), DATABASE_URL: "memory:", ...env },
      /registration endpoint: .*\n/
    )
    return { port, child: server.child, output: server.output }
  }

  it("shuts down gracefully: a slow in-flight request completes, new connections are refused, exit 0", async () => {
    const { port, child } = await launch({ SHUTDOWN_TIMEOUT: "5000" })
    const body = JSON.stringify(webClient)
    // Start a registration whose body arrives slowly.
    const inFlight = new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = httpRequest(
        {
          host: "127.0.0.1",
          port,
          method: "POST",
          path: "/register",
          headers: { "content-type": "application/json", "content-length": String(body.length) }
        },
        (res) => {
          let text = ""
          res.on("data", (chunk: Buffer) => (text += chunk.toString("utf8")))
          res.on("end", () => resolve({ status: res.statusCode ?? 0, text }))
        }
      )
      req.on("error", reject)
      req.write(body.slice(0, 10))
      setTimeout(() => req.end(body.slice(10)), 700)
    })
    await new Promise((resolve) => setTimeout(resolve, 200))
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
    child.kill("SIGTERM")
    await new Promise((resolve) => setTimeout(resolve, 200))
    // The listener is closed: a new connection is refused.
    const refused = await new Promise<boolean>((resolve) => {
      const socket = connect(port, "127.0.0.1")
      socket.once("connect", () => {
        socket.destroy()
        resolve(false)
      })
      socket.once("error", () => resolve(true))
    })
    expect(refused).toBe(true)
    const finished = await inFlight
    expect(finished.status).toBe(201)
    expect(parseObject(finished.text).client_name).toBe(webClient.client_name)
    expect(await exited).toBe(0)
  })

  it("logs a full walk-through as JSON lines without any token or secret value", async () => {
    const { port, output } = await launch({ LOG_FORMAT: "json", LOG_LEVEL: "debug" })
    const base = `http://127.0.0.1:${port}`
    const created = parseObject(
      await (
        await fetch(`${base}/register`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(webClient)
        })
      ).text()
    )
    const uri = String(created.registration_client_uri)
    const rat = String(created.registration_access_token)
    const auth = { authorization: `Bearer ${rat}`, "content-type": "application/json" }
    await fetch(uri, { headers: auth })
    await fetch(`${uri}?access_token=${rat}`, { headers: auth })
    const updated = parseObject(
      await (
        await fetch(uri, {
          method: "PUT",
          headers: auth,
          body: JSON.stringify({ client_id: created.client_id, ...webClient, client_secret: created.client_secret })
        })
      ).text()
    )
    const rotated = String(updated.registration_access_token)
    expect((await fetch(uri, { method: "DELETE", headers: { authorization: `Bearer ${rotated}` } })).status).toBe(204)
    await new Promise((resolve) => setTimeout(resolve, 200))
    const logs = output()
    const lines = logs.split("\n").filter((line) => line.startsWith("{"))
    expect(lines.length).toBeGreaterThanOrEqual(5)
    for (const line of lines) {
      const entry = parseObject(line)
      expect(entry.message).toBeDefined()
    }
    const requests = lines.map(parseObject).filter((entry) => entry.message === "request")
    const annotations = requests.map((entry) => parseObject(JSON.stringify(entry.annotations)))
    expect(annotations.map((a) => a.status)).toStrictEqual([201, 200, 400, 200, 204])
    for (const a of annotations) {
      expect(typeof a.request_id).toBe("string")
      expect(typeof a.duration_ms).toBe("number")
    }
    for (const secret of [rat, rotated, String(created.client_secret)]) {
      expect(logs).not.toContain(secret)
    }
  })

  it("refuses a bad configuration before listening, with one line", async () => {
    const port = await freePort()
    const result = await bash(
      `PORT=${port} DATABASE_URL=memory: node --import tsx src/bin.ts serve --cors-origins notanorigin`
    )
    expect(result.code).toBe(1)
    expect(result.stdout).not.toContain("listening")
    expect(result.stderr.trim().split("\n")).toStrictEqual([
      'effect-dcr: --cors-origins must list origins like https://app.example.com, got "notanorigin"'
    ])
  })
})
