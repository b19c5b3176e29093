/**
 * Issue 7, item 3: abuse resistance. Registration rate limiting per client
 * address (429 + Retry-After, off by default), the request body limit
 * enforced while reading (D18: a 1 GB body is refused unread), header and
 * request timeouts on the node server (slow-loris), caps on list sizes,
 * the production rule for metadata URLs, and the operation timeout (D20).
 */
import { once } from "node:events"
import { type IncomingHttpHeaders, request as httpRequest } from "node:http"
import { connect, type Socket } from "node:net"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { SqlClient } from "@effect/sql"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, TestClock } from "effect"
import * as Jose from "jose"
import { afterAll, beforeAll } from "vitest"
import * as ClientStore from "../src/ClientStore.js"
import * as Credentials from "../src/Credentials.js"
import * as Dcr from "../src/Dcr.js"
import * as Protocol from "../src/Protocol.js"
import type { Services } from "../src/Protocol.js"
import { serverError, StoreError } from "../src/ProtocolError.js"
import * as Server from "../src/Server.js"
import * as SqlClientStore from "../src/SqlClientStore.js"
import {
  publicUrl,
  register,
  serversDisposedAfterEach,
  type TestResponse,
  updateBodyFrom,
  webClient
} from "./support/http.js"
import { parseObject } from "./support/json.js"

const testServer = serversDisposedAfterEach()

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

const stringOf = (value: unknown): string => {
  if (typeof value !== "string") throw new Error(`expected a string, got ${JSON.stringify(value)}`)
  return value
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** D16 on an error response: JSON, `no-store`, `no-cache`. */
const expectJsonNoStore = (headers: { readonly get: (name: string) => string | null | undefined }): void => {
  expect(headers.get("content-type")).toMatch(/^application\/json(;|$)/)
  expect(headers.get("cache-control")).toBe("no-store")
  expect(headers.get("pragma")).toBe("no-cache")
}

const expectError = (response: TestResponse, status: number, code: string): void => {
  expect(response.status).toBe(status)
  expect(response.json?.error).toBe(code)
  expectJsonNoStore(response.headers)
}

interface Reply {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly json: Record<string, unknown> | undefined
}

/** A memory store that counts the clients it stored. */
const countingStore = (counter: { inserts: number }): Layer.Layer<ClientStore.ClientStore> =>
  Layer.sync(ClientStore.ClientStore, () => {
    const memory = ClientStore.makeMemory()
    return {
      ...memory,
      insert: (client, tokenId, initialToken) =>
        Effect.tap(memory.insert(client, tokenId, initialToken), () =>
          Effect.sync(() => {
            counter.inserts++
          })
        )
    }
  })

/** A registration through `Protocol.handle` (TestClock is the clock), from `remoteAddress`. */
const registerFrom = (remoteAddress: string | undefined): Effect.Effect<Reply, never, Services> =>
  Effect.map(
    Protocol.handle({
      method: "POST",
      url: "/register",
      authorization: [],
      contentType: "application/json",
      body: new TextEncoder().encode(JSON.stringify(webClient)),
      remoteAddress
    }),
    (response) => ({
      status: response.status,
      headers: response.headers,
      json: response.body === undefined ? undefined : parseObject(response.body)
    })
  )

const read = (clientId: string, token: string): Effect.Effect<number, never, Services> =>
  Effect.map(
    Protocol.handle({
      method: "GET",
      url: `/register/${clientId}`,
      authorization: [`Bearer ${token}`],
      contentType: undefined,
      body: undefined
    }),
    (response) => response.status
  )

/** A positive whole number of seconds (RFC 9110 §10.2.3 delay-seconds). */
const retryAfterOf = (headers: Readonly<Record<string, string | undefined>>): number => {
  const value = headers["retry-after"] ?? ""
  expect(value).toMatch(/^[1-9][0-9]*$/)
  return Number(value)
}

const expect429 = (reply: Reply, perSeconds: number): number => {
  expect(reply.status).toBe(429)
  expect(reply.json?.error).toBe("invalid_request")
  expect(typeof reply.json?.error_description).toBe("string")
  expect(reply.headers["content-type"]).toMatch(/^application\/json(;|$)/)
  expect(reply.headers["cache-control"]).toBe("no-store")
  expect(reply.headers.pragma).toBe("no-cache")
  const retryAfter = retryAfterOf(reply.headers)
  expect(retryAfter).toBeLessThanOrEqual(perSeconds)
  return retryAfter
}

interface HttpReply {
  readonly status: number
  readonly headers: IncomingHttpHeaders
  readonly text: string
  readonly json: Record<string, unknown> | undefined
}

/** One request on a fresh connection, optionally from a given local address. */
const send = (
  base: string,
  method: string,
  path: string,
  options: {
    readonly json?: unknown
    readonly token?: string
    readonly localAddress?: string
    readonly headers?: Readonly<Record<string, string>>
  } = {}
): Promise<HttpReply> =>
  new Promise((resolve, reject) => {
    const url = new URL(base)
    const body = options.json === undefined ? undefined : JSON.stringify(options.json)
    const headers: Record<string, string> = { ...options.headers }
    if (body !== undefined) {
      headers["content-type"] = "application/json"
      headers["content-length"] = String(Buffer.byteLength(body))
    }
    if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`
    const req = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        path,
        method,
        headers,
        agent: false,
        ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress })
      },
      (res) => {
        const chunks: Array<Buffer> = []
        res.on("data", (chunk: Buffer) => chunks.push(chunk))
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8")
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text,
            json: text === "" ? undefined : parseObject(text)
          })
        })
        res.on("error", reject)
      }
    )
    req.on("error", reject)
    req.end(body)
  })

const headerOf = (headers: IncomingHttpHeaders, name: string): string | undefined => {
  const value = headers[name]
  return typeof value === "string" ? value : value?.[0]
}

const quietServer = (options: Server.ServeOptions = {}): Promise<Server.RunningServer> =>
  Server.serve({
    port: 0,
    accessLog: false,
    logLevel: "none",
    ...options,
    services: { store: ClientStore.layerMemory, ...options.services }
  })

const portOf = (server: Server.RunningServer): number => Number(new URL(server.url).port)

/** A raw TCP connection to the server that records what comes back and when. */
interface RawConnection {
  readonly socket: Socket
  readonly startedAt: number
  readonly received: () => string
  /** Resolves with the ms since `startedAt` when the first response bytes arrive. */
  readonly firstData: Promise<number>
  /** Resolves with the ms since `startedAt` when the connection is closed. */
  readonly closed: Promise<number>
  /** Bytes this side managed to write. */
  readonly written: () => number
  /** Writes unless the connection is gone; resolves false when it is. */
  readonly write: (data: string | Buffer) => Promise<boolean>
}

const openRaw = async (port: number): Promise<RawConnection> => {
  const socket = connect(port, "127.0.0.1")
  await once(socket, "connect")
  const startedAt = performance.now()
  let text = ""
  let written = 0
  let gone = false
  socket.on("error", () => {
    gone = true
  })
  const firstData = new Promise<number>((resolve) => {
    socket.once("data", () => resolve(performance.now() - startedAt))
  })
  socket.on("data", (chunk: Buffer) => {
    text += chunk.toString("latin1")
  })
  const closed = new Promise<number>((resolve) => {
    socket.once("close", () => {
      gone = true
      resolve(performance.now() - startedAt)
    })
  })
  const write = (data: string | Buffer): Promise<boolean> =>
    new Promise((resolve) => {
      if (gone || socket.destroyed || !socket.writable) return resolve(false)
      const size = typeof data === "string" ? Buffer.byteLength(data) : data.length
      socket.write(data, (error) => {
        if (error !== undefined && error !== null) {
          gone = true
          resolve(false)
        } else {
          written += size
          resolve(true)
        }
      })
    })
  return { socket, startedAt, received: () => text, firstData, closed, written: () => written, write }
}

/** Resolves with the promise's value, or "timeout" after `ms`. */
const within = <A>(promise: Promise<A>, ms: number): Promise<A | "timeout"> =>
  Promise.race([promise, sleep(ms).then((): "timeout" => "timeout")])

/** Decodes a chunked HTTP/1.1 body (RFC 9112 §7.1), ignoring extensions and trailers. */
const dechunk = (body: string): string => {
  let out = ""
  let rest = body
  for (;;) {
    const line = rest.indexOf("\r\n")
    if (line === -1) throw new Error(`truncated chunked body: ${JSON.stringify(body)}`)
    const size = parseInt(rest.slice(0, line).split(";")[0] ?? "", 16)
    if (!Number.isInteger(size)) throw new Error(`bad chunk size in ${JSON.stringify(body)}`)
    if (size === 0) return out
    out += rest.slice(line + 2, line + 2 + size)
    rest = rest.slice(line + 2 + size + 2)
  }
}

/** Status and JSON body of a raw HTTP/1.1 response (Content-Length or chunked). */
const parseRawResponse = (raw: string): { readonly status: number; readonly body: Record<string, unknown> } => {
  const status = /^HTTP\/1\.1 (\d{3}) /.exec(raw)?.[1]
  const split = raw.indexOf("\r\n\r\n")
  if (status === undefined || split === -1) throw new Error(`not an HTTP response: ${JSON.stringify(raw)}`)
  const body = raw.slice(split + 4)
  const chunked = /\r\ntransfer-encoding: *chunked\r\n/i.test(raw.slice(0, split + 2))
  return { status: Number(status), body: parseObject(chunked ? dechunk(body) : body) }
}

const rawHeaders = (raw: string): string => raw.slice(0, Math.max(0, raw.indexOf("\r\n\r\n"))).toLowerCase()

// ---------------------------------------------------------------------------
// Registration rate limit
// ---------------------------------------------------------------------------

describe("issue 7 abuse: registration rate limit per client address", () => {
  const limited = (counter: { inserts: number }, limit?: { requests: number; perSeconds: number }) =>
    Dcr.layer({
      credentials: Credentials.layerTest,
      store: countingStore(counter),
      server: { publicUrl, ...(limit === undefined ? {} : { registrationRateLimit: limit }) }
    })

  it.effect(
    "the 4th registration from one address within the window is 429 + Retry-After (D16 JSON invalid_request); nothing is stored; another address still registers",
    () => {
      const counter = { inserts: 0 }
      return Effect.gen(function* () {
        const first = yield* registerFrom("203.0.113.7")
        expect(first.status).toBe(201)
        for (let i = 0; i < 2; i++) expect((yield* registerFrom("203.0.113.7")).status).toBe(201)
        expect(counter.inserts).toBe(3)

        const refused = yield* registerFrom("203.0.113.7")
        expect429(refused, 60)
        expect(refused.json?.client_id).toBeUndefined()
        expect(refused.json?.registration_access_token).toBeUndefined()
        expect(counter.inserts).toBe(3)
        // Refusals do not extend the ban but do not slip through either.
        expect429(yield* registerFrom("203.0.113.7"), 60)
        expect(counter.inserts).toBe(3)

        const other = yield* registerFrom("198.51.100.9")
        expect(other.status).toBe(201)
        expect(counter.inserts).toBe(4)

        // Only registration is limited: the limited address's clients still manage themselves.
        expect(yield* read(stringOf(first.json?.client_id), stringOf(first.json?.registration_access_token))).toBe(200)
      }).pipe(Effect.provide(limited(counter, { requests: 3, perSeconds: 60 })))
    }
  )

  it.effect("tokens refill with time: not before Retry-After, then one registration per refilled token", () => {
    const counter = { inserts: 0 }
    return Effect.gen(function* () {
      yield* TestClock.setTime(1_750_000_000_000)
      for (let i = 0; i < 3; i++) expect((yield* registerFrom("203.0.113.7")).status).toBe(201)
      const retryAfter = expect429(yield* registerFrom("203.0.113.7"), 60)
      // 3 per 60 s: one token every 20 s.
      expect(retryAfter).toBe(20)

      yield* TestClock.adjust(`${retryAfter - 1} seconds`)
      expect429(yield* registerFrom("203.0.113.7"), 60)
      expect(counter.inserts).toBe(3)

      yield* TestClock.adjust("1 second")
      expect((yield* registerFrom("203.0.113.7")).status).toBe(201)
      expect(counter.inserts).toBe(4)
      // Exactly one token came back.
      expect429(yield* registerFrom("203.0.113.7"), 60)

      // After a full window the whole burst is available again, and no more.
      yield* TestClock.adjust("60 seconds")
      for (let i = 0; i < 3; i++) expect((yield* registerFrom("203.0.113.7")).status).toBe(201)
      expect429(yield* registerFrom("203.0.113.7"), 60)
      expect(counter.inserts).toBe(7)
    }).pipe(Effect.provide(limited(counter, { requests: 3, perSeconds: 60 })))
  })

  it.effect("is off by default: 50 registrations from one address in one instant all succeed", () => {
    const counter = { inserts: 0 }
    return Effect.gen(function* () {
      for (let i = 0; i < 50; i++) expect((yield* registerFrom("203.0.113.7")).status).toBe(201)
      expect(counter.inserts).toBe(50)
    }).pipe(Effect.provide(limited(counter)))
  })

  it("through the node listener: the address comes from the socket (127.0.0.1 is limited, 127.0.0.2 is not)", async () => {
    const server = await quietServer({ registrationRateLimit: { requests: 3, perSeconds: 60 } })
    try {
      for (let i = 0; i < 3; i++) {
        const ok = await send(server.url, "POST", "/register", { json: webClient, localAddress: "127.0.0.1" })
        expect(ok.status).toBe(201)
      }
      const refused = await send(server.url, "POST", "/register", { json: webClient, localAddress: "127.0.0.1" })
      expect(refused.status).toBe(429)
      expect(refused.json?.error).toBe("invalid_request")
      expect(headerOf(refused.headers, "content-type")).toMatch(/^application\/json(;|$)/)
      expect(headerOf(refused.headers, "cache-control")).toBe("no-store")
      expect(headerOf(refused.headers, "pragma")).toBe("no-cache")
      const retryAfter = headerOf(refused.headers, "retry-after") ?? ""
      expect(retryAfter).toMatch(/^[1-9][0-9]*$/)
      expect(Number(retryAfter)).toBeLessThanOrEqual(60)

      const other = await send(server.url, "POST", "/register", { json: webClient, localAddress: "127.0.0.2" })
      expect(other.status).toBe(201)
      // A spoofable header is not the address.
      const spoofed = await send(server.url, "POST", "/register", {
        json: webClient,
        localAddress: "127.0.0.1",
        headers: { "x-forwarded-for": "198.51.100.1", "x-real-ip": "198.51.100.1" }
      })
      expect(spoofed.status).toBe(429)
    } finally {
      await server.close()
    }
  })

  it("through the node listener with real time: 1 per second refills after Retry-After", async () => {
    const server = await quietServer({ registrationRateLimit: { requests: 1, perSeconds: 1 } })
    try {
      expect((await send(server.url, "POST", "/register", { json: webClient })).status).toBe(201)
      const refused = await send(server.url, "POST", "/register", { json: webClient })
      expect(refused.status).toBe(429)
      expect(headerOf(refused.headers, "retry-after")).toBe("1")
      await sleep(1_100)
      expect((await send(server.url, "POST", "/register", { json: webClient })).status).toBe(201)
    } finally {
      await server.close()
    }
  })
})

// ---------------------------------------------------------------------------
// D18 body limit while reading, on the standalone server
// ---------------------------------------------------------------------------

describe("issue 7 abuse: D18 body limit enforced while reading (standalone server)", () => {
  let server: Server.RunningServer | undefined
  beforeAll(async () => {
    server = await quietServer()
  })
  afterAll(async () => {
    await server?.close()
  })
  const port = (): number => {
    if (server === undefined) throw new Error("the server did not start")
    return portOf(server)
  }
  const healthz = async (): Promise<number> => {
    if (server === undefined) throw new Error("the server did not start")
    return (await send(server.url, "GET", "/healthz")).status
  }

  it("a declared 1 GB Content-Length is answered 413 within a second, unread, and the connection is closed", async () => {
    const rssBefore = process.memoryUsage().rss
    const connection = await openRaw(port())
    await connection.write(
      "POST /register HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
        "Content-Length: 1073741824\r\n\r\n" +
        '{"redirect_uris":["https://'
    )
    const answeredAfter = await within(connection.firstData, 1_000)
    expect(answeredAfter).not.toBe("timeout")
    // Keep pushing body bytes: the server must not be reading (and buffering) them.
    const chunk = Buffer.alloc(64 * 1024, 0x61)
    for (let i = 0; i < 64; i++) {
      if (!(await within(connection.write(chunk), 200).then((ok) => ok === true))) break
    }
    const closedAfter = await within(connection.closed, 2_000)
    expect(closedAfter).not.toBe("timeout")
    const raw = connection.received()
    const response = parseRawResponse(raw)
    expect(response.status).toBe(413)
    expect(response.body.error).toBe("invalid_request")
    expect(rawHeaders(raw)).toContain("content-type: application/json")
    expect(rawHeaders(raw)).toContain("cache-control: no-store")
    // At most the 4 MiB this side pushed could have reached it; 1 GB never did.
    expect(connection.written()).toBeLessThan(8 * 1024 * 1024)
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(128 * 1024 * 1024)
    expect(await healthz()).toBe(200)
  })

  it("a chunked body streamed past the limit (2 MB in 64 KB chunks, slowly) is 413 and the connection is cut off", async () => {
    const connection = await openRaw(port())
    await connection.write(
      "POST /register HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    const piece = Buffer.alloc(64 * 1024, 0x20)
    const total = 2 * 1024 * 1024
    let sent = 0
    let answeredAtBytes: number | undefined
    void connection.firstData.then(() => {
      answeredAtBytes = sent
    })
    while (sent < total) {
      const ok = await within(
        connection.write(Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from("\r\n")])),
        500
      )
      if (ok !== true) break
      sent += piece.length
      await sleep(20)
    }
    const closedAfter = await within(connection.closed, 2_000)
    expect(closedAfter).not.toBe("timeout")
    const response = parseRawResponse(connection.received())
    expect(response.status).toBe(413)
    expect(response.body.error).toBe("invalid_request")
    // Answered soon after the limit (64 KiB) was crossed, and not read to the end.
    expect(answeredAtBytes).toBeDefined()
    expect(answeredAtBytes ?? total).toBeLessThanOrEqual(1024 * 1024)
    expect(sent).toBeLessThan(total)
    expect(await healthz()).toBe(200)
  })

  it("a body just under the limit is still read and answered normally", async () => {
    if (server === undefined) throw new Error("the server did not start")
    const padded = { ...webClient, client_name: "x".repeat(60 * 1024) }
    const response = await send(server.url, "POST", "/register", { json: padded })
    expect(response.status).toBe(201)
  })
})

// ---------------------------------------------------------------------------
// Slow-loris
// ---------------------------------------------------------------------------

describe("issue 7 abuse: slow-loris on the node server", () => {
  it("with headersTimeoutMillis 1000 / requestTimeoutMillis 2000, trickled headers and a trickled body are cut off in bounded time while others are served", async () => {
    const server = await quietServer({ headersTimeoutMillis: 1_000, requestTimeoutMillis: 2_000 })
    const trickle = async (head: string, piece: string) => {
      const connection = await openRaw(portOf(server))
      await connection.write(head)
      const timer = setInterval(() => void connection.write(piece), 200)
      // Generous: the timeout plus the server's checking interval.
      const closedAfter = await within(connection.closed, 6_000)
      clearInterval(timer)
      connection.socket.destroy()
      return { closedAfter, received: connection.received() }
    }
    try {
      const headers = trickle("POST /register HTTP/1.1\r\nHost: 127.0.0.1\r\n", "X-Slow: a\r\n")
      const body = trickle(
        "POST /register HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
        " "
      )
      // Meanwhile, an honest client is served.
      await sleep(500)
      expect((await send(server.url, "GET", "/healthz")).status).toBe(200)
      expect((await send(server.url, "POST", "/register", { json: webClient })).status).toBe(201)

      const [slowHeaders, slowBody] = await Promise.all([headers, body])
      expect(slowHeaders.closedAfter).not.toBe("timeout")
      expect(slowHeaders.closedAfter).toBeLessThan(4_000)
      expect(slowBody.closedAfter).not.toBe("timeout")
      expect(slowBody.closedAfter).toBeLessThan(5_000)
      // Whatever was answered before the cut, it was never a success.
      for (const received of [slowHeaders.received, slowBody.received]) {
        if (received !== "") expect(received).toMatch(/^HTTP\/1\.1 (408|400|413) /)
      }
      expect((await send(server.url, "GET", "/healthz")).status).toBe(200)
    } finally {
      await server.close()
    }
  }, 15_000)
})

// ---------------------------------------------------------------------------
// Caps on list sizes
// ---------------------------------------------------------------------------

const publicJwk = Jose.generateKeyPair("ES256", { extractable: true }).then(({ publicKey }) =>
  Jose.exportJWK(publicKey)
)
const jwksOf = async (count: number) => {
  const jwk = await publicJwk
  return { keys: Array.from({ length: count }, (_, i) => ({ ...jwk, kid: `key-${i}`, alg: "ES256", use: "sig" })) }
}
const redirectUrisOf = (count: number) =>
  Array.from({ length: count }, (_, i) => `https://client.example.org/callback/${i}`)
const contactsOf = (count: number) => Array.from({ length: count }, (_, i) => `admin${i}@client.example.org`)

describe("issue 7 abuse: caps on redirect URIs, contacts and JWKS keys", () => {
  it("defaults: 20 redirect URIs pass, 21 are 400 invalid_redirect_uri; nothing is stored", async () => {
    const counter = { inserts: 0 }
    const server = testServer({ store: countingStore(counter) })
    const ok = await server.request("POST", "/register", { json: { ...webClient, redirect_uris: redirectUrisOf(20) } })
    expect(ok.status).toBe(201)
    expect(ok.json?.redirect_uris).toHaveLength(20)
    const over = await server.request("POST", "/register", {
      json: { ...webClient, redirect_uris: redirectUrisOf(21) }
    })
    expectError(over, 400, "invalid_redirect_uri")
    expect(counter.inserts).toBe(1)
  })

  it("defaults: 20 contacts pass, 21 are 400 invalid_client_metadata naming contacts", async () => {
    const server = testServer()
    const ok = await server.request("POST", "/register", { json: { ...webClient, contacts: contactsOf(20) } })
    expect(ok.status).toBe(201)
    const over = await server.request("POST", "/register", { json: { ...webClient, contacts: contactsOf(21) } })
    expectError(over, 400, "invalid_client_metadata")
    expect(String(over.json?.error_description)).toContain("contacts")
  })

  it("defaults: a JWK Set of 10 keys passes, 11 keys is 400 invalid_client_metadata naming jwks", async () => {
    const server = testServer()
    const client = { ...webClient, token_endpoint_auth_method: "private_key_jwt" }
    const ok = await server.request("POST", "/register", { json: { ...client, jwks: await jwksOf(10) } })
    expect(ok.status).toBe(201)
    const over = await server.request("POST", "/register", { json: { ...client, jwks: await jwksOf(11) } })
    expectError(over, 400, "invalid_client_metadata")
    expect(String(over.json?.error_description)).toContain("jwks")
  })

  it("caps apply to updates too: a PUT over the cap is refused and changes nothing", async () => {
    const server = testServer()
    const { clientId, token, body } = await register(server)
    const over = await server.request("PUT", `/register/${clientId}`, {
      token,
      json: updateBodyFrom(body, { redirect_uris: redirectUrisOf(21) })
    })
    expectError(over, 400, "invalid_redirect_uri")
    const after = await server.request("GET", `/register/${clientId}`, { token })
    expect(after.status).toBe(200)
    expect(after.json?.redirect_uris).toStrictEqual(webClient.redirect_uris)
  })

  it("configurable through server.limits", async () => {
    const server = testServer({ server: { limits: { redirectUris: 2, contacts: 1, jwksKeys: 1 } } })
    const post = (json: unknown) => server.request("POST", "/register", { json })
    expect((await post({ ...webClient, redirect_uris: redirectUrisOf(2) })).status).toBe(201)
    expectError(await post({ ...webClient, redirect_uris: redirectUrisOf(3) }), 400, "invalid_redirect_uri")
    expect((await post({ ...webClient, contacts: contactsOf(1) })).status).toBe(201)
    expectError(await post({ ...webClient, contacts: contactsOf(2) }), 400, "invalid_client_metadata")
    const client = { ...webClient, token_endpoint_auth_method: "private_key_jwt" }
    expect((await post({ ...client, jwks: await jwksOf(1) })).status).toBe(201)
    expectError(await post({ ...client, jwks: await jwksOf(2) }), 400, "invalid_client_metadata")

    // And raised above the defaults.
    const generous = testServer({ server: { limits: { redirectUris: 30, contacts: 30, jwksKeys: 12 } } })
    const big = await generous.request("POST", "/register", {
      json: { ...client, redirect_uris: redirectUrisOf(30), contacts: contactsOf(30), jwks: await jwksOf(12) }
    })
    expect(big.status).toBe(201)
  })
})

// ---------------------------------------------------------------------------
// Production rule for metadata URLs
// ---------------------------------------------------------------------------

const urlMembers = ["jwks_uri", "logo_uri", "client_uri", "tos_uri", "policy_uri", "logo_uri#fr"] as const

const refusedInProduction = [
  "http://client.example.org/doc",
  "https://localhost/doc",
  "https://LOCALHOST/doc",
  "https://app.localhost/doc",
  "https://localhost./doc",
  "https://127.0.0.1/doc",
  "https://127.0.0.53:8443/doc",
  "https://127.1/doc",
  "https://2130706433/doc",
  "https://0.0.0.0/doc",
  "https://[::1]/doc",
  "https://[::ffff:127.0.0.1]/doc",
  "https://10.0.0.1/doc",
  "https://10.255.255.255/doc",
  "https://192.168.1.1/doc",
  "https://172.16.0.1/doc",
  "https://172.31.255.254/doc",
  "https://169.254.169.254/latest/meta-data",
  "https://[fd00::1]/doc",
  "https://[fc00::1]/doc",
  "https://[fe80::1]/doc"
]

const acceptedInProduction = [
  "https://client.example.org/doc",
  "https://172.15.0.1/doc",
  "https://172.32.0.1/doc",
  "https://8.8.8.8/doc",
  "https://[2001:db8::1]/doc"
]

describe("issue 7 abuse: requirePublicHttpsUris (production metadata URLs)", () => {
  it("refuses http and loopback/private/link-local hosts in every URL member: 400 invalid_client_metadata naming the member", async () => {
    const counter = { inserts: 0 }
    const server = testServer({ store: countingStore(counter), server: { requirePublicHttpsUris: true } })
    const failures: Array<string> = []
    for (const member of urlMembers) {
      for (const url of refusedInProduction) {
        const response = await server.request("POST", "/register", { json: { ...webClient, [member]: url } })
        const description = String(response.json?.error_description)
        if (
          response.status !== 400 ||
          response.json?.error !== "invalid_client_metadata" ||
          !description.includes(member)
        ) {
          failures.push(`${member}=${url}: ${response.status} ${response.text}`)
        }
      }
    }
    expect(failures).toStrictEqual([])
    expect(counter.inserts).toBe(0)
  })

  it("accepts public https URLs in every URL member", async () => {
    const server = testServer({ server: { requirePublicHttpsUris: true } })
    for (const member of urlMembers) {
      for (const url of acceptedInProduction) {
        const response = await server.request("POST", "/register", { json: { ...webClient, [member]: url } })
        expect({ member, url, status: response.status, body: response.json?.error }).toStrictEqual({
          member,
          url,
          status: 201,
          body: undefined
        })
        expect(response.json?.[member]).toBe(url)
      }
    }
  })

  it("applies to updates too", async () => {
    const server = testServer({ server: { requirePublicHttpsUris: true } })
    const { clientId, token, body } = await register(server)
    const response = await server.request("PUT", `/register/${clientId}`, {
      token,
      json: updateBodyFrom(body, { jwks_uri: "https://169.254.169.254/latest/meta-data" })
    })
    expectError(response, 400, "invalid_client_metadata")
    expect(String(response.json?.error_description)).toContain("jwks_uri")
  })

  it("is off by default: http://localhost and private hosts are accepted", async () => {
    const server = testServer()
    for (const member of urlMembers) {
      for (const url of ["http://localhost:8080/doc", "http://127.0.0.1/doc", "https://10.0.0.1/doc"]) {
        const response = await server.request("POST", "/register", { json: { ...webClient, [member]: url } })
        expect({ member, url, status: response.status }).toStrictEqual({ member, url, status: 201 })
      }
    }
  })
})

// ---------------------------------------------------------------------------
// Operation timeout (D20)
// ---------------------------------------------------------------------------

/** A memory store whose operations stall while a flag is set (`findById`: both client lookups). */
const stallingMemory = (stall: { insert: boolean; findById: boolean }): Layer.Layer<ClientStore.ClientStore> =>
  Layer.sync(ClientStore.ClientStore, () => {
    const memory = ClientStore.makeMemory()
    const findByToken = memory.findByToken
    return {
      ...memory,
      findByToken:
        findByToken === undefined
          ? undefined
          : (tokenId) =>
              stall.findById ? Effect.zipRight(Effect.sleep("10 seconds"), findByToken(tokenId)) : findByToken(tokenId),
      insert: (client, tokenId, initialToken) =>
        // Stalls are interruptible, as ClientStore's contract asks before a commit point.
        stall.insert ? Effect.interruptible(Effect.never) : memory.insert(client, tokenId, initialToken),
      findById: (clientId) =>
        stall.findById
          ? Effect.zipRight(Effect.sleep("10 seconds"), memory.findById(clientId))
          : memory.findById(clientId)
    }
  })

/**
 * The real SQLite store, whose update (while `stall.update`) runs the real
 * update and then stalls inside an enclosing transaction: the timeout must
 * interrupt it and the transaction must roll back.
 */
const stallingSqlite = (filename: string, stall: { update: boolean }): Layer.Layer<ClientStore.ClientStore> =>
  Layer.effect(
    ClientStore.ClientStore,
    Effect.gen(function* () {
      yield* Effect.orDie(SqlClientStore.migrate)
      const sql = yield* SqlClient.SqlClient
      const real = yield* SqlClientStore.make
      const service: ClientStore.ClientStoreService = {
        ...real,
        update: (client, expectedVersion, rotation) =>
          stall.update
            ? sql
                .withTransaction(
                  Effect.interruptible(Effect.zipRight(real.update(client, expectedVersion, rotation), Effect.never))
                )
                .pipe(
                  Effect.mapError((cause) =>
                    cause._tag === "StoreError" ? cause : new StoreError({ operation: "update", cause })
                  )
                )
            : real.update(client, expectedVersion, rotation)
      }
      return service
    })
  ).pipe(Layer.provide(SqliteClient.layer({ filename })), Layer.orDie)

const expectServerError = (response: TestResponse): void => {
  expect(response.status).toBe(500)
  expect(response.json?.error).toBe("server_error")
  // D20: no internal detail (not the timeout, not the operation).
  expect(response.text).toBe(serverError.body)
  expectJsonNoStore(response.headers)
}

describe("issue 7 abuse: D20 operationTimeoutMillis bounds a stalled store", () => {
  it("an insert that never returns gives 500 server_error within a second", async () => {
    const stall = { insert: true, findById: false }
    const server = testServer({ store: stallingMemory(stall), server: { operationTimeoutMillis: 200 } })
    const started = performance.now()
    const response = await server.request("POST", "/register", { json: webClient })
    const elapsed = performance.now() - started
    expectServerError(response)
    expect(elapsed).toBeGreaterThanOrEqual(150)
    expect(elapsed).toBeLessThan(1_000)
    // The service recovers by itself when the store does.
    stall.insert = false
    expect((await server.request("POST", "/register", { json: webClient })).status).toBe(201)
  })

  it("a findById that sleeps 10 s gives 500 server_error within a second, then reads work again", async () => {
    const stall = { insert: false, findById: false }
    const server = testServer({ store: stallingMemory(stall), server: { operationTimeoutMillis: 200 } })
    const { clientId, token } = await register(server)
    stall.findById = true
    const started = performance.now()
    const response = await server.request("GET", `/register/${clientId}`, { token })
    expect(performance.now() - started).toBeLessThan(1_000)
    expectServerError(response)
    stall.findById = false
    const again = await server.request("GET", `/register/${clientId}`, { token })
    expect(again.status).toBe(200)
    expect(again.json?.client_id).toBe(clientId)
  })

  it("a stalled SQLite update is interrupted and rolled back: 500, then GET with the old RAT shows the old state", async () => {
    const filename = join(mkdtempSync(join(tmpdir(), "effect-dcr-abuse-")), "store.sqlite")
    const stall = { update: false }
    const server = testServer({
      credentials: Credentials.layer,
      store: stallingSqlite(filename, stall),
      server: { operationTimeoutMillis: 200 }
    })
    const { clientId, token, body } = await register(server)
    stall.update = true
    const started = performance.now()
    const response = await server.request("PUT", `/register/${clientId}`, {
      token,
      json: updateBodyFrom(body, { client_name: "Changed By A Stalled Update" })
    })
    expect(performance.now() - started).toBeLessThan(1_000)
    expectServerError(response)

    stall.update = false
    // The rotation was rolled back with the rest: the old RAT still works and the old metadata is there.
    const after = await server.request("GET", `/register/${clientId}`, { token })
    expect(after.status).toBe(200)
    expect(after.json?.client_name).toBe(webClient.client_name)
    // The connection is not left inside a transaction: a normal update goes through.
    const update = await server.request("PUT", `/register/${clientId}`, {
      token,
      json: updateBodyFrom(body, { client_name: "Changed Properly" })
    })
    expect(update.status).toBe(200)
    expect(update.json?.client_name).toBe("Changed Properly")
  })

  it("without operationTimeoutMillis nothing bounds the store (the option is what does it)", async () => {
    const stall = { insert: false, findById: false }
    const server = testServer({ store: stallingMemory(stall) })
    const { clientId, token } = await register(server)
    stall.findById = true
    const outcome = await within(server.request("GET", `/register/${clientId}`, { token }), 500)
    expect(outcome).toBe("timeout")
  })
})
