/**
 * RFC 8414 discovery: the authorization server metadata document served at
 * `/.well-known/oauth-authorization-server` below the mount point, and the
 * promise behind it — what is advertised is what registration accepts
 * (D12), checked as a property over random server configurations.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, FastCheck as fc } from "effect"
import * as InitialAccessTokens from "../src/InitialAccessTokens.js"
import * as Protocol from "../src/Protocol.js"
import { defaults } from "../src/ServerMetadata.js"
import {
  makeTestServer,
  publicUrl,
  registrationEndpoint,
  serversDisposedAfterEach,
  type TestServer
} from "./support/http.js"
import { parseObject } from "./support/json.js"

const serve = serversDisposedAfterEach()

const wellKnown = "/.well-known/oauth-authorization-server"

/** What the assertions need of a response. */
interface Reply {
  readonly status: number
  readonly contentType: string | null | undefined
  readonly allow: string | null | undefined
  readonly text: string
  readonly json: Record<string, unknown> | undefined
}

type Send = (server: TestServer, method: string, path: string) => Promise<Reply>

/** `Protocol.handle` itself, run on the test server's services. */
const protocolSend: Send = async (server, method, path) => {
  const response = await server.run(
    Protocol.handle({
      method,
      url: path,
      authorization: [],
      contentType: method === "GET" ? undefined : "application/json",
      body: method === "GET" ? undefined : new TextEncoder().encode("{}")
    })
  )
  const text = response.body ?? ""
  return {
    status: response.status,
    contentType: response.headers["content-type"],
    allow: response.headers["allow"],
    text,
    json: text === "" ? undefined : parseObject(text)
  }
}

/** A real HTTP request through the `@effect/platform` router, mounted at /oauth as a host would. */
const httpSend: Send = async (server, method, path) => {
  const response = await server.request(method, path, method === "GET" ? {} : { json: {} })
  return {
    status: response.status,
    contentType: response.headers.get("content-type"),
    allow: response.headers.get("allow"),
    text: response.text,
    json: response.json
  }
}

const transports: ReadonlyArray<{ readonly name: string; readonly send: Send }> = [
  { name: "HTTP through PlatformHttp.router", send: httpSend },
  { name: "Protocol.handle", send: protocolSend }
]

const discoverWith = async (send: Send, server: TestServer): Promise<Record<string, unknown>> => {
  const reply = await send(server, "GET", wellKnown)
  expect(reply.status, reply.text).toBe(200)
  expect(reply.contentType ?? "").toMatch(/^application\/json(;|$)/)
  return reply.json ?? {}
}

for (const transport of transports) {
  const discover = (server: TestServer) => discoverWith(transport.send, server)

  describe(`RFC 8414 discovery document (${transport.name})`, () => {
    it("RFC 8414 §3 GET answers 200 application/json with issuer, registration_endpoint and the default lists", async () => {
      const server = serve()
      const document = await discover(server)
      expect(document.issuer).toBe(publicUrl)
      expect(document.registration_endpoint).toBe(`${publicUrl}/register`)
      expect(document.registration_endpoint).toBe(registrationEndpoint)
      expect(document.scopes_supported).toStrictEqual(defaults.scopesSupported)
      expect(document.grant_types_supported).toStrictEqual(defaults.grantTypesSupported)
      expect(document.response_types_supported).toStrictEqual(defaults.responseTypesSupported)
      expect(document.token_endpoint_auth_methods_supported).toStrictEqual(defaults.tokenEndpointAuthMethodsSupported)
      expect(document.token_endpoint_auth_signing_alg_values_supported).toStrictEqual(
        defaults.tokenEndpointAuthSigningAlgValuesSupported
      )
    })

    it("RFC 8414 §2 the lists and endpoints follow the server options", async () => {
      const server = serve({
        server: {
          issuer: "https://issuer.example",
          registrationPath: "/clients",
          scopesSupported: ["api:read", "api:write"],
          grantTypesSupported: ["client_credentials"],
          responseTypesSupported: ["code", "code id_token"],
          tokenEndpointAuthMethodsSupported: ["private_key_jwt"],
          tokenEndpointAuthSigningAlgValuesSupported: ["ES256"]
        }
      })
      const document = await discover(server)
      expect(document).toStrictEqual({
        issuer: "https://issuer.example",
        registration_endpoint: `${publicUrl}/clients`,
        scopes_supported: ["api:read", "api:write"],
        grant_types_supported: ["client_credentials"],
        response_types_supported: ["code", "code id_token"],
        token_endpoint_auth_methods_supported: ["private_key_jwt"],
        token_endpoint_auth_signing_alg_values_supported: ["ES256"]
      })
    })

    it("RFC 8414 §2 scopesSupported 'any' advertises no scopes_supported", async () => {
      const server = serve({ server: { scopesSupported: "any" } })
      const document = await discover(server)
      expect(Object.hasOwn(document, "scopes_supported")).toBe(false)
    })

    it("RFC 8414 discoveryMetadata adds members but cannot override registration_endpoint, issuer or any *_supported list", async () => {
      const server = serve({
        server: {
          discoveryMetadata: {
            token_endpoint: "https://as.example.com/oauth/token",
            authorization_endpoint: "https://as.example.com/oauth/authorize",
            registration_endpoint: "https://evil",
            issuer: "https://evil",
            scopes_supported: ["admin"],
            grant_types_supported: ["password"],
            response_types_supported: ["token"],
            token_endpoint_auth_methods_supported: ["tls_client_auth"],
            token_endpoint_auth_signing_alg_values_supported: ["none"]
          }
        }
      })
      const document = await discover(server)
      expect(document.token_endpoint).toBe("https://as.example.com/oauth/token")
      expect(document.authorization_endpoint).toBe("https://as.example.com/oauth/authorize")
      expect(document.registration_endpoint).toBe(registrationEndpoint)
      expect(document.issuer).toBe(publicUrl)
      expect(document.scopes_supported).toStrictEqual(defaults.scopesSupported)
      expect(document.grant_types_supported).toStrictEqual(defaults.grantTypesSupported)
      expect(document.response_types_supported).toStrictEqual(defaults.responseTypesSupported)
      expect(document.token_endpoint_auth_methods_supported).toStrictEqual(defaults.tokenEndpointAuthMethodsSupported)
      expect(document.token_endpoint_auth_signing_alg_values_supported).toStrictEqual(
        defaults.tokenEndpointAuthSigningAlgValuesSupported
      )
    })

    it("RFC 8414 with scopesSupported 'any', discoveryMetadata cannot advertise a scopes_supported list either", async () => {
      const server = serve({
        server: { scopesSupported: "any", discoveryMetadata: { scopes_supported: ["admin"] } }
      })
      const document = await discover(server)
      // The server accepts every well-formed scope; advertising ["admin"] would not be what is accepted.
      expect(document.scopes_supported).toBeUndefined()
      const created = await server.request("POST", "/register", {
        json: { grant_types: ["client_credentials"], scope: "anything-at-all" }
      })
      expect(created.status).toBe(201)
    })

    it("RFC 8414 the document needs no token, even when registration does", async () => {
      const server = serve({ initialAccessTokens: InitialAccessTokens.layerStatic(["tok-1"]) })
      const document = await discover(server)
      expect(document.registration_endpoint).toBe(registrationEndpoint)
      const refused = await server.request("POST", "/register", { json: { grant_types: ["client_credentials"] } })
      expect(refused.status).toBe(401)
    })

    it("D4 POST, PUT and DELETE on the document are 405 with Allow: GET", async () => {
      const server = serve()
      for (const method of ["POST", "PUT", "DELETE"]) {
        const reply = await transport.send(server, method, wellKnown)
        expect(reply.status, method).toBe(405)
        expect(reply.allow, method).toBe("GET")
        expect(reply.json?.error, method).toBe("invalid_request")
      }
    })
  })
}

// ---------------------------------------------------------------------------
// Property: what is advertised is what is accepted
// ---------------------------------------------------------------------------

const grantPool = [
  "authorization_code",
  "client_credentials",
  "refresh_token",
  "urn:ietf:params:oauth:grant-type:jwt-bearer"
] as const
const scopePool = ["openid", "profile", "email", "offline_access", "api:read", "api:write"] as const
const methodPool = [
  "client_secret_basic",
  "client_secret_post",
  "client_secret_jwt",
  "private_key_jwt",
  "none"
] as const

const configuration = fc.record({
  grants: fc.subarray([...grantPool], { minLength: 1 }),
  scopes: fc.subarray([...scopePool], { minLength: 1 }),
  methods: fc.subarray([...methodPool], { minLength: 1 })
})

/** Metadata consistent for one grant type and one method, whatever else the server supports. */
const metadataFor = (grant: string, method: string): Record<string, unknown> => ({
  grant_types: [grant],
  token_endpoint_auth_method: method,
  ...(grant === "authorization_code" ? { redirect_uris: ["https://client.example.org/callback"] } : {}),
  ...(method === "private_key_jwt" ? { jwks_uri: "https://client.example.org/jwks.json" } : {})
})

const first = (values: ReadonlyArray<string>): string => {
  const value = values[0]
  if (value === undefined) throw new Error("empty list")
  return value
}

const withServer = (options: Parameters<typeof makeTestServer>[0], use: (server: TestServer) => Promise<void>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => makeTestServer(options)),
    (server) => Effect.promise(() => use(server)),
    (server) => Effect.promise(() => server.dispose())
  )

describe("D12 RFC 8414 advertised values are exactly the accepted ones", () => {
  it.effect.prop(
    "D12 every advertised grant type, scope and auth method registers; a value not advertised is 400 invalid_client_metadata",
    [configuration],
    ([config]) => {
      const { grants, scopes, methods } = config
      return withServer(
        {
          server: {
            grantTypesSupported: grants,
            scopesSupported: scopes,
            tokenEndpointAuthMethodsSupported: methods
          }
        },
        async (server) => {
          // The document through Protocol.handle; the property is about what it says.
          const document = await discoverWith(protocolSend, server)
          expect(document.grant_types_supported).toStrictEqual(grants)
          expect(document.scopes_supported).toStrictEqual(scopes)
          expect(document.token_endpoint_auth_methods_supported).toStrictEqual(methods)

          const post = (metadata: Record<string, unknown>) => server.request("POST", "/register", { json: metadata })
          const accepted = async (metadata: Record<string, unknown>) => {
            const response = await post(metadata)
            expect(response.status, `${JSON.stringify(metadata)} -> ${response.text}`).toBe(201)
            return response.json ?? {}
          }
          const refused = async (metadata: Record<string, unknown>) => {
            const response = await post(metadata)
            expect(response.status, `${JSON.stringify(metadata)} -> ${response.text}`).toBe(400)
            expect(response.json?.error, JSON.stringify(metadata)).toBe("invalid_client_metadata")
          }

          const grant = first(grants)
          const method = first(methods)
          for (const g of grants) {
            const body = await accepted(metadataFor(g, method))
            expect(body.grant_types).toStrictEqual([g])
          }
          for (const m of methods) {
            const body = await accepted(metadataFor(grant, m))
            expect(body.token_endpoint_auth_method).toBe(m)
          }
          for (const s of scopes) {
            const body = await accepted({ ...metadataFor(grant, method), scope: s })
            expect(body.scope).toBe(s)
          }
          const everyScope = scopes.join(" ")
          expect((await accepted({ ...metadataFor(grant, method), scope: everyScope })).scope).toBe(everyScope)

          for (const g of grantPool.filter((value) => !grants.includes(value))) {
            await refused(metadataFor(g, method))
          }
          for (const m of methodPool.filter((value) => !methods.includes(value))) {
            await refused(metadataFor(grant, m))
          }
          for (const s of [...scopePool.filter((value) => !scopes.includes(value)), "not-advertised"]) {
            await refused({ ...metadataFor(grant, method), scope: s })
            await refused({ ...metadataFor(grant, method), scope: `${first(scopes)} ${s}` })
          }
        }
      )
    },
    { fastCheck: { numRuns: 30 } }
  )
})
