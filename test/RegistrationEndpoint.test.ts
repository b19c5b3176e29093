/**
 * HTTP-level tests of the RFC 7591 registration endpoint (POST /register)
 * through the `@effect/platform` adapter, driven in-process. Each test is
 * named after the SPEC rule it pins.
 */
import { Effect, Option } from "effect"
import { describe, expect, it } from "vitest"
import * as ClientStore from "../src/ClientStore.js"
import * as Credentials from "../src/Credentials.js"
import {
  serversDisposedAfterEach,
  register,
  registrationEndpoint,
  type TestResponse,
  type TestServer,
  webClient
} from "./support/http.js"

/** A test server disposed after the test. */
const serve = serversDisposedAfterEach()

const expectNoStore = (response: TestResponse): void => {
  expect(response.headers.get("cache-control")).toBe("no-store")
  expect(response.headers.get("pragma")).toBe("no-cache")
}

const expectJsonError = (response: TestResponse, status: number, code: string): void => {
  expect(response.status).toBe(status)
  expect(response.json?.error).toBe(code)
  expect(response.headers.get("content-type")).toMatch(/^application\/json/)
  expectNoStore(response)
}

const post = (server: TestServer, body: string, contentType?: string): Promise<TestResponse> =>
  server.request("POST", "/register", {
    headers: contentType === undefined ? {} : { "content-type": contentType },
    body
  })

/** The stored record of a client, straight from the store. */
const storedClient = (server: TestServer, clientId: string) =>
  server.run(Effect.flatMap(ClientStore.ClientStore, (store) => store.findById(clientId)))

describe("RFC 7591 §3.2.1 client information response", () => {
  it("R7591-3.2.1-a a successful registration is 201 Created with one application/json object", async () => {
    const server = serve()
    const response = await server.request("POST", "/register", { json: webClient })
    expect(response.status).toBe(201)
    expect(response.headers.get("content-type")).toMatch(/^application\/json(;|$)/)
    const parsed: unknown = JSON.parse(response.text)
    expect(typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)).toBe(true)
  })

  it("R7591-3.2.1-b client_id is present and unique over several registrations", async () => {
    const server = serve()
    const ids = new Set<string>()
    for (let i = 0; i < 5; i++) {
      const { clientId } = await register(server)
      expect(clientId.length).toBeGreaterThan(0)
      ids.add(clientId)
    }
    expect(ids.size).toBe(5)
    expect([...ids]).toEqual(["client-1", "client-4", "client-7", "client-10", "client-13"])
  })

  it("R7591-3.2.1-b client_id is unique with the real credentials too", async () => {
    const server = serve({ credentials: Credentials.layer })
    const ids = new Set<string>()
    for (let i = 0; i < 10; i++) ids.add((await register(server)).clientId)
    expect(ids.size).toBe(10)
  })

  it("R7591-3.2.1-c a client_secret is unique per client", async () => {
    const server = serve({ credentials: Credentials.layer })
    const secrets = new Set<unknown>()
    for (let i = 0; i < 10; i++) secrets.add((await register(server)).body.client_secret)
    expect(secrets.size).toBe(10)
    for (const secret of secrets) expect(typeof secret).toBe("string")
  })

  it("R7591-3.2.1-c a public client (none) gets no client_secret", async () => {
    const server = serve()
    const { body } = await register(server, { ...webClient, token_endpoint_auth_method: "none" })
    expect(body).not.toHaveProperty("client_secret")
    expect(body.token_endpoint_auth_method).toBe("none")
  })

  it("R7591-3.2.1-d client_id_issued_at is an integer number of seconds since the epoch, now", async () => {
    const server = serve()
    const before = Math.floor(Date.now() / 1000)
    const { body } = await register(server)
    const after = Math.ceil(Date.now() / 1000)
    const issuedAt = body.client_id_issued_at
    expect(Number.isInteger(issuedAt)).toBe(true)
    if (typeof issuedAt !== "number") throw new Error("client_id_issued_at missing")
    expect(issuedAt).toBeGreaterThanOrEqual(before)
    expect(issuedAt).toBeLessThanOrEqual(after)
  })

  it("R7591-3.2.1-e client_secret_expires_at is present exactly when client_secret is", async () => {
    const server = serve()
    const methods = ["client_secret_basic", "client_secret_post", "none"]
    for (const method of methods) {
      const { body } = await register(server, { ...webClient, token_endpoint_auth_method: method })
      expect(Object.hasOwn(body, "client_secret_expires_at")).toBe(Object.hasOwn(body, "client_secret"))
      if (Object.hasOwn(body, "client_secret")) {
        expect(body.client_secret_expires_at).toBe(0)
        expect(Number.isInteger(body.client_secret_expires_at)).toBe(true)
      }
    }
    const omitted = await register(server)
    expect(omitted.body.client_secret).toBe("secret-10")
    expect(omitted.body.client_secret_expires_at).toBe(0)
  })

  it("R7591-3.2.1-e with a secret lifetime, client_secret_expires_at is issued_at + lifetime", async () => {
    const server = serve({ server: { clientSecretLifetimeSeconds: 86400 } })
    const { body } = await register(server)
    const issuedAt = body.client_id_issued_at
    if (typeof issuedAt !== "number") throw new Error("client_id_issued_at missing")
    expect(body.client_secret_expires_at).toBe(issuedAt + 86400)
  })

  it("R7591-3.2.1-f all registered metadata is returned, defaults included", async () => {
    const server = serve()
    const requested = {
      redirect_uris: ["https://client.example.org/cb", "http://localhost:8080/cb"],
      client_name: "Full Client",
      client_uri: "https://client.example.org/",
      logo_uri: "https://client.example.org/logo.png",
      tos_uri: "https://client.example.org/tos",
      policy_uri: "https://client.example.org/policy",
      contacts: ["ops@client.example.org"],
      scope: "openid email",
      software_id: "4NRB1-0XZABZI9E6-5SM3R",
      software_version: "2.1"
    }
    const { body } = await register(server, requested)
    expect(body).toEqual({
      ...requested,
      client_id: "client-1",
      client_secret: "secret-2",
      client_id_issued_at: body.client_id_issued_at,
      client_secret_expires_at: 0,
      token_endpoint_auth_method: "client_secret_basic",
      grant_types: ["authorization_code"],
      response_types: ["code"],
      registration_access_token: "rat-3",
      registration_client_uri: `${registrationEndpoint}/client-1`
    })
  })

  it("R7591-3.2.1-f the configured default scope is registered and echoed", async () => {
    const server = serve({ server: { defaultScope: "openid" } })
    const { redirect_uris } = webClient
    const { body } = await register(server, { redirect_uris })
    expect(body.scope).toBe("openid")
  })

  it("R7591-3.2.1-g replaced values are what the response shows and what is stored", async () => {
    const server = serve()
    const { clientId, body } = await register(server, {
      ...webClient,
      redirect_uris: ["https://client.example.org/cb", "https://client.example.org/cb"],
      not_a_metadata_member: true
    })
    expect(body.redirect_uris).toEqual(["https://client.example.org/cb"])
    expect(body).not.toHaveProperty("not_a_metadata_member")
    const stored = await storedClient(server, clientId)
    expect(Option.map(stored, (client) => client.metadata.redirect_uris)).toEqual(
      Option.some(["https://client.example.org/cb"])
    )
  })

  it("R7591-3.2.1-i the 201 carries Cache-Control: no-store and Pragma: no-cache", async () => {
    const server = serve()
    const { response } = await register(server)
    expectNoStore(response)
  })
})

describe("RFC 7591 §3.2.2 registration errors", () => {
  it("R7591-3.2.2-b R7591-3.2.2-h a metadata error is 400 JSON with no-store headers and nothing stored", async () => {
    const server = serve()
    const response = await server.request("POST", "/register", {
      json: { ...webClient, redirect_uris: ["http://evil.example/cb"] }
    })
    expectJsonError(response, 400, "invalid_redirect_uri")
    expect(typeof response.json?.error_description).toBe("string")
    expect(Option.isNone(await storedClient(server, "client-1"))).toBe(true)
  })

  it("R7591-3.2.2-e invalid metadata is 400 invalid_client_metadata", async () => {
    const server = serve()
    for (const change of [{ client_uri: "not a url" }, { contacts: "x" }, { scope: "admin" }]) {
      expectJsonError(
        await server.request("POST", "/register", { json: { ...webClient, ...change } }),
        400,
        "invalid_client_metadata"
      )
    }
  })
})

describe("D4 D16 D18 at the registration endpoint", () => {
  it("D4 GET /register is 405 with Allow: POST", async () => {
    const server = serve()
    const response = await server.request("GET", "/register")
    expectJsonError(response, 405, "invalid_request")
    expect(response.headers.get("allow")).toBe("POST")
  })

  it("D18 a wrong or missing media type is 400 invalid_request and nothing is stored", async () => {
    const server = serve()
    const text = JSON.stringify(webClient)
    for (const contentType of ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]) {
      expectJsonError(await post(server, text, contentType), 400, "invalid_request")
    }
    const noType = await server.request("POST", "/register", { body: new TextEncoder().encode(text) })
    expectJsonError(noType, 400, "invalid_request")
    expect(Option.isNone(await storedClient(server, "client-1"))).toBe(true)
  })

  it("D18 application/json; charset=utf-8 is accepted", async () => {
    const server = serve()
    const response = await post(server, JSON.stringify(webClient), "application/json; charset=utf-8")
    expect(response.status).toBe(201)
  })

  it("D18 non-JSON, arrays, strings, null and invalid UTF-8 are 400 invalid_request", async () => {
    const server = serve()
    for (const body of ["{", "[]", `[${JSON.stringify(webClient)}]`, '"x"', "null", "true", "1", ""]) {
      expectJsonError(await post(server, body, "application/json"), 400, "invalid_request")
    }
    const invalidUtf8 = new Uint8Array([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x3a, 0x31, 0x7d])
    const response = await server.request("POST", "/register", {
      headers: { "content-type": "application/json" },
      body: invalidUtf8
    })
    expectJsonError(response, 400, "invalid_request")
    expect(Option.isNone(await storedClient(server, "client-1"))).toBe(true)
  })

  it("D18 duplicate member names are 400 invalid_request", async () => {
    const server = serve()
    const body = `{"redirect_uris":["https://client.example.org/cb"],"client_name":"a","client_name":"b"}`
    expectJsonError(await post(server, body, "application/json"), 400, "invalid_request")
    expect(Option.isNone(await storedClient(server, "client-1"))).toBe(true)
  })

  it("D18 a body over maxBodyBytes is 413 with a JSON invalid_request body", async () => {
    const server = serve({ server: { maxBodyBytes: 512 } })
    const response = await server.request("POST", "/register", {
      json: { ...webClient, client_name: "x".repeat(600) }
    })
    expectJsonError(response, 413, "invalid_request")
    expect(Option.isNone(await storedClient(server, "client-1"))).toBe(true)
  })

  it("D18 the default limit is 64 KiB", async () => {
    const server = serve()
    const over = await server.request("POST", "/register", {
      json: { ...webClient, client_name: "x".repeat(64 * 1024) }
    })
    expectJsonError(over, 413, "invalid_request")
    const under = await server.request("POST", "/register", {
      json: { ...webClient, client_name: "x".repeat(60 * 1024) }
    })
    expect(under.status).toBe(201)
  })
})
