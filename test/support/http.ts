/**
 * Drives the `@effect/platform` adapter in-process: real `Request`s in, real
 * `Response`s out, through `PlatformHttp.router` mounted like a host would.
 */
import { HttpApp, HttpRouter } from "@effect/platform"
import { afterEach, expect } from "vitest"
import { Effect, Layer, ManagedRuntime } from "effect"
import * as Credentials from "../../src/Credentials.js"
import * as Dcr from "../../src/Dcr.js"
import * as PlatformHttp from "../../src/PlatformHttp.js"
import type { Services } from "../../src/Protocol.js"
import { parseObject } from "./json.js"

export const publicUrl = "https://as.example.com/oauth"
export const registrationEndpoint = `${publicUrl}/register`

export interface TestResponse {
  readonly status: number
  readonly headers: Headers
  readonly text: string
  /** The parsed JSON body, or undefined when the body is empty. */
  readonly json: Record<string, unknown> | undefined
}

export interface TestServer {
  readonly runtime: ManagedRuntime.ManagedRuntime<Services, never>
  /** Sends a request to `path` below the mount point (e.g. `/register`). */
  readonly request: (
    method: string,
    path: string,
    init?: {
      readonly headers?: ReadonlyArray<readonly [string, string]> | Record<string, string>
      readonly body?: string | Uint8Array<ArrayBuffer>
      /** Shorthand: JSON.stringify(json) with content-type application/json. */
      readonly json?: unknown
      /** Shorthand for `Authorization: Bearer <token>`. */
      readonly token?: string
    }
  ) => Promise<TestResponse>
  /** Runs an effect on the server's services (to inspect the store, for example). */
  readonly run: <A, E>(effect: Effect.Effect<A, E, Services>) => Promise<A>
  readonly dispose: () => Promise<void>
}

export type TestOptions = Omit<Dcr.Options, "server"> & {
  readonly server?: Partial<Dcr.Options["server"]>
}

const isPairs = (
  headers: ReadonlyArray<readonly [string, string]> | Record<string, string>
): headers is ReadonlyArray<readonly [string, string]> => Array.isArray(headers)

/**
 * Builds a server with deterministic credentials (`client-1`, `rat-2`, …)
 * unless the options replace them, mounted at `/oauth` as a host would.
 */
export const makeTestServer = (options: TestOptions = {}): TestServer => {
  const layer = Dcr.layer({
    credentials: Credentials.layerTest,
    ...options,
    server: { publicUrl, ...options.server }
  })
  const runtime = ManagedRuntime.make(Layer.orDie(layer))
  const app = HttpRouter.empty.pipe(HttpRouter.mount("/oauth", PlatformHttp.router))
  let handler: ((request: Request) => Promise<Response>) | undefined
  const getHandler = async () => {
    if (handler === undefined) {
      const rt = await runtime.runtime()
      handler = HttpApp.toWebHandlerRuntime(rt)(app)
    }
    return handler
  }
  return {
    runtime,
    request: async (method, path, init = {}) => {
      const headers = new Headers()
      const given = init.headers ?? []
      const entries: ReadonlyArray<readonly [string, string]> = isPairs(given) ? given : Object.entries(given)
      for (const [name, value] of entries) headers.append(name, value)
      let body: string | Uint8Array<ArrayBuffer> | undefined = init.body
      if (init.json !== undefined) {
        body = JSON.stringify(init.json)
        if (!headers.has("content-type")) headers.set("content-type", "application/json")
      }
      if (init.token !== undefined) headers.set("authorization", `Bearer ${init.token}`)
      const response = await (
        await getHandler()
      )(new Request(`http://localhost/oauth${path}`, { method, headers, ...(body === undefined ? {} : { body }) }))
      const text = await response.text()
      let json: Record<string, unknown> | undefined
      if (text !== "") json = parseObject(text)
      return { status: response.status, headers: response.headers, text, json }
    },
    run: (effect) => runtime.runPromise(effect),
    dispose: () => runtime.dispose()
  }
}

/**
 * A `makeTestServer` that disposes every server it made after each test of
 * the calling file.
 */
export const serversDisposedAfterEach = (): ((options?: TestOptions) => TestServer) => {
  const servers: Array<TestServer> = []
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((server) => server.dispose()))
  })
  return (options = {}) => {
    const server = makeTestServer(options)
    servers.push(server)
    return server
  }
}

/** Metadata every default server accepts. */
export const webClient = {
  redirect_uris: ["https://client.example.org/callback"],
  client_name: "Example Client",
  scope: "openid profile"
} as const

/** Registers a client and returns its id, RAT and full response body. */
export const register = async (server: TestServer, metadata: unknown = webClient) => {
  const response = await server.request("POST", "/register", { json: metadata })
  if (response.status !== 201 || response.json === undefined) {
    throw new Error(`registration failed: ${response.status} ${response.text}`)
  }
  const body = response.json
  const clientId = body.client_id
  const token = body.registration_access_token
  if (typeof clientId !== "string" || typeof token !== "string") throw new Error("malformed registration response")
  return { clientId, token, body, response }
}

/** The PUT body RFC 7592 §2.2 asks for, from a client information response. */
export const updateBodyFrom = (info: Record<string, unknown>, changes: Record<string, unknown> = {}) => {
  const {
    registration_access_token: _rat,
    registration_client_uri: _uri,
    client_secret_expires_at: _exp,
    client_id_issued_at: _iat,
    ...rest
  } = info
  return { ...rest, ...changes }
}

/** What the assertions need of a response, from HTTP or from `Protocol.handle`. */
export interface Reply {
  readonly status: number
  readonly challenge: string | null | undefined
  readonly json: Record<string, unknown> | undefined
}

export const fromHttp = (response: TestResponse): Reply => ({
  status: response.status,
  challenge: response.headers.get("www-authenticate"),
  json: response.json
})

/** R7591-3.2.2-a / R6750-3.1-c: 401 invalid_token with a Bearer challenge. */
export const expectInvalidToken = (reply: Reply | TestResponse): void => {
  const r = "challenge" in reply ? reply : fromHttp(reply)
  expect(r.status).toBe(401)
  expect(r.json?.error).toBe("invalid_token")
  expect(r.challenge ?? "").toMatch(/^Bearer .*error="invalid_token"/)
}
