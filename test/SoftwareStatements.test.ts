/**
 * Software statements (RFC 7591 §2.3, §3.1.1, §3.2.1; D21) over HTTP, through
 * the `@effect/platform` adapter driven in-process. Keys and statements are
 * made here with jose; an issuer's JWK Set is either given inline or served by
 * a local `node:http` server. Each test is named after the SPEC rule it pins.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import { Clock, Effect, FastCheck as fc, Layer } from "effect"
import * as jose from "jose"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import * as SoftwareStatements from "../src/SoftwareStatements.js"
import {
  register,
  serversDisposedAfterEach,
  type TestOptions,
  type TestResponse,
  type TestServer,
  updateBodyFrom,
  webClient
} from "./support/http.js"

// ---------------------------------------------------------------------------
// Keys and statements
// ---------------------------------------------------------------------------

const ISSUER = "https://statements.example.org"

interface SigningKey {
  readonly alg: string
  readonly kid: string
  readonly privateKey: jose.CryptoKey
  /** The public key as a JWK, with `kid` and `alg`. */
  readonly jwk: jose.JWK
}

const makeKey = async (alg: string, kid: string): Promise<SigningKey> => {
  const options = alg === "EdDSA" ? { crv: "Ed25519", extractable: true } : { extractable: true }
  const { privateKey, publicKey } = await jose.generateKeyPair(alg, options)
  const jwk: jose.JWK = { ...(await jose.exportJWK(publicKey)), kid, alg }
  return { alg, kid, privateKey, jwk }
}

const nowSeconds = (): number => Math.floor(Date.now() / 1000)

interface SignOptions {
  /** `null` leaves `iss` out. Default: the trusted issuer. */
  readonly issuer?: string | null
  /** Overrides the `kid` in the protected header. */
  readonly kid?: string
}

/** A compact JWS signed with `key`, with `iss` and `iat` (now) unless the claims say otherwise. */
const sign = async (key: SigningKey, claims: jose.JWTPayload = {}, options: SignOptions = {}): Promise<string> => {
  let jwt = new jose.SignJWT(claims).setProtectedHeader({ alg: key.alg, kid: options.kid ?? key.kid })
  const issuer = options.issuer === undefined ? ISSUER : options.issuer
  if (issuer !== null) jwt = jwt.setIssuer(issuer)
  if (claims.iat === undefined) jwt = jwt.setIssuedAt()
  return jwt.sign(key.privateKey)
}

const base64url = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString("base64url")

/** An unsecured JWT (RFC 7519 §6): `alg: none` and an empty signature. */
const unsecured = (claims: Record<string, unknown>): string =>
  `${base64url({ alg: "none" })}.${base64url({ iss: ISSUER, iat: nowSeconds(), ...claims })}.`

/** The statement with its payload replaced, header and signature kept. */
const tampered = (statement: string, claims: Record<string, unknown>): string => {
  const [header, , signature] = statement.split(".")
  return `${header ?? ""}.${base64url(claims)}.${signature ?? ""}`
}

/** The payload of a compact JWS, decoded without verification. */
const payloadOf = (statement: string): Record<string, unknown> => ({ ...jose.decodeJwt(statement) })

// Generated once: RSA key generation is the slow part of this file.
const rs256 = await makeKey("RS256", "rs-1")
const ps256 = await makeKey("PS256", "ps-1")
const es256 = await makeKey("ES256", "es-1")
const eddsa = await makeKey("EdDSA", "ed-1")
/** Not published anywhere. */
const strangerKey = await makeKey("ES256", "stranger")
/** Same kid as `es256`, another key pair. */
const impostor = await makeKey("ES256", "es-1")

const trustedKeys: ReadonlyArray<jose.JWK> = [rs256.jwk, ps256.jwk, es256.jwk, eddsa.jwk]

// ---------------------------------------------------------------------------
// Servers and requests
// ---------------------------------------------------------------------------

const serve = serversDisposedAfterEach()

type StatementOptions = Omit<SoftwareStatements.Options, "issuers"> & {
  readonly issuers?: SoftwareStatements.Options["issuers"]
}

/** A server trusting {@link ISSUER} with the inline keys above, unless the options say otherwise. */
const statementServer = (options: StatementOptions = {}, rest: TestOptions = {}): TestServer =>
  serve({
    ...rest,
    softwareStatements: SoftwareStatements.layer({
      issuers: [{ issuer: ISSUER, jwks: { keys: trustedKeys } }],
      ...options
    })
  })

/** A clock the test moves forward: the real time plus an offset. */
const makeShiftedClock = () => {
  const live = Clock.make()
  let offsetMillis = 0
  const millis = (): number => live.unsafeCurrentTimeMillis() + offsetMillis
  const nanos = (): bigint => live.unsafeCurrentTimeNanos() + BigInt(offsetMillis) * 1_000_000n
  const clock: Clock.Clock = {
    [Clock.ClockTypeId]: Clock.ClockTypeId,
    unsafeCurrentTimeMillis: millis,
    currentTimeMillis: Effect.sync(millis),
    unsafeCurrentTimeNanos: nanos,
    currentTimeNanos: Effect.sync(nanos),
    sleep: (duration) => live.sleep(duration)
  }
  return {
    clock,
    advanceSeconds: (seconds: number): void => {
      offsetMillis += seconds * 1000
    }
  }
}

/**
 * `SoftwareStatements.layer(options)` whose verifications read time from
 * `clock` (the `Clock` is what jose's `currentDate`, the `iat` check and the
 * key cache use).
 */
const layerWithClock = (options: SoftwareStatements.Options, clock: Clock.Clock) =>
  Layer.effect(
    SoftwareStatements.SoftwareStatements,
    Effect.map(SoftwareStatements.make(options), (service): SoftwareStatements.SoftwareStatementsService => ({
      ...service,
      verify: (statement) => Effect.withClock(service.verify(statement), clock)
    }))
  )

const post = (server: TestServer, body: unknown): Promise<TestResponse> =>
  server.request("POST", "/register", { json: body })

const clientPath = (clientId: string): string => `/register/${encodeURIComponent(clientId)}`

/** Registers `webClient` plus the statement and returns the 201 response. */
const registerWith = (server: TestServer, statement: unknown, body: Record<string, unknown> = webClient) =>
  post(server, { ...body, software_statement: statement })

const expectCreated = (response: TestResponse): Record<string, unknown> => {
  expect(response.status, response.text).toBe(201)
  expect(response.json).toBeDefined()
  return response.json ?? {}
}

/** A 400 with the given RFC 7591 §3.2.2 error code (R7591-3.2.2-f/g). */
const expectError = (response: TestResponse, code: "invalid_software_statement" | "unapproved_software_statement") => {
  expect(response.status, response.text).toBe(400)
  expect(response.json?.error).toBe(code)
  expect(response.headers.get("content-type")).toMatch(/^application\/json/)
}

const registeredClaimNames = ["iss", "sub", "aud", "exp", "nbf", "iat", "jti"] as const

// ---------------------------------------------------------------------------
// Algorithms
// ---------------------------------------------------------------------------

describe("D21 accepted algorithms", () => {
  for (const key of [rs256, ps256, es256, eddsa]) {
    it(`D21 R7591-2.3-a R7591-2.3-c accepts a statement signed with ${key.alg}`, async () => {
      const server = statementServer()
      const statement = await sign(key, { client_name: `Signed with ${key.alg}`, software_id: "app-1" })
      const body = expectCreated(await registerWith(server, statement))
      expect(body.software_statement).toBe(statement)
      expect(body.client_name).toBe(`Signed with ${key.alg}`)
      expect(body.software_id).toBe("app-1")
    })
  }
})

// ---------------------------------------------------------------------------
// Refusals
// ---------------------------------------------------------------------------

describe("D21 refused statements", () => {
  it("D21 R7591-2.3-b refuses alg none with invalid_software_statement", async () => {
    const server = statementServer()
    const statement = unsecured({ client_name: "Unsigned" })
    expect(jose.decodeProtectedHeader(statement).alg).toBe("none")
    expectError(await registerWith(server, statement), "invalid_software_statement")
  })

  it("D21 R7591-2.3-b refuses alg none even when the algorithms option lists it", async () => {
    const server = statementServer({ algorithms: ["none", "ES256"] })
    expectError(await registerWith(server, unsecured({ client_name: "Unsigned" })), "invalid_software_statement")
    expectCreated(await registerWith(server, await sign(es256)))
  })

  it("D21 R7591-3.2.2-f refuses an HS256 statement (HMAC, not in the accepted algorithms)", async () => {
    const server = statementServer()
    const statement = await new jose.SignJWT({ client_name: "MACed" })
      .setProtectedHeader({ alg: "HS256", kid: es256.kid })
      .setIssuer(ISSUER)
      .setIssuedAt()
      .sign(new TextEncoder().encode("a shared secret of at least thirty-two bytes"))
    expectError(await registerWith(server, statement), "invalid_software_statement")
  })

  it("D21 R7591-3.2.2-f refuses an algorithm outside a restricted algorithms option", async () => {
    const server = statementServer({ algorithms: ["ES256"] })
    expectError(await registerWith(server, await sign(rs256)), "invalid_software_statement")
    expectError(await registerWith(server, await sign(eddsa)), "invalid_software_statement")
    expectCreated(await registerWith(server, await sign(es256)))
  })

  const malformed: ReadonlyArray<readonly [string, unknown]> = [
    ["not a JWT", "not-a-jwt"],
    ["two parts", `${base64url({ alg: "ES256", kid: "es-1" })}.${base64url({ iss: ISSUER })}`],
    ["garbage base64", "!!!.@@@.###"],
    [
      "a header that is not JSON",
      `${Buffer.from("{not json").toString("base64url")}.${base64url({ iss: ISSUER })}.c2ln`
    ],
    ["an empty string", ""],
    ["a number", 42],
    ["an object", { iss: ISSUER }],
    ["an array", ["a.b.c"]],
    ["a boolean", true]
  ]
  for (const [name, statement] of malformed) {
    it(`D21 R7591-3.2.2-f refuses a malformed statement (${name}) with invalid_software_statement`, async () => {
      const server = statementServer()
      expectError(await registerWith(server, statement), "invalid_software_statement")
    })
  }

  it("D21 R7591-3.2.2-f refuses a statement whose payload was tampered with", async () => {
    const server = statementServer()
    const statement = await sign(es256, { client_name: "Original" })
    const forged = tampered(statement, { ...payloadOf(statement), client_name: "Forged" })
    expect(forged).not.toBe(statement)
    expectError(await registerWith(server, forged), "invalid_software_statement")
    expectCreated(await registerWith(server, statement))
  })

  it("D21 R7591-3.2.2-f refuses a statement signed by another key under a trusted kid", async () => {
    const server = statementServer()
    const statement = await sign(impostor, { client_name: "Impostor" })
    expect(jose.decodeProtectedHeader(statement).kid).toBe(es256.kid)
    expectError(await registerWith(server, statement), "invalid_software_statement")
  })

  it("D21 R7591-2.3-b refuses a statement without iss with invalid_software_statement", async () => {
    const server = statementServer()
    const statement = await sign(es256, { client_name: "Nobody" }, { issuer: null })
    expect(payloadOf(statement).iss).toBeUndefined()
    expectError(await registerWith(server, statement), "invalid_software_statement")
  })

  it("D21 R7591-2.3-d R7591-3.2.2-g refuses an untrusted issuer with unapproved_software_statement", async () => {
    const server = statementServer()
    const statement = await sign(es256, { client_name: "Elsewhere" }, { issuer: "https://untrusted.example.net" })
    expectError(await registerWith(server, statement), "unapproved_software_statement")
  })

  it("D21 R7591-2.3-d R7591-3.2.2-g refuses a trusted issuer's statement under an unknown kid (inline JWKS)", async () => {
    const server = statementServer()
    const statement = await sign(strangerKey, { client_name: "Unknown key" })
    expectError(await registerWith(server, statement), "unapproved_software_statement")
  })

  it("D21 R7591-3.2.2-g refuses a statement from an issuer configured without keys", async () => {
    const server = statementServer({ issuers: [{ issuer: ISSUER }] })
    expectError(await registerWith(server, await sign(es256)), "unapproved_software_statement")
  })
})

// ---------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------

describe("D21 statement lifetime", () => {
  it("D21 R7591-3.2.2-f refuses an expired statement with invalid_software_statement", async () => {
    const server = statementServer()
    const statement = await sign(es256, { iat: nowSeconds() - 7200, exp: nowSeconds() - 3600 })
    expectError(await registerWith(server, statement), "invalid_software_statement")
  })

  it("D21 accepts a statement expired within clockToleranceSeconds", async () => {
    const statement = await sign(es256, {
      client_name: "Just expired",
      iat: nowSeconds() - 600,
      exp: nowSeconds() - 30
    })
    const body = expectCreated(await registerWith(statementServer(), statement))
    expect(body.client_name).toBe("Just expired")
    // Without the leeway the same statement is refused.
    const strict = statementServer({ clockToleranceSeconds: 0 })
    expectError(await registerWith(strict, statement), "invalid_software_statement")
  })

  it("D21 R7591-3.2.2-f refuses a statement not valid before a future nbf", async () => {
    const server = statementServer()
    const statement = await sign(es256, { nbf: nowSeconds() + 3600 })
    expectError(await registerWith(server, statement), "invalid_software_statement")
  })

  it("D21 R7591-3.2.2-f refuses a statement issued in the future beyond the tolerance", async () => {
    const server = statementServer()
    expectError(
      await registerWith(server, await sign(es256, { iat: nowSeconds() + 3600 })),
      "invalid_software_statement"
    )
    // Within the tolerance (60 s by default) a small clock skew is accepted.
    expectCreated(await registerWith(server, await sign(es256, { iat: nowSeconds() + 20 })))
  })

  it("D21 judges exp by the Effect Clock", async () => {
    const { clock, advanceSeconds } = makeShiftedClock()
    const server = serve({
      softwareStatements: layerWithClock({ issuers: [{ issuer: ISSUER, jwks: { keys: trustedKeys } }] }, clock)
    })
    const statement = await sign(es256, { exp: nowSeconds() + 120 })
    expectCreated(await registerWith(server, statement))
    advanceSeconds(150) // 30 s past exp: within the default 60 s tolerance
    expectCreated(await registerWith(server, statement))
    advanceSeconds(3600)
    expectError(await registerWith(server, statement), "invalid_software_statement")
  })
})

// ---------------------------------------------------------------------------
// Precedence
// ---------------------------------------------------------------------------

type Member = string | ReadonlyArray<string>

const label = fc.stringMatching(/^[a-z][a-z0-9]{0,9}$/)
const webUrl = fc.tuple(label, label).map(([host, path]) => `https://${host}.example.com/${path}`)
const memberArbitraries = {
  client_name: fc.string({ minLength: 1, maxLength: 30 }),
  client_uri: webUrl,
  logo_uri: webUrl,
  tos_uri: webUrl,
  policy_uri: webUrl,
  software_id: fc.uuid(),
  software_version: fc.stringMatching(/^\d{1,2}\.\d{1,2}\.\d{1,2}$/),
  scope: fc
    .shuffledSubarray(["openid", "profile", "email", "offline_access"], { minLength: 1 })
    .map((scopes) => scopes.join(" ")),
  redirect_uris: fc.uniqueArray(
    webUrl.map((url) => `${url}/cb`),
    { minLength: 1, maxLength: 3 }
  ),
  contacts: fc.uniqueArray(fc.emailAddress(), { minLength: 1, maxLength: 3 })
}
/** Any subset of the members, each with a valid value. */
const someMembers: fc.Arbitrary<Record<string, Member>> = fc.record(memberArbitraries, { requiredKeys: [] })
/** Valid JSON metadata: any members, always with redirect URIs for the default authorization_code grant. */
const jsonMetadata: fc.Arbitrary<Record<string, Member>> = fc.record(memberArbitraries, {
  requiredKeys: ["redirect_uris"]
})

describe("D21 precedence of statement claims", () => {
  it("D21 R7591-2-o R7591-3.1.1-a R7591-5-h statement values win, body-only members are kept", async () => {
    const server = statementServer()
    await fc.assert(
      fc.asyncProperty(jsonMetadata, someMembers, async (body, claims) => {
        const statement = await sign(es256, { ...claims })
        const registered = expectCreated(await registerWith(server, statement, body))
        expect(registered.software_statement).toBe(statement)
        for (const [name, value] of Object.entries(claims)) expect(registered[name], name).toEqual(value)
        for (const [name, value] of Object.entries(body)) {
          if (!Object.hasOwn(claims, name)) expect(registered[name], name).toEqual(value)
        }
      }),
      { numRuns: 30 }
    )
  })

  it("D21 R7591-2-o a claim overrides the body member of the same name", async () => {
    const server = statementServer()
    const statement = await sign(es256, { client_name: "From the statement", scope: "openid" })
    const body = expectCreated(
      await registerWith(server, statement, { ...webClient, client_name: "From the body", scope: "openid profile" })
    )
    expect(body.client_name).toBe("From the statement")
    expect(body.scope).toBe("openid")
    expect(body.redirect_uris).toEqual(webClient.redirect_uris)
  })
})

// ---------------------------------------------------------------------------
// Echo
// ---------------------------------------------------------------------------

describe("D21 statement echo", () => {
  it("D21 R7591-3.2.1-h returns the statement unmodified in the 201, GET and PUT responses", async () => {
    const server = statementServer()
    const statement = await sign(es256, { client_name: "Echoed", software_id: "echo-app" })
    const { clientId, token, body } = await register(server, { ...webClient, software_statement: statement })
    expect(body.software_statement).toBe(statement)

    const read = await server.request("GET", clientPath(clientId), { token })
    expect(read.status, read.text).toBe(200)
    expect(read.json?.software_statement).toBe(statement)

    const updated = await server.request("PUT", clientPath(clientId), {
      token,
      json: updateBodyFrom(read.json ?? {}, { contacts: ["ops@example.org"] })
    })
    expect(updated.status, updated.text).toBe(200)
    expect(updated.json?.software_statement).toBe(statement)
    expect(updated.json?.contacts).toEqual(["ops@example.org"])
    expect(updated.json?.client_name).toBe("Echoed")
  })

  it("D21 R7591-3.2.1-h echoes the statement verbatim even when its metadata is normalised", async () => {
    const server = statementServer()
    // Repeated contacts may be collapsed in the top-level member (R7591-2-n); the statement is untouched.
    const statement = await sign(es256, { contacts: ["a@example.org", "a@example.org"] })
    const body = expectCreated(await registerWith(server, statement))
    expect(body.software_statement).toBe(statement)
    expect(body.contacts).toEqual(["a@example.org"])
  })

  it("D21 R7591-3.2.1-h registered JWT claims never become metadata members", async () => {
    const server = statementServer()
    const now = nowSeconds()
    const statement = await sign(es256, {
      client_name: "Claims",
      sub: "software-7",
      aud: "https://as.example.com/oauth",
      jti: "statement-1",
      nbf: now - 10,
      exp: now + 600
    })
    const { clientId, token, body } = await register(server, { ...webClient, software_statement: statement })
    const read = await server.request("GET", clientPath(clientId), { token })
    const updated = await server.request("PUT", clientPath(clientId), {
      token,
      json: updateBodyFrom(read.json ?? {})
    })
    expect(updated.status, updated.text).toBe(200)
    for (const response of [body, read.json ?? {}, updated.json ?? {}]) {
      expect(response.client_name).toBe("Claims")
      for (const claim of registeredClaimNames) expect(Object.hasOwn(response, claim), claim).toBe(false)
    }
  })
})

// ---------------------------------------------------------------------------
// Update
// ---------------------------------------------------------------------------

describe("D21 statements on update (RFC 7592 §2.2)", () => {
  it("D21 R7591-2-o a new statement on PUT is echoed and its claims win", async () => {
    const server = statementServer()
    const first = await sign(es256, { client_name: "First name" })
    const { clientId, token, body } = await register(server, { ...webClient, software_statement: first })
    const second = await sign(rs256, { client_name: "Second name" })
    expect(second).not.toBe(first)
    const updated = await server.request("PUT", clientPath(clientId), {
      token,
      json: updateBodyFrom(body, { software_statement: second, client_name: "Body name" })
    })
    expect(updated.status, updated.text).toBe(200)
    expect(updated.json?.software_statement).toBe(second)
    expect(updated.json?.client_name).toBe("Second name")
    const newToken = updated.json?.registration_access_token
    const read = await server.request("GET", clientPath(clientId), {
      token: typeof newToken === "string" ? newToken : token
    })
    expect(read.json?.software_statement).toBe(second)
    expect(read.json?.client_name).toBe("Second name")
  })

  it("D21 R7591-3.2.2-f a bad statement on PUT gives 400 and leaves the client unchanged", async () => {
    const server = statementServer()
    const statement = await sign(es256, { client_name: "Stored name" })
    const { clientId, token, body } = await register(server, { ...webClient, software_statement: statement })
    const before = await server.request("GET", clientPath(clientId), { token })
    expect(before.status).toBe(200)
    const forged = tampered(statement, { ...payloadOf(statement), client_name: "Forged name" })
    const refused = await server.request("PUT", clientPath(clientId), {
      token,
      json: updateBodyFrom(body, { software_statement: forged, contacts: ["new@example.org"] })
    })
    expectError(refused, "invalid_software_statement")
    const after = await server.request("GET", clientPath(clientId), { token })
    expect(after.status).toBe(200)
    expect(after.text).toBe(before.text)
  })

  it("D21 R7591-3.2.2-g an untrusted statement on PUT gives 400 unapproved_software_statement", async () => {
    const server = statementServer()
    const { clientId, token, body } = await register(server, { ...webClient, software_statement: await sign(es256) })
    const refused = await server.request("PUT", clientPath(clientId), {
      token,
      json: updateBodyFrom(body, { software_statement: await sign(strangerKey) })
    })
    expectError(refused, "unapproved_software_statement")
  })
})

// ---------------------------------------------------------------------------
// required: true
// ---------------------------------------------------------------------------

describe("D21 required statements", () => {
  it("D21 R7591-3.2.2-f required: a registration without a statement is refused", async () => {
    const server = statementServer({ required: true })
    expectError(await post(server, webClient), "invalid_software_statement")
    expectError(await post(server, { ...webClient, software_statement: null }), "invalid_software_statement")
    expectCreated(await registerWith(server, await sign(es256)))
  })

  it("D21 R7591-3.2.2-f required: an update without a statement is refused", async () => {
    const server = statementServer({ required: true })
    const { clientId, token, body } = await register(server, { ...webClient, software_statement: await sign(es256) })
    const { software_statement: _statement, ...withoutStatement } = updateBodyFrom(body)
    expect(Object.hasOwn(withoutStatement, "software_statement")).toBe(false)
    const refused = await server.request("PUT", clientPath(clientId), { token, json: withoutStatement })
    expectError(refused, "invalid_software_statement")
    const kept = await server.request("PUT", clientPath(clientId), { token, json: updateBodyFrom(body) })
    expect(kept.status, kept.text).toBe(200)
  })

  it("D21 not required by default: a registration without a statement succeeds", async () => {
    const body = expectCreated(await post(statementServer(), webClient))
    expect(body.software_statement).toBeUndefined()
  })
})

// ---------------------------------------------------------------------------
// Not supported
// ---------------------------------------------------------------------------

describe("D21 without software statement support (layerNone)", () => {
  it("D21 R7591-3.1.1-a ignores a software_statement member: not echoed, claims not applied", async () => {
    const server = serve()
    const statement = await sign(es256, { client_name: "From the statement", software_id: "stmt-app" })
    const body = expectCreated(await registerWith(server, statement, { ...webClient, client_name: "From the body" }))
    expect(Object.hasOwn(body, "software_statement")).toBe(false)
    expect(body.client_name).toBe("From the body")
    expect(Object.hasOwn(body, "software_id")).toBe(false)
  })

  it("D21 R7591-3.1.1-a ignores even an invalid statement", async () => {
    const server = serve()
    for (const statement of ["garbage", unsecured({ client_name: "x" }), 42]) {
      const body = expectCreated(await registerWith(server, statement))
      expect(Object.hasOwn(body, "software_statement")).toBe(false)
    }
  })
})

// ---------------------------------------------------------------------------
// Issuer keys fetched from a jwks_uri
// ---------------------------------------------------------------------------

/** A local issuer publishing its JWK Set, counting fetches per path. */
const jwksHost = (() => {
  let published: ReadonlyArray<jose.JWK> = []
  const counts = new Map<string, number>()
  const handle = (request: IncomingMessage, response: ServerResponse): void => {
    const path = request.url ?? ""
    counts.set(path, (counts.get(path) ?? 0) + 1)
    switch (path) {
      case "/jwks.json":
        response.writeHead(200, { "content-type": "application/jwk-set+json" })
        response.end(JSON.stringify({ keys: published }))
        return
      case "/error":
        response.writeHead(500, { "content-type": "application/json" })
        response.end(JSON.stringify({ keys: published }))
        return
      case "/garbage":
        response.writeHead(200, { "content-type": "application/json" })
        response.end("<html>not a key set")
        return
      case "/not-a-set":
        response.writeHead(200, { "content-type": "application/json" })
        response.end(JSON.stringify({ keys: "none here" }))
        return
      case "/slow":
        return // never answers: the fetch times out
      default:
        response.writeHead(404)
        response.end()
    }
  }
  const server = createServer(handle)
  let origin = ""
  return {
    start: async (): Promise<void> => {
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
      const address = server.address()
      if (address === null || typeof address === "string") throw new Error("no TCP address")
      origin = `http://127.0.0.1:${address.port}`
    },
    stop: async (): Promise<void> => {
      server.closeAllConnections()
      await new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())))
    },
    reset: (keys: ReadonlyArray<jose.JWK>): void => {
      published = keys
      counts.clear()
    },
    publish: (keys: ReadonlyArray<jose.JWK>): void => {
      published = keys
    },
    url: (path: string): string => `${origin}${path}`,
    fetches: (path = "/jwks.json"): number => counts.get(path) ?? 0
  }
})()

describe("D21 issuer keys from a jwks_uri", () => {
  beforeAll(() => jwksHost.start())
  afterAll(() => jwksHost.stop())
  beforeEach(() => {
    jwksHost.reset([es256.jwk])
  })

  const remoteIssuer = (path = "/jwks.json") => [{ issuer: ISSUER, jwksUri: jwksHost.url(path) }]

  it("D21 fetches the keys on first use and uses the cache within the TTL", async () => {
    const server = statementServer({ issuers: remoteIssuer() })
    expect(jwksHost.fetches()).toBe(0)
    expectCreated(await registerWith(server, await sign(es256, { client_name: "First" })))
    expect(jwksHost.fetches()).toBe(1)
    const body = expectCreated(await registerWith(server, await sign(es256, { client_name: "Second" })))
    expect(body.client_name).toBe("Second")
    expect(jwksHost.fetches()).toBe(1)
  })

  it("D21 refetches on an unknown kid and accepts a newly published key (cooldown 0)", async () => {
    const server = statementServer({ issuers: remoteIssuer(), jwksRefetchCooldownSeconds: 0 })
    expectCreated(await registerWith(server, await sign(es256)))
    expect(jwksHost.fetches()).toBe(1)
    const rotated = await makeKey("ES256", "es-2")
    jwksHost.publish([es256.jwk, rotated.jwk])
    const body = expectCreated(await registerWith(server, await sign(rotated, { client_name: "Rotated" })))
    expect(body.client_name).toBe("Rotated")
    expect(jwksHost.fetches()).toBe(2)
    // The refreshed set is cached: the new key needs no further fetch.
    expectCreated(await registerWith(server, await sign(rotated)))
    expect(jwksHost.fetches()).toBe(2)
  })

  it("D21 R7591-3.2.2-g an unknown kid right after a fetch does not refetch within the cooldown", async () => {
    const server = statementServer({ issuers: remoteIssuer() })
    expectCreated(await registerWith(server, await sign(es256)))
    expect(jwksHost.fetches()).toBe(1)
    const rotated = await makeKey("ES256", "es-2")
    jwksHost.publish([es256.jwk, rotated.jwk])
    expectError(await registerWith(server, await sign(rotated)), "unapproved_software_statement")
    expect(jwksHost.fetches()).toBe(1)
  })

  it("D21 an unknown kid that the issuer never published gives unapproved_software_statement after a refetch", async () => {
    const server = statementServer({ issuers: remoteIssuer(), jwksRefetchCooldownSeconds: 0 })
    expectCreated(await registerWith(server, await sign(es256)))
    expectError(await registerWith(server, await sign(strangerKey)), "unapproved_software_statement")
    expect(jwksHost.fetches()).toBe(2)
  })

  it("D21 fetches the keys again once jwksCacheTtlSeconds has passed on the Effect Clock", async () => {
    const { clock, advanceSeconds } = makeShiftedClock()
    const server = serve({
      softwareStatements: layerWithClock({ issuers: remoteIssuer(), jwksCacheTtlSeconds: 60 }, clock)
    })
    expectCreated(await registerWith(server, await sign(es256)))
    expect(jwksHost.fetches()).toBe(1)
    advanceSeconds(30)
    expectCreated(await registerWith(server, await sign(es256)))
    expect(jwksHost.fetches()).toBe(1)
    advanceSeconds(31)
    expectCreated(await registerWith(server, await sign(es256)))
    expect(jwksHost.fetches()).toBe(2)
    expectCreated(await registerWith(server, await sign(es256)))
    expect(jwksHost.fetches()).toBe(2)
  })

  it("D21 a TTL of zero fetches the keys for every statement", async () => {
    const server = statementServer({ issuers: remoteIssuer(), jwksCacheTtlSeconds: 0 })
    for (let i = 1; i <= 3; i++) {
      expectCreated(await registerWith(server, await sign(es256)))
      expect(jwksHost.fetches()).toBe(i)
    }
  })

  const brokenEndpoints: ReadonlyArray<readonly [string, string]> = [
    ["answering 500", "/error"],
    ["answering something that is not JSON", "/garbage"],
    ["answering JSON that is not a JWK Set", "/not-a-set"],
    ["answering 404", "/missing"]
  ]
  for (const [name, path] of brokenEndpoints) {
    it(`D21 R7591-3.2.2-g a JWKS endpoint ${name} gives 400 unapproved_software_statement`, async () => {
      const server = statementServer({ issuers: remoteIssuer(path) })
      const response = await registerWith(server, await sign(es256))
      expectError(response, "unapproved_software_statement")
      expect(jwksHost.fetches(path)).toBeGreaterThanOrEqual(1)
    })
  }

  it("D21 R7591-3.2.2-g a JWKS endpoint that does not answer in time gives unapproved_software_statement", async () => {
    const server = statementServer({ issuers: remoteIssuer("/slow"), jwksFetchTimeoutMillis: 200 })
    expectError(await registerWith(server, await sign(es256)), "unapproved_software_statement")
    expect(jwksHost.fetches("/slow")).toBe(1)
  })

  it("D21 R7591-3.2.2-g an unreachable JWKS endpoint gives unapproved_software_statement", async () => {
    const closed = createServer()
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve))
    const address = closed.address()
    await new Promise<void>((resolve) => closed.close(() => resolve()))
    if (address === null || typeof address === "string") throw new Error("no TCP address")
    const server = statementServer({
      issuers: [{ issuer: ISSUER, jwksUri: `http://127.0.0.1:${address.port}/jwks.json` }]
    })
    expectError(await registerWith(server, await sign(es256)), "unapproved_software_statement")
  })
})
