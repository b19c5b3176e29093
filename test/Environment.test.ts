/**
 * The standalone server's configuration from environment variables
 * (`Environment.fromEnv`): defaults, each variable parsed, each malformed
 * value a `ConfigError` naming the variable; and the real process, started
 * as a user would, gated by a static initial access token (D22).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { FetchHttpClient } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Redacted } from "effect"
import * as Jose from "jose"
import { afterAll } from "vitest"
import * as ClientStore from "../src/ClientStore.js"
import * as Credentials from "../src/Credentials.js"
import * as Dcr from "../src/Dcr.js"
import { ConfigError, fromEnv } from "../src/Environment.js"
import * as InitialAccessTokens from "../src/InitialAccessTokens.js"
import * as Protocol from "../src/Protocol.js"
import type { ServeOptions } from "../src/Server.js"
import * as ServerMetadata from "../src/ServerMetadata.js"
import * as SoftwareStatements from "../src/SoftwareStatements.js"
import { parseObject } from "./support/json.js"
import { bash, freePort, start } from "./support/process.js"

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

const scratch = mkdtempSync(join(tmpdir(), "effect-dcr-env-"))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

/** Every variable fromEnv reads, blank: nothing inherited from the test runner's environment leaks in. */
const blank: Readonly<Record<string, string>> = Object.fromEntries(
  [
    "PORT",
    "HOST",
    "PUBLIC_URL",
    "REGISTRATION_MODE",
    "INITIAL_ACCESS_TOKEN",
    "RAT_ROTATION",
    "RAT_FORMAT",
    "RAT_SIGNING_KEY",
    "DELETE_ENABLED",
    "UPDATE_ENABLED",
    "SECRET_LIFETIME",
    "MAX_BODY_BYTES",
    "SOFTWARE_STATEMENT_ISSUERS",
    "SOFTWARE_STATEMENT_REQUIRED",
    "SCOPES",
    "SQLITE_SYNCHRONOUS"
  ].map((name) => [name, ""])
)

/** Calls fromEnv and returns what it threw (undefined if nothing). */
const thrownBy = (env: Record<string, string>): unknown => {
  try {
    fromEnv(env)
    return undefined
  } catch (error) {
    return error
  }
}

const expectConfigError = (env: Record<string, string>, variable: string): void => {
  const error = thrownBy(env)
  expect(error, JSON.stringify(env)).toBeInstanceOf(ConfigError)
  expect(error instanceof Error ? error.message : "", JSON.stringify(env)).toContain(variable)
}

/** The resolved server configuration the options give (what `serve` builds). */
const resolved = (options: ServeOptions): ServerMetadata.ServerConfig => {
  const { port: _port, host: _host, services: _services, publicUrl, ...rest } = options
  return ServerMetadata.make({ ...rest, publicUrl: publicUrl ?? "http://127.0.0.1:3000" })
}

/** The services the options give, on a memory store. */
const servicesOf = (options: ServeOptions) =>
  Dcr.layer({ ...options.services, store: ClientStore.layerMemory, server: { publicUrl: "https://as.example.com" } })

const post = (token: string | undefined, metadata: unknown = { grant_types: ["client_credentials"] }) =>
  Effect.map(
    Protocol.handle({
      method: "POST",
      url: "/register",
      authorization: token === undefined ? [] : [`Bearer ${token}`],
      contentType: "application/json",
      body: new TextEncoder().encode(JSON.stringify(metadata))
    }),
    (response) => ({
      status: response.status,
      json: response.body === undefined ? undefined : parseObject(response.body)
    })
  )

const esKey = async () => {
  const pair = await Jose.generateKeyPair("ES256", { extractable: true })
  return {
    privateJwk: { ...(await Jose.exportJWK(pair.privateKey)), alg: "ES256", kid: "env-key" },
    publicJwk: { ...(await Jose.exportJWK(pair.publicKey)), alg: "ES256", kid: "env-key" },
    privateKey: pair.privateKey,
    publicKey: pair.publicKey
  }
}

// ---------------------------------------------------------------------------
// fromEnv
// ---------------------------------------------------------------------------

describe("Environment.fromEnv", () => {
  it("defaults: nothing set means every library default", () => {
    const options = fromEnv(blank)
    expect(options.port).toBeUndefined()
    expect(options.host).toBeUndefined()
    expect(options.publicUrl).toBeUndefined()
    expect(options.services?.initialAccessTokens).toBeUndefined()
    expect(options.services?.tokenAuthenticator).toBeUndefined()
    expect(options.services?.softwareStatements).toBeUndefined()
    const config = resolved(options)
    expect(config.rotateRegistrationTokenOnUpdate).toBe(true)
    expect(config.updateEnabled).toBe(true)
    expect(config.deleteEnabled).toBe(true)
    expect(config.clientSecretLifetimeSeconds).toBe(0)
    expect(config.maxBodyBytes).toBe(65_536)
    expect(config.document.scopes_supported).toStrictEqual(["openid", "profile", "email", "offline_access"])
  })

  it.effect("D22 defaults: registration is open", () =>
    Effect.gen(function* () {
      const tokens = yield* InitialAccessTokens.InitialAccessTokens
      expect(tokens.mode).toBe("open")
      expect((yield* post(undefined)).status).toBe(201)
    }).pipe(Effect.provide(servicesOf(fromEnv(blank))))
  )

  it("PORT, HOST and PUBLIC_URL are read (surrounding blanks trimmed)", () => {
    const options = fromEnv({
      ...blank,
      PORT: " 8080 ",
      HOST: "0.0.0.0",
      PUBLIC_URL: "https://as.example.com/oauth"
    })
    expect(options.port).toBe(8080)
    expect(options.host).toBe("0.0.0.0")
    expect(options.publicUrl).toBe("https://as.example.com/oauth")
    expect(fromEnv({ ...blank, PORT: "0" }).port).toBe(0)
    expect(fromEnv({ ...blank, PORT: "65535" }).port).toBe(65535)
  })

  it("D15 D4 D19 RAT_ROTATION, DELETE_ENABLED and UPDATE_ENABLED accept true/false, 1/0, yes/no, on/off", () => {
    for (const [text, expected] of [
      ["true", true],
      ["TRUE", true],
      ["1", true],
      ["yes", true],
      ["on", true],
      ["false", false],
      ["False", false],
      ["0", false],
      ["no", false],
      ["off", false]
    ] as const) {
      const options = fromEnv({ ...blank, RAT_ROTATION: text, DELETE_ENABLED: text, UPDATE_ENABLED: text })
      expect(options.rotateRegistrationTokenOnUpdate, text).toBe(expected)
      expect(options.deleteEnabled, text).toBe(expected)
      expect(options.updateEnabled, text).toBe(expected)
    }
    const config = resolved(fromEnv({ ...blank, RAT_ROTATION: "false", DELETE_ENABLED: "no", UPDATE_ENABLED: "0" }))
    expect(config.rotateRegistrationTokenOnUpdate).toBe(false)
    expect(config.deleteEnabled).toBe(false)
    expect(config.updateEnabled).toBe(false)
  })

  it("D14 D18 SECRET_LIFETIME and MAX_BODY_BYTES are whole numbers", () => {
    const options = fromEnv({ ...blank, SECRET_LIFETIME: "3600", MAX_BODY_BYTES: "1024" })
    expect(options.clientSecretLifetimeSeconds).toBe(3600)
    expect(options.maxBodyBytes).toBe(1024)
    expect(resolved(options).clientSecretLifetimeSeconds).toBe(3600)
  })

  it("SCOPES is a space-separated list, or any", () => {
    expect(fromEnv({ ...blank, SCOPES: "openid  api:read\tapi:write" }).scopesSupported).toStrictEqual([
      "openid",
      "api:read",
      "api:write"
    ])
    expect(fromEnv({ ...blank, SCOPES: "any" }).scopesSupported).toBe("any")
    expect(resolved(fromEnv({ ...blank, SCOPES: "any" })).scopesSupported).toBeUndefined()
  })

  it.effect("D22 REGISTRATION_MODE=static takes comma-separated INITIAL_ACCESS_TOKENs", () =>
    Effect.gen(function* () {
      const tokens = yield* InitialAccessTokens.InitialAccessTokens
      expect(tokens.mode).toBe("static")
      expect((yield* post("tok-a")).status).toBe(201)
      expect((yield* post("tok-b")).status).toBe(201)
      const wrong = yield* post("tok-c")
      expect(wrong.status).toBe(401)
      expect(wrong.json?.error).toBe("invalid_token")
      expect((yield* post(undefined)).status).toBe(401)
    }).pipe(
      Effect.provide(
        servicesOf(fromEnv({ ...blank, REGISTRATION_MODE: "static", INITIAL_ACCESS_TOKEN: "tok-a, tok-b" }))
      )
    )
  )

  it.effect("D22 REGISTRATION_MODE=issued accepts only minted tokens", () =>
    Effect.gen(function* () {
      const tokens = yield* InitialAccessTokens.InitialAccessTokens
      expect(tokens.mode).toBe("issued")
      expect((yield* post("anything")).status).toBe(401)
      const minted = yield* tokens.mint()
      expect((yield* post(Redacted.value(minted.token))).status).toBe(201)
    }).pipe(Effect.provide(servicesOf(fromEnv({ ...blank, REGISTRATION_MODE: "issued" }))))
  )

  it.effect("D15 RAT_FORMAT=jwt with RAT_SIGNING_KEY (inline JSON or @file) issues JWTs signed by that key", () =>
    Effect.gen(function* () {
      const key = yield* Effect.promise(esKey)
      const file = join(scratch, "rat-key.json")
      writeFileSync(file, JSON.stringify(key.privateJwk))
      for (const source of [JSON.stringify(key.privateJwk), `@${file}`]) {
        const options = fromEnv({ ...blank, RAT_FORMAT: "jwt", RAT_SIGNING_KEY: source })
        expect(options.services?.tokenAuthenticator).toBeDefined()
        const created = yield* post(undefined).pipe(Effect.provide(servicesOf(options)))
        expect(created.status).toBe(201)
        const rat = created.json?.registration_access_token
        if (typeof rat !== "string") throw new Error("no registration_access_token")
        const verified = yield* Effect.promise(() =>
          Jose.jwtVerify(rat, key.publicKey, { algorithms: ["ES256"], audience: "https://as.example.com/register" })
        )
        expect(verified.payload.sub).toBe(created.json?.client_id)
        expect(verified.protectedHeader.kid).toBe("env-key")
      }
      expect(fromEnv({ ...blank, RAT_FORMAT: "opaque" }).services?.tokenAuthenticator).toBeUndefined()
    })
  )

  // Live clock: the statement carries a real iat.
  it.live("D21 SOFTWARE_STATEMENT_ISSUERS (inline or @file) and SOFTWARE_STATEMENT_REQUIRED configure statements", () =>
    Effect.gen(function* () {
      const key = yield* Effect.promise(esKey)
      const issuers = JSON.stringify([
        { issuer: "https://statements.example", jwks: { keys: [key.publicJwk] } },
        { issuer: "https://remote.example", jwksUri: "https://remote.example/jwks.json" }
      ])
      const file = join(scratch, "issuers.json")
      writeFileSync(file, issuers)
      const statement = yield* Effect.promise(() =>
        new Jose.SignJWT({ software_id: "com.example.app", client_name: "From Statement" })
          .setProtectedHeader({ alg: "ES256", kid: "env-key" })
          .setIssuer("https://statements.example")
          .setIssuedAt()
          .sign(key.privateKey)
      )
      const stranger = yield* Effect.promise(() =>
        new Jose.SignJWT({ software_id: "com.example.app" })
          .setProtectedHeader({ alg: "ES256", kid: "env-key" })
          .setIssuer("https://stranger.example")
          .setIssuedAt()
          .sign(key.privateKey)
      )
      for (const [source, requiredText, required] of [
        [issuers, "", false],
        [`@${file}`, "true", true]
      ] as const) {
        const options = fromEnv({
          ...blank,
          SOFTWARE_STATEMENT_ISSUERS: source,
          SOFTWARE_STATEMENT_REQUIRED: requiredText
        })
        const layer = options.services?.softwareStatements
        if (layer === undefined) throw new Error("no softwareStatements layer")
        const service = yield* SoftwareStatements.SoftwareStatements.pipe(
          Effect.provide(
            Layer.provide(
              layer,
              Layer.mergeAll(
                FetchHttpClient.layer,
                ServerMetadata.layer({ publicUrl: "https://as.example.com" }),
                ClientStore.layerMemory,
                Credentials.layer
              )
            )
          )
        )
        expect(service.supported).toBe(true)
        expect(service.required).toBe(required)
        const verified = yield* service.verify(statement)
        expect(verified.issuer).toBe("https://statements.example")
        expect(verified.claims.software_id).toBe("com.example.app")
        const untrusted = yield* Effect.flip(service.verify(stranger))
        expect(untrusted._tag).toBe("UnapprovedSoftwareStatement")
      }
    })
  )

  it("SOFTWARE_STATEMENT_REQUIRED=false without issuers is fine", () => {
    expect(fromEnv({ ...blank, SOFTWARE_STATEMENT_REQUIRED: "false" }).services?.softwareStatements).toBeUndefined()
  })

  describe("each malformed value is a ConfigError naming the variable", () => {
    const cases: ReadonlyArray<readonly [string, Record<string, string>, string]> = [
      ["PORT=abc", { PORT: "abc" }, "PORT"],
      ["PORT=70000", { PORT: "70000" }, "PORT"],
      ["PORT=-1", { PORT: "-1" }, "PORT"],
      ["PORT=80.5", { PORT: "80.5" }, "PORT"],
      ["RAT_ROTATION=maybe", { RAT_ROTATION: "maybe" }, "RAT_ROTATION"],
      ["DELETE_ENABLED=perhaps", { DELETE_ENABLED: "perhaps" }, "DELETE_ENABLED"],
      ["UPDATE_ENABLED=2", { UPDATE_ENABLED: "2" }, "UPDATE_ENABLED"],
      ["SECRET_LIFETIME=-5", { SECRET_LIFETIME: "-5" }, "SECRET_LIFETIME"],
      ["SECRET_LIFETIME=1h", { SECRET_LIFETIME: "1h" }, "SECRET_LIFETIME"],
      ["MAX_BODY_BYTES=64k", { MAX_BODY_BYTES: "64k" }, "MAX_BODY_BYTES"],
      ["REGISTRATION_MODE=weird", { REGISTRATION_MODE: "weird" }, "REGISTRATION_MODE"],
      ["SQLITE_SYNCHRONOUS=off (issue 6: normal or full only)", { SQLITE_SYNCHRONOUS: "off" }, "SQLITE_SYNCHRONOUS"],
      [
        "REGISTRATION_MODE=static without INITIAL_ACCESS_TOKEN",
        { REGISTRATION_MODE: "static" },
        "INITIAL_ACCESS_TOKEN"
      ],
      [
        "REGISTRATION_MODE=static with a token that is not a b64token",
        { REGISTRATION_MODE: "static", INITIAL_ACCESS_TOKEN: "has space" },
        "INITIAL_ACCESS_TOKEN"
      ],
      [
        "REGISTRATION_MODE=static with an empty token in the list",
        { REGISTRATION_MODE: "static", INITIAL_ACCESS_TOKEN: "tok-a,,tok-b" },
        "INITIAL_ACCESS_TOKEN"
      ],
      ["RAT_FORMAT=paseto", { RAT_FORMAT: "paseto" }, "RAT_FORMAT"],
      ["RAT_FORMAT=jwt without a key", { RAT_FORMAT: "jwt" }, "RAT_SIGNING_KEY"],
      ["RAT_SIGNING_KEY not JSON", { RAT_FORMAT: "jwt", RAT_SIGNING_KEY: "{kty: EC" }, "RAT_SIGNING_KEY"],
      ["RAT_SIGNING_KEY not a JWK", { RAT_FORMAT: "jwt", RAT_SIGNING_KEY: '["EC"]' }, "RAT_SIGNING_KEY"],
      [
        "RAT_SIGNING_KEY without alg",
        {
          RAT_FORMAT: "jwt",
          RAT_SIGNING_KEY: JSON.stringify({ kty: "oct", k: "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0" })
        },
        "RAT_SIGNING_KEY"
      ],
      [
        "RAT_SIGNING_KEY=@/nonexistent file",
        { RAT_FORMAT: "jwt", RAT_SIGNING_KEY: "@/nonexistent/effect-dcr/key.json" },
        "RAT_SIGNING_KEY"
      ],
      ["SOFTWARE_STATEMENT_ISSUERS not JSON", { SOFTWARE_STATEMENT_ISSUERS: "[{" }, "SOFTWARE_STATEMENT_ISSUERS"],
      [
        "SOFTWARE_STATEMENT_ISSUERS not an array",
        { SOFTWARE_STATEMENT_ISSUERS: '{"issuer":"https://i.example","jwks":{"keys":[]}}' },
        "SOFTWARE_STATEMENT_ISSUERS"
      ],
      [
        "SOFTWARE_STATEMENT_ISSUERS entry without jwks",
        { SOFTWARE_STATEMENT_ISSUERS: '[{"issuer":"https://i.example"}]' },
        "SOFTWARE_STATEMENT_ISSUERS"
      ],
      [
        "SOFTWARE_STATEMENT_ISSUERS entry without issuer",
        { SOFTWARE_STATEMENT_ISSUERS: '[{"jwks":{"keys":[{"kty":"EC"}]}}]' },
        "SOFTWARE_STATEMENT_ISSUERS"
      ],
      [
        "SOFTWARE_STATEMENT_ISSUERS entry whose jwks is not a JWK Set",
        { SOFTWARE_STATEMENT_ISSUERS: '[{"issuer":"https://i.example","jwks":{"keys":["k"]}}]' },
        "SOFTWARE_STATEMENT_ISSUERS"
      ],
      [
        "SOFTWARE_STATEMENT_ISSUERS entry whose jwksUri is not a URL",
        { SOFTWARE_STATEMENT_ISSUERS: '[{"issuer":"https://i.example","jwksUri":"not a url"}]' },
        "SOFTWARE_STATEMENT_ISSUERS"
      ],
      [
        "SOFTWARE_STATEMENT_ISSUERS=@/nonexistent file",
        { SOFTWARE_STATEMENT_ISSUERS: "@/nonexistent/effect-dcr/issuers.json" },
        "SOFTWARE_STATEMENT_ISSUERS"
      ],
      [
        "SOFTWARE_STATEMENT_REQUIRED without issuers",
        { SOFTWARE_STATEMENT_REQUIRED: "true" },
        "SOFTWARE_STATEMENT_REQUIRED"
      ],
      [
        "SOFTWARE_STATEMENT_REQUIRED=sometimes",
        { SOFTWARE_STATEMENT_REQUIRED: "sometimes" },
        "SOFTWARE_STATEMENT_REQUIRED"
      ]
    ]
    for (const [name, env, variable] of cases) {
      it(`${name} names ${variable}`, () => {
        expectConfigError({ ...blank, ...env }, variable)
      })
    }
  })

  describe("values that cannot work are refused before anything listens", () => {
    it("RAT_SIGNING_KEY with alg none names RAT_SIGNING_KEY", () => {
      expectConfigError(
        {
          ...blank,
          RAT_FORMAT: "jwt",
          RAT_SIGNING_KEY: JSON.stringify({ kty: "oct", k: "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0", alg: "none" })
        },
        "RAT_SIGNING_KEY"
      )
    })

    it("RAT_SIGNING_KEY holding only a public key (it cannot sign) names RAT_SIGNING_KEY", async () => {
      const key = await esKey()
      expectConfigError(
        { ...blank, RAT_FORMAT: "jwt", RAT_SIGNING_KEY: JSON.stringify(key.publicJwk) },
        "RAT_SIGNING_KEY"
      )
    })

    it("PUBLIC_URL that is not an absolute http(s) URL names PUBLIC_URL", () => {
      for (const url of ["not a url", "ftp://as.example.com", "/oauth"]) {
        expectConfigError({ ...blank, PUBLIC_URL: url }, "PUBLIC_URL")
      }
    })
  })
})

// ---------------------------------------------------------------------------
// The process
// ---------------------------------------------------------------------------

describe("the standalone server process (src/bin.ts)", () => {
  it("D22 REGISTRATION_MODE=static: registration without the token is 401, with it 201", async () => {
    const port = await freePort()
    const server = await start(
      "node",
      ["--import", "tsx", "src/bin.ts", "serve"],
      {
        ...blank,
        PORT: String(port),
        HOST: "127.0.0.1",
        REGISTRATION_MODE: "static",
        INITIAL_ACCESS_TOKEN: "process-token-1",
        DATABASE_URL: "memory:"
      },
      /registration endpoint: .*\n/
    )
    try {
      const endpoint = /registration endpoint: (\S+)/.exec(server.output())?.[1]
      expect(endpoint).toBe(`http://127.0.0.1:${port}/register`)
      const register = (headers: Record<string, string>) =>
        fetch(`http://127.0.0.1:${port}/register`, {
          method: "POST",
          headers: { "content-type": "application/json", ...headers },
          body: JSON.stringify({ grant_types: ["client_credentials"], client_name: "Process Client" })
        })
      const missing = await register({})
      expect(missing.status).toBe(401)
      expect(missing.headers.get("www-authenticate")).toMatch(/^Bearer realm="[^"]*"$/)
      const wrong = await register({ authorization: "Bearer process-token-2" })
      expect(wrong.status).toBe(401)
      expect(wrong.headers.get("www-authenticate")).toMatch(/error="invalid_token"/)
      const created = await register({ authorization: "Bearer process-token-1" })
      expect(created.status).toBe(201)
      const body = parseObject(await created.text())
      expect(typeof body.client_id).toBe("string")
      expect(body.client_name).toBe("Process Client")
      expect(body.registration_client_uri).toBe(`http://127.0.0.1:${port}/register/${String(body.client_id)}`)
    } finally {
      await server.stop()
    }
  })

  it("a malformed REGISTRATION_MODE exits 1 with one line naming it", async () => {
    const result = await bash("REGISTRATION_MODE=nope node --import tsx src/bin.ts serve")
    expect(result.code).toBe(1)
    const lines = result.stderr.trim().split("\n")
    expect(lines).toHaveLength(1)
    expect(lines[0]).toContain("REGISTRATION_MODE")
    expect(result.stdout).not.toContain("listening")
  })
})
