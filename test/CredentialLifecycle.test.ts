/**
 * The life of a client's credentials: client secrets that expire and are
 * replaced (D14, R7592-2.1-c) or rotated by the host, and registration access
 * tokens that never expire (R7592-5-a), rotate on update (R7592-5-b, D15) and
 * die with their client (R7592-5-f) — as opaque tokens and as signed JWTs.
 * Time-dependent tests run `Protocol.handle` with TestClock as the clock.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Option, Redacted, TestClock } from "effect"
import * as Jose from "jose"
import * as ClientConfiguration from "../src/ClientConfiguration.js"
import * as ClientStore from "../src/ClientStore.js"
import * as Credentials from "../src/Credentials.js"
import * as Dcr from "../src/Dcr.js"
import * as Protocol from "../src/Protocol.js"
import type { Services } from "../src/Protocol.js"
import * as TokenAuthenticator from "../src/TokenAuthenticator.js"
import {
  publicUrl,
  register,
  registrationEndpoint,
  serversDisposedAfterEach,
  type TestServer,
  updateBodyFrom,
  webClient,
  expectInvalidToken,
  type Reply
} from "./support/http.js"
import { parseObject } from "./support/json.js"

const serve = serversDisposedAfterEach()

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

const stringOf = (value: unknown): string => {
  if (typeof value !== "string") throw new Error(`expected a string, got ${JSON.stringify(value)}`)
  return value
}

const numberOf = (value: unknown): number => {
  if (typeof value !== "number") throw new Error(`expected a number, got ${JSON.stringify(value)}`)
  return value
}

/** A request through `Protocol.handle`, so that TestClock is the clock. */
const call = (
  method: string,
  url: string,
  init: { readonly token?: string; readonly json?: unknown } = {}
): Effect.Effect<Reply, never, Services> =>
  Effect.map(
    Protocol.handle({
      method,
      url,
      authorization: init.token === undefined ? [] : [`Bearer ${init.token}`],
      contentType: init.json === undefined ? undefined : "application/json",
      body: init.json === undefined ? undefined : new TextEncoder().encode(JSON.stringify(init.json))
    }),
    (response) => ({
      status: response.status,
      challenge: response.headers["www-authenticate"],
      json: response.body === undefined ? undefined : parseObject(response.body)
    })
  )

/** Registers through `Protocol.handle` and returns the 201 body. */
const registerVia = (metadata: unknown = webClient) =>
  Effect.map(call("POST", "/register", { json: metadata }), (reply) => {
    expect(reply.status).toBe(201)
    const body = reply.json ?? {}
    return {
      body,
      clientId: stringOf(body.client_id),
      token: stringOf(body.registration_access_token),
      path: `/register/${stringOf(body.client_id)}`
    }
  })

/** The services on a memory store, with deterministic credentials. */
const services = (
  options: {
    readonly lifetime?: number
    readonly tokenAuthenticator?: Dcr.Options["tokenAuthenticator"]
  } = {}
): Layer.Layer<Services> =>
  Dcr.layer({
    credentials: Credentials.layerTest,
    tokenAuthenticator: options.tokenAuthenticator,
    server: { publicUrl, clientSecretLifetimeSeconds: options.lifetime ?? 0 }
  })

const storedClient = (clientId: string) => Effect.flatMap(ClientStore.ClientStore, (store) => store.findById(clientId))

const storedSecret = (clientId: string) =>
  Effect.map(
    storedClient(clientId),
    Option.map((c) => (c.clientSecret === undefined ? undefined : Redacted.value(c.clientSecret)))
  )

/** 2025-06-15T12:00:00Z, in milliseconds and seconds. */
const startMillis = 1_749_988_800_000
const startSeconds = startMillis / 1000

// ---------------------------------------------------------------------------
// Client secrets (D14)
// ---------------------------------------------------------------------------

describe("D14 client secret expiry (TestClock)", () => {
  it.effect("D14 R7591-3.2.1-e client_secret_expires_at is client_id_issued_at + the configured lifetime", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(startMillis)
      const { body } = yield* registerVia()
      expect(body.client_id_issued_at).toBe(startSeconds)
      expect(body.client_secret_expires_at).toBe(startSeconds + 3600)
      expect(typeof body.client_secret).toBe("string")
    }).pipe(Effect.provide(services({ lifetime: 3600 })))
  )

  it.effect("R7592-2.1-c D14 a read before expiry keeps the secret; after expiry it returns a new, stored one", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(startMillis)
      const { body, clientId, token, path } = yield* registerVia()
      const original = stringOf(body.client_secret)

      yield* TestClock.adjust("3599 seconds")
      const early = yield* call("GET", path, { token })
      expect(early.status).toBe(200)
      expect(early.json?.client_secret).toBe(original)
      expect(early.json?.client_secret_expires_at).toBe(startSeconds + 3600)

      yield* TestClock.adjust("2 seconds")
      const late = yield* call("GET", path, { token })
      expect(late.status).toBe(200)
      const renewed = stringOf(late.json?.client_secret)
      expect(renewed).not.toBe(original)
      expect(late.json?.client_secret_expires_at).toBe(startSeconds + 3601 + 3600)
      // R7592-2.1-d: the identity does not change with the secret.
      expect(late.json?.client_id).toBe(clientId)
      expect(late.json?.client_id_issued_at).toBe(startSeconds)
      // Reads do not rotate the registration access token.
      expect(late.json?.registration_access_token).toBe(token)

      const again = yield* call("GET", path, { token })
      expect(again.status).toBe(200)
      expect(again.json?.client_secret).toBe(renewed)
      expect(again.json?.client_secret_expires_at).toBe(startSeconds + 3601 + 3600)
      expect(yield* storedSecret(clientId)).toStrictEqual(Option.some(renewed))
    }).pipe(Effect.provide(services({ lifetime: 3600 })))
  )

  it.effect("R7592-2.1-c R7592-2.2-f the replaced secret is discarded: an update presenting it is refused", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(startMillis)
      const { body, token, path } = yield* registerVia()
      yield* TestClock.adjust("3601 seconds")
      const late = yield* call("GET", path, { token })
      expect(late.json?.client_secret).not.toBe(body.client_secret)
      const stale = yield* call("PUT", path, { token, json: updateBodyFrom(body) })
      expect(stale.status).toBe(400)
      expect(stale.json?.error).toBe("invalid_request")
      const fresh = yield* call("PUT", path, { token, json: updateBodyFrom(late.json ?? {}) })
      expect(fresh.status).toBe(200)
      expect(fresh.json?.client_secret).toBe(late.json?.client_secret)
    }).pipe(Effect.provide(services({ lifetime: 3600 })))
  )

  it.effect("D14 an update after expiry gets a new secret with a new expiry", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(startMillis)
      const first = yield* registerVia()
      const second = yield* registerVia()
      yield* TestClock.adjust("7200 seconds")
      const now = startSeconds + 7200

      // Without client_secret in the body.
      const { client_secret: _secret, ...withoutSecret } = updateBodyFrom(first.body)
      const updated = yield* call("PUT", first.path, { token: first.token, json: withoutSecret })
      expect(updated.status).toBe(200)
      const renewed = stringOf(updated.json?.client_secret)
      expect(renewed).not.toBe(first.body.client_secret)
      expect(updated.json?.client_secret_expires_at).toBe(now + 3600)
      const read = yield* call("GET", first.path, { token: stringOf(updated.json?.registration_access_token) })
      expect(read.json?.client_secret).toBe(renewed)
      expect(read.json?.client_secret_expires_at).toBe(now + 3600)

      // Presenting the expired (still current) secret is allowed, and still gets a new one.
      const withSecret = yield* call("PUT", second.path, { token: second.token, json: updateBodyFrom(second.body) })
      expect(withSecret.status).toBe(200)
      expect(withSecret.json?.client_secret).not.toBe(second.body.client_secret)
      expect(withSecret.json?.client_secret_expires_at).toBe(now + 3600)
    }).pipe(Effect.provide(services({ lifetime: 3600 })))
  )

  it.effect("D14 an update before expiry keeps the secret and its expiry", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(startMillis)
      const { body, token, path } = yield* registerVia()
      yield* TestClock.adjust("1000 seconds")
      const updated = yield* call("PUT", path, { token, json: updateBodyFrom(body, { client_name: "Renamed" }) })
      expect(updated.status).toBe(200)
      expect(updated.json?.client_secret).toBe(body.client_secret)
      expect(updated.json?.client_secret_expires_at).toBe(startSeconds + 3600)
    }).pipe(Effect.provide(services({ lifetime: 3600 })))
  )

  it.effect(
    "D14 R7591-3.2.1-e with the default lifetime, client_secret_expires_at is 0 and the secret never changes",
    () =>
      Effect.gen(function* () {
        yield* TestClock.setTime(startMillis)
        const { body, token, path } = yield* registerVia()
        expect(body.client_secret_expires_at).toBe(0)
        yield* TestClock.adjust("18250 days")
        const read = yield* call("GET", path, { token })
        expect(read.json?.client_secret).toBe(body.client_secret)
        expect(read.json?.client_secret_expires_at).toBe(0)
      }).pipe(Effect.provide(services()))
  )

  it.effect("D14 a public client (none) gets no secret and no expiry, and keeps none after time passes", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(startMillis)
      const { body, token, path } = yield* registerVia({ ...webClient, token_endpoint_auth_method: "none" })
      expect(body.client_secret).toBeUndefined()
      expect(body.client_secret_expires_at).toBeUndefined()
      yield* TestClock.adjust("2 hours")
      const read = yield* call("GET", path, { token })
      expect(read.status).toBe(200)
      expect(read.json?.client_secret).toBeUndefined()
    }).pipe(Effect.provide(services({ lifetime: 3600 })))
  )

  it("D14 switching to a method without a secret drops it; switching back issues a new one", async () => {
    const server = serve()
    const { body, clientId, token } = await register(server)
    const path = `/register/${clientId}`
    const toNone = await server.request("PUT", path, {
      token,
      json: updateBodyFrom(body, { token_endpoint_auth_method: "none", client_secret: null })
    })
    expect(toNone.status).toBe(200)
    expect(toNone.json?.client_secret).toBeUndefined()
    const back = await server.request("PUT", path, {
      token: stringOf(toNone.json?.registration_access_token),
      json: updateBodyFrom(toNone.json ?? {}, { token_endpoint_auth_method: "client_secret_post" })
    })
    expect(back.status).toBe(200)
    const secret = stringOf(back.json?.client_secret)
    expect(secret).not.toBe(body.client_secret)
    expect(back.json?.client_secret_expires_at).toBe(0)
  })
})

describe("D14 ClientConfiguration.rotateSecret (host API)", () => {
  it.effect("D14 gives a new secret and a new expiry; reads then return it", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(startMillis)
      const { body, clientId, token, path } = yield* registerVia()
      yield* TestClock.adjust("100 seconds")
      const rotated = yield* ClientConfiguration.rotateSecret(clientId)
      const secret = rotated.clientSecret === undefined ? undefined : Redacted.value(rotated.clientSecret)
      expect(secret).toBeDefined()
      expect(secret).not.toBe(body.client_secret)
      expect(rotated.clientSecretExpiresAt).toBe(startSeconds + 100 + 3600)
      expect(rotated.clientIdIssuedAt).toBe(startSeconds)
      expect(rotated.clientId).toBe(clientId)
      // The metadata is untouched; the store holds the new secret, one version on.
      const stored = yield* storedClient(clientId)
      expect(Option.map(stored, (c) => c.metadata)).toStrictEqual(Option.some(rotated.metadata))
      expect(Option.map(stored, (c) => c.version)).toStrictEqual(Option.some(2))
      expect(yield* storedSecret(clientId)).toStrictEqual(Option.some(secret))
      const read = yield* call("GET", path, { token })
      expect(read.json?.client_secret).toBe(secret)
      expect(read.json?.client_secret_expires_at).toBe(startSeconds + 100 + 3600)
      // The old secret is no longer the current one (R7592-2.2-f).
      const stale = yield* call("PUT", path, { token, json: updateBodyFrom(body) })
      expect(stale.status).toBe(400)
      expect(stale.json?.error).toBe("invalid_request")
    }).pipe(Effect.provide(services({ lifetime: 3600 })))
  )

  it.effect("D14 with lifetime 0 the rotated secret never expires", () =>
    Effect.gen(function* () {
      const { body, clientId } = yield* registerVia()
      const rotated = yield* ClientConfiguration.rotateSecret(clientId)
      expect(rotated.clientSecretExpiresAt).toBe(0)
      expect(rotated.clientSecret === undefined ? undefined : Redacted.value(rotated.clientSecret)).not.toBe(
        body.client_secret
      )
    }).pipe(Effect.provide(services()))
  )

  it.effect("D14 an unknown client id fails with ClientNotFound", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(ClientConfiguration.rotateSecret("no-such-client"))
      expect(error._tag).toBe("ClientNotFound")
    }).pipe(Effect.provide(services({ lifetime: 3600 })))
  )

  it.effect("D14 a client whose method uses no secret fails with InvalidRequest and is unchanged", () =>
    Effect.gen(function* () {
      const { clientId } = yield* registerVia({ ...webClient, token_endpoint_auth_method: "none" })
      const before = yield* storedClient(clientId)
      const error = yield* Effect.flip(ClientConfiguration.rotateSecret(clientId))
      expect(error._tag).toBe("InvalidRequest")
      const after = yield* storedClient(clientId)
      expect(Option.map(after, (c) => [c.version, c.clientSecret])).toStrictEqual(
        Option.map(before, (c) => [c.version, c.clientSecret])
      )
    }).pipe(Effect.provide(services({ lifetime: 3600 })))
  )
})

// ---------------------------------------------------------------------------
// Registration access tokens
// ---------------------------------------------------------------------------

describe("R7592-5-a D15 opaque RATs do not expire", () => {
  it.effect("R7592-5-a after 50 years the opaque RAT still reads and updates", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(startMillis)
      const { body, token, path } = yield* registerVia()
      yield* TestClock.adjust("18263 days")
      const read = yield* call("GET", path, { token })
      expect(read.status).toBe(200)
      const updated = yield* call("PUT", path, { token, json: updateBodyFrom(body) })
      expect(updated.status).toBe(200)
    }).pipe(Effect.provide(services()))
  )
})

type KeyAlg = "ES256" | "HS256"

interface TestKey {
  readonly alg: KeyAlg
  /** The JWK given to `layerJwt`: private for ES256, the secret for HS256. */
  readonly jwk: Jose.JWK
  readonly signing: Jose.CryptoKey | Uint8Array
  readonly verifying: Jose.CryptoKey | Uint8Array
}

const makeKey = async (alg: KeyAlg, kid = "rat-key-1"): Promise<TestKey> => {
  if (alg === "ES256") {
    const pair = await Jose.generateKeyPair("ES256", { extractable: true })
    const jwk = await Jose.exportJWK(pair.privateKey)
    return { alg, jwk: { ...jwk, alg, kid }, signing: pair.privateKey, verifying: pair.publicKey }
  }
  const secret = await Jose.generateSecret("HS256", { extractable: true })
  const jwk = await Jose.exportJWK(secret)
  expect(jwk.kty).toBe("oct")
  return { alg, jwk: { ...jwk, alg, kid }, signing: secret, verifying: secret }
}

interface Claims {
  readonly sub: string
  readonly jti: string
  readonly iss?: string
  readonly aud?: string
}

/** A JWT signed by the test itself, with the server's claims unless overridden. */
const signToken = (key: TestKey, claims: Claims, kid: string | undefined = key.jwk.kid): Promise<string> =>
  new Jose.SignJWT({})
    .setProtectedHeader(kid === undefined ? { alg: key.alg, typ: "JWT" } : { alg: key.alg, typ: "JWT", kid })
    .setIssuer(claims.iss ?? publicUrl)
    .setAudience(claims.aud ?? registrationEndpoint)
    .setSubject(claims.sub)
    .setJti(claims.jti)
    .setIssuedAt()
    .sign(key.signing)

const claimsOf = (token: string): Claims => {
  const payload = Jose.decodeJwt(token)
  return { sub: stringOf(payload.sub), jti: stringOf(payload.jti) }
}

const jwtServer = (key: TestKey, server: Partial<Dcr.Options["server"]> = {}): TestServer =>
  serve({ tokenAuthenticator: TokenAuthenticator.layerJwt({ key: key.jwk }), server })

for (const alg of ["ES256", "HS256"] as const) {
  describe(`D15 JWT registration access tokens (${alg})`, () => {
    it(`R7592-5-a D15 the RAT is a ${alg} JWT: sub = client_id, a jti, iss = issuer, aud = registration endpoint, no exp`, async () => {
      const key = await makeKey(alg)
      const server = jwtServer(key)
      const { clientId, token } = await register(server)
      const header = Jose.decodeProtectedHeader(token)
      expect(header.alg).toBe(alg)
      expect(header.kid).toBe("rat-key-1")
      const { payload } = await Jose.jwtVerify(token, key.verifying, {
        algorithms: [alg],
        issuer: publicUrl,
        audience: registrationEndpoint
      })
      expect(payload.sub).toBe(clientId)
      expect(typeof payload.jti).toBe("string")
      expect(stringOf(payload.jti).length).toBeGreaterThan(0)
      expect(payload.iss).toBe(publicUrl)
      expect(payload.aud).toBe(registrationEndpoint)
      expect(payload.exp).toBeUndefined()
      expect(typeof payload.iat).toBe("number")
      // Two clients get different token ids.
      const other = await register(server)
      expect(claimsOf(other.token).jti).not.toBe(payload.jti)
    })

    it("R7592-2.1-a a read with the JWT RAT works and answers with the same token", async () => {
      const server = jwtServer(await makeKey(alg))
      const { clientId, token } = await register(server)
      const read = await server.request("GET", `/register/${clientId}`, { token })
      expect(read.status).toBe(200)
      expect(read.json?.client_id).toBe(clientId)
      expect(read.json?.registration_access_token).toBe(token)
    })

    it("R7592-2.1-c R7592-5-b D15 an update rotates the JWT: the old one is 401, the new one works", async () => {
      const server = jwtServer(await makeKey(alg))
      const { body, clientId, token } = await register(server)
      const path = `/register/${clientId}`
      const updated = await server.request("PUT", path, { token, json: updateBodyFrom(body) })
      expect(updated.status).toBe(200)
      const next = stringOf(updated.json?.registration_access_token)
      expect(next).not.toBe(token)
      expect(claimsOf(next).sub).toBe(clientId)
      expect(claimsOf(next).jti).not.toBe(claimsOf(token).jti)
      expectInvalidToken(await server.request("GET", path, { token }))
      expectInvalidToken(await server.request("PUT", path, { token, json: updateBodyFrom(body) }))
      expectInvalidToken(await server.request("DELETE", path, { token }))
      const read = await server.request("GET", path, { token: next })
      expect(read.status).toBe(200)
    })

    it("D15 with rotation off the same JWT keeps working across updates", async () => {
      const server = jwtServer(await makeKey(alg), { rotateRegistrationTokenOnUpdate: false })
      const { body, clientId, token } = await register(server)
      const path = `/register/${clientId}`
      for (const name of ["First", "Second"]) {
        const updated = await server.request("PUT", path, {
          token,
          json: updateBodyFrom(body, { client_name: name })
        })
        expect(updated.status).toBe(200)
        expect(updated.json?.registration_access_token).toBe(token)
      }
      const read = await server.request("GET", path, { token })
      expect(read.status).toBe(200)
      expect(read.json?.client_name).toBe("Second")
    })

    it("R7592-5-f R7592-2.3-b delete revokes the JWT with the client", async () => {
      const server = jwtServer(await makeKey(alg))
      const { body, clientId, token } = await register(server)
      const path = `/register/${clientId}`
      const deleted = await server.request("DELETE", path, { token })
      expect(deleted.status).toBe(204)
      expectInvalidToken(await server.request("GET", path, { token }))
      expectInvalidToken(await server.request("PUT", path, { token, json: updateBodyFrom(body) }))
      expectInvalidToken(await server.request("DELETE", path, { token }))
    })

    it("R6750-3.1-c a JWT with the live jti and sub but signed by another key with the same kid is 401", async () => {
      const key = await makeKey(alg)
      const server = jwtServer(key)
      const { clientId, token } = await register(server)
      const path = `/register/${clientId}`
      const claims = claimsOf(token)
      // Control: the same claims signed with the server's key are accepted.
      const genuine = await server.request("GET", path, { token: await signToken(key, claims) })
      expect(genuine.status).toBe(200)
      const impostor = await makeKey(alg, "rat-key-1")
      expectInvalidToken(await server.request("GET", path, { token: await signToken(impostor, claims) }))
      // Nor is a key without any kid.
      expectInvalidToken(await server.request("GET", path, { token: await signToken(impostor, claims, undefined) }))
    })

    it("R6750-3.1-c a JWT signed with the right key but for another audience or issuer is 401", async () => {
      const key = await makeKey(alg)
      const server = jwtServer(key)
      const { clientId, token } = await register(server)
      const path = `/register/${clientId}`
      const claims = claimsOf(token)
      for (const wrong of [
        { ...claims, aud: "https://other.example" },
        { ...claims, aud: `${registrationEndpoint}/${clientId}` },
        { ...claims, iss: "https://other.example" },
        { ...claims, iss: `${publicUrl}/` }
      ]) {
        expectInvalidToken(await server.request("GET", path, { token: await signToken(key, wrong) }))
      }
    })

    it("D1 R7592-1.2-b a JWT for client A presented at B's URI is 401 and B is unchanged", async () => {
      const key = await makeKey(alg)
      const server = jwtServer(key)
      const a = await register(server)
      const b = await register(server)
      const pathB = `/register/${b.clientId}`
      expectInvalidToken(await server.request("GET", pathB, { token: a.token }))
      expectInvalidToken(
        await server.request("PUT", pathB, {
          token: a.token,
          json: updateBodyFrom(b.body, { client_name: "pwned" })
        })
      )
      expectInvalidToken(await server.request("DELETE", pathB, { token: a.token }))
      // Even signed by the server's key, B's sub with A's token id is refused: the jti is A's.
      const crossed = await signToken(key, { sub: b.clientId, jti: claimsOf(a.token).jti })
      expectInvalidToken(await server.request("GET", pathB, { token: crossed }))
      const read = await server.request("GET", pathB, { token: b.token })
      expect(read.status).toBe(200)
      expect(read.json?.client_name).toBe(webClient.client_name)
    })

    it("R6750-3.1-c an unsecured JWT (alg none) with valid claims is 401", async () => {
      const server = jwtServer(await makeKey(alg))
      const { clientId, token } = await register(server)
      const claims = claimsOf(token)
      const unsecured = new Jose.UnsecuredJWT({})
        .setIssuer(publicUrl)
        .setAudience(registrationEndpoint)
        .setSubject(claims.sub)
        .setJti(claims.jti)
        .setIssuedAt()
        .encode()
      expectInvalidToken(await server.request("GET", `/register/${clientId}`, { token: unsecured }))
    })

    it("R6750-3.1-c a JWT signed with another algorithm is 401", async () => {
      const server = jwtServer(await makeKey(alg))
      const { clientId, token } = await register(server)
      const otherAlg = await makeKey(alg === "ES256" ? "HS256" : "ES256")
      const forged = await signToken(otherAlg, claimsOf(token))
      expectInvalidToken(await server.request("GET", `/register/${clientId}`, { token: forged }))
    })

    it.effect("R7592-5-a after TestClock moves 50 years the JWT RAT still works", () =>
      Effect.gen(function* () {
        const key = yield* Effect.promise(() => makeKey(alg))
        yield* Effect.gen(function* () {
          yield* TestClock.setTime(startMillis)
          const { body, clientId, token, path } = yield* registerVia()
          expect(Jose.decodeJwt(token).iat).toBe(startSeconds)
          yield* TestClock.adjust("18263 days")
          const read = yield* call("GET", path, { token })
          expect(read.status).toBe(200)
          expect(read.json?.client_id).toBe(clientId)
          const updated = yield* call("PUT", path, { token, json: updateBodyFrom(body) })
          expect(updated.status).toBe(200)
          const next = stringOf(updated.json?.registration_access_token)
          expect(Jose.decodeJwt(next).exp).toBeUndefined()
          expect(numberOf(Jose.decodeJwt(next).iat)).toBeGreaterThan(startSeconds)
          expect((yield* call("GET", path, { token: next })).status).toBe(200)
          expectInvalidToken(yield* call("GET", path, { token }))
        }).pipe(Effect.provide(services({ tokenAuthenticator: TokenAuthenticator.layerJwt({ key: key.jwk }) })))
      })
    )
  })
}
