/**
 * The typed client end to end: against our server started in-process on a
 * real port (`Server.serve`), over `FetchHttpClient`; against small stub
 * servers for what ours never answers (a 500, odd but conforming bodies); and
 * `examples/typed-client.ts` run as a user runs it.
 */
import { spawn } from "node:child_process"
import { createServer, type IncomingHttpHeaders } from "node:http"
import type { AddressInfo } from "node:net"
import { FetchHttpClient, HttpClient, type HttpClientRequest } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Redacted, type Scope } from "effect"
import * as ClientStore from "../src/ClientStore.js"
import * as InitialAccessTokens from "../src/InitialAccessTokens.js"
import * as PermissionPolicy from "../src/PermissionPolicy.js"
import * as RegistrationClient from "../src/RegistrationClient.js"
import * as Server from "../src/Server.js"
import { parseObject } from "./support/json.js"
import { root } from "./support/process.js"

// ---------------------------------------------------------------------------
// helpers

type ServerOptions = Omit<Server.ServeOptions, "port" | "services"> & {
  readonly services?: Omit<NonNullable<Server.ServeOptions["services"]>, "store">
}

/** Our server on a free port, closed with the scope. */
const ourServer = (options: ServerOptions = {}): Effect.Effect<Server.RunningServer, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(() =>
      Server.serve({
        accessLog: false,
        ...options,
        port: 0,
        services: { ...options.services, store: ClientStore.layerMemory }
      })
    ),
    (server) => Effect.promise(() => server.close())
  )

/** The client on fetch, for a registration endpoint. */
const clientFor = (
  registrationEndpoint: string,
  options: Omit<RegistrationClient.Options, "registrationEndpoint"> = {}
): Effect.Effect<RegistrationClient.RegistrationClientService> =>
  RegistrationClient.make({ ...options, registrationEndpoint }).pipe(Effect.provide(FetchHttpClient.layer))

/** The client on fetch, remembering every request it sends. */
const recordingClientFor = (registrationEndpoint: string) =>
  Effect.gen(function* () {
    const requests: Array<HttpClientRequest.HttpClientRequest> = []
    const http = yield* HttpClient.HttpClient
    const recording = HttpClient.tapRequest(http, (request) => Effect.sync(() => requests.push(request)))
    const client = yield* RegistrationClient.make({ registrationEndpoint }).pipe(
      Effect.provideService(HttpClient.HttpClient, recording)
    )
    return { client, requests }
  }).pipe(Effect.provide(FetchHttpClient.layer))

/** The JSON object a recorded request carried. */
const bodyOf = (request: HttpClientRequest.HttpClientRequest | undefined): Record<string, unknown> => {
  if (request === undefined || request.body._tag !== "Uint8Array") throw new Error("no JSON body recorded")
  return parseObject(new TextDecoder().decode(request.body.body))
}

const webClient = {
  redirect_uris: ["https://client.example.org/callback"],
  client_name: "Example Client",
  scope: "openid profile"
}

const value = (secret: Redacted.Redacted<string> | undefined): string => {
  if (secret === undefined) throw new Error("expected a secret")
  return Redacted.value(secret)
}

/** A raw GET of the configuration endpoint, past the client. */
const rawRead = (uri: string | undefined, token: Redacted.Redacted<string> | undefined) =>
  Effect.promise(() => fetch(uri ?? "", { headers: { authorization: `Bearer ${value(token)}` } }))

interface StubRequest {
  readonly method: string
  readonly url: string
  readonly headers: IncomingHttpHeaders
  readonly body: string
}

interface StubResponse {
  readonly status: number
  readonly headers?: Record<string, string>
  readonly body?: string
}

/** A stub server answering each request with `answer`; closed with the scope. */
const stubServer = (answer: (request: StubRequest, base: string) => StubResponse) =>
  Effect.acquireRelease(
    Effect.promise(
      () =>
        new Promise<{ readonly base: string; readonly requests: Array<StubRequest>; readonly close: () => void }>(
          (resolve) => {
            const requests: Array<StubRequest> = []
            let base = ""
            const http = createServer((req, res) => {
              let body = ""
              req.on("data", (chunk: Buffer) => (body += chunk.toString("utf8")))
              req.on("end", () => {
                const request = { method: req.method ?? "", url: req.url ?? "", headers: req.headers, body }
                requests.push(request)
                const response = answer(request, base)
                res.writeHead(response.status, { "content-type": "application/json", ...response.headers })
                res.end(response.body)
              })
            })
            http.listen(0, "127.0.0.1", () => {
              const address: AddressInfo | string | null = http.address()
              if (address === null || typeof address === "string") throw new Error("no TCP address")
              base = `http://127.0.0.1:${address.port}`
              resolve({ base, requests, close: () => http.close() })
            })
          }
        )
    ),
    (stub) => Effect.sync(() => stub.close())
  )

const json = (status: number, body: unknown, headers: Record<string, string> = {}): StubResponse => ({
  status,
  headers,
  body: JSON.stringify(body)
})

// ---------------------------------------------------------------------------
// against our server

describe("RegistrationClient against our server", () => {
  it.scopedLive("R7592-1.3-a register → read → update → delete, then read fails with InvalidToken (R7592-5-f)", () =>
    Effect.gen(function* () {
      const server = yield* ourServer()
      const client = yield* clientFor(server.registrationEndpoint)

      const registered = yield* client.register(webClient)
      expect(registered.clientId).toMatch(/^[A-Za-z0-9_-]+$/)
      expect(Redacted.isRedacted(registered.clientSecret)).toBe(true)
      expect(Redacted.isRedacted(registered.registrationAccessToken)).toBe(true)
      expect(registered.registrationClientUri).toBe(`${server.url}/register/${registered.clientId}`)
      expect(registered.clientSecretExpiresAt).toBe(0)
      expect(typeof registered.clientIdIssuedAt).toBe("number")
      // R7591-3.2.1-f: the defaults the server applied are part of the metadata.
      expect(registered.metadata).toMatchObject({
        ...webClient,
        token_endpoint_auth_method: "client_secret_basic",
        grant_types: ["authorization_code"],
        response_types: ["code"]
      })
      // The metadata holds no server-issued member.
      for (const member of ["client_id", "client_secret", "registration_access_token", "registration_client_uri"]) {
        expect(registered.metadata).not.toHaveProperty(member)
      }

      const read = yield* client.read(registered)
      expect(read.clientId).toBe(registered.clientId)
      expect(read.metadata).toEqual(registered.metadata)
      expect(value(read.clientSecret)).toBe(value(registered.clientSecret))

      // R7592-2.2-d: null removes a member; the rest of the last response is sent again.
      const updated = yield* client.update(read, { client_name: "Renamed", scope: null })
      expect(updated.clientId).toBe(registered.clientId)
      expect(updated.metadata.client_name).toBe("Renamed")
      expect(updated.metadata.scope).toBeUndefined()
      expect(updated.metadata.redirect_uris).toEqual(webClient.redirect_uris)
      expect(value(updated.clientSecret)).toBe(value(registered.clientSecret))

      const reread = yield* client.read(updated)
      expect(reread.metadata).toEqual(updated.metadata)

      yield* client.delete(reread)
      const error = yield* Effect.flip(client.read(reread))
      expect(error._tag).toBe("InvalidToken")
    })
  )

  it.scopedLive("R7592-2.2-h D15 a rotated RAT is adopted; the old one is refused (raw fetch and client)", () =>
    Effect.gen(function* () {
      const server = yield* ourServer()
      const client = yield* clientFor(server.registrationEndpoint)
      const registered = yield* client.register(webClient)
      const updated = yield* client.update(registered, { client_name: "Rotated" })
      expect(value(updated.registrationAccessToken)).not.toBe(value(registered.registrationAccessToken))

      const old = yield* rawRead(registered.registrationClientUri, registered.registrationAccessToken)
      expect(old.status).toBe(401)
      const current = yield* rawRead(updated.registrationClientUri, updated.registrationAccessToken)
      expect(current.status).toBe(200)

      // The client's next calls use the new token…
      const read = yield* client.read(updated)
      expect(read.metadata.client_name).toBe("Rotated")
      const again = yield* client.update(read, { client_name: "Rotated twice" })
      expect(again.metadata.client_name).toBe("Rotated twice")
      // …and a stale registration value is refused.
      expect((yield* Effect.flip(client.read(registered)))._tag).toBe("InvalidToken")
    })
  )

  it.scopedLive("R7592-2.1-c a RAT that is not rotated (rotateRegistrationTokenOnUpdate: false) is kept", () =>
    Effect.gen(function* () {
      const server = yield* ourServer({ rotateRegistrationTokenOnUpdate: false })
      const client = yield* clientFor(server.registrationEndpoint)
      const registered = yield* client.register(webClient)
      const updated = yield* client.update(registered, { client_name: "Same token" })
      expect(value(updated.registrationAccessToken)).toBe(value(registered.registrationAccessToken))
      expect((yield* client.read(updated)).metadata.client_name).toBe("Same token")
    })
  )

  it.scopedLive(
    "R7592-2.2-b R7592-2.2-c R7592-2.2-e R7592-2.2-f the PUT body: every member of the last response, the changes, client_id and client_secret, none of the four forbidden members",
    () =>
      Effect.gen(function* () {
        const server = yield* ourServer()
        const { client, requests } = yield* recordingClientFor(server.registrationEndpoint)
        const registered = yield* client.register({ ...webClient, contacts: ["ops@client.example.org"] })
        expect(requests[0]?.method).toBe("POST")
        expect(requests[0]?.headers.authorization).toBeUndefined()
        expect(bodyOf(requests[0])).toEqual({ ...webClient, contacts: ["ops@client.example.org"] })

        const read = yield* client.read(registered)
        expect(requests[1]?.method).toBe("GET")
        expect(requests[1]?.url).toBe(registered.registrationClientUri)
        expect(requests[1]?.headers.authorization).toBe(`Bearer ${value(registered.registrationAccessToken)}`)

        yield* client.update(read, { client_name: "Changed", contacts: undefined, software_version: "2.0" })
        const put = requests[2]
        expect(put?.method).toBe("PUT")
        expect(put?.url).toBe(registered.registrationClientUri)
        expect(put?.headers.authorization).toBe(`Bearer ${value(read.registrationAccessToken)}`)
        expect(put?.headers["content-type"]).toBe("application/json")
        const body = bodyOf(put)
        for (const member of [
          "registration_access_token",
          "registration_client_uri",
          "client_secret_expires_at",
          "client_id_issued_at"
        ]) {
          expect(body).not.toHaveProperty(member)
        }
        expect(body).toEqual({
          ...read.metadata,
          client_name: "Changed",
          contacts: undefined,
          software_version: "2.0",
          client_id: registered.clientId,
          client_secret: value(registered.clientSecret)
        })
        expect(body).not.toHaveProperty("contacts")
        expect(body.grant_types).toEqual(["authorization_code"])
        expect(body.token_endpoint_auth_method).toBe("client_secret_basic")
      })
  )

  it.scopedLive(
    "R7592-2.2-c R7592-2.2-e server-issued members in changes are refused by the type and ignored at run time",
    () =>
      Effect.gen(function* () {
        const server = yield* ourServer()
        const { client, requests } = yield* recordingClientFor(server.registrationEndpoint)
        const registered = yield* client.register(webClient)
        const changes: RegistrationClient.MetadataChanges = {
          // @ts-expect-error client_id cannot be changed (R7592-2.2-e)
          client_id: "someone-else",
          // @ts-expect-error a server-managed member cannot be set (R7592-2.2-c)
          registration_client_uri: "https://evil.example/",
          client_name: "Still me"
        }
        const updated = yield* client.update(registered, changes)
        expect(updated.clientId).toBe(registered.clientId)
        const body = bodyOf(requests[1])
        expect(body.client_id).toBe(registered.clientId)
        expect(body).not.toHaveProperty("registration_client_uri")
        expect(body.client_name).toBe("Still me")
      })
  )

  it.scopedLive("D14 a public client (token_endpoint_auth_method none) has no secret and sends none", () =>
    Effect.gen(function* () {
      const server = yield* ourServer()
      const { client, requests } = yield* recordingClientFor(server.registrationEndpoint)
      const registered = yield* client.register({ ...webClient, token_endpoint_auth_method: "none" })
      expect(registered.clientSecret).toBeUndefined()
      expect(registered.clientSecretExpiresAt).toBeUndefined()
      const updated = yield* client.update(registered, { client_name: "Public" })
      expect(bodyOf(requests[1])).not.toHaveProperty("client_secret")
      expect(updated.clientSecret).toBeUndefined()
    })
  )

  it.scopedLive("D14 switching to a method without a secret drops it; switching back adopts the new one", () =>
    Effect.gen(function* () {
      const server = yield* ourServer()
      const client = yield* clientFor(server.registrationEndpoint)
      const registered = yield* client.register(webClient)
      const publicClient = yield* client.update(registered, { token_endpoint_auth_method: "none" })
      expect(publicClient.clientSecret).toBeUndefined()
      const confidential = yield* client.update(publicClient, { token_endpoint_auth_method: "client_secret_post" })
      expect(value(confidential.clientSecret)).not.toBe(value(registered.clientSecret))
      expect(value((yield* client.read(confidential)).clientSecret)).toBe(value(confidential.clientSecret))
    })
  )

  it.scopedLive("R7592-2.1-e R7592-2.2-i R7592-2.3-f a wrong RAT is InvalidToken on read, update and delete", () =>
    Effect.gen(function* () {
      const server = yield* ourServer()
      const client = yield* clientFor(server.registrationEndpoint)
      const registered = yield* client.register(webClient)
      const forged = { ...registered, registrationAccessToken: Redacted.make("not-the-token") }
      const errors = [
        yield* Effect.flip(client.read(forged)),
        yield* Effect.flip(client.update(forged, { client_name: "x" })),
        yield* Effect.flip(client.delete(forged))
      ]
      for (const error of errors) {
        expect(error._tag).toBe("InvalidToken")
        expect(error.message).not.toContain("not-the-token")
      }
      // Nothing changed.
      expect((yield* client.read(registered)).metadata.client_name).toBe(webClient.client_name)
    })
  )

  it.scopedLive("R7591-3.2.2-d an invalid redirect URI is InvalidRedirectUri, on register and on update", () =>
    Effect.gen(function* () {
      const server = yield* ourServer()
      const client = yield* clientFor(server.registrationEndpoint)
      const onRegister = yield* Effect.flip(client.register({ redirect_uris: ["http://evil.example/cb"] }))
      expect(onRegister._tag).toBe("InvalidRedirectUri")
      expect(onRegister.message).not.toBe("")
      const registered = yield* client.register(webClient)
      const onUpdate = yield* Effect.flip(client.update(registered, { redirect_uris: ["javascript:alert(1)"] }))
      expect(onUpdate._tag).toBe("InvalidRedirectUri")
    })
  )

  it.scopedLive("R7591-3.2.2-e invalid metadata is InvalidClientMetadata, on register and on update", () =>
    Effect.gen(function* () {
      const server = yield* ourServer()
      const client = yield* clientFor(server.registrationEndpoint)
      const onRegister = yield* Effect.flip(client.register({ ...webClient, grant_types: ["urn:example:unsupported"] }))
      expect(onRegister._tag).toBe("InvalidClientMetadata")
      const registered = yield* client.register(webClient)
      const onUpdate = yield* Effect.flip(client.update(registered, { client_uri: "not a url" }))
      expect(onUpdate._tag).toBe("InvalidClientMetadata")
    })
  )

  it.scopedLive("R7592-2.2-f D7 a client_secret that does not match is InvalidRequest", () =>
    Effect.gen(function* () {
      const server = yield* ourServer()
      const client = yield* clientFor(server.registrationEndpoint)
      const registered = yield* client.register(webClient)
      const error = yield* Effect.flip(
        client.update({ ...registered, clientSecret: Redacted.make("a-secret-of-my-own") }, { client_name: "x" })
      )
      expect(error._tag).toBe("InvalidRequest")
      expect(error.message).not.toContain("a-secret-of-my-own")
    })
  )

  it.scopedLive("R7592-2.2-k R7592-2.3-h D3 a permission refusal is InsufficientScope", () =>
    Effect.gen(function* () {
      const server = yield* ourServer({
        services: { permissionPolicy: PermissionPolicy.layerFromPredicate((_, operation) => operation === "read") }
      })
      const client = yield* clientFor(server.registrationEndpoint)
      const registered = yield* client.register(webClient)
      yield* client.read(registered)
      const onUpdate = yield* Effect.flip(client.update(registered, { client_name: "x" }))
      expect(onUpdate._tag).toBe("InsufficientScope")
      const onDelete = yield* Effect.flip(client.delete(registered))
      expect(onDelete._tag).toBe("InsufficientScope")
    })
  )

  it.scopedLive("R7592-2.3-e D4 delete disabled is MethodNotAllowed with allow [GET, PUT]", () =>
    Effect.gen(function* () {
      const server = yield* ourServer({ deleteEnabled: false })
      const client = yield* clientFor(server.registrationEndpoint)
      const registered = yield* client.register(webClient)
      const error = yield* Effect.flip(client.delete(registered))
      if (error._tag !== "MethodNotAllowed") throw new Error(`expected MethodNotAllowed, got ${error._tag}`)
      expect(error.allow).toEqual(["GET", "PUT"])
      // Still registered.
      yield* client.read(registered)
    })
  )

  it.scopedLive("D22 R7591-3.2.2-a a static initial access token: missing is MissingToken, wrong is InvalidToken", () =>
    Effect.gen(function* () {
      const server = yield* ourServer({ services: { initialAccessTokens: InitialAccessTokens.layerStatic(["t"]) } })
      const anonymous = yield* clientFor(server.registrationEndpoint)
      expect((yield* Effect.flip(anonymous.register(webClient)))._tag).toBe("MissingToken")

      const wrong = yield* clientFor(server.registrationEndpoint, { initialAccessToken: Redacted.make("wrong") })
      const refused = yield* Effect.flip(wrong.register(webClient))
      expect(refused._tag).toBe("InvalidToken")
      expect(refused.message).not.toContain("wrong")

      const right = yield* clientFor(server.registrationEndpoint, { initialAccessToken: Redacted.make("t") })
      const registered = yield* right.register(webClient)
      // The RAT, not the initial access token, manages the registration.
      yield* right.read(registered)
      // A per-call token takes precedence over the configured one.
      yield* wrong.register(webClient, { initialAccessToken: Redacted.make("t") })
      expect((yield* Effect.flip(right.register(webClient, { initialAccessToken: Redacted.make("x") })))._tag).toBe(
        "InvalidToken"
      )
    })
  )

  it.scopedLive("D18 a body over maxBodyBytes is PayloadTooLarge, with the server's limit", () =>
    Effect.gen(function* () {
      const server = yield* ourServer({ maxBodyBytes: 256 })
      const client = yield* clientFor(server.registrationEndpoint)
      const error = yield* Effect.flip(client.register({ ...webClient, client_name: "x".repeat(1000) }))
      if (error._tag !== "PayloadTooLarge") throw new Error(`expected PayloadTooLarge, got ${error._tag}`)
      expect(error.limit).toBe(256)
      const registered = yield* client.register(webClient)
      expect((yield* Effect.flip(client.update(registered, { client_name: "y".repeat(1000) })))._tag).toBe(
        "PayloadTooLarge"
      )
    })
  )
})

// ---------------------------------------------------------------------------
// against stub servers

describe("RegistrationClient against other servers", () => {
  it.scopedLive("D20 a 500 is a RegistrationClientError naming the status and code, never a secret", () =>
    Effect.gen(function* () {
      const stub = yield* stubServer(() => json(500, { error: "server_error", error_description: "try later" }))
      const client = yield* clientFor(`${stub.base}/register`, {
        initialAccessToken: Redacted.make("initial-token-secret")
      })
      const error = yield* Effect.flip(client.register(webClient))
      if (error._tag !== "RegistrationClientError")
        throw new Error(`expected RegistrationClientError, got ${error._tag}`)
      expect(error.reason).toBe("UnexpectedStatus")
      expect(error.operation).toBe("register")
      expect(error.status).toBe(500)
      expect(error.error).toBe("server_error")
      expect(error.message).toBe("register failed: UnexpectedStatus (HTTP 500 server_error): try later")
      // The token was sent, and appears nowhere in the error.
      expect(stub.requests[0]?.headers.authorization).toBe("Bearer initial-token-secret")
      expect(JSON.stringify(error)).not.toContain("initial-token-secret")
      expect(String(error)).not.toContain("initial-token-secret")

      const registration: RegistrationClient.Registration = {
        clientId: "c",
        clientSecret: Redacted.make("client-secret-value"),
        clientIdIssuedAt: undefined,
        clientSecretExpiresAt: 0,
        registrationAccessToken: Redacted.make("rat-secret-value"),
        registrationClientUri: `${stub.base}/register/c`,
        metadata: { client_name: "c" }
      }
      const onUpdate = yield* Effect.flip(client.update(registration, {}))
      expect(onUpdate._tag).toBe("RegistrationClientError")
      for (const secret of ["client-secret-value", "rat-secret-value"]) {
        expect(JSON.stringify(onUpdate)).not.toContain(secret)
        expect(String(onUpdate)).not.toContain(secret)
      }
    })
  )

  it.scopedLive("an unknown status without a JSON body, and an unknown error code, are RegistrationClientErrors", () =>
    Effect.gen(function* () {
      const stub = yield* stubServer((request) =>
        request.method === "POST"
          ? { status: 404, headers: { "content-type": "text/html" }, body: "<h1>Not Found</h1>" }
          : json(400, { error: "invalid_something" })
      )
      const client = yield* clientFor(`${stub.base}/register`)
      const notFound = yield* Effect.flip(client.register(webClient))
      expect(notFound).toMatchObject({ _tag: "RegistrationClientError", reason: "UnexpectedStatus", status: 404 })
      const registration: RegistrationClient.Registration = {
        clientId: "c",
        clientSecret: undefined,
        clientIdIssuedAt: undefined,
        clientSecretExpiresAt: undefined,
        registrationAccessToken: Redacted.make("rat"),
        registrationClientUri: `${stub.base}/register/c`,
        metadata: {}
      }
      const unknown = yield* Effect.flip(client.read(registration))
      expect(unknown).toMatchObject({ _tag: "RegistrationClientError", status: 400, error: "invalid_something" })
    })
  )

  it.scopedLive("a transport failure is a RegistrationClientError with reason Transport", () =>
    Effect.gen(function* () {
      // A port that was listening a moment ago and no longer is.
      const stub = yield* stubServer(() => json(201, {}))
      stub.close()
      yield* Effect.sleep("50 millis")
      const client = yield* clientFor(`${stub.base}/register`)
      const error = yield* Effect.flip(client.register(webClient))
      expect(error).toMatchObject({ _tag: "RegistrationClientError", reason: "Transport", operation: "register" })
      expect(error.message).toContain("ECONNREFUSED")
    })
  )

  it.scopedLive("RFC 6750 errors told only in the WWW-Authenticate challenge are decoded too", () =>
    Effect.gen(function* () {
      const stub = yield* stubServer((request) =>
        request.headers.authorization === undefined
          ? { status: 401, headers: { "www-authenticate": 'Bearer realm="as"' } }
          : request.method === "GET"
            ? { status: 401, headers: { "www-authenticate": 'Bearer realm="as", error="invalid_token"' } }
            : request.method === "PUT"
              ? {
                  status: 403,
                  headers: { "www-authenticate": 'Bearer error="insufficient_scope", error_description="read only"' }
                }
              : { status: 400, headers: { "www-authenticate": 'Bearer error="invalid_request"' } }
      )
      const client = yield* clientFor(`${stub.base}/register`)
      expect((yield* Effect.flip(client.register(webClient)))._tag).toBe("MissingToken")
      const registration: RegistrationClient.Registration = {
        clientId: "c",
        clientSecret: undefined,
        clientIdIssuedAt: undefined,
        clientSecretExpiresAt: undefined,
        registrationAccessToken: Redacted.make("rat"),
        registrationClientUri: `${stub.base}/register/c`,
        metadata: {}
      }
      expect((yield* Effect.flip(client.read(registration)))._tag).toBe("InvalidToken")
      expect(yield* Effect.flip(client.update(registration, {}))).toMatchObject({
        _tag: "InsufficientScope",
        description: "read only"
      })
      expect(yield* Effect.flip(client.delete(registration))).toMatchObject({
        _tag: "InvalidRequest",
        challenge: true
      })
    })
  )

  it.scopedLive(
    "tolerates extra members, null members, a missing client_secret and 200 instead of 201; adopts rotated credentials",
    () =>
      Effect.gen(function* () {
        let reads = 0
        const stub = yield* stubServer((request, base) => {
          if (request.method === "POST") {
            return json(200, {
              client_id: "abc",
              client_secret: "s1",
              client_secret_expires_at: 0,
              registration_access_token: "rat-1",
              registration_client_uri: `${base}/clients/abc`,
              logo_uri: null,
              x_vendor_flag: { nested: true },
              ...parseObject(request.body)
            })
          }
          if (request.method === "GET") {
            reads++
            // First read: a rotated secret and token; second: neither echoed.
            return reads === 1
              ? json(200, {
                  client_id: "abc",
                  client_secret: "s2",
                  client_secret_expires_at: 1_900_000_000,
                  registration_access_token: "rat-2",
                  registration_client_uri: `${base}/clients/abc`,
                  client_name: "Stub",
                  x_vendor_flag: { nested: true }
                })
              : json(200, { client_id: "abc", client_name: "Stub" })
          }
          if (request.method === "PUT") return json(200, { ...parseObject(request.body), client_id: "abc" })
          return { status: 204 }
        })
        const client = yield* clientFor(`${stub.base}/register`)
        const registered = yield* client.register({ client_name: "Stub" })
        expect(value(registered.clientSecret)).toBe("s1")
        expect(registered.metadata).toEqual({ client_name: "Stub", x_vendor_flag: { nested: true } })

        const rotated = yield* client.read(registered)
        expect(value(rotated.clientSecret)).toBe("s2")
        expect(rotated.clientSecretExpiresAt).toBe(1_900_000_000)
        expect(value(rotated.registrationAccessToken)).toBe("rat-2")
        expect(stub.requests[1]?.headers.authorization).toBe("Bearer rat-1")

        // Nothing echoed: the secret (client_secret_basic by default) and token are kept.
        const kept = yield* client.read(rotated)
        expect(stub.requests[2]?.headers.authorization).toBe("Bearer rat-2")
        expect(value(kept.clientSecret)).toBe("s2")
        expect(value(kept.registrationAccessToken)).toBe("rat-2")
        expect(kept.registrationClientUri).toBe(`${stub.base}/clients/abc`)
        expect(kept.clientSecretExpiresAt).toBe(1_900_000_000)

        // Extension members the server returned are sent back (R7592-2.2-b).
        yield* client.update(rotated, {})
        expect(parseObject(stub.requests[3]?.body ?? "")).toEqual({
          client_id: "abc",
          client_secret: "s2",
          client_name: "Stub",
          x_vendor_flag: { nested: true }
        })
        yield* client.delete(kept)
        expect(stub.requests[4]?.method).toBe("DELETE")
      })
  )

  it.scopedLive("a registration from a server without RFC 7592 is kept, and cannot be managed", () =>
    Effect.gen(function* () {
      const stub = yield* stubServer(() => json(201, { client_id: "plain", client_id_issued_at: 1_700_000_000 }))
      const client = yield* clientFor(`${stub.base}/register`)
      const registered = yield* client.register({ client_name: "Plain" })
      expect(registered).toMatchObject({
        clientId: "plain",
        clientSecret: undefined,
        clientIdIssuedAt: 1_700_000_000,
        registrationAccessToken: undefined,
        registrationClientUri: undefined
      })
      const calls: ReadonlyArray<Effect.Effect<unknown, RegistrationClient.ClientError>> = [
        client.read(registered),
        client.update(registered, {}),
        client.delete(registered)
      ]
      for (const call of calls) {
        expect(yield* Effect.flip(call)).toMatchObject({ _tag: "RegistrationClientError", reason: "NotManageable" })
      }
      expect(stub.requests).toHaveLength(1)
    })
  )

  it.scopedLive("a success body that is not a client information response is InvalidResponse, values unquoted", () =>
    Effect.gen(function* () {
      const stub = yield* stubServer((request, base) =>
        request.method === "POST"
          ? request.body.includes("html")
            ? { status: 201, body: "<html>" }
            : json(201, {
                client_id: "c",
                client_secret: 1234567890,
                registration_access_token: "rat",
                registration_client_uri: `${base}/c`,
                contacts: "not-a-list"
              })
          : json(200, { client_id: "someone-else", registration_access_token: "rat" })
      )
      const client = yield* clientFor(`${stub.base}/register`)
      expect(yield* Effect.flip(client.register({ client_name: "html" }))).toMatchObject({
        _tag: "RegistrationClientError",
        reason: "InvalidResponse",
        status: 201
      })
      const invalid = yield* Effect.flip(client.register({ client_name: "json" }))
      expect(invalid).toMatchObject({ _tag: "RegistrationClientError", reason: "InvalidResponse" })
      expect(invalid.message).toContain("client_secret")
      expect(invalid.message).toContain("contacts")
      expect(invalid.message).not.toContain("1234567890")

      // R7592-2.1-d: a changed client_id is refused.
      const registration: RegistrationClient.Registration = {
        clientId: "c",
        clientSecret: undefined,
        clientIdIssuedAt: undefined,
        clientSecretExpiresAt: undefined,
        registrationAccessToken: Redacted.make("rat"),
        registrationClientUri: `${stub.base}/c`,
        metadata: {}
      }
      const changed = yield* Effect.flip(client.read(registration))
      expect(changed).toMatchObject({ _tag: "RegistrationClientError", reason: "InvalidResponse" })
      expect(changed.message).toContain("client_id")
    })
  )

  it.scopedLive("a 405 without an Allow header gives an empty allow list; a metadata error on read is unexpected", () =>
    Effect.gen(function* () {
      const stub = yield* stubServer((request) =>
        request.method === "DELETE"
          ? json(405, { error: "invalid_request" })
          : json(400, { error: "invalid_redirect_uri" })
      )
      const client = yield* clientFor(`${stub.base}/register`)
      const registration: RegistrationClient.Registration = {
        clientId: "c",
        clientSecret: undefined,
        clientIdIssuedAt: undefined,
        clientSecretExpiresAt: undefined,
        registrationAccessToken: Redacted.make("rat"),
        registrationClientUri: `${stub.base}/c`,
        metadata: {}
      }
      expect(yield* Effect.flip(client.delete(registration))).toMatchObject({ _tag: "MethodNotAllowed", allow: [] })
      expect(yield* Effect.flip(client.read(registration))).toMatchObject({
        _tag: "RegistrationClientError",
        reason: "UnexpectedStatus"
      })
      expect((yield* Effect.flip(client.update(registration, {})))._tag).toBe("InvalidRedirectUri")
    })
  )
})

// ---------------------------------------------------------------------------
// the example

const runExample = (args: ReadonlyArray<string>) =>
  Effect.async<{ readonly code: number | null; readonly stdout: string; readonly stderr: string }>((resume) => {
    const child = spawn("node", ["--import", "tsx", "examples/typed-client.ts", ...args], {
      cwd: root,
      stdio: "pipe",
      env: { ...process.env, DCR_REGISTRATION_ENDPOINT: "", DCR_INITIAL_ACCESS_TOKEN: "" }
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")))
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")))
    child.once("exit", (code) => resume(Effect.succeed({ code, stdout, stderr })))
    return Effect.sync(() => child.kill())
  })

describe("examples/typed-client.ts", () => {
  it.scopedLive("drives register → read → update → delete against a live server, printing no secret", () =>
    Effect.gen(function* () {
      const server = yield* ourServer()
      const { code, stdout, stderr } = yield* runExample([server.registrationEndpoint])
      expect(stderr).toBe("")
      expect(code).toBe(0)
      const lines = stdout.trimEnd().split("\n")
      expect(lines).toHaveLength(7)
      expect(lines[0]).toBe(`registration endpoint: ${server.registrationEndpoint}`)
      const registered =
        /^registered: client_id=(\S+) client_secret=sha256:[0-9a-f]{8} registration_access_token=sha256:([0-9a-f]{8})$/.exec(
          lines[1] ?? ""
        )
      if (registered === null) throw new Error(`unexpected line: ${lines[1]}`)
      const clientId = registered[1]
      expect(lines[2]).toBe(`  configuration endpoint: ${server.url}/register/${clientId}`)
      expect(lines[3]).toBe(
        'read: client_name="Typed Client Example" scope="openid profile" token_endpoint_auth_method=client_secret_basic'
      )
      expect(lines[4]).toMatch(
        /^updated: client_name="Typed Client Example, renamed" scope=\(removed\) registration_access_token=sha256:[0-9a-f]{8} \(rotated\)$/
      )
      expect(lines[4]).not.toContain(`sha256:${registered[2]}`)
      expect(lines[5]).toBe(`deleted: ${clientId}`)
      expect(lines[6]).toBe("read after delete: refused with InvalidToken")
      // D15: secrets are 43 base64url characters; none is printed.
      expect(stdout).not.toMatch(/[A-Za-z0-9_-]{43}/)
      // The registration is really gone.
      const gone = yield* Effect.promise(() => fetch(`${server.url}/register/${clientId}`))
      expect(gone.status).toBe(401)
    })
  )

  it.scopedLive("exits 1 with one line naming the error when registration is refused", () =>
    Effect.gen(function* () {
      const server = yield* ourServer({ services: { initialAccessTokens: InitialAccessTokens.layerStatic(["t"]) } })
      const { code, stdout, stderr } = yield* runExample([server.registrationEndpoint])
      expect(code).toBe(1)
      expect(stdout).toBe(`registration endpoint: ${server.registrationEndpoint}\n`)
      expect(stderr).toBe("failed: MissingToken: authentication required\n")
    })
  )
})
