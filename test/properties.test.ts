/**
 * Property tests over HTTP (through the `@effect/platform` adapter, in
 * process): generated client metadata valid for the default server, and
 * mutations of it that are not.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, FastCheck as fc, Option } from "effect"
import { serverIssuedMembers } from "../src/ClientMetadata.js"
import { ClientStore } from "../src/ClientStore.js"
import { makeTestServer, register, type TestResponse, type TestServer, updateBodyFrom } from "./support/http.js"

type Json = Record<string, unknown>

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/** Runs `use` against a fresh default server, disposed whatever happens. */
const withServer = (use: (server: TestServer) => Promise<void>): Effect.Effect<void> =>
  Effect.acquireUseRelease(
    Effect.sync(() => makeTestServer()),
    (server) => Effect.promise(() => use(server)),
    (server) => Effect.promise(() => server.dispose())
  )

/** The members the server issues itself, as opposed to registered metadata. */

const forbiddenMembers: ReadonlyArray<string> = [
  "registration_access_token",
  "registration_client_uri",
  "client_secret_expires_at",
  "client_id_issued_at"
]

const metadataOf = (body: Json | undefined): Json => {
  const out: Json = {}
  for (const [key, value] of Object.entries(body ?? {})) if (!serverIssuedMembers.has(key)) out[key] = value
  return out
}

const stringMember = (body: Json | undefined, name: string): string => {
  const value = body?.[name]
  if (typeof value !== "string") throw new Error(`expected a string ${name} in ${JSON.stringify(body)}`)
  return value
}

const configurationPath = (clientId: string) => `/register/${encodeURIComponent(clientId)}`

const expectJsonError = (response: TestResponse, status: number, code: string) => {
  expect(response.status, response.text).toBe(status)
  expect(response.headers.get("content-type")).toMatch(/^application\/json/)
  expect(response.headers.get("cache-control")).toBe("no-store")
  expect(response.json?.error).toBe(code)
}

const expectInvalidToken = (response: TestResponse) => {
  expectJsonError(response, 401, "invalid_token")
  expect(response.headers.get("www-authenticate")).toMatch(/^Bearer .*error="invalid_token"/)
}

// ---------------------------------------------------------------------------
// Arbitraries: metadata valid for the default server
// ---------------------------------------------------------------------------

const supportedScopes = ["openid", "profile", "email", "offline_access"]
const supportedGrants = ["authorization_code", "refresh_token", "client_credentials"]
const authMethods = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
const signingAlgs = ["RS256", "PS256", "ES256", "EdDSA"]
const localizable = ["client_name", "client_uri", "logo_uri", "tos_uri", "policy_uri"]

/** A P-256 public key: a JWK Set the validator imports (D13). */
const publicJwks = {
  keys: [
    {
      kty: "EC",
      crv: "P-256",
      kid: "k1",
      use: "sig",
      x: "D-dSSfWNrKCiAH8B0hD_xyaUWBcXEESSYc3ln5tNDkE",
      y: "fUIgBs1swFtmRgTOFt9bKzRJFNYMaTpOcy050netiVM"
    }
  ]
}

/** Hosts the WHATWG parser accepts (an `xn--` label must be valid Punycode, which these are not). */
const domain = fc.domain().filter((host) => !/(^|\.)xn--/i.test(host))
const segment = fc.stringMatching(/^[A-Za-z0-9_.~-]{1,10}$/)
const path = fc.array(segment, { maxLength: 3 }).map((parts) => parts.map((part) => `/${part}`).join(""))
const port = fc
  .option(fc.integer({ min: 1, max: 65535 }), { nil: undefined })
  .map((p) => (p === undefined ? "" : `:${p}`))

/** D11: https anywhere, http on loopback, or a private-use scheme with a dot. */
const redirectUri: fc.Arbitrary<string> = fc.oneof(
  fc.tuple(domain, port, path).map(([host, p, rest]) => `https://${host}${p}${rest}/cb`),
  fc
    .tuple(fc.constantFrom("localhost", "127.0.0.1", "[::1]"), port, path)
    .map(([host, p, rest]) => `http://${host}${p}${rest}/callback`),
  fc
    .tuple(fc.constantFrom("com.example.app", "org.example.native", "io.test.x"), path)
    .map(([scheme, rest]) => `${scheme}:${rest === "" ? "/cb" : rest}`),
  fc.tuple(domain, path, segment).map(([host, rest, q]) => `https://${host}${rest}?state=${q}`)
)

/** R7591-2-f/g/j: absolute http(s) URLs of web pages. */
const webUrl: fc.Arbitrary<string> = fc.oneof(
  fc.webUrl({ validSchemes: ["https", "http"] }).filter((url) => !/[/.]xn--/i.test(url)),
  fc.tuple(domain, path).map(([host, rest]) => `https://${host}${rest}`)
)

const humanText: fc.Arbitrary<string> = fc.oneof(
  fc.string({ minLength: 1, maxLength: 30 }),
  fc.string({ minLength: 1, maxLength: 20, unit: "grapheme" })
)

/** Well-formed BCP 47 tags, pairwise distinct ignoring case (D10). */
const languageTags = ["fr", "de-CH", "ja-Jpan-JP", "en-US", "zh-Hant-TW", "es-419", "sr-Latn-RS", "x-klingon", "gsw"]
const randomCase = (tag: string) =>
  fc
    .array(fc.boolean(), { minLength: tag.length, maxLength: tag.length })
    .map((flags) => [...tag].map((c, i) => (flags[i] === true ? c.toUpperCase() : c.toLowerCase())).join(""))
const tagsFor = fc
  .uniqueArray(fc.constantFrom(...languageTags), { maxLength: 2 })
  .chain((tags) => fc.tuple(...tags.map(randomCase)))

interface Flow {
  readonly needsRedirect: boolean
  readonly members: Json
}

/** Grant and response types consistent per RFC 7591 §2.1, or left to the defaults. */
const flow: fc.Arbitrary<Flow> = fc.oneof(
  fc.constant<Flow>({ needsRedirect: true, members: {} }),
  fc.constant<Flow>({ needsRedirect: true, members: { response_types: ["code"] } }),
  fc
    .record({ grants: fc.shuffledSubarray(supportedGrants, { minLength: 1 }), withResponses: fc.boolean() })
    .map(({ grants, withResponses }): Flow => {
      const code = grants.includes("authorization_code")
      const members: Json = { grant_types: grants }
      if (withResponses) members.response_types = code ? ["code"] : []
      return { needsRedirect: code, members }
    })
)

const optional = <A>(arb: fc.Arbitrary<A>) => fc.option(arb, { nil: undefined, freq: 2 })

/** Client metadata the default server accepts unchanged. */
const validMetadata: fc.Arbitrary<Json> = fc
  .record({
    flow,
    redirects: fc.uniqueArray(redirectUri, { minLength: 1, maxLength: 3 }),
    includeRedirectsAnyway: fc.boolean(),
    authMethod: optional(fc.constantFrom(...authMethods)),
    keys: fc.constantFrom("none", "jwks_uri", "jwks"),
    jwksUri: webUrl,
    signingAlg: optional(fc.constantFrom(...signingAlgs)),
    scope: optional(fc.shuffledSubarray(supportedScopes, { minLength: 1 }).map((scopes) => scopes.join(" "))),
    clientName: optional(humanText),
    clientUri: optional(webUrl),
    logoUri: optional(webUrl),
    tosUri: optional(webUrl),
    policyUri: optional(webUrl),
    contacts: optional(fc.uniqueArray(fc.emailAddress(), { maxLength: 3 })),
    softwareId: optional(fc.oneof(fc.uuid(), humanText)),
    softwareVersion: optional(fc.oneof(fc.stringMatching(/^\d{1,2}\.\d{1,2}\.\d{1,2}$/), humanText)),
    variants: fc.tuple(
      ...localizable.map((base) =>
        tagsFor.chain((tags) =>
          fc.tuple(
            ...tags.map((tag) =>
              (base === "client_name" ? humanText : webUrl).map((value): readonly [string, string] => [
                `${base}#${tag}`,
                value
              ])
            )
          )
        )
      )
    )
  })
  .map((g): Json => {
    const body: Json = { ...g.flow.members }
    if (g.flow.needsRedirect || g.includeRedirectsAnyway) body.redirect_uris = g.redirects
    if (g.authMethod !== undefined) body.token_endpoint_auth_method = g.authMethod
    // D13: private_key_jwt needs keys; jwks and jwks_uri never together.
    const keys = g.authMethod === "private_key_jwt" && g.keys === "none" ? "jwks_uri" : g.keys
    if (keys === "jwks_uri") body.jwks_uri = g.jwksUri
    if (keys === "jwks") body.jwks = publicJwks
    if (g.signingAlg !== undefined) body.token_endpoint_auth_signing_alg = g.signingAlg
    if (g.scope !== undefined) body.scope = g.scope
    if (g.clientName !== undefined) body.client_name = g.clientName
    if (g.clientUri !== undefined) body.client_uri = g.clientUri
    if (g.logoUri !== undefined) body.logo_uri = g.logoUri
    if (g.tosUri !== undefined) body.tos_uri = g.tosUri
    if (g.policyUri !== undefined) body.policy_uri = g.policyUri
    if (g.contacts !== undefined) body.contacts = g.contacts
    if (g.softwareId !== undefined) body.software_id = g.softwareId
    if (g.softwareVersion !== undefined) body.software_version = g.softwareVersion
    for (const pairs of g.variants) for (const [key, value] of pairs) body[key] = value
    return body
  })

// ---------------------------------------------------------------------------
// Arbitraries: mutations into invalid metadata
// ---------------------------------------------------------------------------

type ErrorCode = "invalid_client_metadata" | "invalid_redirect_uri"

interface Mutation {
  readonly name: string
  readonly code: ErrorCode
  /** Makes a (copied) metadata object invalid in exactly one way. */
  readonly apply: (metadata: Json) => Json
}

const arrayOf = (value: unknown): Array<unknown> => (Array.isArray(value) ? [...value] : [])

/** Puts `bad` into redirect_uris (at `index`, modulo the length, or appended). */
const badRedirect = (bad: string, index: number) => (metadata: Json) => {
  const uris = arrayOf(metadata.redirect_uris)
  if (uris.length === 0 || index % 2 === 0) uris.push(bad)
  else uris[index % uris.length] = bad
  return { ...metadata, redirect_uris: uris }
}

const nonLoopbackHttp = fc.tuple(domain, path).map(([host, rest]) => `http://${host}${rest}/cb`)
const withFragment = fc
  .tuple(redirectUri, fc.stringMatching(/^[a-z0-9=&]{0,8}$/))
  .map(([uri, fragment]) => `${uri}#${fragment}`)
const otherBadRedirects = fc.constantFrom(
  "javascript:alert(1)",
  "data:text/html,hi",
  "file:///etc/passwd",
  "/relative/callback",
  "custom:/no-dot-scheme",
  "https://exa mple.com/cb"
)
const unsupportedGrant = fc.constantFrom(
  "implicit",
  "password",
  "urn:ietf:params:oauth:grant-type:jwt-bearer",
  "urn:ietf:params:oauth:grant-type:device_code",
  "Authorization_Code"
)
const unsupportedScopeToken = fc.oneof(
  fc.constantFrom("admin", "OPENID", "phone", "write:all"),
  fc.stringMatching(/^[a-z]{1,8}$/).filter((token) => !supportedScopes.includes(token))
)
const notAUrl = fc.constantFrom(
  "not a url",
  "example.com",
  "//example.com/x",
  "ftp://example.com/x",
  "javascript:1",
  ""
)
const nonString = fc.oneof(
  fc.integer(),
  fc.boolean(),
  fc.array(fc.string(), { maxLength: 2 }),
  fc.dictionary(fc.string(), fc.string(), { maxKeys: 2 })
)
const invalidTag = fc.constantFrom(
  "",
  "en_US",
  "1234",
  "e",
  "abcdefghi",
  "en--us",
  "-en",
  "en-",
  "fr CA",
  "ja-Jpan-JP-x"
)

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.tuple(nonLoopbackHttp, fc.nat()).map(([uri, i]): Mutation => ({
    name: `redirect ${uri}`,
    code: "invalid_redirect_uri",
    apply: badRedirect(uri, i)
  })),
  fc.tuple(withFragment, fc.nat()).map(([uri, i]): Mutation => ({
    name: `redirect ${uri}`,
    code: "invalid_redirect_uri",
    apply: badRedirect(uri, i)
  })),
  fc.tuple(otherBadRedirects, fc.nat()).map(([uri, i]): Mutation => ({
    name: `redirect ${uri}`,
    code: "invalid_redirect_uri",
    apply: badRedirect(uri, i)
  })),
  fc.constant<Mutation>({
    name: "redirect_uris not an array",
    code: "invalid_redirect_uri",
    apply: (m) => ({ ...m, redirect_uris: "https://client.example.org/cb" })
  }),
  fc.constant<Mutation>({
    name: "authorization_code without redirect_uris",
    code: "invalid_redirect_uri",
    apply: ({ redirect_uris: _r, grant_types: _g, response_types: _t, ...rest }) => rest
  }),
  unsupportedGrant.map((grant): Mutation => ({
    name: `grant ${grant}`,
    code: "invalid_client_metadata",
    apply: (m) => ({ ...m, grant_types: [...arrayOf(m.grant_types ?? ["authorization_code"]), grant] })
  })),
  fc.constant<Mutation>({
    name: "response type token",
    code: "invalid_client_metadata",
    apply: (m) => ({ ...m, response_types: ["token"] })
  }),
  unsupportedScopeToken.map((token): Mutation => ({
    name: `scope ${token}`,
    code: "invalid_client_metadata",
    apply: (m) => ({ ...m, scope: typeof m.scope === "string" ? `${m.scope} ${token}` : token })
  })),
  fc
    .tuple(fc.constantFrom("client_uri", "logo_uri", "tos_uri", "policy_uri", "jwks_uri"), notAUrl)
    .map(([member, value]): Mutation => ({
      name: `${member} ${JSON.stringify(value)}`,
      code: "invalid_client_metadata",
      // A bad jwks_uri next to jwks fails on either rule with the same code.
      apply: (m) => ({ ...m, [member]: value })
    })),
  fc.constant<Mutation>({
    name: "jwks and jwks_uri together",
    code: "invalid_client_metadata",
    apply: (m) => ({ ...m, jwks: publicJwks, jwks_uri: "https://client.example.org/jwks.json" })
  }),
  fc.constant<Mutation>({
    name: "private_key_jwt without keys",
    code: "invalid_client_metadata",
    apply: ({ jwks: _jwks, jwks_uri: _uri, ...m }) => ({ ...m, token_endpoint_auth_method: "private_key_jwt" })
  }),
  fc.constantFrom("client_secret_jwt", "tls_client_auth", "basic", "").map((method): Mutation => ({
    name: `auth method ${method}`,
    code: "invalid_client_metadata",
    apply: (m) => ({ ...m, token_endpoint_auth_method: method })
  })),
  fc
    .tuple(fc.constantFrom("client_name", "software_id", "software_version", "scope", "client_uri"), nonString)
    .map(([member, value]): Mutation => ({
      name: `${member} ${JSON.stringify(value)}`,
      code: "invalid_client_metadata",
      apply: (m) => ({ ...m, [member]: value })
    })),
  nonString.map((value): Mutation => ({
    name: `contacts ${JSON.stringify(value)}`,
    code: "invalid_client_metadata",
    apply: (m) => ({ ...m, contacts: Array.isArray(value) ? [...value, 7] : value })
  })),
  fc.tuple(fc.constantFrom(...localizable), invalidTag).map(([base, tag]): Mutation => ({
    name: `${base}#${tag}`,
    code: "invalid_client_metadata",
    apply: (m) => ({ ...m, [`${base}#${tag}`]: base === "client_name" ? "Nom" : "https://client.example.org/fr" })
  })),
  fc.constantFrom(...localizable).map((base): Mutation => ({
    name: `${base}#fr and ${base}#FR`,
    code: "invalid_client_metadata",
    apply: (m) => {
      const value = base === "client_name" ? "Nom" : "https://client.example.org/fr"
      const { [`${base}#fr`]: _a, [`${base}#FR`]: _b, [`${base}#Fr`]: _c, [`${base}#fR`]: _d, ...rest } = m
      return { ...rest, [`${base}#fr`]: value, [`${base}#FR`]: value }
    }
  })),
  fc.constantFrom("logo_uri#fr", "tos_uri#de-CH").map((key): Mutation => ({
    name: `${key} not a url`,
    code: "invalid_client_metadata",
    apply: (m) => ({ ...m, [key]: "not a url" })
  }))
)

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

describe("properties over HTTP", () => {
  it.effect.prop(
    "R7592-2.2-d R7591-3.2.1-f R7592-3-d (a) valid metadata round-trips: register, read, update twice",
    [validMetadata],
    ([metadata]) =>
      withServer(async (server) => {
        const created = await server.request("POST", "/register", { json: metadata })
        expect(created.status, created.text).toBe(201)
        const body = created.json ?? {}
        const clientId = stringMember(body, "client_id")
        expect(clientId).toBe("client-1")
        expect(stringMember(body, "registration_client_uri")).toBe(
          `https://as.example.com/oauth${configurationPath(clientId)}`
        )

        // Every requested member is echoed unchanged.
        for (const [key, value] of Object.entries(metadata)) expect(body[key], key).toStrictEqual(value)
        // The RFC defaults are present, and are the RFC's when nothing was asked.
        expect(body.token_endpoint_auth_method).toBe(metadata.token_endpoint_auth_method ?? "client_secret_basic")
        expect(Array.isArray(body.grant_types)).toBe(true)
        expect(Array.isArray(body.response_types)).toBe(true)
        if (metadata.grant_types === undefined && metadata.response_types === undefined) {
          expect(body.grant_types).toStrictEqual(["authorization_code"])
          expect(body.response_types).toStrictEqual(["code"])
        }
        // D14: a secret exactly for the secret-based methods, with its expiry.
        const usesSecret = ["client_secret_basic", "client_secret_post"].includes(
          stringMember(body, "token_endpoint_auth_method")
        )
        expect(typeof body.client_secret === "string").toBe(usesSecret)
        expect(body.client_secret_expires_at === 0).toBe(usesSecret)
        expect(typeof body.client_id_issued_at).toBe("number")

        // R7592-2.1-b / R7592-2.1-d: the read body equals the registration body.
        let currentToken = stringMember(body, "registration_access_token")
        const read = await server.request("GET", configurationPath(clientId), { token: currentToken })
        expect(read.status, read.text).toBe(200)
        expect(read.json?.client_id).toBe(clientId)
        expect(metadataOf(read.json)).toStrictEqual(metadataOf(body))
        expect(read.json?.client_secret).toBe(body.client_secret)

        // R7592-2.2-b: the update carries everything read back, minus the four forbidden members.
        let last = read.json ?? {}
        for (let round = 0; round < 2; round++) {
          const updated = await server.request("PUT", configurationPath(clientId), {
            token: currentToken,
            json: updateBodyFrom(last)
          })
          expect(updated.status, updated.text).toBe(200)
          expect(updated.json?.client_id).toBe(clientId)
          expect(metadataOf(updated.json)).toStrictEqual(metadataOf(body))
          expect(updated.json?.client_secret).toBe(body.client_secret)
          expect(updated.json?.client_id_issued_at).toBe(body.client_id_issued_at)
          // D15: the RAT rotates; the old one stops working.
          const next = stringMember(updated.json, "registration_access_token")
          expect(next).not.toBe(currentToken)
          expectInvalidToken(await server.request("GET", configurationPath(clientId), { token: currentToken }))
          currentToken = next
          last = updated.json ?? {}
        }
        const final = await server.request("GET", configurationPath(clientId), { token: currentToken })
        expect(final.status).toBe(200)
        expect(metadataOf(final.json)).toStrictEqual(metadataOf(body))
      }),
    { fastCheck: { numRuns: 60 } }
  )

  it.effect.prop(
    "D1 R7592-1.2-b (b) A's RAT never reads, updates or deletes B, and B is unchanged",
    [validMetadata, validMetadata],
    ([metadataA, metadataB]) =>
      withServer(async (server) => {
        const a = await register(server, metadataA)
        const b = await register(server, metadataB)
        const pathB = configurationPath(b.clientId)
        const before = await server.request("GET", pathB, { token: b.token })
        expect(before.status).toBe(200)

        expectInvalidToken(await server.request("GET", pathB, { token: a.token }))
        // The most plausible forged update: B's own body, well-formed, with A's token.
        expectInvalidToken(
          await server.request("PUT", pathB, { token: a.token, json: updateBodyFrom(b.body, { client_name: "pwned" }) })
        )
        expectInvalidToken(await server.request("PUT", pathB, { token: a.token, json: updateBodyFrom(a.body) }))
        expectInvalidToken(await server.request("DELETE", pathB, { token: a.token }))

        const after = await server.request("GET", pathB, { token: b.token })
        expect(after.status).toBe(200)
        expect(after.text).toBe(before.text)
        // A's token is still A's: its misuse revoked nothing.
        expect((await server.request("GET", configurationPath(a.clientId), { token: a.token })).status).toBe(200)
      }),
    { fastCheck: { numRuns: 50 } }
  )

  it.effect.prop(
    "R7591-3.2.2-d R7591-3.2.2-e R7592-2.2-l (c) invalid mutations get 400 with one RFC 7591 code and store nothing",
    [validMetadata, mutation],
    ([metadata, change]) =>
      withServer(async (server) => {
        const bad = change.apply({ ...metadata })

        // At registration: 400, the expected code, nothing stored.
        const refused = await server.request("POST", "/register", { json: bad })
        expectJsonError(refused, 400, change.code)
        expect(Object.keys(refused.json ?? {}).sort()).toStrictEqual(["error", "error_description"])
        const stored = await server.run(Effect.flatMap(ClientStore, (store) => store.findById("client-1")))
        expect(Option.isNone(stored)).toBe(true)
        const good = await register(server, metadata)
        expect(good.clientId).toBe("client-1")

        // At update: 400, the expected code, the stored client byte-for-byte unchanged.
        const path = configurationPath(good.clientId)
        const before = await server.request("GET", path, { token: good.token })
        expect(before.status).toBe(200)
        const updateBody = change.apply(updateBodyFrom(before.json ?? {}))
        const rejected = await server.request("PUT", path, { token: good.token, json: updateBody })
        expectJsonError(rejected, 400, change.code)
        const after = await server.request("GET", path, { token: good.token })
        expect(after.status).toBe(200)
        expect(after.text).toBe(before.text)
      }),
    { fastCheck: { numRuns: 75 } }
  )

  /** `https:///host/…`: RFC 3986 reads an empty authority; WHATWG would "repair" it into a host. */
  const emptyAuthority = fc
    .tuple(
      fc.constantFrom("https:///", "https:////", "http:///", "HTTPS:///"),
      fc.constantFrom("localhost", "127.0.0.1"),
      domain,
      fc.boolean(),
      path
    )
    .map(([prefix, loopback, host, useLoopback, rest]) => `${prefix}${useLoopback ? loopback : host}${rest}/cb`)

  it.effect.prop(
    "D11 R7591-5-c R7591-2-f (c) URIs with an empty authority are refused, not repaired into a host",
    [
      validMetadata,
      emptyAuthority,
      fc.constantFrom("redirect_uris", "client_uri", "logo_uri", "tos_uri", "policy_uri")
    ],
    ([metadata, uri, member]) =>
      withServer(async (server) => {
        const bad =
          member === "redirect_uris"
            ? { ...metadata, redirect_uris: [...arrayOf(metadata.redirect_uris), uri] }
            : { ...metadata, [member]: uri }
        const refused = await server.request("POST", "/register", { json: bad })
        expectJsonError(refused, 400, member === "redirect_uris" ? "invalid_redirect_uri" : "invalid_client_metadata")
      }),
    { fastCheck: { numRuns: 50 } }
  )

  const forbiddenUpdate = fc
    .subarray([...forbiddenMembers], { minLength: 1 })
    .chain((members) =>
      fc.tuple(...members.map((member) => fc.tuple(fc.constant(member), fc.option(fc.jsonValue(), { nil: undefined }))))
    )

  it.effect.prop(
    "R7592-2.2-c D7 (d) an update carrying any forbidden member changes nothing and keeps the RAT",
    [validMetadata, forbiddenUpdate],
    ([metadata, forbidden]) =>
      withServer(async (server) => {
        const { clientId, token } = await register(server, metadata)
        const path = configurationPath(clientId)
        const before = await server.request("GET", path, { token })
        expect(before.status).toBe(200)
        const current = before.json ?? {}
        const body = updateBodyFrom(current)
        // Each forbidden member gets an arbitrary JSON value, or (undefined) its current one.
        for (const [member, value] of forbidden) body[member] = value === undefined ? (current[member] ?? 0) : value

        const rejected = await server.request("PUT", path, { token, json: body })
        expectJsonError(rejected, 400, "invalid_request")
        const after = await server.request("GET", path, { token })
        expect(after.status).toBe(200)
        expect(after.text).toBe(before.text)
        // The RAT was not rotated: a proper update with it still succeeds.
        const proper = await server.request("PUT", path, { token, json: updateBodyFrom(current) })
        expect(proper.status, proper.text).toBe(200)
      }),
    { fastCheck: { numRuns: 60 } }
  )
})
