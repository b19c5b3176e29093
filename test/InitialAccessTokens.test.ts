/**
 * Initial access tokens (D22, R7591-3.2.2-a): the three registration modes
 * through HTTP, expiry under TestClock through `Protocol.handle`, use counts
 * (also under concurrency), and the registration policy an issued token
 * carries, enforced at registration and again at every update.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option, Redacted, TestClock } from "effect"
import * as ClientStore from "../src/ClientStore.js"
import * as Credentials from "../src/Credentials.js"
import * as Dcr from "../src/Dcr.js"
import * as InitialAccessTokens from "../src/InitialAccessTokens.js"
import * as Protocol from "../src/Protocol.js"
import type { RegistrationPolicy } from "../src/RegistrationPolicy.js"
import {
  publicUrl,
  serversDisposedAfterEach,
  type TestServer,
  updateBodyFrom,
  webClient,
  expectInvalidToken,
  fromHttp,
  type Reply
} from "./support/http.js"
import { parseObject } from "./support/json.js"

const serve = serversDisposedAfterEach()

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/** D5 / R6750-3.1-e: 401 with a bare `Bearer realm` challenge and no error code anywhere. */
const expectBareChallenge = (reply: Reply): void => {
  expect(reply.status).toBe(401)
  expect(reply.challenge).toBe(`Bearer realm="${publicUrl}"`)
  expect(reply.json?.error).toBeUndefined()
}

/** D6 / R6750-3.1-b: 400 invalid_request with a Bearer challenge. */
const expectInvalidRequestChallenge = (reply: Reply): void => {
  expect(reply.status).toBe(400)
  expect(reply.json?.error).toBe("invalid_request")
  expect(reply.challenge ?? "").toMatch(/^Bearer .*error="invalid_request"/)
}

const postRegister = (server: TestServer, token: string | undefined, metadata: unknown = webClient) =>
  server
    .request("POST", "/register", token === undefined ? { json: metadata } : { json: metadata, token })
    .then(fromHttp)

const mint = (server: TestServer, options?: InitialAccessTokens.MintOptions) =>
  server
    .run(Effect.flatMap(InitialAccessTokens.InitialAccessTokens, (tokens) => tokens.mint(options)))
    .then((minted) => ({ ...minted, value: Redacted.value(minted.token) }))

const initialTokenRecord = (server: TestServer, tokenId: string) =>
  server.run(Effect.flatMap(ClientStore.ClientStore, (store) => store.findInitialToken(tokenId)))

const storedClient = (server: TestServer, clientId: string) =>
  server.run(Effect.flatMap(ClientStore.ClientStore, (store) => store.findById(clientId)))

/**
 * Every client in the store. The test credentials number every id they hand
 * out (`client-1`, `secret-2`, `rat-3`, …), so probing the first few hundred
 * client ids finds every stored client.
 */
const storedClientIds = <R>(store: Effect.Effect<ClientStore.ClientStoreService, never, R>) =>
  Effect.flatMap(store, (s) =>
    Effect.filter(
      Array.from({ length: 300 }, (_, i) => `client-${i + 1}`),
      (id) => Effect.map(s.findById(id), Option.isSome)
    )
  )

const stringOf = (value: unknown): string => {
  if (typeof value !== "string") throw new Error(`expected a string, got ${JSON.stringify(value)}`)
  return value
}

// Transport-neutral requests, for tests that need TestClock as the clock.

const handle = (token: string | undefined, metadata: unknown = webClient) =>
  Effect.map(
    Protocol.handle({
      method: "POST",
      url: "/register",
      authorization: token === undefined ? [] : [`Bearer ${token}`],
      contentType: "application/json",
      body: new TextEncoder().encode(JSON.stringify(metadata))
    }),
    (response): Reply => ({
      status: response.status,
      challenge: response.headers["www-authenticate"],
      json: response.body === undefined ? undefined : parseObject(response.body)
    })
  )

const issuedLayer = () =>
  Dcr.layer({
    server: { publicUrl },
    credentials: Credentials.layerTest,
    initialAccessTokens: InitialAccessTokens.layerIssued
  })

const mintEffect = (options?: InitialAccessTokens.MintOptions) =>
  Effect.flatMap(InitialAccessTokens.InitialAccessTokens, (tokens) => tokens.mint(options))

/** 2025-01-01T00:00:00Z */
const start = 1_735_689_600_000

// ---------------------------------------------------------------------------
// Open mode
// ---------------------------------------------------------------------------

describe("D22 open registration (the default)", () => {
  it("D22 registration needs no initial access token", async () => {
    const server = serve()
    const reply = await postRegister(server, undefined)
    expect(reply.status).toBe(201)
    expect(reply.json?.client_id).toBe("client-1")
  })

  it("D22 an Authorization header is ignored: any token, even a malformed one, registers", async () => {
    const server = serve()
    expect((await postRegister(server, "whatever")).status).toBe(201)
    const malformed = await server.request("POST", "/register", {
      json: webClient,
      headers: [["authorization", "Bearer"]]
    })
    expect(malformed.status).toBe(201)
  })
})

// ---------------------------------------------------------------------------
// Static mode
// ---------------------------------------------------------------------------

describe("D22 static initial access tokens", () => {
  const staticServer = () => serve({ initialAccessTokens: InitialAccessTokens.layerStatic(["tok-1", "tok-2"]) })

  it("D22 either configured token registers, any number of times", async () => {
    const server = staticServer()
    expect((await postRegister(server, "tok-1")).status).toBe(201)
    expect((await postRegister(server, "tok-2")).status).toBe(201)
    expect((await postRegister(server, "tok-1")).status).toBe(201)
  })

  it("R7591-3.2.2-a D22 a wrong token is 401 invalid_token with a Bearer challenge, and nothing is stored", async () => {
    const server = staticServer()
    for (const token of ["tok-3", "tok-", "tok-12", "TOK-1"]) expectInvalidToken(await postRegister(server, token))
    expect(await server.run(storedClientIds(ClientStore.ClientStore))).toStrictEqual([])
  })

  it("D5 R6750-3.1-e no token is 401 with a bare Bearer realm challenge and no error", async () => {
    const server = staticServer()
    const reply = await postRegister(server, undefined)
    expectBareChallenge(reply)
    expect(await server.run(storedClientIds(ClientStore.ClientStore))).toStrictEqual([])
  })

  it("D5 a non-Bearer scheme counts as no token: bare challenge", async () => {
    const server = staticServer()
    const response = await server.request("POST", "/register", {
      json: webClient,
      headers: { authorization: `Basic ${Buffer.from("tok-1:").toString("base64")}` }
    })
    expectBareChallenge(fromHttp(response))
  })

  it("D6 R6750-3.1-b `Bearer` with no token is 400 invalid_request with a challenge", async () => {
    const server = staticServer()
    for (const value of ["Bearer", "Bearer ", "Bearer tok-1 tok-2", 'Bearer "tok-1"']) {
      const response = await server.request("POST", "/register", { json: webClient, headers: { authorization: value } })
      expectInvalidRequestChallenge(fromHttp(response))
    }
  })

  it("D6 two Authorization headers are 400 invalid_request, even if both carry a valid token", async () => {
    const server = staticServer()
    const response = await server.request("POST", "/register", {
      json: webClient,
      headers: [
        ["authorization", "Bearer tok-1"],
        ["authorization", "Bearer tok-2"]
      ]
    })
    expectInvalidRequestChallenge(fromHttp(response))
  })

  it.effect("D6 two Authorization values given to Protocol.handle are 400 invalid_request", () =>
    Effect.gen(function* () {
      const response = yield* Protocol.handle({
        method: "POST",
        url: "/register",
        authorization: ["Bearer tok-1", "Bearer tok-1"],
        contentType: "application/json",
        body: new TextEncoder().encode(JSON.stringify(webClient))
      })
      expectInvalidRequestChallenge({
        status: response.status,
        challenge: response.headers["www-authenticate"],
        json: response.body === undefined ? undefined : parseObject(response.body)
      })
    }).pipe(
      Effect.provide(
        Dcr.layer({
          server: { publicUrl },
          credentials: Credentials.layerTest,
          initialAccessTokens: InitialAccessTokens.layerStatic(["tok-1", "tok-2"])
        })
      )
    )
  )

  it("D22 an issued (minted) token is not accepted in static mode", async () => {
    const server = staticServer()
    const minted = await mint(server)
    expectInvalidToken(await postRegister(server, minted.value))
  })
})

// ---------------------------------------------------------------------------
// Issued mode
// ---------------------------------------------------------------------------

describe("D22 issued initial access tokens", () => {
  const issuedServer = () => serve({ initialAccessTokens: InitialAccessTokens.layerIssued })

  it("D22 a minted token registers a client", async () => {
    const server = issuedServer()
    const minted = await mint(server)
    const reply = await postRegister(server, minted.value)
    expect(reply.status).toBe(201)
    const clientId = stringOf(reply.json?.client_id)
    expect(Option.isSome(await storedClient(server, clientId))).toBe(true)
  })

  it("D22 D15 the store holds only the SHA-256 of a minted token", async () => {
    const server = issuedServer()
    const minted = await mint(server, { maxUses: 3 })
    const hashed = await initialTokenRecord(server, Credentials.sha256(minted.value))
    expect(Option.isSome(hashed)).toBe(true)
    expect(Option.map(hashed, (record) => record.usesRemaining)).toStrictEqual(Option.some(3))
    expect(Option.map(hashed, (record) => record.tokenId)).toStrictEqual(Option.some(Credentials.sha256(minted.value)))
    expect(Option.isNone(await initialTokenRecord(server, minted.value))).toBe(true)
  })

  it("R7591-3.2.2-a D22 an unknown token is 401 invalid_token; no token is D5's bare challenge", async () => {
    const server = issuedServer()
    await mint(server)
    expectInvalidToken(await postRegister(server, "never-minted"))
    expectBareChallenge(await postRegister(server, undefined))
    expect(await server.run(storedClientIds(ClientStore.ClientStore))).toStrictEqual([])
  })

  it("D22 a registration access token is not an initial access token", async () => {
    const server = issuedServer()
    const minted = await mint(server)
    const created = await postRegister(server, minted.value)
    expect(created.status).toBe(201)
    expectInvalidToken(await postRegister(server, stringOf(created.json?.registration_access_token)))
  })

  it("D22 by default a token allows one registration", async () => {
    const server = issuedServer()
    const minted = await mint(server)
    expect(minted.maxUses).toBe(1)
    expect((await postRegister(server, minted.value)).status).toBe(201)
    expectInvalidToken(await postRegister(server, minted.value))
  })

  it("D22 maxUses 3: exactly three registrations succeed, the fourth is 401", async () => {
    const server = issuedServer()
    const minted = await mint(server, { maxUses: 3 })
    for (let i = 0; i < 3; i++) expect((await postRegister(server, minted.value)).status).toBe(201)
    expectInvalidToken(await postRegister(server, minted.value))
    expectInvalidToken(await postRegister(server, minted.value))
    expect(await server.run(storedClientIds(ClientStore.ClientStore))).toHaveLength(3)
    const record = await initialTokenRecord(server, Credentials.sha256(minted.value))
    expect(Option.map(record, (r) => r.usesRemaining)).toStrictEqual(Option.some(0))
  })

  it("D22 20 concurrent registrations over HTTP with a maxUses 5 token: exactly 5 × 201 and 15 × 401", async () => {
    const server = issuedServer()
    const minted = await mint(server, { maxUses: 5 })
    const replies = await Promise.all(Array.from({ length: 20 }, () => postRegister(server, minted.value)))
    const created = replies.filter((reply) => reply.status === 201)
    const refused = replies.filter((reply) => reply.status === 401)
    expect(created).toHaveLength(5)
    expect(refused).toHaveLength(15)
    for (const reply of refused) expectInvalidToken(reply)
    const stored = await server.run(storedClientIds(ClientStore.ClientStore))
    expect(stored).toHaveLength(5)
    expect([...stored].sort()).toStrictEqual(created.map((reply) => stringOf(reply.json?.client_id)).sort())
  })

  it.effect("D22 20 concurrent registrations through Protocol.handle: exactly 5 clients stored", () =>
    Effect.gen(function* () {
      const minted = yield* mintEffect({ maxUses: 5 })
      const token = Redacted.value(minted.token)
      const replies = yield* Effect.all(
        Array.from({ length: 20 }, () => handle(token)),
        { concurrency: "unbounded" }
      )
      expect(replies.filter((reply) => reply.status === 201)).toHaveLength(5)
      expect(replies.filter((reply) => reply.status === 401)).toHaveLength(15)
      expect(yield* storedClientIds(ClientStore.ClientStore)).toHaveLength(5)
      const record = yield* Effect.flatMap(ClientStore.ClientStore, (store) =>
        store.findInitialToken(Credentials.sha256(token))
      )
      expect(Option.map(record, (r) => r.usesRemaining)).toStrictEqual(Option.some(0))
    }).pipe(Effect.provide(issuedLayer()))
  )

  it("D22 a registration with invalid metadata does not spend a use", async () => {
    const server = issuedServer()
    const minted = await mint(server, { maxUses: 1 })
    const bad = await postRegister(server, minted.value, { redirect_uris: ["http://evil.example/cb"] })
    expect(bad.status).toBe(400)
    expect(bad.json?.error).toBe("invalid_redirect_uri")
    const badMetadata = await postRegister(server, minted.value, { ...webClient, scope: "not-a-supported-scope" })
    expect(badMetadata.status).toBe(400)
    expect(badMetadata.json?.error).toBe("invalid_client_metadata")
    const record = await initialTokenRecord(server, Credentials.sha256(minted.value))
    expect(Option.map(record, (r) => r.usesRemaining)).toStrictEqual(Option.some(1))
    expect((await postRegister(server, minted.value)).status).toBe(201)
    expectInvalidToken(await postRegister(server, minted.value))
  })

  it("D22 maxUses: undefined is unlimited", async () => {
    const server = issuedServer()
    const minted = await mint(server, { maxUses: undefined })
    expect(minted.maxUses).toBeUndefined()
    for (let i = 0; i < 12; i++) expect((await postRegister(server, minted.value)).status).toBe(201)
    const record = await initialTokenRecord(server, Credentials.sha256(minted.value))
    expect(Option.map(record, (r) => r.usesRemaining)).toStrictEqual(Option.some(undefined))
    expect(await server.run(storedClientIds(ClientStore.ClientStore))).toHaveLength(12)
  })

  it.effect("D22 a token works until its expiry and is 401 from then on (TestClock)", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(start)
      const minted = yield* mintEffect({ expiresInSeconds: 60, maxUses: undefined })
      expect(minted.expiresAt).toBe(start / 1000 + 60)
      const token = Redacted.value(minted.token)
      expect((yield* handle(token)).status).toBe(201)
      yield* TestClock.adjust("59 seconds")
      expect((yield* handle(token)).status).toBe(201)
      yield* TestClock.adjust("1 second")
      expectInvalidToken(yield* handle(token))
      yield* TestClock.adjust("1 hour")
      expectInvalidToken(yield* handle(token))
      expect(yield* storedClientIds(ClientStore.ClientStore)).toHaveLength(2)
    }).pipe(Effect.provide(issuedLayer()))
  )

  it.effect("D22 by default a token lives one day (TestClock)", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(start)
      const first = yield* mintEffect()
      const second = yield* mintEffect()
      expect(first.expiresAt).toBe(start / 1000 + 86_400)
      yield* TestClock.adjust("86399 seconds")
      expect((yield* handle(Redacted.value(first.token))).status).toBe(201)
      yield* TestClock.adjust("1 second")
      expectInvalidToken(yield* handle(Redacted.value(second.token)))
    }).pipe(Effect.provide(issuedLayer()))
  )

  it.effect("D22 expiresInSeconds 0 never expires (TestClock, 100 years)", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(start)
      const minted = yield* mintEffect({ expiresInSeconds: 0 })
      expect(minted.expiresAt).toBe(0)
      yield* TestClock.adjust("36500 days")
      expect((yield* handle(Redacted.value(minted.token))).status).toBe(201)
    }).pipe(Effect.provide(issuedLayer()))
  )

  it.effect("D22 an expired token with uses left does not spend a use and stores nothing", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(start)
      const minted = yield* mintEffect({ expiresInSeconds: 10, maxUses: 2 })
      const token = Redacted.value(minted.token)
      yield* TestClock.adjust("10 seconds")
      expectInvalidToken(yield* handle(token))
      const record = yield* Effect.flatMap(ClientStore.ClientStore, (store) =>
        store.findInitialToken(Credentials.sha256(token))
      )
      expect(Option.map(record, (r) => r.usesRemaining)).toStrictEqual(Option.some(2))
      expect(yield* storedClientIds(ClientStore.ClientStore)).toStrictEqual([])
    }).pipe(Effect.provide(issuedLayer()))
  )
})

// ---------------------------------------------------------------------------
// Registration policy
// ---------------------------------------------------------------------------

describe("D22 the registration policy of an issued token", () => {
  const policy: RegistrationPolicy = {
    redirectUriHosts: ["app.example.com", "*.tenant.example"],
    scopes: ["openid"],
    grantTypes: ["authorization_code"],
    fixed: { software_id: "com.example.forced" }
  }
  const allowed = { redirect_uris: ["https://app.example.com/cb"], scope: "openid", client_name: "Policy Client" }

  const policyServer = async (maxUses: number | undefined = undefined) => {
    const server = serve({ initialAccessTokens: InitialAccessTokens.layerIssued })
    const minted = await mint(server, { maxUses, policy })
    return { server, token: minted.value }
  }

  it("D22 a redirect URI on a host outside the policy is 400 invalid_redirect_uri", async () => {
    const { server, token } = await policyServer()
    for (const uri of [
      "https://evil.example/cb",
      "https://app.example.com.evil.example/cb",
      "https://eviltenant.example/cb",
      "com.example.app:/cb"
    ]) {
      const reply = await postRegister(server, token, { ...allowed, redirect_uris: [uri] })
      expect(reply.status, uri).toBe(400)
      expect(reply.json?.error, uri).toBe("invalid_redirect_uri")
    }
    // One bad URI among good ones is enough.
    const mixed = await postRegister(server, token, {
      ...allowed,
      redirect_uris: ["https://app.example.com/cb", "https://evil.example/cb"]
    })
    expect(mixed.json?.error).toBe("invalid_redirect_uri")
    expect(await server.run(storedClientIds(ClientStore.ClientStore))).toStrictEqual([])
  })

  it("D22 a subdomain of tenant.example is allowed, tenant.example itself is refused", async () => {
    const { server, token } = await policyServer()
    for (const uri of [
      "https://a.tenant.example/cb",
      "https://deep.a.tenant.example/cb",
      "https://app.example.com/x"
    ]) {
      const reply = await postRegister(server, token, { ...allowed, redirect_uris: [uri] })
      expect(reply.status, uri).toBe(201)
      expect(reply.json?.redirect_uris).toStrictEqual([uri])
    }
    const bare = await postRegister(server, token, { ...allowed, redirect_uris: ["https://tenant.example/cb"] })
    expect(bare.status).toBe(400)
    expect(bare.json?.error).toBe("invalid_redirect_uri")
  })

  it("D22 a scope the server supports but the policy does not is 400 invalid_client_metadata", async () => {
    const { server, token } = await policyServer()
    for (const scope of ["profile", "openid profile", "email openid"]) {
      const reply = await postRegister(server, token, { ...allowed, scope })
      expect(reply.status, scope).toBe(400)
      expect(reply.json?.error, scope).toBe("invalid_client_metadata")
    }
    expect((await postRegister(server, token, allowed)).status).toBe(201)
  })

  it("D22 a grant type the server supports but the policy does not is 400 invalid_client_metadata", async () => {
    const { server, token } = await policyServer()
    const credentialsOnly = await postRegister(server, token, {
      grant_types: ["client_credentials"],
      scope: "openid"
    })
    expect(credentialsOnly.status).toBe(400)
    expect(credentialsOnly.json?.error).toBe("invalid_client_metadata")
    const mixed = await postRegister(server, token, {
      ...allowed,
      grant_types: ["authorization_code", "refresh_token"]
    })
    expect(mixed.status).toBe(400)
    expect(mixed.json?.error).toBe("invalid_client_metadata")
  })

  it("D22 software_id is forced in the 201 body even when the client sent another, and when it sent none", async () => {
    const { server, token } = await policyServer()
    const other = await postRegister(server, token, { ...allowed, software_id: "com.example.mine" })
    expect(other.status).toBe(201)
    expect(other.json?.software_id).toBe("com.example.forced")
    const none = await postRegister(server, token, allowed)
    expect(none.status).toBe(201)
    expect(none.json?.software_id).toBe("com.example.forced")
    const stored = await storedClient(server, stringOf(other.json?.client_id))
    expect(Option.map(stored, (client) => client.metadata.software_id)).toStrictEqual(Option.some("com.example.forced"))
  })

  it("D22 an update cannot escape the policy, even after the token is used up; the client is unchanged", async () => {
    const { server, token } = await policyServer(1)
    const created = await postRegister(server, token, { ...allowed, software_id: "com.example.mine" })
    expect(created.status).toBe(201)
    const body = created.json ?? {}
    const clientId = stringOf(body.client_id)
    let rat = stringOf(body.registration_access_token)
    const path = `/register/${clientId}`
    const before = await storedClient(server, clientId)
    expect(Option.isSome(before)).toBe(true)
    // The token is spent: what follows is enforced from the stored client, not the token.
    expectInvalidToken(await postRegister(server, token, allowed))

    const escapes: ReadonlyArray<readonly [string, Record<string, unknown>, string]> = [
      ["another host", { redirect_uris: ["https://evil.example/cb"] }, "invalid_redirect_uri"],
      ["tenant.example itself", { redirect_uris: ["https://tenant.example/cb"] }, "invalid_redirect_uri"],
      ["another scope", { scope: "openid profile" }, "invalid_client_metadata"],
      [
        "the client_credentials grant",
        { grant_types: ["authorization_code", "client_credentials"] },
        "invalid_client_metadata"
      ],
      [
        "only client_credentials",
        { grant_types: ["client_credentials"], response_types: null, redirect_uris: null },
        "invalid_client_metadata"
      ]
    ]
    for (const [what, changes, code] of escapes) {
      const response = await server.request("PUT", path, { token: rat, json: updateBodyFrom(body, changes) })
      expect(response.status, what).toBe(400)
      expect(response.json?.error, what).toBe(code)
      const after = await storedClient(server, clientId)
      expect(
        Option.map(after, (client) => client.metadata),
        what
      ).toStrictEqual(Option.map(before, (client) => client.metadata))
      expect(
        Option.map(after, (client) => client.version),
        what
      ).toStrictEqual(Option.some(1))
    }

    // Another software_id: refused, or accepted with the forced value kept.
    for (const changes of [{ software_id: "com.example.other" }, { software_id: null }]) {
      const response = await server.request("PUT", path, { token: rat, json: updateBodyFrom(body, changes) })
      expect([200, 400]).toContain(response.status)
      if (response.status === 200) {
        expect(response.json?.software_id).toBe("com.example.forced")
        rat = stringOf(response.json?.registration_access_token)
      }
      const read = await server.request("GET", path, { token: rat })
      expect(read.status).toBe(200)
      expect(read.json?.software_id).toBe("com.example.forced")
      expect(read.json?.redirect_uris).toStrictEqual(allowed.redirect_uris)
      expect(read.json?.scope).toBe("openid")
      expect(read.json?.grant_types).toStrictEqual(["authorization_code"])
    }

    // An update that stays within the policy still works.
    const inside = await server.request("PUT", path, {
      token: rat,
      json: updateBodyFrom(body, { redirect_uris: ["https://x.tenant.example/cb"], client_name: "Renamed" })
    })
    expect(inside.status).toBe(200)
    expect(inside.json?.redirect_uris).toStrictEqual(["https://x.tenant.example/cb"])
    expect(inside.json?.software_id).toBe("com.example.forced")
  })
})
