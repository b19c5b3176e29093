/**
 * HTTP-level tests of the RFC 7592 client configuration endpoint through the
 * `@effect/platform` adapter, driven in-process. Each test is named after the
 * SPEC rule it pins.
 */
import { Cause, Clock, Effect, Layer, Logger, Option, Redacted } from "effect"
import { describe, expect, it } from "vitest"
import * as ClientEvents from "../src/ClientEvents.js"
import type { RegisteredClient } from "../src/ClientInformation.js"
import * as ClientStore from "../src/ClientStore.js"
import * as Credentials from "../src/Credentials.js"
import * as PermissionPolicy from "../src/PermissionPolicy.js"
import { StoreError } from "../src/ProtocolError.js"
import * as TokenAuthenticator from "../src/TokenAuthenticator.js"
import {
  serversDisposedAfterEach,
  publicUrl,
  register,
  registrationEndpoint,
  type TestResponse,
  type TestServer,
  updateBodyFrom,
  webClient
} from "./support/http.js"

// ---------------------------------------------------------------------------
// helpers

/** A test server disposed after the test. */
const serve = serversDisposedAfterEach()

/** The default realm: the issuer, which defaults to the public URL. */
const realm = publicUrl

interface Challenge {
  readonly scheme: string
  readonly params: ReadonlyArray<readonly [string, string]>
}

const authParam = /([A-Za-z0-9_]+)="([^"\\]*)"/g
const challengeShape = /^(\S+) ([A-Za-z0-9_]+="[^"\\]*"(?:, [A-Za-z0-9_]+="[^"\\]*")*)$/

/**
 * Parses a `WWW-Authenticate` value made of one challenge with quoted
 * auth-params. Fails when the value does not have that shape — including when
 * a value contains `"` or `\` (R6750-3-f).
 */
const parseChallenge = (header: string | null): Challenge => {
  if (header === null) throw new Error("no WWW-Authenticate header")
  const shape = challengeShape.exec(header)
  if (shape === null) throw new Error(`malformed challenge: ${header}`)
  const params: Array<readonly [string, string]> = []
  for (const match of (shape[2] ?? "").matchAll(authParam)) params.push([match[1] ?? "", match[2] ?? ""])
  return { scheme: shape[1] ?? "", params }
}

const paramsNamed = (challenge: Challenge, name: string): ReadonlyArray<string> =>
  challenge.params.filter(([key]) => key === name).map(([, value]) => value)

// R6750-3-f: %x20-21 / %x23-5B / %x5D-7E
const errorCharset = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/

/** RFC 6750 §3 rules every Bearer challenge must follow. */
const expectWellFormedChallenge = (challenge: Challenge): void => {
  expect(challenge.scheme).toBe("Bearer") // R6750-3-b
  expect(challenge.params.length).toBeGreaterThan(0) // R6750-3-b: one or more auth-params
  const names = challenge.params.map(([name]) => name)
  expect(new Set(names).size).toBe(names.length) // R6750-3-c, -d, -e: nothing repeats
  for (const [name, value] of challenge.params) {
    if (name === "error" || name === "error_description") expect(value).toMatch(errorCharset)
  }
}

/** An RFC 6750 error answer: status, JSON error code and a Bearer challenge carrying that code. */
const expectBearerError = (response: TestResponse, status: number, code: string): Challenge => {
  expect(response.status).toBe(status)
  expect(response.json?.error).toBe(code)
  expect(response.headers.get("content-type")).toMatch(/^application\/json/)
  expectNoStore(response)
  const challenge = parseChallenge(response.headers.get("www-authenticate"))
  expectWellFormedChallenge(challenge)
  expect(paramsNamed(challenge, "error")).toEqual([code])
  expect(paramsNamed(challenge, "realm")).toEqual([realm])
  return challenge
}

/** A plain JSON error answer without any challenge requirement. */
const expectJsonError = (response: TestResponse, status: number, code: string): void => {
  expect(response.status).toBe(status)
  expect(response.json?.error).toBe(code)
  expect(response.headers.get("content-type")).toMatch(/^application\/json/)
  expectNoStore(response)
}

/** Every header as `[name, value]` pairs (the DOM lib here lacks Headers iteration). */
const headerList = (headers: Headers | undefined): Array<readonly [string, string]> => {
  const list: Array<readonly [string, string]> = []
  headers?.forEach((value, name) => list.push([name, value]))
  return list
}

/** D16. */
const expectNoStore = (response: TestResponse): void => {
  expect(response.headers.get("cache-control")).toBe("no-store")
  expect(response.headers.get("pragma")).toBe("no-cache")
}

/** D5 / R6750-3.1-e: a bare challenge with a realm and no error information. */
const expectBareChallenge = (response: TestResponse): void => {
  expect(response.status).toBe(401)
  expectNoStore(response)
  const challenge = parseChallenge(response.headers.get("www-authenticate"))
  expectWellFormedChallenge(challenge)
  expect(challenge.params).toEqual([["realm", realm]])
  expect(response.json?.error).toBeUndefined()
  expect(response.json?.error_description).toBeUndefined()
}

const clientPath = (clientId: string): string => `/register/${encodeURIComponent(clientId)}`

/** Reads a client through the endpoint and returns its JSON, failing unless 200. */
const readClient = async (server: TestServer, clientId: string, token: string): Promise<Record<string, unknown>> => {
  const response = await server.request("GET", clientPath(clientId), { token })
  expect(response.status).toBe(200)
  if (response.json === undefined) throw new Error("empty read response")
  return response.json
}

const stringMember = (body: Record<string, unknown> | undefined, name: string): string => {
  const value = body?.[name]
  if (typeof value !== "string") throw new Error(`${name} is not a string in ${JSON.stringify(body)}`)
  return value
}

const findClient = (server: TestServer, clientId: string): Promise<Option.Option<RegisteredClient>> =>
  server.run(Effect.flatMap(ClientStore.ClientStore, (store) => store.findById(clientId)))

const tokenOwner = (server: TestServer, tokenId: string): Promise<Option.Option<string>> =>
  server.run(Effect.flatMap(ClientStore.ClientStore, (store) => store.findTokenOwner(tokenId)))

/** The path below the mount point that a `registration_client_uri` names. */
const pathOf = (uri: string): string => {
  const url = new URL(uri)
  const mount = new URL(publicUrl).pathname
  expect(url.pathname.startsWith(mount + "/")).toBe(true)
  return url.pathname.slice(mount.length)
}

/** Log lines written by the server, captured instead of printed. */
const captureLogs = (): { readonly lines: Array<string>; readonly layer: Layer.Layer<never> } => {
  const lines: Array<string> = []
  const logger = Logger.make(({ message, cause }) => {
    lines.push(`${JSON.stringify(message)} ${Cause.pretty(cause, { renderErrorCause: true })}`)
  })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger) }
}

/**
 * A memory store with some operations replaced (D2, D20). One that replaces a
 * lookup (`findById`, `findTokenOwner`) answers them in two steps, as a
 * host's store may: it offers no `findByToken`.
 */
const patchedStore = (
  patch: (memory: ClientStore.ClientStoreService) => Partial<ClientStore.ClientStoreService>,
  extra: Layer.Layer<never> = Layer.empty
): Layer.Layer<ClientStore.ClientStore> =>
  Layer.merge(
    Layer.sync(ClientStore.ClientStore, () => {
      const memory = ClientStore.makeMemory()
      const patched = patch(memory)
      const split = patched.findById !== undefined || patched.findTokenOwner !== undefined
      return { ...memory, ...(split ? { findByToken: undefined } : {}), ...patched }
    }),
    extra
  )

/** The opaque authenticator, recording every credential it is asked about. */
const recordingAuthenticator = (seen: Array<string>) =>
  Layer.effect(
    TokenAuthenticator.TokenAuthenticator,
    Effect.map(TokenAuthenticator.TokenAuthenticator, (opaque) => ({
      ...opaque,
      authenticate: (credential: Redacted.Redacted<string>) => {
        seen.push(Redacted.value(credential))
        return opaque.authenticate(credential)
      }
    }))
  ).pipe(Layer.provide(TokenAuthenticator.layerOpaque))

/**
 * An authenticator that knows one extra token, bound to a client the store
 * has never heard of (D2), and records what it is asked to revoke.
 */
const ghostAuthenticator = (ghostToken: string, ghostClient: string, revoked: Array<string>) =>
  Layer.effect(
    TokenAuthenticator.TokenAuthenticator,
    Effect.map(TokenAuthenticator.TokenAuthenticator, (opaque) => ({
      ...opaque,
      authenticate: (credential: Redacted.Redacted<string>) =>
        Redacted.value(credential) === ghostToken
          ? Effect.succeed({ clientId: ghostClient, tokenId: `${ghostToken}-id`, value: credential })
          : opaque.authenticate(credential),
      revoke: (token: TokenAuthenticator.RegistrationToken) =>
        Effect.zipRight(
          Effect.sync(() => void revoked.push(token.tokenId)),
          opaque.revoke(token)
        )
    }))
  ).pipe(Layer.provide(TokenAuthenticator.layerOpaque))

const storeFailure = () =>
  new StoreError({ operation: "x", cause: new Error("connection to db failed: password=hunter2") })

// ---------------------------------------------------------------------------
// RFC 7592 §2 — the endpoint

describe("RFC 7592 §2 client configuration endpoint", () => {
  it("R7592-2-a the registration_client_uri of POST, GET and PUT answers GET, PUT and DELETE", async () => {
    const server = serve()
    const { body: created, token } = await register(server)
    const createdPath = pathOf(stringMember(created, "registration_client_uri"))

    const read = await server.request("GET", createdPath, { token })
    expect(read.status).toBe(200)
    expect(read.json?.client_id).toBe(created.client_id)
    const readPath = pathOf(stringMember(read.json, "registration_client_uri"))
    expect(readPath).toBe(createdPath)

    const updated = await server.request("PUT", readPath, {
      token,
      json: updateBodyFrom(created, { client_name: "Renamed" })
    })
    expect(updated.status).toBe(200)
    expect(updated.json?.client_name).toBe("Renamed")
    const updatedPath = pathOf(stringMember(updated.json, "registration_client_uri"))
    expect(updatedPath).toBe(createdPath)

    const deleted = await server.request("DELETE", updatedPath, {
      token: stringMember(updated.json, "registration_access_token")
    })
    expect(deleted.status).toBe(204)
  })

  it("R7592-2-b a request without a bearer RAT in the Authorization header is refused", async () => {
    const server = serve()
    const { clientId, token } = await register(server)
    const bare = await server.request("GET", clientPath(clientId))
    expectBareChallenge(bare)
    const inQuery = await server.request("GET", `${clientPath(clientId)}?access_token=${token}`)
    expectBearerError(inQuery, 400, "invalid_request")
  })

  it("R7592-2-d unsupported methods on the CCE get 405 with Allow: GET, PUT, DELETE", async () => {
    const server = serve()
    const { clientId, token } = await register(server)
    for (const method of ["POST", "PATCH"]) {
      const response = await server.request(method, clientPath(clientId), { token, json: { client_id: clientId } })
      expectJsonError(response, 405, "invalid_request")
      expect(response.headers.get("allow")).toBe("GET, PUT, DELETE")
    }
    // the client is untouched
    const info = await readClient(server, clientId, token)
    expect(info.client_name).toBe(webClient.client_name)
  })
})

// ---------------------------------------------------------------------------
// RFC 7592 §2.1 — read

describe("RFC 7592 §2.1 read", () => {
  it("R7592-2.1-a a GET with the Bearer RAT reads the client", async () => {
    const server = serve()
    const { clientId, token } = await register(server)
    const response = await server.request("GET", `/register/${clientId}`, {
      headers: { authorization: `Bearer ${token}` }
    })
    expect(response.status).toBe(200)
    expect(response.json?.client_id).toBe(clientId)
  })

  it("R7592-2.1-b a successful read is 200 application/json with the full client information", async () => {
    const server = serve()
    const { clientId, token, body } = await register(server)
    const response = await server.request("GET", clientPath(clientId), { token })
    expect(response.status).toBe(200)
    expect(response.headers.get("content-type")).toMatch(/^application\/json/)
    expectNoStore(response)
    // Every registered member, the server-provisioned ones included, as the registration returned them.
    expect(response.json).toEqual(body)
    expect(response.json).toMatchObject({
      client_id: "client-1",
      client_secret: "secret-2",
      client_secret_expires_at: 0,
      redirect_uris: webClient.redirect_uris,
      client_name: webClient.client_name,
      scope: webClient.scope,
      token_endpoint_auth_method: "client_secret_basic",
      grant_types: ["authorization_code"],
      response_types: ["code"],
      registration_access_token: "rat-3",
      registration_client_uri: `${registrationEndpoint}/client-1`
    })
  })

  it("R7592-2.1-c a read does not rotate: the RAT and secret returned are the ones in use", async () => {
    const server = serve()
    const { clientId, token } = await register(server)
    const first = await readClient(server, clientId, token)
    const second = await readClient(server, clientId, token)
    expect(first.registration_access_token).toBe(token)
    expect(second.registration_access_token).toBe(token)
    expect(second.client_secret).toBe(first.client_secret)
  })

  it("R7592-2.1-d the client_id read equals the one registered, also after an update", async () => {
    const server = serve()
    const { clientId, token, body } = await register(server)
    expect((await readClient(server, clientId, token)).client_id).toBe(clientId)
    const updated = await server.request("PUT", clientPath(clientId), { token, json: updateBodyFrom(body) })
    expect(updated.json?.client_id).toBe(clientId)
    const newToken = stringMember(updated.json, "registration_access_token")
    expect((await readClient(server, clientId, newToken)).client_id).toBe(clientId)
  })

  it("R7592-2.1-e an invalid RAT gets 401 invalid_token with a Bearer challenge", async () => {
    const server = serve()
    const { clientId } = await register(server)
    const response = await server.request("GET", clientPath(clientId), { token: "not-the-token" })
    expectBearerError(response, 401, "invalid_token")
  })

  it("R7592-2.1-f a valid RAT whose client no longer exists gets 401 and is revoked", async () => {
    const lost = new Set<string>()
    const server = serve({
      store: patchedStore((memory) => ({
        findById: (clientId) => (lost.has(clientId) ? Effect.succeed(Option.none()) : memory.findById(clientId))
      }))
    })
    const { clientId, token } = await register(server)
    lost.add(clientId)
    const first = await server.request("GET", clientPath(clientId), { token })
    expectBearerError(first, 401, "invalid_token")
    expect(Option.isNone(await tokenOwner(server, Credentials.sha256(token)))).toBe(true)
    const second = await server.request("GET", clientPath(clientId), { token })
    expectBearerError(second, 401, "invalid_token")
  })

  it("R7592-2.1-g a read the policy refuses gets 403 insufficient_scope", async () => {
    const server = serve({ permissionPolicy: PermissionPolicy.layerFromPredicate((_, op) => op !== "read") })
    const { clientId, token } = await register(server)
    const response = await server.request("GET", clientPath(clientId), { token })
    expectBearerError(response, 403, "insufficient_scope")
    expect(response.json?.registration_access_token).toBeUndefined()
    expect(response.json?.client_secret).toBeUndefined()
  })
})

// ---------------------------------------------------------------------------
// RFC 7592 §2.2 — update

describe("RFC 7592 §2.2 update", () => {
  it("R7592-2.2-a an update is a PUT with a JSON object body", async () => {
    const server = serve()
    const { clientId, token, body } = await register(server)
    const response = await server.request("PUT", clientPath(clientId), {
      token,
      json: updateBodyFrom(body, { client_name: "Updated" })
    })
    expect(response.status).toBe(200)
    expect(response.json?.client_name).toBe("Updated")
  })

  it("R7592-2.2-a a PUT whose body is not a JSON object, not JSON or not application/json is 400 invalid_request", async () => {
    const server = serve()
    const { clientId, token, body } = await register(server)
    const before = await readClient(server, clientId, token)
    const valid = JSON.stringify(updateBodyFrom(body, { client_name: "Changed" }))
    const cases: ReadonlyArray<{ readonly body: string; readonly contentType: string }> = [
      { body: "[]", contentType: "application/json" },
      { body: `[${valid}]`, contentType: "application/json" },
      { body: '"text"', contentType: "application/json" },
      { body: "null", contentType: "application/json" },
      { body: "42", contentType: "application/json" },
      { body: "{not json", contentType: "application/json" },
      { body: "", contentType: "application/json" },
      { body: valid, contentType: "text/plain" },
      { body: valid, contentType: "application/x-www-form-urlencoded" },
      { body: valid, contentType: "application/jsonp" }
    ]
    for (const c of cases) {
      const response = await server.request("PUT", clientPath(clientId), {
        token,
        body: c.body,
        headers: { "content-type": c.contentType }
      })
      expectJsonError(response, 400, "invalid_request")
    }
    expect(await readClient(server, clientId, token)).toEqual(before)
  })

  for (const member of [
    "registration_access_token",
    "registration_client_uri",
    "client_secret_expires_at",
    "client_id_issued_at"
  ]) {
    it(`R7592-2.2-c D7 an update including ${member} is 400 invalid_request and changes nothing`, async () => {
      const server = serve()
      const { clientId, token, body } = await register(server)
      const before = await readClient(server, clientId, token)
      const response = await server.request("PUT", clientPath(clientId), {
        token,
        json: { ...updateBodyFrom(body, { client_name: "Changed" }), [member]: body[member] }
      })
      expectJsonError(response, 400, "invalid_request")
      expect(await readClient(server, clientId, token)).toEqual(before)
    })
  }

  it("R7592-2.2-d D8 omitted members are deleted from the registration", async () => {
    const server = serve()
    const { clientId, token } = await register(server, {
      ...webClient,
      contacts: ["ops@client.example.org"],
      client_uri: "https://client.example.org/",
      software_id: "example-app"
    })
    const response = await server.request("PUT", clientPath(clientId), {
      token,
      json: { client_id: clientId, redirect_uris: webClient.redirect_uris, client_name: "Only a name" }
    })
    expect(response.status).toBe(200)
    for (const gone of ["scope", "contacts", "client_uri", "software_id"]) {
      expect(response.json).not.toHaveProperty(gone)
    }
    expect(response.json?.client_name).toBe("Only a name")
    const after = await readClient(server, clientId, stringMember(response.json, "registration_access_token"))
    for (const gone of ["scope", "contacts", "client_uri", "software_id"]) expect(after).not.toHaveProperty(gone)
    const stored = await findClient(server, clientId)
    expect(Option.map(stored, (client) => Object.keys(client.metadata).sort())).toEqual(
      Option.some(["client_name", "grant_types", "redirect_uris", "response_types", "token_endpoint_auth_method"])
    )
  })

  it("R7592-2.2-d D8 a null value counts as omitted", async () => {
    const server = serve()
    const { clientId, token, body } = await register(server, { ...webClient, contacts: ["a@client.example.org"] })
    const response = await server.request("PUT", clientPath(clientId), {
      token,
      json: updateBodyFrom(body, { scope: null, contacts: null, client_uri: null })
    })
    expect(response.status).toBe(200)
    expect(response.json).not.toHaveProperty("scope")
    expect(response.json).not.toHaveProperty("contacts")
    expect(response.json).not.toHaveProperty("client_uri")
    expect(response.json?.client_name).toBe(webClient.client_name)
    const after = await readClient(server, clientId, stringMember(response.json, "registration_access_token"))
    expect(after).not.toHaveProperty("scope")
    expect(after).not.toHaveProperty("contacts")
  })

  it("D8 defaults are applied again on update and echoed", async () => {
    const server = serve()
    const { clientId, token } = await register(server, {
      ...webClient,
      token_endpoint_auth_method: "client_secret_post",
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"]
    })
    const response = await server.request("PUT", clientPath(clientId), {
      token,
      json: { client_id: clientId, redirect_uris: webClient.redirect_uris }
    })
    expect(response.status).toBe(200)
    expect(response.json).toMatchObject({
      token_endpoint_auth_method: "client_secret_basic",
      grant_types: ["authorization_code"],
      response_types: ["code"]
    })
    const after = await readClient(server, clientId, stringMember(response.json, "registration_access_token"))
    expect(after).toMatchObject({
      token_endpoint_auth_method: "client_secret_basic",
      grant_types: ["authorization_code"],
      response_types: ["code"]
    })
  })

  it("R7592-2.2-e D7 an update without client_id is 400 invalid_request and changes nothing", async () => {
    const server = serve()
    const { clientId, token, body } = await register(server)
    const before = await readClient(server, clientId, token)
    const { client_id: _omitted, ...withoutId } = updateBodyFrom(body, { client_name: "Changed" })
    const response = await server.request("PUT", clientPath(clientId), { token, json: withoutId })
    expectJsonError(response, 400, "invalid_request")
    expect(await readClient(server, clientId, token)).toEqual(before)
  })

  it("R7592-2.2-e D7 an update with a different client_id is 400 invalid_request and changes nothing", async () => {
    const server = serve()
    const { clientId, token, body } = await register(server)
    const other = await register(server)
    const before = await readClient(server, clientId, token)
    const otherBefore = await readClient(server, other.clientId, other.token)
    for (const wrong of [other.clientId, "client-999", "", 1, null, "CLIENT-1"]) {
      const response = await server.request("PUT", clientPath(clientId), {
        token,
        json: updateBodyFrom(body, { client_id: wrong, client_name: "Changed" })
      })
      expectJsonError(response, 400, "invalid_request")
    }
    expect(await readClient(server, clientId, token)).toEqual(before)
    expect(await readClient(server, other.clientId, other.token)).toEqual(otherBefore)
  })

  it("R7592-2.2-f D7 an update with a wrong client_secret is 400 invalid_request and changes nothing", async () => {
    const server = serve()
    const { clientId, token, body } = await register(server)
    const before = await readClient(server, clientId, token)
    for (const wrong of ["wrong-secret", "secret-2 ", "SECRET-2", "", "secret-"]) {
      const response = await server.request("PUT", clientPath(clientId), {
        token,
        json: updateBodyFrom(body, { client_secret: wrong, client_name: "Changed" })
      })
      expectJsonError(response, 400, "invalid_request")
    }
    expect(await readClient(server, clientId, token)).toEqual(before)
  })

  it("R7592-2.2-f D7 a non-string client_secret is 400 invalid_request and changes nothing", async () => {
    const server = serve()
    const { clientId, token, body } = await register(server)
    const before = await readClient(server, clientId, token)
    for (const wrong of [2, true, ["secret-2"], { value: "secret-2" }]) {
      const response = await server.request("PUT", clientPath(clientId), {
        token,
        json: updateBodyFrom(body, { client_secret: wrong, client_name: "Changed" })
      })
      expectJsonError(response, 400, "invalid_request")
    }
    expect(await readClient(server, clientId, token)).toEqual(before)
  })

  it("R7592-2.2-f D7 a client_secret sent by a client without a secret is 400 invalid_request", async () => {
    const server = serve()
    const { clientId, token, body } = await register(server, { ...webClient, token_endpoint_auth_method: "none" })
    expect(body).not.toHaveProperty("client_secret")
    const before = await readClient(server, clientId, token)
    const response = await server.request("PUT", clientPath(clientId), {
      token,
      json: updateBodyFrom(body, {
        client_secret: "chosen-by-client",
        token_endpoint_auth_method: "client_secret_basic"
      })
    })
    expectJsonError(response, 400, "invalid_request")
    expect(await readClient(server, clientId, token)).toEqual(before)
  })

  it("R7592-2.2-f D7 a matching client_secret is accepted and the secret stays the same", async () => {
    const server = serve()
    const { clientId, token, body } = await register(server)
    expect(body.client_secret).toBe("secret-2")
    const response = await server.request("PUT", clientPath(clientId), {
      token,
      json: updateBodyFrom(body, { client_name: "Changed" })
    })
    expect(response.status).toBe(200)
    expect(response.json?.client_secret).toBe("secret-2")
    expect(response.json?.client_secret_expires_at).toBe(body.client_secret_expires_at)
    expect(response.json?.client_name).toBe("Changed")
    // and without client_secret in the body, the secret also stays
    const again = await server.request("PUT", clientPath(clientId), {
      token: stringMember(response.json, "registration_access_token"),
      json: updateBodyFrom(body, { client_secret: undefined, client_name: "Again" })
    })
    expect(again.status).toBe(200)
    expect(again.json?.client_secret).toBe("secret-2")
  })

  it("R7592-2.2-g values the server substitutes appear in the response", async () => {
    const server = serve({ server: { defaultScope: "profile" } })
    const { clientId, token, body } = await register(server)
    const { scope: _scope, ...withoutScope } = updateBodyFrom(body)
    const response = await server.request("PUT", clientPath(clientId), {
      token,
      json: {
        ...withoutScope,
        redirect_uris: ["https://client.example.org/a", "https://client.example.org/a"],
        contacts: ["x@client.example.org", "x@client.example.org"]
      }
    })
    expect(response.status).toBe(200)
    expect(response.json?.scope).toBe("profile")
    expect(response.json?.redirect_uris).toEqual(["https://client.example.org/a"])
    expect(response.json?.contacts).toEqual(["x@client.example.org"])
    const after = await readClient(server, clientId, stringMember(response.json, "registration_access_token"))
    expect(after.scope).toBe("profile")
    expect(after.redirect_uris).toEqual(["https://client.example.org/a"])
  })

  it("R7592-2.2-h a successful update is 200 application/json with the full client information", async () => {
    const server = serve()
    const { clientId, token, body } = await register(server)
    const response = await server.request("PUT", clientPath(clientId), {
      token,
      json: updateBodyFrom(body, { client_name: "Changed", contacts: ["c@client.example.org"] })
    })
    expect(response.status).toBe(200)
    expect(response.headers.get("content-type")).toMatch(/^application\/json/)
    expectNoStore(response)
    expect(response.json).toEqual({
      ...body,
      client_name: "Changed",
      contacts: ["c@client.example.org"],
      registration_access_token: "rat-4"
    })
    expect(response.json?.client_id).toBe(clientId)
  })

  it("R7592-2.2-i an invalid RAT on PUT gets 401 invalid_token and changes nothing", async () => {
    const server = serve()
    const { clientId, token, body } = await register(server)
    const before = await readClient(server, clientId, token)
    const response = await server.request("PUT", clientPath(clientId), {
      token: "rat-999",
      json: updateBodyFrom(body, { client_name: "Changed" })
    })
    expectBearerError(response, 401, "invalid_token")
    expect(await readClient(server, clientId, token)).toEqual(before)
  })

  it("R7592-2.2-j a PUT for a client that no longer exists gets 401 and the RAT is revoked", async () => {
    const lost = new Set<string>()
    const server = serve({
      store: patchedStore((memory) => ({
        findById: (clientId) => (lost.has(clientId) ? Effect.succeed(Option.none()) : memory.findById(clientId))
      }))
    })
    const { clientId, token, body } = await register(server)
    lost.add(clientId)
    const response = await server.request("PUT", clientPath(clientId), { token, json: updateBodyFrom(body) })
    expectBearerError(response, 401, "invalid_token")
    expect(Option.isNone(await tokenOwner(server, Credentials.sha256(token)))).toBe(true)
    lost.delete(clientId)
    // the client record is back, but the token stays revoked
    expectBearerError(await server.request("GET", clientPath(clientId), { token }), 401, "invalid_token")
  })

  it("R7592-2.2-k an update the policy refuses gets 403 insufficient_scope and changes nothing", async () => {
    const server = serve({ permissionPolicy: PermissionPolicy.layerFromPredicate((_, op) => op !== "update") })
    const { clientId, token, body } = await register(server)
    const before = await readClient(server, clientId, token)
    const response = await server.request("PUT", clientPath(clientId), {
      token,
      json: updateBodyFrom(body, { client_name: "Changed" })
    })
    expectBearerError(response, 403, "insufficient_scope")
    // not rotated, not changed
    expect(await readClient(server, clientId, token)).toEqual(before)
  })

  it("R7592-2.2-l an invalid redirect URI is 400 invalid_redirect_uri and changes nothing", async () => {
    const server = serve()
    const { clientId, token, body } = await register(server)
    const before = await readClient(server, clientId, token)
    for (const uri of ["http://evil.example/cb", "https://client.example.org/cb#frag", "javascript:alert(1)", "cb"]) {
      const response = await server.request("PUT", clientPath(clientId), {
        token,
        json: updateBodyFrom(body, { redirect_uris: [uri] })
      })
      expectJsonError(response, 400, "invalid_redirect_uri")
    }
    expect(await readClient(server, clientId, token)).toEqual(before)
  })

  it("R7592-2.2-l invalid metadata is 400 invalid_client_metadata and changes nothing", async () => {
    const server = serve()
    const { clientId, token, body } = await register(server)
    const before = await readClient(server, clientId, token)
    const invalid: ReadonlyArray<Record<string, unknown>> = [
      { client_uri: "not a url" },
      { contacts: "ops@client.example.org" },
      { grant_types: ["urn:example:unsupported"] },
      { scope: "admin" },
      { token_endpoint_auth_method: "magic" },
      { grant_types: ["client_credentials"], response_types: ["code"] }
    ]
    for (const change of invalid) {
      const response = await server.request("PUT", clientPath(clientId), {
        token,
        json: updateBodyFrom(body, change)
      })
      expectJsonError(response, 400, "invalid_client_metadata")
    }
    expect(await readClient(server, clientId, token)).toEqual(before)
  })
})

// ---------------------------------------------------------------------------
// RFC 7592 §2.3 — delete

describe("RFC 7592 §2.3 delete", () => {
  it("R7592-2.3-a R7592-2.3-d a DELETE with the Bearer RAT answers 204 with an empty body", async () => {
    const server = serve()
    const { clientId, token } = await register(server)
    const response = await server.request("DELETE", clientPath(clientId), { token })
    expect(response.status).toBe(204)
    expect(response.text).toBe("")
    expect(response.json).toBeUndefined()
    expect(response.headers.get("content-type")).toBeNull()
    expectNoStore(response)
  })

  it("R7592-2.3-b R7592-5-f after a delete, the client id, secret and RAT are all invalid", async () => {
    const server = serve()
    const { clientId, token, body } = await register(server)
    expect((await server.request("DELETE", clientPath(clientId), { token })).status).toBe(204)
    expectBearerError(await server.request("GET", clientPath(clientId), { token }), 401, "invalid_token")
    expectBearerError(
      await server.request("PUT", clientPath(clientId), { token, json: updateBodyFrom(body) }),
      401,
      "invalid_token"
    )
    expectBearerError(await server.request("DELETE", clientPath(clientId), { token }), 401, "invalid_token")
    expect(Option.isNone(await findClient(server, clientId))).toBe(true)
    expect(Option.isNone(await tokenOwner(server, Credentials.sha256(token)))).toBe(true)
  })

  it("R7592-2.3-e D4 with delete disabled, DELETE gets 405 with Allow: GET, PUT and the client stays", async () => {
    const server = serve({ server: { deleteEnabled: false } })
    const { clientId, token } = await register(server)
    const response = await server.request("DELETE", clientPath(clientId), { token })
    expectJsonError(response, 405, "invalid_request")
    expect(response.headers.get("allow")).toBe("GET, PUT")
    expect((await readClient(server, clientId, token)).client_id).toBe(clientId)
  })

  it("R7592-2.3-f an invalid RAT on DELETE gets 401 invalid_token and the client stays", async () => {
    const server = serve()
    const { clientId, token } = await register(server)
    const response = await server.request("DELETE", clientPath(clientId), { token: "rat-3x" })
    expectBearerError(response, 401, "invalid_token")
    expect((await readClient(server, clientId, token)).client_id).toBe(clientId)
  })

  it("R7592-2.3-g a DELETE for a client that no longer exists gets 401 and the RAT is revoked", async () => {
    const lost = new Set<string>()
    const server = serve({
      store: patchedStore((memory) => ({
        findById: (clientId) => (lost.has(clientId) ? Effect.succeed(Option.none()) : memory.findById(clientId))
      }))
    })
    const { clientId, token } = await register(server)
    lost.add(clientId)
    expectBearerError(await server.request("DELETE", clientPath(clientId), { token }), 401, "invalid_token")
    expect(Option.isNone(await tokenOwner(server, Credentials.sha256(token)))).toBe(true)
  })

  it("R7592-2.3-h a delete the policy refuses gets 403 insufficient_scope and the client stays", async () => {
    const deleted: Array<string> = []
    const server = serve({
      permissionPolicy: PermissionPolicy.layerFromPredicate((_, op) => op !== "delete"),
      clientEvents: ClientEvents.layer({ deleted: (client) => Effect.sync(() => void deleted.push(client.clientId)) })
    })
    const { clientId, token } = await register(server)
    const response = await server.request("DELETE", clientPath(clientId), { token })
    expectBearerError(response, 403, "insufficient_scope")
    expect((await readClient(server, clientId, token)).client_id).toBe(clientId)
    expect(deleted).toEqual([])
  })
})

// ---------------------------------------------------------------------------
// RFC 7592 §3 — the client information response

describe("RFC 7592 §3 client information response", () => {
  it("R7592-3-a the registration response carries the RFC 7592 members", async () => {
    const server = serve()
    const { body } = await register(server)
    expect(body.registration_client_uri).toBe(`${registrationEndpoint}/client-1`)
    expect(body.registration_access_token).toBe("rat-3")
  })

  it("R7592-3-b registration_client_uri is a fully qualified URL in POST, GET and PUT responses", async () => {
    const server = serve()
    const { clientId, token, body } = await register(server)
    const read = await readClient(server, clientId, token)
    const updated = await server.request("PUT", clientPath(clientId), { token, json: updateBodyFrom(body) })
    for (const info of [body, read, updated.json]) {
      const uri = new URL(stringMember(info, "registration_client_uri"))
      expect(uri.protocol).toBe("https:")
      expect(uri.host).toBe("as.example.com")
      expect(uri.href).toBe(`${registrationEndpoint}/${clientId}`)
    }
  })

  it("R7592-3-c registration_access_token is a string in every client information response", async () => {
    const server = serve()
    const { clientId, token, body } = await register(server)
    const read = await readClient(server, clientId, token)
    const updated = await server.request("PUT", clientPath(clientId), { token, json: updateBodyFrom(body) })
    expect(body.registration_access_token).toBe("rat-3")
    expect(read.registration_access_token).toBe("rat-3")
    expect(updated.json?.registration_access_token).toBe("rat-4")
  })

  it("R7592-3-d all registered metadata is returned, including server-provisioned defaults", async () => {
    const server = serve()
    const { clientId, token, body } = await register(server, { redirect_uris: webClient.redirect_uris })
    const expected = {
      redirect_uris: webClient.redirect_uris,
      token_endpoint_auth_method: "client_secret_basic",
      grant_types: ["authorization_code"],
      response_types: ["code"]
    }
    expect(body).toMatchObject(expected)
    expect(await readClient(server, clientId, token)).toMatchObject(expected)
    const updated = await server.request("PUT", clientPath(clientId), {
      token,
      json: { client_id: clientId, redirect_uris: webClient.redirect_uris }
    })
    expect(updated.json).toMatchObject(expected)
  })

  it("R7592-3-e requested values may be replaced, and the response shows what was registered", async () => {
    const server = serve()
    const { clientId, token, body } = await register(server, {
      ...webClient,
      redirect_uris: ["https://client.example.org/cb", "https://client.example.org/cb"],
      unknown_member: "dropped"
    })
    expect(body.redirect_uris).toEqual(["https://client.example.org/cb"])
    expect(body).not.toHaveProperty("unknown_member")
    expect(await readClient(server, clientId, token)).toEqual(body)
  })

  it("R7592-3-f the response is an application/json object with no-store caching headers", async () => {
    const server = serve()
    const { clientId, token, response } = await register(server)
    const read = await server.request("GET", clientPath(clientId), { token })
    for (const r of [response, read]) {
      expect(r.headers.get("content-type")).toMatch(/^application\/json/)
      expectNoStore(r)
      const parsed: unknown = JSON.parse(r.text)
      expect(typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)).toBe(true)
    }
  })
})

// ---------------------------------------------------------------------------
// RFC 7592 §5 — security considerations

/** A clock that runs `offset.ms` ahead of the real one. */
const shiftedClock = (): { readonly offset: { ms: number }; readonly layer: Layer.Layer<never> } => {
  const offset = { ms: 0 }
  const live = Clock.make()
  const clock: Clock.Clock = {
    [Clock.ClockTypeId]: Clock.ClockTypeId,
    unsafeCurrentTimeMillis: () => live.unsafeCurrentTimeMillis() + offset.ms,
    currentTimeMillis: Effect.sync(() => live.unsafeCurrentTimeMillis() + offset.ms),
    unsafeCurrentTimeNanos: () => live.unsafeCurrentTimeNanos() + BigInt(offset.ms) * 1_000_000n,
    currentTimeNanos: Effect.sync(() => live.unsafeCurrentTimeNanos() + BigInt(offset.ms) * 1_000_000n),
    sleep: (duration) => live.sleep(duration)
  }
  return { offset, layer: Layer.setClock(clock) }
}

describe("RFC 7592 §5 security considerations", () => {
  it("R7592-5-a D15 a RAT still works after the clock moves decades ahead", async () => {
    const { offset, layer } = shiftedClock()
    const server = serve({ store: Layer.merge(ClientStore.layerMemory, layer) })
    const { clientId, token, body } = await register(server)
    expect(body).not.toHaveProperty("registration_access_token_expires_at")
    const issuedAt = body.client_id_issued_at
    if (typeof issuedAt !== "number") throw new Error("client_id_issued_at missing")
    const fortyYears = 40 * 365 * 24 * 3600
    offset.ms = fortyYears * 1000
    // The server's clock really moved: a client registered now is issued forty years later.
    const later = await register(server)
    const laterIssuedAt = later.body.client_id_issued_at
    if (typeof laterIssuedAt !== "number") throw new Error("client_id_issued_at missing")
    expect(laterIssuedAt - issuedAt).toBeGreaterThanOrEqual(fortyYears)
    // … and the first RAT still reads, updates and deletes.
    expect((await readClient(server, clientId, token)).client_id).toBe(clientId)
    const updated = await server.request("PUT", clientPath(clientId), { token, json: updateBodyFrom(body) })
    expect(updated.status).toBe(200)
    offset.ms = 2 * fortyYears * 1000
    const deleted = await server.request("DELETE", clientPath(clientId), {
      token: stringMember(updated.json, "registration_access_token")
    })
    expect(deleted.status).toBe(204)
  })

  it("R7592-5-b R7592-2.1-c D15 the RAT rotates on update: the new one works, the old one gets 401", async () => {
    const server = serve()
    const { clientId, token, body } = await register(server)
    const response = await server.request("PUT", clientPath(clientId), { token, json: updateBodyFrom(body) })
    expect(response.status).toBe(200)
    const rotated = stringMember(response.json, "registration_access_token")
    expect(rotated).toBe("rat-4")
    expect(rotated).not.toBe(token)
    expectBearerError(await server.request("GET", clientPath(clientId), { token }), 401, "invalid_token")
    expectBearerError(
      await server.request("PUT", clientPath(clientId), { token, json: updateBodyFrom(body) }),
      401,
      "invalid_token"
    )
    expectBearerError(await server.request("DELETE", clientPath(clientId), { token }), 401, "invalid_token")
    expect((await readClient(server, clientId, rotated)).registration_access_token).toBe(rotated)
  })

  it("R7592-5-b D15 with rotateRegistrationTokenOnUpdate false, the RAT stays the same", async () => {
    const server = serve({ server: { rotateRegistrationTokenOnUpdate: false } })
    const { clientId, token, body } = await register(server)
    const response = await server.request("PUT", clientPath(clientId), {
      token,
      json: updateBodyFrom(body, { client_name: "Changed" })
    })
    expect(response.status).toBe(200)
    expect(response.json?.registration_access_token).toBe(token)
    expect((await readClient(server, clientId, token)).client_name).toBe("Changed")
  })

  it("R7592-5-e D15 with the real credentials, RATs, secrets and ids are long, base64url and distinct", async () => {
    const server = serve({ credentials: Credentials.layer })
    const tokens = new Set<string>()
    const secrets = new Set<string>()
    const ids = new Set<string>()
    for (let i = 0; i < 10; i++) {
      const { body, clientId, token } = await register(server)
      const secret = stringMember(body, "client_secret")
      // ≥ 256 bits in base64url: at least 43 characters of the URL-safe alphabet.
      expect(token).toMatch(/^[A-Za-z0-9_-]{43,}$/)
      expect(secret).toMatch(/^[A-Za-z0-9_-]{43,}$/)
      expect(clientId).toMatch(/^[A-Za-z0-9_-]{22,}$/)
      tokens.add(token)
      secrets.add(secret)
      ids.add(clientId)
    }
    expect(tokens.size).toBe(10)
    expect(secrets.size).toBe(10)
    expect(ids.size).toBe(10)
    // a rotated RAT is just as strong
    const { clientId, token, body } = await register(server)
    const updated = await server.request("PUT", clientPath(clientId), { token, json: updateBodyFrom(body) })
    const rotated = stringMember(updated.json, "registration_access_token")
    expect(rotated).toMatch(/^[A-Za-z0-9_-]{43,}$/)
    expect(tokens.has(rotated)).toBe(false)
  })

  it("R7592-5-f every RAT of a deleted client gets 401 at once, including one rotated before", async () => {
    const server = serve()
    const { clientId, token, body } = await register(server)
    const updated = await server.request("PUT", clientPath(clientId), { token, json: updateBodyFrom(body) })
    const current = stringMember(updated.json, "registration_access_token")
    expect((await server.request("DELETE", clientPath(clientId), { token: current })).status).toBe(204)
    for (const rat of [current, token]) {
      expectBearerError(await server.request("GET", clientPath(clientId), { token: rat }), 401, "invalid_token")
    }
  })
})

// ---------------------------------------------------------------------------
// RFC 6750 §2.1 / §3 — bearer credentials and challenges

describe("RFC 6750 bearer credentials at the configuration endpoint", () => {
  it("R6750-3-a R7235-3.1 every 401 carries a WWW-Authenticate challenge", async () => {
    const server = serve()
    const { clientId } = await register(server)
    const responses = [
      await server.request("GET", clientPath(clientId)),
      await server.request("GET", clientPath(clientId), { headers: { authorization: "Basic Y2xpZW50OnNlY3JldA==" } }),
      await server.request("GET", clientPath(clientId), { token: "unknown" }),
      await server.request("DELETE", clientPath(clientId), { token: "unknown" }),
      await server.request("PUT", clientPath(clientId), { token: "unknown", json: { client_id: clientId } })
    ]
    for (const response of responses) {
      expect(response.status).toBe(401)
      expectWellFormedChallenge(parseChallenge(response.headers.get("www-authenticate")))
    }
  })

  it("R6750-3-b challenges use the Bearer scheme, never Basic, also for a Basic request", async () => {
    const server = serve()
    const { clientId } = await register(server)
    const response = await server.request("GET", clientPath(clientId), {
      headers: { authorization: "Basic Y2xpZW50LTE6c2VjcmV0LTI=" }
    })
    const header = response.headers.get("www-authenticate") ?? ""
    expect(header.startsWith("Bearer ")).toBe(true)
    expect(header.toLowerCase()).not.toContain("basic")
  })

  it("R6750-3-c realm appears exactly once in every challenge", async () => {
    const server = serve()
    const { clientId } = await register(server)
    const responses = [
      await server.request("GET", clientPath(clientId)),
      await server.request("GET", clientPath(clientId), { token: "unknown" }),
      await server.request("GET", clientPath(clientId), { headers: { authorization: "Bearer" } })
    ]
    for (const response of responses) {
      const header = response.headers.get("www-authenticate") ?? ""
      expect(header.match(/realm=/g)?.length).toBe(1)
      expect(paramsNamed(parseChallenge(header), "realm")).toEqual([realm])
    }
  })

  it("R6750-3-c a configured realm is used, once", async () => {
    const server = serve({ server: { realm: "dcr" } })
    const { clientId } = await register(server)
    const response = await server.request("GET", clientPath(clientId), { token: "unknown" })
    const challenge = parseChallenge(response.headers.get("www-authenticate"))
    expect(paramsNamed(challenge, "realm")).toEqual(["dcr"])
  })

  it("R6750-3-d a scope attribute, if any, appears at most once and uses the scope charset", async () => {
    const server = serve({ permissionPolicy: PermissionPolicy.layerFromPredicate(() => false) })
    const { clientId, token } = await register(server)
    const responses = [
      await server.request("GET", clientPath(clientId), { token }),
      await server.request("GET", clientPath(clientId), { token: "unknown" })
    ]
    for (const response of responses) {
      const scopes = paramsNamed(parseChallenge(response.headers.get("www-authenticate")), "scope")
      expect(scopes.length).toBeLessThanOrEqual(1)
      for (const scope of scopes) {
        expect(scope).toMatch(/^[\x21\x23-\x5b\x5d-\x7e]+( [\x21\x23-\x5b\x5d-\x7e]+)*$/)
        const values = scope.split(" ")
        expect(new Set(values).size).toBe(values.length)
      }
    }
  })

  it("R6750-3-e a request with a failing token gets an error attribute, none repeated", async () => {
    const server = serve()
    const { clientId } = await register(server)
    const response = await server.request("GET", clientPath(clientId), { token: "unknown" })
    const challenge = expectBearerError(response, 401, "invalid_token")
    expect(paramsNamed(challenge, "error_description").length).toBeLessThanOrEqual(1)
    expect(paramsNamed(challenge, "error_uri").length).toBeLessThanOrEqual(1)
  })

  it('R6750-3-f no " or \\ inside challenge values, even when the input and the realm contain them', async () => {
    const server = serve({ server: { realm: 'as "main" \\ realm' } })
    const { clientId } = await register(server)
    const inputs: ReadonlyArray<string> = [
      'Bearer "rat-3"',
      "Bearer rat\\3",
      'Bearer a"b',
      'Bearer x", error="injected',
      "Bearer a b"
    ]
    const responses = [
      await server.request("GET", clientPath(clientId), { token: "unknown" }),
      await server.request("GET", clientPath(clientId)),
      ...(await Promise.all(
        inputs.map((authorization) => server.request("GET", clientPath(clientId), { headers: { authorization } }))
      ))
    ]
    for (const response of responses) {
      const header = response.headers.get("www-authenticate")
      // parseChallenge refuses any `"` or `\` inside a quoted value
      const challenge = parseChallenge(header)
      expectWellFormedChallenge(challenge)
      for (const [, value] of challenge.params) {
        expect(value).not.toMatch(/["\\]/)
        expect(value).toMatch(errorCharset)
      }
      expect(paramsNamed(challenge, "error").length).toBeLessThanOrEqual(1)
      expect(header).not.toContain("injected")
    }
  })

  it("R6750-3.1-a failures use fitting statuses with their codes", async () => {
    const server = serve({ permissionPolicy: PermissionPolicy.layerFromPredicate((_, op) => op !== "delete") })
    const { clientId, token } = await register(server)
    expectBearerError(
      await server.request("GET", clientPath(clientId), { headers: { authorization: "Bearer " } }),
      400,
      "invalid_request"
    )
    expectBearerError(await server.request("GET", clientPath(clientId), { token: "unknown" }), 401, "invalid_token")
    expectBearerError(await server.request("DELETE", clientPath(clientId), { token }), 403, "insufficient_scope")
    expectJsonError(await server.request("PATCH", clientPath(clientId), { token }), 405, "invalid_request")
  })

  it("R6750-3.1-b D6 Bearer with no token is 400 invalid_request", async () => {
    const server = serve()
    const { clientId, token } = await register(server)
    for (const authorization of ["Bearer", "Bearer ", "bearer   "]) {
      const response = await server.request("GET", clientPath(clientId), { headers: { authorization } })
      expectBearerError(response, 400, "invalid_request")
      expect(response.json?.client_id).toBeUndefined()
    }
    expect((await readClient(server, clientId, token)).client_id).toBe(clientId)
  })

  it("R6750-3.1-b D6 two Authorization headers are invalid_request", async () => {
    const server = serve()
    const { clientId, token } = await register(server)
    const response = await server.request("GET", clientPath(clientId), {
      headers: [
        ["authorization", `Bearer ${token}`],
        ["authorization", `Bearer ${token}`]
      ]
    })
    expectBearerError(response, 400, "invalid_request")
    expect(response.json?.client_id).toBeUndefined()
    const mixed = await server.request("GET", clientPath(clientId), {
      headers: [
        ["authorization", "Basic Y2xpZW50OnNlY3JldA=="],
        ["authorization", `Bearer ${token}`]
      ]
    })
    expect(mixed.status).not.toBe(200)
    expect(mixed.json?.client_id).toBeUndefined()
  })

  it("R6750-3.1-b D6 a token also sent in the query is invalid_request", async () => {
    const server = serve()
    const { clientId, token } = await register(server)
    const both = await server.request("GET", `${clientPath(clientId)}?access_token=${token}`, { token })
    expectBearerError(both, 400, "invalid_request")
    expect(both.json?.client_id).toBeUndefined()
    const queryOnly = await server.request("DELETE", `${clientPath(clientId)}?access_token=${token}`)
    expectBearerError(queryOnly, 400, "invalid_request")
    expect((await readClient(server, clientId, token)).client_id).toBe(clientId)
  })

  it("R6750-3.1-b D6 a token sent in a form body is invalid_request", async () => {
    const server = serve()
    const { clientId, token } = await register(server)
    for (const withHeader of [false, true]) {
      const response = await server.request("DELETE", clientPath(clientId), {
        ...(withHeader ? { token } : {}),
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: `access_token=${token}`
      })
      expectBearerError(response, 400, "invalid_request")
    }
    expect((await readClient(server, clientId, token)).client_id).toBe(clientId)
  })

  it("R6750-3.1-c an unknown or revoked token is 401 invalid_token", async () => {
    const server = serve()
    const { clientId, token, body } = await register(server)
    expectBearerError(await server.request("GET", clientPath(clientId), { token: "rat-1" }), 401, "invalid_token")
    await server.request("PUT", clientPath(clientId), { token, json: updateBodyFrom(body) })
    // the token rotated away is now revoked
    expectBearerError(await server.request("GET", clientPath(clientId), { token }), 401, "invalid_token")
  })

  it("R6750-3.1-d D3 a permission refusal is 403 insufficient_scope with a JSON error and description", async () => {
    const server = serve({ permissionPolicy: PermissionPolicy.layerFromPredicate(() => false) })
    const { clientId, token, body } = await register(server)
    for (const response of [
      await server.request("GET", clientPath(clientId), { token }),
      await server.request("PUT", clientPath(clientId), { token, json: updateBodyFrom(body) }),
      await server.request("DELETE", clientPath(clientId), { token })
    ]) {
      expectBearerError(response, 403, "insufficient_scope")
      expect(typeof response.json?.error_description).toBe("string")
      expect(Object.keys(response.json ?? {}).sort()).toEqual(["error", "error_description"])
    }
    // the policy said no each time, so the client is still there with its RAT
    expect(Option.isSome(await findClient(server, clientId))).toBe(true)
    expect(await tokenOwner(server, Credentials.sha256(token))).toEqual(Option.some(clientId))
  })

  it("R6750-3.1-e D5 no Authorization header gets a bare Bearer realm challenge", async () => {
    const server = serve()
    const { clientId, body } = await register(server)
    for (const response of [
      await server.request("GET", clientPath(clientId)),
      await server.request("PUT", clientPath(clientId), { json: updateBodyFrom(body) }),
      await server.request("DELETE", clientPath(clientId))
    ]) {
      expectBareChallenge(response)
      expect(response.headers.get("www-authenticate")).toBe(`Bearer realm="${realm}"`)
    }
  })

  it("R6750-3.1-e D5 a non-Bearer scheme gets a bare Bearer realm challenge", async () => {
    const server = serve()
    const { clientId } = await register(server)
    for (const authorization of ["Basic Y2xpZW50LTE6c2VjcmV0LTI=", "Digest username=x", "Token rat-3", "Bearerrat-3"]) {
      const response = await server.request("GET", clientPath(clientId), { headers: { authorization } })
      expectBareChallenge(response)
    }
  })

  it("R6750-2.1-a the scheme name is case-insensitive: bearer x is accepted", async () => {
    const server = serve()
    const { clientId, token } = await register(server)
    for (const scheme of ["bearer", "BEARER", "BeArEr"]) {
      const response = await server.request("GET", clientPath(clientId), {
        headers: { authorization: `${scheme} ${token}` }
      })
      expect(response.status).toBe(200)
      expect(response.json?.client_id).toBe(clientId)
    }
  })

  it("R6750-2.1-a a token with a space or quotes is malformed: 400 invalid_request", async () => {
    const server = serve()
    const { clientId, token } = await register(server)
    for (const authorization of [
      `Bearer ${token} extra`,
      `Bearer "${token}"`,
      `Bearer ${token},`,
      `Bearer ${token}=x`,
      "Bearer rat 3",
      "Bearer rat\t3"
    ]) {
      const response = await server.request("GET", clientPath(clientId), { headers: { authorization } })
      expectBearerError(response, 400, "invalid_request")
    }
  })

  it("R6750-2.1-a the whole b64token alphabet and trailing = reach the authenticator unchanged", async () => {
    const seen: Array<string> = []
    const server = serve({ tokenAuthenticator: recordingAuthenticator(seen) })
    const { clientId } = await register(server)
    const token = "AZaz09-._~+/=="
    const response = await server.request("GET", clientPath(clientId), {
      headers: { authorization: `Bearer  ${token}` }
    })
    expect(seen).toEqual([token])
    expectBearerError(response, 401, "invalid_token")
  })
})

// ---------------------------------------------------------------------------
// Part B decisions

describe("D1 a RAT is bound to one client", () => {
  it("R7592-1.2-b D1 A's RAT on B's URI gets 401 invalid_token and B is unchanged", async () => {
    const server = serve()
    const a = await register(server)
    const b = await register(server, { ...webClient, client_name: "B" })
    const bBefore = await readClient(server, b.clientId, b.token)
    const read = await server.request("GET", clientPath(b.clientId), { token: a.token })
    expectBearerError(read, 401, "invalid_token")
    expect(read.json?.client_id).toBeUndefined()
    const update = await server.request("PUT", clientPath(b.clientId), {
      token: a.token,
      json: updateBodyFrom(b.body, { client_name: "hijacked" })
    })
    expectBearerError(update, 401, "invalid_token")
    const remove = await server.request("DELETE", clientPath(b.clientId), { token: a.token })
    expectBearerError(remove, 401, "invalid_token")
    expect(await readClient(server, b.clientId, b.token)).toEqual(bBefore)
    // A still works on its own URI, with its own data
    expect((await readClient(server, a.clientId, a.token)).client_name).toBe(webClient.client_name)
  })

  it("D1 the answer for another client's URI is identical to an unknown-token answer", async () => {
    const server = serve()
    const a = await register(server)
    const b = await register(server)
    const crossed = await server.request("GET", clientPath(b.clientId), { token: a.token })
    const unknownToken = await server.request("GET", clientPath(b.clientId), { token: "unknown-token" })
    const unknownClient = await server.request("GET", clientPath("no-such-client"), { token: a.token })
    for (const other of [unknownToken, unknownClient]) {
      expect(crossed.status).toBe(other.status)
      expect(crossed.text).toBe(other.text)
      expect(crossed.headers.get("www-authenticate")).toBe(other.headers.get("www-authenticate"))
      expect(headerList(crossed.headers)).toEqual(headerList(other.headers))
    }
  })
})

describe("D2 a valid RAT whose client is gone", () => {
  it("D2 gets 401 invalid_token, identical to an unknown token, and the RAT is revoked at once", async () => {
    const lost = new Set<string>()
    const server = serve({
      store: patchedStore((memory) => ({
        findById: (clientId) => (lost.has(clientId) ? Effect.succeed(Option.none()) : memory.findById(clientId))
      }))
    })
    const { clientId, token } = await register(server)
    expect(await tokenOwner(server, Credentials.sha256(token))).toEqual(Option.some(clientId))
    lost.add(clientId)
    const first = await server.request("GET", clientPath(clientId), { token })
    const unknown = await server.request("GET", clientPath(clientId), { token: "unknown-token" })
    expectBearerError(first, 401, "invalid_token")
    expect(first.text).toBe(unknown.text)
    expect(first.headers.get("www-authenticate")).toBe(unknown.headers.get("www-authenticate"))
    expect(Option.isNone(await tokenOwner(server, Credentials.sha256(token)))).toBe(true)
    const second = await server.request("GET", clientPath(clientId), { token })
    expectBearerError(second, 401, "invalid_token")
  })

  it("D2 a token authenticator naming a client that was never stored: 401 and revoke is called", async () => {
    const revoked: Array<string> = []
    const server = serve({ tokenAuthenticator: ghostAuthenticator("ghost-token", "ghost-client", revoked) })
    const response = await server.request("GET", clientPath("ghost-client"), { token: "ghost-token" })
    expectBearerError(response, 401, "invalid_token")
    expect(revoked).toEqual(["ghost-token-id"])
  })
})

describe("D3 permission refusals", () => {
  it("D3 a refusal is 403 with WWW-Authenticate Bearer error=insufficient_scope and a JSON error", async () => {
    const server = serve({ permissionPolicy: PermissionPolicy.layerFromPredicate((_, op) => op === "read") })
    const { clientId, token, body } = await register(server)
    const before = await readClient(server, clientId, token)
    const response = await server.request("PUT", clientPath(clientId), {
      token,
      json: updateBodyFrom(body, { client_name: "Changed" })
    })
    const challenge = expectBearerError(response, 403, "insufficient_scope")
    expect(paramsNamed(challenge, "error")).toEqual(["insufficient_scope"])
    expect(response.json?.error).toBe("insufficient_scope")
    expect(typeof response.json?.error_description).toBe("string")
    expect(await readClient(server, clientId, token)).toEqual(before)
  })
})

describe("D4 methods not served", () => {
  it("D4 the CCE answers 405 with Allow: GET, PUT, DELETE and a JSON invalid_request body", async () => {
    const server = serve()
    const { clientId, token } = await register(server)
    for (const method of ["POST", "PATCH", "OPTIONS"]) {
      const response = await server.request(method, clientPath(clientId), { token })
      expectJsonError(response, 405, "invalid_request")
      expect(response.headers.get("allow")).toBe("GET, PUT, DELETE")
    }
  })

  it("D4 with updateEnabled false, PUT gets 405 with Allow: GET, DELETE and nothing changes", async () => {
    const server = serve({ server: { updateEnabled: false } })
    const { clientId, token, body } = await register(server)
    const before = await readClient(server, clientId, token)
    const response = await server.request("PUT", clientPath(clientId), {
      token,
      json: updateBodyFrom(body, { client_name: "Changed" })
    })
    expectJsonError(response, 405, "invalid_request")
    expect(response.headers.get("allow")).toBe("GET, DELETE")
    expect(await readClient(server, clientId, token)).toEqual(before)
    const post = await server.request("POST", clientPath(clientId), { token })
    expect(post.headers.get("allow")).toBe("GET, DELETE")
  })

  it("D4 with deleteEnabled false, DELETE gets 405 with Allow: GET, PUT", async () => {
    const server = serve({ server: { deleteEnabled: false } })
    const { clientId, token } = await register(server)
    const response = await server.request("DELETE", clientPath(clientId), { token })
    expectJsonError(response, 405, "invalid_request")
    expect(response.headers.get("allow")).toBe("GET, PUT")
    expect(Option.isSome(await findClient(server, clientId))).toBe(true)
  })

  it("D4 with update and delete disabled, Allow is GET alone", async () => {
    const server = serve({ server: { deleteEnabled: false, updateEnabled: false } })
    const { clientId, token } = await register(server)
    const response = await server.request("DELETE", clientPath(clientId), { token })
    expectJsonError(response, 405, "invalid_request")
    expect(response.headers.get("allow")).toBe("GET")
  })

  it("D4 the registration endpoint answers anything but POST with 405 Allow: POST", async () => {
    const server = serve()
    for (const method of ["GET", "PUT", "DELETE", "PATCH"]) {
      const response = await server.request(method, "/register")
      expectJsonError(response, 405, "invalid_request")
      expect(response.headers.get("allow")).toBe("POST")
    }
  })
})

describe("D14 client secrets", () => {
  it("D14 R7591-3.2.1-e a secret-using method gets a secret and client_secret_expires_at 0", async () => {
    const server = serve()
    for (const method of ["client_secret_basic", "client_secret_post"]) {
      const { body } = await register(server, { ...webClient, token_endpoint_auth_method: method })
      expect(typeof body.client_secret).toBe("string")
      expect(body.client_secret_expires_at).toBe(0)
    }
  })

  it("D14 token_endpoint_auth_method none gets no client_secret and no client_secret_expires_at", async () => {
    const server = serve()
    const { clientId, token, body } = await register(server, { ...webClient, token_endpoint_auth_method: "none" })
    expect(body).not.toHaveProperty("client_secret")
    expect(body).not.toHaveProperty("client_secret_expires_at")
    const read = await readClient(server, clientId, token)
    expect(read).not.toHaveProperty("client_secret")
    expect(read).not.toHaveProperty("client_secret_expires_at")
    const stored = await findClient(server, clientId)
    expect(Option.map(stored, (client) => client.clientSecret)).toEqual(Option.some(undefined))
  })

  it("D14 switching to none drops the secret; switching back issues a new one", async () => {
    const server = serve()
    const { clientId, token, body } = await register(server)
    expect(body.client_secret).toBe("secret-2")
    const { client_secret: _secret, ...publicBody } = updateBodyFrom(body, { token_endpoint_auth_method: "none" })
    const toNone = await server.request("PUT", clientPath(clientId), { token, json: publicBody })
    expect(toNone.status).toBe(200)
    expect(toNone.json).not.toHaveProperty("client_secret")
    expect(toNone.json).not.toHaveProperty("client_secret_expires_at")
    expect(toNone.json?.token_endpoint_auth_method).toBe("none")
    const token2 = stringMember(toNone.json, "registration_access_token")
    expect(await readClient(server, clientId, token2)).not.toHaveProperty("client_secret")

    const { client_secret: _none, ...backBody } = updateBodyFrom(await readClient(server, clientId, token2), {
      token_endpoint_auth_method: "client_secret_basic"
    })
    const back = await server.request("PUT", clientPath(clientId), { token: token2, json: backBody })
    expect(back.status).toBe(200)
    const newSecret = stringMember(back.json, "client_secret")
    expect(newSecret).not.toBe("secret-2")
    expect(newSecret).toBe("secret-5")
    expect(back.json?.client_secret_expires_at).toBe(0)
    // the old secret is not accepted any more
    const token3 = stringMember(back.json, "registration_access_token")
    const stale = await server.request("PUT", clientPath(clientId), {
      token: token3,
      json: { ...backBody, client_secret: "secret-2" }
    })
    expectJsonError(stale, 400, "invalid_request")
  })

  it("D14 clientSecretLifetimeSeconds gives client_secret_expires_at = issued_at + lifetime", async () => {
    const server = serve({ server: { clientSecretLifetimeSeconds: 3600 } })
    const { clientId, token, body } = await register(server)
    const issuedAt = body.client_id_issued_at
    if (typeof issuedAt !== "number") throw new Error("client_id_issued_at missing")
    expect(body.client_secret_expires_at).toBe(issuedAt + 3600)
    const read = await readClient(server, clientId, token)
    expect(read.client_secret_expires_at).toBe(issuedAt + 3600)
    // a none client has no expiry member even with a lifetime configured
    const publicClient = await register(server, { ...webClient, token_endpoint_auth_method: "none" })
    expect(publicClient.body).not.toHaveProperty("client_secret_expires_at")
  })

  it("D14 a client never chooses its secret: client_secret in a registration is ignored", async () => {
    const server = serve()
    const { clientId, token, body } = await register(server, { ...webClient, client_secret: "chosen-by-client" })
    expect(body.client_secret).toBe("secret-2")
    expect((await readClient(server, clientId, token)).client_secret).toBe("secret-2")
    const stored = await findClient(server, clientId)
    expect(Option.map(stored, (client) => Object.hasOwn(client.metadata, "client_secret"))).toEqual(Option.some(false))
  })
})

describe("D15 registration access tokens", () => {
  it("D15 the store keeps only the SHA-256 of the RAT", async () => {
    const server = serve()
    const { clientId, token } = await register(server)
    expect(await tokenOwner(server, Credentials.sha256(token))).toEqual(Option.some(clientId))
    expect(Option.isNone(await tokenOwner(server, token))).toBe(true)
    const stored = await findClient(server, clientId)
    expect(JSON.stringify(Option.getOrUndefined(stored)?.metadata)).not.toContain(token)
  })

  it("D15 after rotation the store knows the new RAT's hash and not the old one's", async () => {
    const server = serve()
    const { clientId, token, body } = await register(server)
    const response = await server.request("PUT", clientPath(clientId), { token, json: updateBodyFrom(body) })
    const rotated = stringMember(response.json, "registration_access_token")
    expect(Option.isNone(await tokenOwner(server, Credentials.sha256(token)))).toBe(true)
    expect(await tokenOwner(server, Credentials.sha256(rotated))).toEqual(Option.some(clientId))
    expect(Option.isNone(await tokenOwner(server, rotated))).toBe(true)
  })

  it("D15 a refused update does not rotate the RAT", async () => {
    const server = serve()
    const { clientId, token, body } = await register(server)
    const response = await server.request("PUT", clientPath(clientId), {
      token,
      json: updateBodyFrom(body, { redirect_uris: ["http://evil.example/cb"] })
    })
    expect(response.status).toBe(400)
    expect(await tokenOwner(server, Credentials.sha256(token))).toEqual(Option.some(clientId))
    expect((await readClient(server, clientId, token)).registration_access_token).toBe(token)
  })
})

describe("D16 caching and content headers on every response", () => {
  it("D16 201, 200, 204, 400, 401, 403, 404, 405 and 413 all carry no-store and no-cache", async () => {
    const server = serve({
      server: { maxBodyBytes: 1024 },
      permissionPolicy: PermissionPolicy.layerFromPredicate(
        (client, op) => !(op === "read" && client.clientId === "client-4")
      )
    })
    const created = await register(server)
    const denied = await register(server)
    const responses: Array<readonly [number, TestResponse]> = [
      [201, created.response],
      [200, await server.request("GET", clientPath(created.clientId), { token: created.token })],
      [400, await server.request("PUT", clientPath(created.clientId), { token: created.token, json: [] })],
      [401, await server.request("GET", clientPath(created.clientId))],
      [401, await server.request("GET", clientPath(created.clientId), { token: "unknown" })],
      [403, await server.request("GET", clientPath(denied.clientId), { token: denied.token })],
      [404, await server.request("GET", "/register/a/b", { token: created.token })],
      [405, await server.request("PATCH", clientPath(created.clientId), { token: created.token })],
      [
        413,
        await server.request("PUT", clientPath(created.clientId), {
          token: created.token,
          json: updateBodyFrom(created.body, { client_name: "x".repeat(2000) })
        })
      ],
      [204, await server.request("DELETE", clientPath(created.clientId), { token: created.token })]
    ]
    for (const [status, response] of responses) {
      expect({ status: response.status }).toEqual({ status })
      expectNoStore(response)
      if (status === 204) {
        expect(response.text).toBe("")
        expect(response.headers.get("content-type")).toBeNull()
      } else {
        expect(response.headers.get("content-type")).toMatch(/^application\/json(;|$)/)
        expect(response.json).toBeDefined()
      }
    }
  })
})

describe("D17 registration_client_uri comes from the configured public URL", () => {
  it("D17 Host and X-Forwarded-* headers do not change registration_client_uri", async () => {
    const server = serve()
    const forged = {
      host: "evil.example",
      "x-forwarded-host": "evil.example",
      "x-forwarded-proto": "http",
      "x-forwarded-prefix": "/evil",
      forwarded: "host=evil.example;proto=http"
    }
    const created = await server.request("POST", "/register", { headers: forged, json: webClient })
    expect(created.status).toBe(201)
    expect(created.json?.registration_client_uri).toBe(`${registrationEndpoint}/client-1`)
    const token = stringMember(created.json, "registration_access_token")
    const read = await server.request("GET", clientPath("client-1"), { headers: forged, token })
    expect(read.json?.registration_client_uri).toBe(`${registrationEndpoint}/client-1`)
    const updated = await server.request("PUT", clientPath("client-1"), {
      headers: forged,
      token,
      json: updateBodyFrom(created.json ?? {})
    })
    expect(updated.json?.registration_client_uri).toBe(`${registrationEndpoint}/client-1`)
    for (const response of [created, read, updated]) expect(response.text).not.toContain("evil")
  })

  it("D17 another publicUrl gives another registration_client_uri, whatever the request URL", async () => {
    const server = serve({ server: { publicUrl: "https://id.example.net/base/" } })
    const { body } = await register(server)
    expect(body.registration_client_uri).toBe("https://id.example.net/base/register/client-1")
  })
})

describe("D18 request bodies", () => {
  it("D18 a PUT with a wrong media type is 400 invalid_request", async () => {
    const server = serve()
    const { clientId, token, body } = await register(server)
    const before = await readClient(server, clientId, token)
    for (const contentType of ["text/plain", "application/xml", "text/json", "application/json-patch+json"]) {
      const response = await server.request("PUT", clientPath(clientId), {
        token,
        headers: { "content-type": contentType },
        body: JSON.stringify(updateBodyFrom(body, { client_name: "Changed" }))
      })
      expectJsonError(response, 400, "invalid_request")
    }
    expect(await readClient(server, clientId, token)).toEqual(before)
  })

  it("D18 a PUT without a content type is 400 invalid_request", async () => {
    const server = serve()
    const { clientId, token, body } = await register(server)
    const before = await readClient(server, clientId, token)
    const response = await server.request("PUT", clientPath(clientId), {
      token,
      body: new TextEncoder().encode(JSON.stringify(updateBodyFrom(body, { client_name: "Changed" })))
    })
    expectJsonError(response, 400, "invalid_request")
    expect(await readClient(server, clientId, token)).toEqual(before)
  })

  it("D18 application/json with a charset parameter is accepted", async () => {
    const server = serve()
    const { clientId, token, body } = await register(server)
    let current = token
    for (const contentType of ["application/json; charset=utf-8", "Application/JSON;charset=UTF-8"]) {
      const response = await server.request("PUT", clientPath(clientId), {
        token: current,
        headers: { "content-type": contentType },
        json: updateBodyFrom(body, { client_name: contentType })
      })
      expect(response.status).toBe(200)
      expect(response.json?.client_name).toBe(contentType)
      current = stringMember(response.json, "registration_access_token")
    }
    const created = await server.request("POST", "/register", {
      headers: { "content-type": "application/json; charset=utf-8" },
      json: webClient
    })
    expect(created.status).toBe(201)
  })

  it("D18 an invalid UTF-8 body is 400 invalid_request", async () => {
    const server = serve()
    const { clientId, token } = await register(server)
    const before = await readClient(server, clientId, token)
    const bytes = new Uint8Array([0x7b, 0x22, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x5f, 0x6e, 0x61, 0x6d, 0x65, 0x22])
    const invalid = new Uint8Array([...bytes, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d])
    const response = await server.request("PUT", clientPath(clientId), {
      token,
      headers: { "content-type": "application/json" },
      body: invalid
    })
    expectJsonError(response, 400, "invalid_request")
    expect(await readClient(server, clientId, token)).toEqual(before)
  })

  it("D18 a body over maxBodyBytes gets 413 with a JSON invalid_request body", async () => {
    const server = serve({ server: { maxBodyBytes: 1024 } })
    const { clientId, token, body } = await register(server)
    const before = await readClient(server, clientId, token)
    const response = await server.request("PUT", clientPath(clientId), {
      token,
      json: updateBodyFrom(body, { client_name: "x".repeat(1100) })
    })
    expectJsonError(response, 413, "invalid_request")
    expect(await readClient(server, clientId, token)).toEqual(before)
  })

  it("D18 a body of exactly maxBodyBytes is accepted and one byte more is 413", async () => {
    const limit = 1024
    const server = serve({ server: { maxBodyBytes: limit } })
    const { clientId, token, body } = await register(server)
    const base = updateBodyFrom(body, { client_name: "" })
    const padding = limit - new TextEncoder().encode(JSON.stringify(base)).length
    const exact = JSON.stringify(updateBodyFrom(body, { client_name: "n".repeat(padding) }))
    expect(new TextEncoder().encode(exact).length).toBe(limit)
    const tooBig = JSON.stringify(updateBodyFrom(body, { client_name: "n".repeat(padding + 1) }))
    const over = await server.request("PUT", clientPath(clientId), {
      token,
      headers: { "content-type": "application/json" },
      body: tooBig
    })
    expectJsonError(over, 413, "invalid_request")
    const atLimit = await server.request("PUT", clientPath(clientId), {
      token,
      headers: { "content-type": "application/json" },
      body: exact
    })
    expect(atLimit.status).toBe(200)
  })

  it("D18 duplicate member names are 400 invalid_request, at any depth", async () => {
    const server = serve()
    const { clientId, token } = await register(server)
    const before = await readClient(server, clientId, token)
    const bodies = [
      `{"client_id":"${clientId}","client_id":"${clientId}","redirect_uris":["https://client.example.org/callback"]}`,
      `{"client_id":"${clientId}","redirect_uris":["https://client.example.org/callback"],"client_name":"a","client_name":"b"}`,
      `{"client_id":"${clientId}","redirect_uris":["https://client.example.org/callback"],"client_name":"a","client_\\u006eame":"b"}`,
      `{"client_id":"${clientId}","redirect_uris":["https://client.example.org/callback"],"x":{"k":1,"k":2}}`
    ]
    for (const text of bodies) {
      const response = await server.request("PUT", clientPath(clientId), {
        token,
        headers: { "content-type": "application/json" },
        body: text
      })
      expectJsonError(response, 400, "invalid_request")
    }
    expect(await readClient(server, clientId, token)).toEqual(before)
  })

  it("D18 __proto__ and constructor members never reach the stored metadata", async () => {
    const server = serve()
    const hostile = (clientId?: string) =>
      `{${clientId === undefined ? "" : `"client_id":"${clientId}",`}"redirect_uris":["https://client.example.org/callback"],` +
      `"client_name":"proto","__proto__":{"polluted":"yes","client_name":"from-proto","scope":"openid"},` +
      `"constructor":{"prototype":{"polluted2":"yes"}}}`
    const created = await server.request("POST", "/register", {
      headers: { "content-type": "application/json" },
      body: hostile()
    })
    const clientId = "client-1"
    if (created.status === 201) {
      const token = stringMember(created.json, "registration_access_token")
      const updated = await server.request("PUT", clientPath(clientId), {
        token,
        headers: { "content-type": "application/json" },
        body: hostile(clientId)
      })
      expect([200, 400]).toContain(updated.status)
      for (const response of [created, updated]) {
        expect(response.text).not.toContain("__proto__")
        expect(response.text).not.toContain("polluted")
        expect(response.text).not.toContain("from-proto")
      }
      const stored = Option.getOrUndefined(await findClient(server, clientId))
      expect(stored).toBeDefined()
      const metadata = stored?.metadata ?? {}
      expect(Object.hasOwn(metadata, "__proto__")).toBe(false)
      expect(Object.hasOwn(metadata, "constructor")).toBe(false)
      expect(Object.getPrototypeOf(metadata)).toBe(Object.prototype)
      expect(metadata.scope).toBeUndefined()
      expect(metadata.client_name).toBe("proto")
    } else {
      expectJsonError(created, 400, "invalid_request")
      expect(Option.isNone(await findClient(server, clientId))).toBe(true)
    }
    expect(Object.hasOwn(Object.prototype, "polluted")).toBe(false)
    expect(Object.hasOwn(Object.prototype, "polluted2")).toBe(false)
    expect("polluted" in {}).toBe(false)
  })
})

describe("D19 delete", () => {
  it("D19 204 with no body, client and token removed together, and the deleted hook called with the client", async () => {
    const deleted: Array<RegisteredClient> = []
    const server = serve({
      clientEvents: ClientEvents.layer({ deleted: (client) => Effect.sync(() => void deleted.push(client)) })
    })
    const { clientId, token } = await register(server)
    const other = await register(server)
    const response = await server.request("DELETE", clientPath(clientId), { token })
    expect(response.status).toBe(204)
    expect(response.text).toBe("")
    expect(Option.isNone(await findClient(server, clientId))).toBe(true)
    expect(Option.isNone(await tokenOwner(server, Credentials.sha256(token)))).toBe(true)
    expect(deleted.map((client) => client.clientId)).toEqual([clientId])
    expect(deleted[0]?.metadata.client_name).toBe(webClient.client_name)
    // the other client is untouched
    expect((await readClient(server, other.clientId, other.token)).client_id).toBe(other.clientId)
  })

  it("D19 a refused delete does not call the hook", async () => {
    const deleted: Array<RegisteredClient> = []
    const server = serve({
      clientEvents: ClientEvents.layer({ deleted: (client) => Effect.sync(() => void deleted.push(client)) })
    })
    const { clientId } = await register(server)
    await server.request("DELETE", clientPath(clientId), { token: "wrong" })
    await server.request("DELETE", clientPath(clientId))
    expect(deleted).toEqual([])
    expect(Option.isSome(await findClient(server, clientId))).toBe(true)
  })

  it("D19 with deleteEnabled false, DELETE is 405 and nothing is removed", async () => {
    const deleted: Array<RegisteredClient> = []
    const server = serve({
      server: { deleteEnabled: false },
      clientEvents: ClientEvents.layer({ deleted: (client) => Effect.sync(() => void deleted.push(client)) })
    })
    const { clientId, token } = await register(server)
    const response = await server.request("DELETE", clientPath(clientId), { token })
    expectJsonError(response, 405, "invalid_request")
    expect(deleted).toEqual([])
    expect(await tokenOwner(server, Credentials.sha256(token))).toEqual(Option.some(clientId))
  })
})

describe("D20 unexpected failures", () => {
  const expectServerError = (response: TestResponse): void => {
    expectJsonError(response, 500, "server_error")
    const everything = response.text + JSON.stringify(headerList(response.headers))
    expect(everything).not.toContain("hunter2")
    expect(everything).not.toContain("password")
    expect(everything).not.toContain("StoreError")
    expect(everything).not.toContain("connection")
    for (const key of Object.keys(response.json ?? {})) expect(["error", "error_description"]).toContain(key)
  }

  it("D20 a failing store update is 500 server_error, logged with its cause, and nothing changes", async () => {
    const logs = captureLogs()
    const server = serve({
      store: patchedStore(() => ({ update: () => Effect.fail(storeFailure()) }), logs.layer)
    })
    const { clientId, token, body } = await register(server)
    const before = await readClient(server, clientId, token)
    const response = await server.request("PUT", clientPath(clientId), {
      token,
      json: updateBodyFrom(body, { client_name: "Changed" })
    })
    expectServerError(response)
    expect(await readClient(server, clientId, token)).toEqual(before)
    expect(await tokenOwner(server, Credentials.sha256(token))).toEqual(Option.some(clientId))
    expect(logs.lines.some((line) => line.includes("hunter2"))).toBe(true)
  })

  it("D20 a failing store insert is 500 server_error and no client is stored", async () => {
    const logs = captureLogs()
    const registered: Array<string> = []
    const server = serve({
      store: patchedStore(() => ({ insert: () => Effect.fail(storeFailure()) }), logs.layer),
      clientEvents: ClientEvents.layer({
        registered: (client) => Effect.sync(() => void registered.push(client.clientId))
      })
    })
    const response = await server.request("POST", "/register", { json: webClient })
    expectServerError(response)
    expect(Option.isNone(await findClient(server, "client-1"))).toBe(true)
    expect(registered).toEqual([])
  })

  it("D20 a failing store remove is 500 server_error, the client stays and the hook is not called", async () => {
    const logs = captureLogs()
    const deleted: Array<string> = []
    const server = serve({
      store: patchedStore(() => ({ remove: () => Effect.fail(storeFailure()) }), logs.layer),
      clientEvents: ClientEvents.layer({ deleted: (client) => Effect.sync(() => void deleted.push(client.clientId)) })
    })
    const { clientId, token } = await register(server)
    const before = await readClient(server, clientId, token)
    expectServerError(await server.request("DELETE", clientPath(clientId), { token }))
    expect(await readClient(server, clientId, token)).toEqual(before)
    expect(deleted).toEqual([])
  })

  it("D20 a failing token lookup is 500 server_error", async () => {
    const logs = captureLogs()
    let failing = false
    const server = serve({
      store: patchedStore(
        (memory) => ({
          findTokenOwner: (tokenId) => (failing ? Effect.fail(storeFailure()) : memory.findTokenOwner(tokenId))
        }),
        logs.layer
      )
    })
    const { clientId, token } = await register(server)
    failing = true
    expectServerError(await server.request("GET", clientPath(clientId), { token }))
  })

  it("D20 a defect in the store is the same 500 server_error and nothing changes", async () => {
    const logs = captureLogs()
    const server = serve({
      store: patchedStore(() => ({ update: () => Effect.die(new Error("db password=hunter2 exploded")) }), logs.layer)
    })
    const { clientId, token, body } = await register(server)
    const before = await readClient(server, clientId, token)
    const response = await server.request("PUT", clientPath(clientId), {
      token,
      json: updateBodyFrom(body, { client_name: "Changed" })
    })
    expectServerError(response)
    expect(await readClient(server, clientId, token)).toEqual(before)
    expect(logs.lines.some((line) => line.includes("hunter2"))).toBe(true)
  })

  it("D20 a store failure and a defect give byte-identical answers", async () => {
    const logs = captureLogs()
    const failure = serve({ store: patchedStore(() => ({ update: () => Effect.fail(storeFailure()) }), logs.layer) })
    const defect = serve({
      store: patchedStore(() => ({ update: () => Effect.die(new Error("hunter2")) }), logs.layer)
    })
    const answers: Array<TestResponse> = []
    for (const server of [failure, defect]) {
      const { clientId, token, body } = await register(server)
      answers.push(await server.request("PUT", clientPath(clientId), { token, json: updateBodyFrom(body) }))
    }
    expect(answers[0]?.status).toBe(500)
    expect(answers[0]?.text).toBe(answers[1]?.text)
    expect(headerList(answers[0]?.headers)).toEqual(headerList(answers[1]?.headers))
  })
})
