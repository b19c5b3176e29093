/**
 * Parity of the HTTP adapters (DESIGN §2): one table of HTTP-level cases, each
 * sent to every adapter, each adapter on a fresh Dcr layer with deterministic
 * credentials. Each case checks its own expectations on every adapter, then
 * that all adapters answered with the same status, the same relevant headers
 * and the same body (exactly for errors; for 2xx, the same members with the
 * same values, the issue time aside).
 *
 * The adapters (the first is the reference the others are compared with):
 * - `node`: `NodeHandler.make` as a `node:http` listener on a real port
 *   (mounted at the root: it has no base path);
 * - `platform`: `PlatformHttp.router` mounted at `/oauth`, served by
 *   `@effect/platform-node`'s `NodeHttpServer` on a real port;
 * - `fetch`: `FetchHandler.fromLayer` (basePath `/oauth`) called directly with
 *   `Request`s;
 * - `fetch-bridge`: the same handler behind `examples/fetch-handler.ts`'s
 *   `node:http` bridge on a real port.
 *
 * Socket-level requests go through `node:http` with raw header arrays, so
 * repeated headers stay repeated and framing (Content-Length or chunked) is
 * what the case says.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { createServer, request as httpRequest, type RequestListener, type Server } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { HttpRouter, HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Effect, Layer, ManagedRuntime } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { toNodeListener } from "../examples/fetch-handler.js"
import * as Credentials from "../src/Credentials.js"
import * as Dcr from "../src/Dcr.js"
import * as FetchHandler from "../src/FetchHandler.js"
import * as NodeHandler from "../src/NodeHandler.js"
import * as PermissionPolicy from "../src/PermissionPolicy.js"
import * as PlatformHttp from "../src/PlatformHttp.js"
import type { Services } from "../src/Protocol.js"
import { type TestOptions, updateBodyFrom } from "./support/http.js"
import { parseObject } from "./support/json.js"
import { freePort, start, type Started } from "./support/process.js"

// ---------------------------------------------------------------------------
// the wire

const publicUrl = "https://as.example.com/oauth"
const realm = publicUrl
const mount = "/oauth"

/** A request as it goes on the wire, its path relative to where the endpoints are mounted. */
interface Wire {
  readonly method: string
  readonly path: string
  /** Raw headers, repeats kept (a Fetch `Headers` joins them). */
  readonly headers?: ReadonlyArray<readonly [string, string]>
  readonly body?: string
  /** `length` (default): one piece with Content-Length; `chunked`: several pieces and no length. */
  readonly framing?: "length" | "chunked"
}

/** The headers compared across adapters; the others (date, connection, content-length) are transport detail. */
const comparedHeaders: ReadonlyArray<string> = [
  "content-type",
  "cache-control",
  "pragma",
  "www-authenticate",
  "allow",
  "access-control-allow-origin",
  "access-control-allow-methods",
  "access-control-allow-headers",
  "access-control-expose-headers",
  "access-control-max-age",
  "vary"
]

interface Observed {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly text: string
  readonly json: Record<string, unknown> | undefined
}

type Send = (wire: Wire) => Promise<Observed>

const observe = (status: number, header: (name: string) => string | undefined, text: string): Observed => {
  const headers: Record<string, string> = {}
  for (const name of comparedHeaders) {
    const value = header(name)
    if (value !== undefined) headers[name] = value
  }
  return { status, headers, text, json: text === "" ? undefined : parseObject(text) }
}

const bytes = (text: string): Uint8Array<ArrayBuffer> => new TextEncoder().encode(text)

/** The body cut in up to four pieces of at most 16 KiB each, for chunked framing. */
const pieces = (body: Uint8Array<ArrayBuffer>): Array<Uint8Array<ArrayBuffer>> => {
  const size = Math.max(1, Math.min(16 * 1024, Math.ceil(body.length / 4)))
  const out: Array<Uint8Array<ArrayBuffer>> = []
  for (let offset = 0; offset < body.length; offset += size) out.push(body.slice(offset, offset + size))
  return out
}

/** Sends over a real socket with `node:http`, headers exactly as given. */
const socketSend =
  (port: number, prefix: string): Send =>
  (wire) =>
    new Promise((resolve, reject) => {
      const given = wire.headers ?? []
      const raw: Array<string> = []
      if (!given.some(([name]) => name.toLowerCase() === "host")) raw.push("Host", `127.0.0.1:${port}`)
      for (const [name, value] of given) raw.push(name, value)
      raw.push("Connection", "close")
      const body = wire.body === undefined ? undefined : bytes(wire.body)
      const chunked = wire.framing === "chunked"
      if (body !== undefined && !chunked) raw.push("Content-Length", String(body.length))
      if (body !== undefined && chunked) raw.push("Transfer-Encoding", "chunked")
      const request = httpRequest(
        { host: "127.0.0.1", port, method: wire.method, path: prefix + wire.path, agent: false, headers: raw },
        (response) => {
          const chunks: Array<Buffer> = []
          response.on("data", (chunk: Buffer) => chunks.push(chunk))
          response.on("error", reject)
          response.on("end", () => {
            const header = (name: string) => {
              const value = response.headers[name]
              return Array.isArray(value) ? value.join(", ") : value
            }
            resolve(observe(response.statusCode ?? 0, header, Buffer.concat(chunks).toString("utf8")))
          })
        }
      )
      // A server that answers 413 early may reset the connection while we still
      // write: that is fine once the answer is in. Before it, the case fails
      // on status 0 with what happened, and parity shows the difference.
      request.on("error", (error) =>
        resolve({ status: 0, headers: {}, text: `no answer: ${error.message}`, json: undefined })
      )
      if (body !== undefined && chunked) {
        for (const piece of pieces(body)) request.write(piece)
        request.end()
      } else {
        request.end(body)
      }
    })

/** Builds a `Request` as a Fetch host would hand it over. */
const toRequest = (wire: Wire): Request => {
  const headers = new Headers()
  for (const [name, value] of wire.headers ?? []) headers.append(name, value)
  const url = `http://localhost${mount}${wire.path}`
  if (wire.body === undefined) return new Request(url, { method: wire.method, headers })
  const body = bytes(wire.body)
  if (wire.framing === "chunked") {
    const queue = pieces(body)
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        const next = queue.shift()
        if (next === undefined) controller.close()
        else controller.enqueue(next)
      }
    })
    // Node's Request needs `duplex` for a stream body; the DOM typings lack it.
    const init = { method: wire.method, headers, body: stream, duplex: "half" }
    return new Request(url, init)
  }
  headers.set("content-length", String(body.length))
  return new Request(url, { method: wire.method, headers, body })
}

const fetchSend =
  (handler: FetchHandler.Handler): Send =>
  async (wire) => {
    const response = await handler(toRequest(wire))
    return observe(response.status, (name) => response.headers.get(name) ?? undefined, await response.text())
  }

// ---------------------------------------------------------------------------
// the adapters

interface Target {
  readonly send: Send
  readonly close: () => Promise<void>
}

interface Adapter {
  readonly name: string
  /** True when the adapter receives repeated headers joined into one value (Fetch `Headers`). */
  readonly joinsHeaders: boolean
  readonly start: (options: TestOptions) => Promise<Target>
}

const dcrLayer = (options: TestOptions): Layer.Layer<Services> =>
  Dcr.layer({ credentials: Credentials.layerTest, ...options, server: { publicUrl, ...options.server } })

const listen = (listener: RequestListener): Promise<{ readonly server: Server; readonly port: number }> =>
  new Promise((resolve, reject) => {
    const server = createServer(listener)
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      if (address === null || typeof address === "string") reject(new Error("no TCP address"))
      else resolve({ server, port: address.port })
    })
  })

const closeServer = (server: Server): Promise<void> =>
  new Promise((resolve) => {
    server.close(() => resolve())
    server.closeAllConnections()
  })

const adapters: ReadonlyArray<Adapter> = [
  {
    name: "node",
    joinsHeaders: false,
    start: async (options) => {
      const runtime = ManagedRuntime.make(dcrLayer(options))
      const { server, port } = await listen(await runtime.runPromise(NodeHandler.make))
      return {
        send: socketSend(port, ""),
        close: async () => {
          await closeServer(server)
          await runtime.dispose()
        }
      }
    }
  },
  {
    name: "platform",
    joinsHeaders: false,
    start: async (options) => {
      const runtime = ManagedRuntime.make(
        HttpRouter.empty.pipe(
          HttpRouter.mount(mount, PlatformHttp.router),
          HttpServer.serve(),
          Layer.provide(dcrLayer(options)),
          Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" }))
        )
      )
      const address = await runtime.runPromise(Effect.map(HttpServer.HttpServer, (server) => server.address))
      if (address._tag !== "TcpAddress") throw new Error("no TCP address")
      return { send: socketSend(address.port, mount), close: () => runtime.dispose() }
    }
  },
  {
    name: "fetch",
    joinsHeaders: true,
    start: async (options) => {
      const web = FetchHandler.fromLayer(dcrLayer(options), { basePath: mount })
      await web.ready
      return { send: fetchSend(web.handler), close: web.dispose }
    }
  },
  {
    name: "fetch-bridge",
    joinsHeaders: true,
    start: async (options) => {
      const web = FetchHandler.fromLayer(dcrLayer(options), { basePath: mount })
      await web.ready
      const { server, port } = await listen(toNodeListener(web.handler))
      return {
        send: socketSend(port, mount),
        close: async () => {
          await closeServer(server)
          await web.dispose()
        }
      }
    }
  }
]

// ---------------------------------------------------------------------------
// requests and assertions used by the cases

const webClient = {
  redirect_uris: ["https://client.example.org/callback"],
  client_name: "Example Client",
  scope: "openid profile"
}

const json = (method: string, path: string, body: unknown, headers: Wire["headers"] = []): Wire => ({
  method,
  path,
  headers: [["Content-Type", "application/json"], ...headers],
  body: JSON.stringify(body)
})

const bearer = (token: string): readonly [string, string] => ["Authorization", `Bearer ${token}`]

const clientPath = (clientId: string): string => `/register/${encodeURIComponent(clientId)}`

interface Registered {
  readonly id: string
  readonly token: string
  readonly info: Record<string, unknown>
}

const stringMember = (body: Record<string, unknown> | undefined, name: string): string => {
  const value = body?.[name]
  if (typeof value !== "string") throw new Error(`${name} is not a string in ${JSON.stringify(body)}`)
  return value
}

const registerVia = async (send: Send, metadata: unknown = webClient): Promise<Registered> => {
  const response = await send(json("POST", "/register", metadata))
  if (response.status !== 201) throw new Error(`registration failed: ${response.status} ${response.text}`)
  return {
    id: stringMember(response.json, "client_id"),
    token: stringMember(response.json, "registration_access_token"),
    info: response.json ?? {}
  }
}

/** What a case's setup left for its request. */
interface Ctx {
  readonly client?: Registered
  readonly other?: Registered
  /** A registration access token that no longer works. */
  readonly staleToken?: string
}

const need = <A>(value: A | undefined): A => {
  if (value === undefined) throw new Error("the case's setup did not provide this")
  return value
}

const oneClient = async (send: Send): Promise<Ctx> => ({ client: await registerVia(send) })

const twoClients = async (send: Send): Promise<Ctx> => ({
  client: await registerVia(send),
  other: await registerVia(send, { ...webClient, client_name: "Other" })
})

const updatedClient = async (send: Send): Promise<Ctx> => {
  const client = await registerVia(send)
  const updated = await send(
    json("PUT", clientPath(client.id), updateBodyFrom(client.info, { client_name: "Renamed" }), [bearer(client.token)])
  )
  if (updated.status !== 200) throw new Error(`update failed: ${updated.status} ${updated.text}`)
  const info = updated.json ?? {}
  return {
    client: { id: client.id, token: stringMember(info, "registration_access_token"), info },
    staleToken: client.token
  }
}

const deletedClient = async (send: Send): Promise<Ctx> => {
  const client = await registerVia(send)
  const deleted = await send({ method: "DELETE", path: clientPath(client.id), headers: [bearer(client.token)] })
  if (deleted.status !== 204) throw new Error(`delete failed: ${deleted.status} ${deleted.text}`)
  return { client }
}

/** D16: JSON with no-store and no-cache. */
const expectJson = (o: Observed): void => {
  expect(o.headers["content-type"]).toMatch(/^application\/json(;|$)/)
  expect(o.headers["cache-control"]).toBe("no-store")
  expect(o.headers["pragma"]).toBe("no-cache")
  expect(o.json).toBeDefined()
}

/** A JSON error answer with `code` and no challenge. */
const expectError = (o: Observed, code: string): void => {
  expectJson(o)
  expect(o.json?.error).toBe(code)
  expect(typeof o.json?.error_description).toBe("string")
}

/** An RFC 6750 error answer: the JSON code and a Bearer challenge carrying it. */
const expectBearerError = (o: Observed, code: string): void => {
  expectError(o, code)
  expect(o.headers["www-authenticate"]).toMatch(new RegExp(`^Bearer realm="${realm}", error="${code}"`))
}

/** D5: a bare challenge with the realm only, and no error in the body. */
const expectBareChallenge = (o: Observed): void => {
  expectJson(o)
  expect(o.headers["www-authenticate"]).toBe(`Bearer realm="${realm}"`)
  expect(o.json).toEqual({})
}

const expectNoChallenge = (o: Observed): void => {
  expect(o.headers["www-authenticate"]).toBeUndefined()
}

/** A client information response (R7592-3). */
const expectInformation = (o: Observed, clientId: string): void => {
  expectJson(o)
  expect(o.json?.client_id).toBe(clientId)
  expect(o.json?.registration_client_uri).toBe(`${publicUrl}/register/${clientId}`)
  expect(typeof o.json?.registration_access_token).toBe("string")
}

/** A JSON text of exactly `size` bytes that registers a client (padding in client_name). */
const registrationOfSize = (size: number): string => {
  const empty = JSON.stringify({ ...webClient, client_name: "" })
  const text = JSON.stringify({ ...webClient, client_name: "n".repeat(size - bytes(empty).length) })
  expect(bytes(text).length).toBe(size)
  return text
}

const big = (): string => JSON.stringify({ ...webClient, client_name: "x".repeat(70 * 1024) })

// ---------------------------------------------------------------------------
// the table

interface Case {
  readonly name: string
  readonly options?: TestOptions
  /** Steps run first on the same server. */
  readonly setup?: (send: Send) => Promise<Ctx>
  readonly request: (ctx: Ctx) => Wire
  readonly status: number
  readonly check?: (observed: Observed, ctx: Ctx, adapter: Adapter) => void
  /**
   * What parity compares, when not the whole answer: for the one case where
   * a Fetch `Headers` cannot carry what the socket did.
   */
  readonly parity?: (observed: Observed | undefined) => unknown
}

const cases: ReadonlyArray<Case> = [
  // --- registration (RFC 7591 §3) ---
  {
    name: "R7591-3.2.1 register: 201, client information, D16 headers",
    request: () => json("POST", "/register", webClient),
    status: 201,
    check: (o) => {
      expectInformation(o, "client-1")
      expectNoChallenge(o)
      expect(o.json?.client_name).toBe("Example Client")
      expect(o.json?.token_endpoint_auth_method).toBe("client_secret_basic")
    }
  },
  {
    // The body's length is its UTF-8 byte count, not its character count: a
    // wrong Content-Length cuts the JSON short (or leaves the client waiting).
    name: "R7591-3.2.1 register with a non-ASCII client_name: the whole body arrives, framed by its length in bytes",
    request: () => json("POST", "/register", { ...webClient, client_name: "Café ☕ 日本語 𝄞" }),
    status: 201,
    check: (o) => {
      expectInformation(o, "client-1")
      expect(o.json?.client_name).toBe("Café ☕ 日本語 𝄞")
    }
  },
  {
    name: "D18 register with a charset parameter on application/json: 201",
    request: () => ({
      ...json("POST", "/register", webClient),
      headers: [["Content-Type", "application/json; charset=UTF-8"]]
    }),
    status: 201,
    check: (o) => expectInformation(o, "client-1")
  },
  {
    name: "D17 registration_client_uri ignores Host and X-Forwarded-*",
    request: () =>
      json("POST", "/register", webClient, [
        ["Host", "evil.example"],
        ["X-Forwarded-Host", "evil.example"],
        ["X-Forwarded-Proto", "http"],
        ["Forwarded", "host=evil.example;proto=http"]
      ]),
    status: 201,
    check: (o) => {
      expectInformation(o, "client-1")
      expect(JSON.stringify(o.json)).not.toContain("evil.example")
    }
  },
  {
    name: "R7591-3.2.2 invalid redirect URI: 400 invalid_redirect_uri",
    request: () => json("POST", "/register", { redirect_uris: ["http://evil.example/cb"] }),
    status: 400,
    check: (o) => expectError(o, "invalid_redirect_uri")
  },
  {
    name: "D12 unsupported grant type: 400 invalid_client_metadata",
    request: () => json("POST", "/register", { ...webClient, grant_types: ["urn:example:unknown"] }),
    status: 400,
    check: (o) => expectError(o, "invalid_client_metadata")
  },
  {
    name: "D18 wrong media type: 400 invalid_request",
    request: () => ({
      method: "POST",
      path: "/register",
      headers: [["Content-Type", "text/plain"]],
      body: JSON.stringify(webClient)
    }),
    status: 400,
    check: (o) => expectError(o, "invalid_request")
  },
  {
    name: "D18 no Content-Type: 400 invalid_request",
    request: () => ({ method: "POST", path: "/register", body: JSON.stringify(webClient) }),
    status: 400,
    check: (o) => expectError(o, "invalid_request")
  },
  {
    name: "D18 not JSON: 400 invalid_request",
    request: () => ({
      method: "POST",
      path: "/register",
      headers: [["Content-Type", "application/json"]],
      body: "{not json"
    }),
    status: 400,
    check: (o) => expectError(o, "invalid_request")
  },
  {
    name: "D18 empty body: 400 invalid_request",
    request: () => ({ method: "POST", path: "/register", headers: [["Content-Type", "application/json"]] }),
    status: 400,
    check: (o) => expectError(o, "invalid_request")
  },
  {
    name: "D18 a JSON array, not an object: 400 invalid_request",
    request: () => json("POST", "/register", [webClient]),
    status: 400,
    check: (o) => expectError(o, "invalid_request")
  },
  {
    name: "D18 duplicate member names: 400 invalid_request",
    request: () => ({
      method: "POST",
      path: "/register",
      headers: [["Content-Type", "application/json"]],
      body: '{"redirect_uris":["https://client.example.org/callback"],"client_name":"a","client_name":"b"}'
    }),
    status: 400,
    check: (o) => expectError(o, "invalid_request")
  },
  {
    name: "D18 a body of exactly maxBodyBytes with Content-Length: 201",
    options: { server: { maxBodyBytes: 400 } },
    request: () => ({
      method: "POST",
      path: "/register",
      headers: [["Content-Type", "application/json"]],
      body: registrationOfSize(400)
    }),
    status: 201,
    check: (o) => expectInformation(o, "client-1")
  },
  {
    name: "D18 a chunked body of exactly maxBodyBytes: 201",
    options: { server: { maxBodyBytes: 400 } },
    request: () => ({
      method: "POST",
      path: "/register",
      headers: [["Content-Type", "application/json"]],
      body: registrationOfSize(400),
      framing: "chunked"
    }),
    status: 201,
    check: (o) => expectInformation(o, "client-1")
  },
  {
    name: "D18 one byte over maxBodyBytes, chunked: 413",
    options: { server: { maxBodyBytes: 400 } },
    request: () => ({
      method: "POST",
      path: "/register",
      headers: [["Content-Type", "application/json"]],
      body: registrationOfSize(401),
      framing: "chunked"
    }),
    status: 413,
    check: (o) => expectError(o, "invalid_request")
  },
  {
    name: "D18 a declared Content-Length over 64 KiB: 413",
    request: () => ({
      method: "POST",
      path: "/register",
      headers: [["Content-Type", "application/json"]],
      body: big()
    }),
    status: 413,
    check: (o) => {
      expectError(o, "invalid_request")
      expect(o.json?.error_description).toBe("the request body exceeds 65536 bytes")
    }
  },
  {
    name: "D18 a chunked body over 64 KiB, no Content-Length: 413",
    request: () => ({
      method: "POST",
      path: "/register",
      headers: [["Content-Type", "application/json"]],
      body: big(),
      framing: "chunked"
    }),
    status: 413,
    check: (o) => expectError(o, "invalid_request")
  },
  {
    name: "D18 a chunked PUT over 64 KiB: 413",
    setup: oneClient,
    request: (ctx) => ({
      method: "PUT",
      path: clientPath(need(ctx.client).id),
      headers: [["Content-Type", "application/json"], bearer(need(ctx.client).token)],
      body: JSON.stringify(updateBodyFrom(need(ctx.client).info, { client_name: "x".repeat(70 * 1024) })),
      framing: "chunked"
    }),
    status: 413,
    check: (o) => expectError(o, "invalid_request")
  },
  {
    name: "D4 GET on the registration endpoint: 405, Allow: POST",
    request: () => ({ method: "GET", path: "/register" }),
    status: 405,
    check: (o) => {
      expectError(o, "invalid_request")
      expect(o.headers.allow).toBe("POST")
    }
  },
  {
    name: "D22 open registration ignores a bad Authorization header",
    request: () => json("POST", "/register", webClient, [["Authorization", "Bearer nope"]]),
    status: 201,
    check: (o) => expectInformation(o, "client-1")
  },

  // --- the configuration endpoint (RFC 7592 §2) ---
  {
    name: "R7592-2.1 read: 200 with the client information",
    setup: oneClient,
    request: (ctx) => ({
      method: "GET",
      path: clientPath(need(ctx.client).id),
      headers: [bearer(need(ctx.client).token)]
    }),
    status: 200,
    check: (o, ctx) => {
      expectInformation(o, need(ctx.client).id)
      expect(o.json?.registration_access_token).toBe(need(ctx.client).token)
    }
  },
  {
    name: "R6750-2.1-a the scheme name is case-insensitive: 200",
    setup: oneClient,
    request: (ctx) => ({
      method: "GET",
      path: clientPath(need(ctx.client).id),
      headers: [["Authorization", `bEARER ${need(ctx.client).token}`]]
    }),
    status: 200,
    check: (o, ctx) => expectInformation(o, need(ctx.client).id)
  },
  {
    name: "R7592-2.1 a percent-encoded client id in the path: 200",
    setup: oneClient,
    request: (ctx) => ({
      method: "GET",
      path: `/register/${need(ctx.client).id.replace("-", "%2D")}`,
      headers: [bearer(need(ctx.client).token)]
    }),
    status: 200,
    check: (o, ctx) => expectInformation(o, need(ctx.client).id)
  },
  {
    name: "R7592-2.2 D15 update: 200, the RAT rotated",
    setup: oneClient,
    request: (ctx) =>
      json("PUT", clientPath(need(ctx.client).id), updateBodyFrom(need(ctx.client).info, { client_name: "Renamed" }), [
        bearer(need(ctx.client).token)
      ]),
    status: 200,
    check: (o, ctx) => {
      expectInformation(o, need(ctx.client).id)
      expect(o.json?.client_name).toBe("Renamed")
      expect(o.json?.registration_access_token).not.toBe(need(ctx.client).token)
    }
  },
  {
    name: "D15 after rotation the old RAT gets 401 invalid_token",
    setup: updatedClient,
    request: (ctx) => ({
      method: "GET",
      path: clientPath(need(ctx.client).id),
      headers: [bearer(need(ctx.staleToken))]
    }),
    status: 401,
    check: (o) => expectBearerError(o, "invalid_token")
  },
  {
    name: "D7 update with a different client_id: 400 invalid_request",
    setup: oneClient,
    request: (ctx) =>
      json(
        "PUT",
        clientPath(need(ctx.client).id),
        updateBodyFrom(need(ctx.client).info, { client_id: "someone-else" }),
        [bearer(need(ctx.client).token)]
      ),
    status: 400,
    check: (o) => expectError(o, "invalid_request")
  },
  {
    name: "D18 update with the wrong media type: 400 invalid_request",
    setup: oneClient,
    request: (ctx) => ({
      method: "PUT",
      path: clientPath(need(ctx.client).id),
      headers: [["Content-Type", "application/x-json"], bearer(need(ctx.client).token)],
      body: JSON.stringify(updateBodyFrom(need(ctx.client).info))
    }),
    status: 400,
    check: (o) => expectError(o, "invalid_request")
  },
  {
    name: "R7592-2.3 D16 D19 delete: 204, empty body, no-store, no Content-Type",
    setup: oneClient,
    request: (ctx) => ({
      method: "DELETE",
      path: clientPath(need(ctx.client).id),
      headers: [bearer(need(ctx.client).token)]
    }),
    status: 204,
    check: (o) => {
      expect(o.text).toBe("")
      expect(o.headers).toEqual({ "cache-control": "no-store", pragma: "no-cache" })
    }
  },
  {
    name: "R7592-2.3 delete with a JSON body (ignored): 204",
    setup: oneClient,
    request: (ctx) =>
      json("DELETE", clientPath(need(ctx.client).id), { client_id: need(ctx.client).id }, [
        bearer(need(ctx.client).token)
      ]),
    status: 204,
    check: (o) => expect(o.text).toBe("")
  },
  {
    name: "R7592-5-f after delete the RAT gets 401 invalid_token",
    setup: deletedClient,
    request: (ctx) => ({
      method: "GET",
      path: clientPath(need(ctx.client).id),
      headers: [bearer(need(ctx.client).token)]
    }),
    status: 401,
    check: (o) => expectBearerError(o, "invalid_token")
  },
  {
    name: "D5 no Authorization header: 401 with a bare realm challenge",
    setup: oneClient,
    request: (ctx) => ({ method: "GET", path: clientPath(need(ctx.client).id) }),
    status: 401,
    check: expectBareChallenge
  },
  {
    name: "D5 a non-Bearer scheme: 401 with a bare realm challenge",
    setup: oneClient,
    request: (ctx) => ({
      method: "GET",
      path: clientPath(need(ctx.client).id),
      headers: [["Authorization", "Basic Y2xpZW50OnNlY3JldA=="]]
    }),
    status: 401,
    check: expectBareChallenge
  },
  {
    name: "R6750-3.1-c an unknown token: 401 invalid_token",
    setup: oneClient,
    request: (ctx) => ({ method: "GET", path: clientPath(need(ctx.client).id), headers: [bearer("not-a-token")] }),
    status: 401,
    check: (o) => expectBearerError(o, "invalid_token")
  },
  {
    name: "D1 client A's RAT at client B's URI: 401 invalid_token",
    setup: twoClients,
    request: (ctx) => ({
      method: "GET",
      path: clientPath(need(ctx.other).id),
      headers: [bearer(need(ctx.client).token)]
    }),
    status: 401,
    check: (o) => expectBearerError(o, "invalid_token")
  },
  {
    name: "D1 a valid RAT at an unknown client's URI: 401 invalid_token",
    setup: oneClient,
    request: (ctx) => ({ method: "GET", path: "/register/no-such-client", headers: [bearer(need(ctx.client).token)] }),
    status: 401,
    check: (o) => expectBearerError(o, "invalid_token")
  },
  {
    name: "D6 Bearer without a token: 400 invalid_request with a challenge",
    setup: oneClient,
    request: (ctx) => ({
      method: "GET",
      path: clientPath(need(ctx.client).id),
      headers: [["Authorization", "Bearer"]]
    }),
    status: 400,
    check: (o) => expectBearerError(o, "invalid_request")
  },
  {
    name: "D6 a token outside b64token: 400 invalid_request with a challenge",
    setup: oneClient,
    request: (ctx) => ({
      method: "GET",
      path: clientPath(need(ctx.client).id),
      headers: [["Authorization", 'Bearer "x y"']]
    }),
    status: 400,
    check: (o) => expectBearerError(o, "invalid_request")
  },
  {
    name: "D6 two Authorization headers: 400 invalid_request with a challenge",
    setup: oneClient,
    request: (ctx) => ({
      method: "GET",
      path: clientPath(need(ctx.client).id),
      headers: [bearer(need(ctx.client).token), bearer(need(ctx.client).token)]
    }),
    status: 400,
    check: (o, _ctx, adapter) => {
      expectBearerError(o, "invalid_request")
      // A Fetch `Headers` hands over one joined value, refused as malformed.
      expect(o.json?.error_description).toBe(
        adapter.joinsHeaders ? "the bearer token has characters outside b64token" : "more than one Authorization header"
      )
    },
    parity: (o) => ({
      status: o?.status,
      error: o?.json?.error,
      challenge: o?.headers["www-authenticate"]?.replace(/, error_description=.*$/, ""),
      headers: { ...o?.headers, "www-authenticate": undefined }
    })
  },
  {
    name: "D6 a token in the query: 400 invalid_request with a challenge",
    setup: oneClient,
    request: (ctx) => ({
      method: "GET",
      path: `${clientPath(need(ctx.client).id)}?access_token=${need(ctx.client).token}`,
      headers: [bearer(need(ctx.client).token)]
    }),
    status: 400,
    check: (o) => expectBearerError(o, "invalid_request")
  },
  {
    name: "D6 a token in a form body: 400 invalid_request with a challenge",
    setup: oneClient,
    request: (ctx) => ({
      method: "DELETE",
      path: clientPath(need(ctx.client).id),
      headers: [["Content-Type", "application/x-www-form-urlencoded"], bearer(need(ctx.client).token)],
      body: `access_token=${need(ctx.client).token}`
    }),
    status: 400,
    check: (o) => expectBearerError(o, "invalid_request")
  },
  {
    name: "D3 the PermissionPolicy refuses: 403 insufficient_scope",
    options: { permissionPolicy: PermissionPolicy.layerFromPredicate((_client, operation) => operation !== "delete") },
    setup: oneClient,
    request: (ctx) => ({
      method: "DELETE",
      path: clientPath(need(ctx.client).id),
      headers: [bearer(need(ctx.client).token)]
    }),
    status: 403,
    check: (o) => expectBearerError(o, "insufficient_scope")
  },
  {
    name: "D4 POST on the configuration endpoint: 405, Allow: GET, PUT, DELETE",
    setup: oneClient,
    request: (ctx) => json("POST", clientPath(need(ctx.client).id), {}, [bearer(need(ctx.client).token)]),
    status: 405,
    check: (o) => {
      expectError(o, "invalid_request")
      expect(o.headers.allow).toBe("GET, PUT, DELETE")
    }
  },
  {
    name: "D4 PATCH on the configuration endpoint: 405 before any token check",
    request: () => ({ method: "PATCH", path: "/register/anything" }),
    status: 405,
    check: (o) => {
      expectError(o, "invalid_request")
      expect(o.headers.allow).toBe("GET, PUT, DELETE")
      expectNoChallenge(o)
    }
  },
  {
    name: "D19 delete disabled: DELETE is 405, Allow: GET, PUT",
    options: { server: { deleteEnabled: false } },
    setup: oneClient,
    request: (ctx) => ({
      method: "DELETE",
      path: clientPath(need(ctx.client).id),
      headers: [bearer(need(ctx.client).token)]
    }),
    status: 405,
    check: (o) => {
      expectError(o, "invalid_request")
      expect(o.headers.allow).toBe("GET, PUT")
    }
  },
  {
    name: "R7592-1.2-a a path below a client's URI: 404",
    setup: oneClient,
    request: (ctx) => ({
      method: "GET",
      path: `${clientPath(need(ctx.client).id)}/extra`,
      headers: [bearer(need(ctx.client).token)]
    }),
    status: 404,
    check: (o) => expectError(o, "invalid_request")
  },

  // --- discovery (RFC 8414) and CORS ---
  {
    name: "RFC 8414 the discovery document: 200, cacheable",
    request: () => ({ method: "GET", path: "/.well-known/oauth-authorization-server" }),
    status: 200,
    check: (o) => {
      expect(o.headers["content-type"]).toBe("application/json")
      expect(o.headers["cache-control"]).toBe("public, max-age=300")
      expect(o.json?.issuer).toBe(publicUrl)
      expect(o.json?.registration_endpoint).toBe(`${publicUrl}/register`)
    }
  },
  {
    name: "RFC 8414 §3 the discovery document at the issuer-path URL: 200",
    request: () => ({ method: "GET", path: "/.well-known/oauth-authorization-server/oauth" }),
    status: 200,
    check: (o) => expect(o.json?.registration_endpoint).toBe(`${publicUrl}/register`)
  },
  {
    name: "RFC 8414 POST on the discovery document: 405, Allow: GET",
    request: () => json("POST", "/.well-known/oauth-authorization-server", {}),
    status: 405,
    check: (o) => {
      expectError(o, "invalid_request")
      expect(o.headers.allow).toBe("GET")
    }
  },
  {
    name: "CORS preflight on the registration endpoint: 204 with the allowed methods",
    options: { server: { corsOrigins: ["https://app.example"] } },
    request: () => ({
      method: "OPTIONS",
      path: "/register",
      headers: [
        ["Origin", "https://app.example"],
        ["Access-Control-Request-Method", "POST"]
      ]
    }),
    status: 204,
    check: (o) => {
      expect(o.text).toBe("")
      expect(o.headers["access-control-allow-origin"]).toBe("https://app.example")
      expect(o.headers["access-control-allow-methods"]).toBe("POST")
    }
  },
  {
    name: "CORS a registration from an allowed origin: 201 with CORS headers",
    options: { server: { corsOrigins: ["https://app.example"] } },
    request: () => json("POST", "/register", webClient, [["Origin", "https://app.example"]]),
    status: 201,
    check: (o) => {
      expectInformation(o, "client-1")
      expect(o.headers["access-control-allow-origin"]).toBe("https://app.example")
      expect(o.headers["access-control-expose-headers"]).toBe("WWW-Authenticate, Allow")
    }
  }
]

/** What must be equal across adapters: everything but the issue time, which follows the clock. */
const comparable = (o: Observed | undefined): unknown => {
  if (o === undefined || o.status >= 300 || o.json === undefined) return o
  const { client_id_issued_at: issued, ...rest } = o.json
  return { ...o, text: undefined, json: { ...rest, client_id_issued_at: typeof issued } }
}

describe("HTTP adapters answer alike", () => {
  for (const testCase of cases) {
    describe(testCase.name, () => {
      const seen = new Map<string, Observed>()
      for (const adapter of adapters) {
        it(adapter.name, async () => {
          const target = await adapter.start(testCase.options ?? {})
          try {
            const ctx = testCase.setup === undefined ? {} : await testCase.setup(target.send)
            const observed = await target.send(testCase.request(ctx))
            seen.set(adapter.name, observed)
            expect(observed.status, `answered: ${observed.text.slice(0, 300)}`).toBe(testCase.status)
            testCase.check?.(observed, ctx, adapter)
          } finally {
            await target.close()
          }
        })
      }
      it("same status, headers and body on every adapter", () => {
        const project = testCase.parity ?? comparable
        const answers: Array<readonly [string, Observed | undefined]> = adapters.map((adapter) => [
          adapter.name,
          seen.get(adapter.name)
        ])
        const [reference, ...others] = answers
        if (reference === undefined) throw new Error("no adapters")
        for (const [name, observed] of [reference, ...others]) expect(observed, `${name} answered`).toBeDefined()
        for (const [name, observed] of others) {
          expect(project(observed), `${name} vs ${reference[0]}`).toEqual(project(reference[1]))
        }
      })
    })
  }
})

// ---------------------------------------------------------------------------
// FetchHandler specifics that the table does not reach

describe("FetchHandler", () => {
  it("answers 404 outside its basePath and strips a trailing slash from it", async () => {
    const web = FetchHandler.fromLayer(dcrLayer({}), { basePath: "/oauth/" })
    try {
      const outside = await web.handler(new Request("http://localhost/other/register", { method: "POST" }))
      expect(outside.status).toBe(404)
      expect(parseObject(await outside.text()).error).toBe("invalid_request")
      const prefixOnly = await web.handler(new Request("http://localhost/oauthregister", { method: "POST" }))
      expect(prefixOnly.status).toBe(404)
      const inside = await web.handler(new Request("http://localhost/oauth/register", { method: "GET" }))
      expect(inside.status).toBe(405)
    } finally {
      await web.dispose()
    }
  })

  it("make runs on the runtime it is built on: the services are built once for every request", async () => {
    const runtime = ManagedRuntime.make(dcrLayer({}))
    try {
      const handler = await runtime.runPromise(FetchHandler.make)
      const a = await handler(new Request("http://localhost/register", init(webClient)))
      const b = await handler(new Request("http://localhost/register", init(webClient)))
      // One Credentials instance: the deterministic ids keep counting (id, secret, RAT per client).
      expect(parseObject(await a.text()).client_id).toBe("client-1")
      expect(parseObject(await b.text()).client_id).toBe("client-4")
      // Without a basePath the path is taken as is: /oauth/register is no endpoint.
      const mounted = await handler(new Request("http://localhost/oauth/register", init(webClient)))
      expect(mounted.status).toBe(404)
    } finally {
      await runtime.dispose()
    }
  })

  it("fromLayer: ready rejects when the services cannot be built, and requests get D20's 500", async () => {
    const web = FetchHandler.fromLayer(Dcr.layer({ server: { publicUrl: "not a url" } }))
    await expect(web.ready).rejects.toBeDefined()
    const response = await web.handler(new Request("http://localhost/register", init(webClient)))
    expect(response.status).toBe(500)
    expect(parseObject(await response.text())).toEqual({
      error: "server_error",
      error_description: "the server could not complete the request"
    })
    await web.dispose()
  })

  it("D18 stops reading a stream past the limit: the rest is never pulled", async () => {
    const web = FetchHandler.fromLayer(dcrLayer({ server: { maxBodyBytes: 1024 } }))
    try {
      let pulled = 0
      let cancelled = false
      const endless = new ReadableStream<Uint8Array>({
        pull(controller) {
          pulled++
          controller.enqueue(new Uint8Array(512).fill(0x20))
        },
        cancel() {
          cancelled = true
        }
      })
      const requestInit = {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: endless,
        duplex: "half"
      }
      const response = await web.handler(new Request("http://localhost/register", requestInit))
      expect(response.status).toBe(413)
      expect(cancelled).toBe(true)
      // 3 chunks of 512 pass 1024 bytes; the stream's queue may have pulled one more ahead.
      expect(pulled).toBeLessThanOrEqual(4)
    } finally {
      await web.dispose()
    }
  })
})

const init = (body: unknown): RequestInit => ({
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify(body)
})

// ---------------------------------------------------------------------------
// the example, run as a user runs it

describe("examples/fetch-handler.ts", () => {
  let server: Started
  let base: string
  let dir: string

  beforeAll(async () => {
    const port = await freePort()
    base = `http://127.0.0.1:${port}/oauth`
    dir = mkdtempSync(join(tmpdir(), "effect-dcr-fetch-"))
    server = await start(
      "node",
      ["--import", "tsx", "examples/fetch-handler.ts"],
      { PORT: String(port), DATABASE_FILE: join(dir, "clients.sqlite") },
      /Listening on/
    )
  })
  afterAll(async () => {
    await server.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  it("registers, reads and deletes a client through the node:http bridge, on SQLite", async () => {
    expect(server.output()).toContain(`Listening on ${base}`)
    const created = await fetch(`${base}/register`, init({ redirect_uris: ["https://app.example/cb"] }))
    expect(created.status).toBe(201)
    expect(created.headers.get("cache-control")).toBe("no-store")
    const info = parseObject(await created.text())
    const uri = stringMember(info, "registration_client_uri")
    expect(uri).toBe(`${base}/register/${stringMember(info, "client_id")}`)
    const token = stringMember(info, "registration_access_token")
    const read = await fetch(uri, { headers: { authorization: `Bearer ${token}` } })
    expect(read.status).toBe(200)
    expect(parseObject(await read.text()).client_id).toBe(info.client_id)
    const unauthenticated = await fetch(uri)
    expect(unauthenticated.status).toBe(401)
    expect(unauthenticated.headers.get("www-authenticate")).toBe(`Bearer realm="${base}"`)
    const deleted = await fetch(uri, { method: "DELETE", headers: { authorization: `Bearer ${token}` } })
    expect(deleted.status).toBe(204)
    expect(await deleted.text()).toBe("")
  })
})
