/**
 * MetadataValidator (RFC 7591 §2, §2.1, §2.2, §5; SPEC D8–D13), table-driven
 * in the style of panva/jose: every bad input names the exact error class,
 * the OAuth error code it renders to, and the member the description names.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Layer, Schema } from "effect"
import * as Jose from "jose"
import * as MetadataValidator from "../src/MetadataValidator.js"
import { ErrorBody, InvalidClientMetadata, InvalidRedirectUri, toResponse } from "../src/ProtocolError.js"
import * as ServerMetadata from "../src/ServerMetadata.js"
import * as SoftwareStatements from "../src/SoftwareStatements.js"

type ServerOptions = Omit<ServerMetadata.Options, "publicUrl">
type Input = Readonly<Record<string, unknown>>
type ErrorTag = "InvalidClientMetadata" | "InvalidRedirectUri"

const publicUrl = "https://as.example.com"
const redirectUris = ["https://client.example.org/cb"]

const validatorFor = (options: ServerOptions = {}): MetadataValidator.MetadataValidatorService =>
  MetadataValidator.make(ServerMetadata.make({ publicUrl, ...options }))

const validate = (input: unknown, options: ServerOptions = {}) =>
  validatorFor(options).validate(input, { operation: "register" })

const errorCode = (tag: ErrorTag): string =>
  tag === "InvalidRedirectUri" ? "invalid_redirect_uri" : "invalid_client_metadata"

const decodeErrorBody = Schema.decodeUnknownSync(Schema.parseJson(ErrorBody))

/** Asserts the exact class, tag and rendered error code, and that the description names `field`. */
const expectError = (error: MetadataValidator.MetadataError, tag: ErrorTag, field: string): void => {
  expect(error._tag).toBe(tag)
  expect(error).toBeInstanceOf(tag === "InvalidRedirectUri" ? InvalidRedirectUri : InvalidClientMetadata)
  expect(error.description).toContain(field)
  const response = toResponse(error, { realm: publicUrl })
  expect(response.status).toBe(400)
  expect(decodeErrorBody(response.body).error).toBe(errorCode(tag))
}

/** Validates `input` and asserts it fails with `tag`, naming `field`. */
const refuses = (input: unknown, tag: ErrorTag, field: string, options: ServerOptions = {}) =>
  Effect.gen(function* () {
    const error = yield* Effect.flip(validate(input, options))
    expectError(error, tag, field)
  })

// A server that supports every grant and response type the tables below use.
const wideServer: ServerOptions = {
  grantTypesSupported: ["authorization_code", "implicit", "refresh_token", "client_credentials", "password"],
  responseTypesSupported: ["code", "token", "id_token", "code id_token", "code token"]
}

describe("MetadataValidator", () => {
  describe("R7591-2 standard members", () => {
    it.effect("R7591-2-a..l accepts, stores and echoes every standard member", () =>
      Effect.gen(function* () {
        const input: Input = {
          redirect_uris: ["https://client.example.org/cb", "https://client.example.org/cb2"],
          token_endpoint_auth_method: "client_secret_post",
          grant_types: ["authorization_code", "refresh_token"],
          response_types: ["code"],
          client_name: "Example Client",
          client_uri: "https://client.example.org/",
          logo_uri: "https://client.example.org/logo.png",
          scope: "openid profile",
          contacts: ["ops@client.example.org", "admin@client.example.org"],
          tos_uri: "https://client.example.org/tos",
          policy_uri: "https://client.example.org/policy",
          jwks_uri: "https://client.example.org/jwks.json",
          software_id: "4NRB1-0XZABZI9E6-5SM3R",
          software_version: "2.1"
        }
        const result = yield* validate(input)
        expect(result).toStrictEqual(input)
      })
    )

    it.effect("R7591-2-a..l the result is exactly the registered metadata (no extra members)", () =>
      Effect.gen(function* () {
        const result = yield* validate({ redirect_uris: redirectUris, client_name: "A" })
        expect(Object.keys(result).sort()).toStrictEqual(
          ["client_name", "grant_types", "redirect_uris", "response_types", "token_endpoint_auth_method"].sort()
        )
      })
    )

    it.effect("R7591-2-e..l echoes untagged strings byte for byte (R7591-2.2-e)", () =>
      Effect.gen(function* () {
        const name = "  Ｃｌｉｅｎｔ 名前 \u00e9\u0301 "
        const result = yield* validate({ redirect_uris: redirectUris, client_name: name, software_version: "01.0" })
        expect(result.client_name).toBe(name)
        expect(result.software_version).toBe("01.0")
      })
    )

    // [member, bad value, expected error class]
    const badTypes: ReadonlyArray<readonly [string, unknown, ErrorTag]> = [
      ["redirect_uris", "https://client.example.org/cb", "InvalidRedirectUri"],
      ["redirect_uris", {}, "InvalidRedirectUri"],
      ["redirect_uris", 1, "InvalidRedirectUri"],
      ["redirect_uris", [1], "InvalidRedirectUri"],
      ["redirect_uris", [""], "InvalidRedirectUri"],
      ["redirect_uris", [["https://client.example.org/cb"]], "InvalidRedirectUri"],
      ["redirect_uris", ["https://client.example.org/cb", null], "InvalidRedirectUri"],
      ["token_endpoint_auth_method", 1, "InvalidClientMetadata"],
      ["token_endpoint_auth_method", "", "InvalidClientMetadata"],
      ["token_endpoint_auth_method", ["client_secret_basic"], "InvalidClientMetadata"],
      ["token_endpoint_auth_method", true, "InvalidClientMetadata"],
      ["grant_types", "authorization_code", "InvalidClientMetadata"],
      ["grant_types", [1], "InvalidClientMetadata"],
      ["grant_types", [""], "InvalidClientMetadata"],
      ["grant_types", {}, "InvalidClientMetadata"],
      ["response_types", "code", "InvalidClientMetadata"],
      ["response_types", [1], "InvalidClientMetadata"],
      ["response_types", [""], "InvalidClientMetadata"],
      ["client_name", 1, "InvalidClientMetadata"],
      ["client_name", "", "InvalidClientMetadata"],
      ["client_name", ["A"], "InvalidClientMetadata"],
      ["client_name", { en: "A" }, "InvalidClientMetadata"],
      ["scope", 1, "InvalidClientMetadata"],
      ["scope", ["openid"], "InvalidClientMetadata"],
      ["scope", "", "InvalidClientMetadata"],
      ["contacts", "ops@client.example.org", "InvalidClientMetadata"],
      ["contacts", [1], "InvalidClientMetadata"],
      ["contacts", {}, "InvalidClientMetadata"],
      ["contacts", ["ops@client.example.org", false], "InvalidClientMetadata"],
      ["jwks", "x", "InvalidClientMetadata"],
      ["software_id", 1, "InvalidClientMetadata"],
      ["software_id", "", "InvalidClientMetadata"],
      ["software_id", { id: "x" }, "InvalidClientMetadata"],
      ["software_version", 1, "InvalidClientMetadata"],
      ["software_version", ["1"], "InvalidClientMetadata"],
      ["software_version", true, "InvalidClientMetadata"]
    ]
    for (const [member, value, tag] of badTypes) {
      it.effect(`R7591-2 refuses ${member} = ${JSON.stringify(value)} with ${tag}`, () =>
        refuses({ redirect_uris: redirectUris, [member]: value }, tag, member)
      )
    }

    // R7591-2-f/g/j/k: URLs of web pages and documents.
    const urlMembers = ["client_uri", "logo_uri", "tos_uri", "policy_uri", "jwks_uri"]
    const badUrls: ReadonlyArray<unknown> = [
      1,
      "",
      ["https://client.example.org/"],
      "not a url",
      "client.example.org",
      "/relative/path",
      "//client.example.org/x",
      "javascript:alert(1)",
      "data:text/html,x",
      "file:///etc/passwd",
      "ftp://client.example.org/x",
      "mailto:ops@client.example.org",
      "https:client.example.org",
      "https://",
      "https://exa mple.org/",
      "https://client.example.org/\n"
    ]
    for (const member of urlMembers) {
      for (const value of badUrls) {
        it.effect(`R7591-2-f/g/j/k refuses ${member} = ${JSON.stringify(value)} as invalid_client_metadata`, () =>
          refuses({ redirect_uris: redirectUris, [member]: value }, "InvalidClientMetadata", member)
        )
      }
      it.effect(`R7591-2-f/g/j/k accepts an http and an https ${member}`, () =>
        Effect.gen(function* () {
          for (const url of ["https://client.example.org/page?x=1", "http://client.example.org/page"]) {
            const result = yield* validate({ redirect_uris: redirectUris, [member]: url })
            expect(result[member]).toBe(url)
          }
        })
      )
    }

    const notObjects: ReadonlyArray<unknown> = [null, undefined, "x", 1, true, [], [{ client_name: "A" }]]
    for (const input of notObjects) {
      it.effect(`D18 / R7592-2.2-a refuses metadata that is not a JSON object: ${String(JSON.stringify(input))}`, () =>
        refuses(input, "InvalidClientMetadata", "client metadata")
      )
    }

    it.effect("R7591-2-h registers the configured default scope when none is sent", () =>
      Effect.gen(function* () {
        const withDefault = yield* validate({ redirect_uris: redirectUris }, { defaultScope: "openid" })
        expect(withDefault.scope).toBe("openid")
        const explicit = yield* validate({ redirect_uris: redirectUris, scope: "email" }, { defaultScope: "openid" })
        expect(explicit.scope).toBe("email")
        const none = yield* validate({ redirect_uris: redirectUris })
        expect(Object.hasOwn(none, "scope")).toBe(false)
      })
    )

    it.effect("R7591-2-n removes repeated redirect URIs, grant types and contacts", () =>
      Effect.gen(function* () {
        const result = yield* validate({
          redirect_uris: ["https://client.example.org/cb", "https://client.example.org/cb"],
          grant_types: ["authorization_code", "authorization_code"],
          contacts: ["a@client.example.org", "a@client.example.org"]
        })
        expect(result.redirect_uris).toStrictEqual(["https://client.example.org/cb"])
        expect(result.grant_types).toStrictEqual(["authorization_code"])
        expect(result.contacts).toStrictEqual(["a@client.example.org"])
      })
    )

    it.effect("R7591-2 the validator from MetadataValidator.layer reads ServerMetadata from context", () =>
      Effect.gen(function* () {
        const validator = yield* MetadataValidator.MetadataValidator
        const accepted = yield* validator.validate(
          { grant_types: ["password"], scope: "custom" },
          { operation: "register" }
        )
        expect(accepted.grant_types).toStrictEqual(["password"])
        expect(accepted.response_types).toStrictEqual([])
        const refused = yield* Effect.either(
          validator.validate({ redirect_uris: redirectUris, scope: "openid" }, { operation: "register" })
        )
        expect(Either.isLeft(refused)).toBe(true)
        if (Either.isLeft(refused)) expectError(refused.left, "InvalidClientMetadata", "scope")
      }).pipe(
        Effect.provide(
          MetadataValidator.layer.pipe(
            Layer.provide(
              Layer.merge(
                ServerMetadata.layer({ publicUrl, grantTypesSupported: ["password"], scopesSupported: ["custom"] }),
                SoftwareStatements.layerNone
              )
            )
          )
        )
      )
    )
  })

  describe("R7591-2-m / D9 unknown and extension members", () => {
    it.effect("R7591-2-m drops members it does not understand", () =>
      Effect.gen(function* () {
        const result = yield* validate({
          redirect_uris: redirectUris,
          foo: "bar",
          "x-custom": { nested: true },
          application_type: "web",
          default_max_age: 60,
          CLIENT_NAME: "upper case is another member",
          "#fr": "no base"
        })
        expect(result).toStrictEqual({
          redirect_uris: redirectUris,
          token_endpoint_auth_method: "client_secret_basic",
          grant_types: ["authorization_code"],
          response_types: ["code"]
        })
      })
    )

    it.effect("R7591-2-m / D18 drops top-level __proto__ and constructor members", () =>
      Effect.gen(function* () {
        const input: unknown = JSON.parse(
          '{"redirect_uris":["https://client.example.org/cb"],"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}}}'
        )
        const result = yield* validate(input)
        expect(Object.hasOwn(result, "__proto__")).toBe(false)
        expect(Object.hasOwn(result, "constructor")).toBe(false)
        expect(Object.getPrototypeOf(result)).toBe(Object.prototype)
        expect(Object.hasOwn(Object.prototype, "polluted")).toBe(false)
      })
    )

    const extensions: ServerOptions = {
      extensions: { application_type: Schema.Literal("web", "native"), default_max_age: Schema.Int }
    }

    it.effect("D9 validates, stores and echoes a declared extension member", () =>
      Effect.gen(function* () {
        const result = yield* validate(
          { redirect_uris: redirectUris, application_type: "native", default_max_age: 3600, unknown: 1 },
          extensions
        )
        expect(result.application_type).toBe("native")
        expect(result.default_max_age).toBe(3600)
        expect(Object.hasOwn(result, "unknown")).toBe(false)
      })
    )

    it.effect("D9 / D8 a null extension member counts as omitted", () =>
      Effect.gen(function* () {
        const result = yield* validate({ redirect_uris: redirectUris, application_type: null }, extensions)
        expect(Object.hasOwn(result, "application_type")).toBe(false)
      })
    )

    const badExtensions: ReadonlyArray<readonly [string, unknown]> = [
      ["application_type", "desktop"],
      ["application_type", 1],
      ["application_type", ["web"]],
      ["default_max_age", 1.5],
      ["default_max_age", "3600"],
      ["default_max_age", {}]
    ]
    for (const [member, value] of badExtensions) {
      it.effect(`D9 refuses extension ${member} = ${JSON.stringify(value)} naming the member`, () =>
        refuses({ redirect_uris: redirectUris, [member]: value }, "InvalidClientMetadata", member, extensions)
      )
    }

    it.effect("D9 stores the encoded form of a transforming extension schema", () =>
      Effect.gen(function* () {
        const result = yield* validate(
          { redirect_uris: redirectUris, require_auth_time: "true" },
          { extensions: { require_auth_time: Schema.parseJson(Schema.Boolean) } }
        )
        expect(result.require_auth_time).toBe("true")
      })
    )

    const reserved = ["redirect_uris", "scope", "jwks", "client_id", "client_secret", "software_statement", "x#fr"]
    for (const name of reserved) {
      it(`D9 an extension named ${name} cannot shadow a standard or server-managed member`, () => {
        expect(() => ServerMetadata.make({ publicUrl, extensions: { [name]: Schema.Array(Schema.String) } })).toThrow(
          name
        )
      })
    }
  })

  describe("D8 defaults and null", () => {
    it.effect("D8 applies the RFC 7591 defaults when the members are omitted", () =>
      Effect.gen(function* () {
        const result = yield* validate({ redirect_uris: redirectUris })
        expect(result.token_endpoint_auth_method).toBe("client_secret_basic")
        expect(result.grant_types).toStrictEqual(["authorization_code"])
        expect(result.response_types).toStrictEqual(["code"])
      })
    )

    it.effect("D8 a null member counts as omitted and defaults are applied again", () =>
      Effect.gen(function* () {
        const result = yield* MetadataValidator.make(ServerMetadata.make({ publicUrl })).validate(
          {
            redirect_uris: redirectUris,
            client_name: null,
            client_uri: null,
            scope: null,
            contacts: null,
            jwks: null,
            jwks_uri: null,
            token_endpoint_auth_method: null,
            grant_types: null,
            response_types: null,
            "client_name#fr": null
          },
          { operation: "update" }
        )
        expect(result).toStrictEqual({
          redirect_uris: redirectUris,
          token_endpoint_auth_method: "client_secret_basic",
          grant_types: ["authorization_code"],
          response_types: ["code"]
        })
      })
    )

    it.effect("D8 a null redirect_uris counts as omitted (and so is missing for authorization_code)", () =>
      refuses({ redirect_uris: null }, "InvalidRedirectUri", "redirect_uris")
    )

    it.effect("D8 refuses the default auth method when the server does not support client_secret_basic", () =>
      refuses({ redirect_uris: redirectUris }, "InvalidClientMetadata", "token_endpoint_auth_method", {
        tokenEndpointAuthMethodsSupported: ["none"]
      })
    )

    it.effect("D8 refuses the default grant type when the server does not support authorization_code", () =>
      refuses({ redirect_uris: redirectUris }, "InvalidClientMetadata", "grant_types", {
        grantTypesSupported: ["client_credentials"]
      })
    )
  })

  describe("R7591-2.1 grant types and response types", () => {
    // [grant_types, response_types] pairs RFC 7591 §2.1's table makes inconsistent
    const inconsistent: ReadonlyArray<readonly [ReadonlyArray<string>, ReadonlyArray<string>]> = [
      [["client_credentials"], ["code"]],
      [["authorization_code"], ["token"]],
      [["implicit"], ["code"]],
      [["password"], ["code"]],
      [["refresh_token"], ["token"]],
      [["authorization_code"], []],
      [["implicit"], []],
      [["authorization_code", "implicit"], ["code"]],
      [["authorization_code"], ["code", "token"]],
      [["authorization_code"], ["code id_token"]],
      [["implicit"], ["code token"]]
    ]
    for (const [grantTypes, responseTypes] of inconsistent) {
      it.effect(
        `R7591-2.1-b refuses grant_types ${JSON.stringify(grantTypes)} with response_types ${JSON.stringify(responseTypes)}`,
        () =>
          Effect.gen(function* () {
            const error = yield* Effect.flip(
              validate(
                { redirect_uris: redirectUris, grant_types: grantTypes, response_types: responseTypes },
                wideServer
              )
            )
            expect(error._tag).toBe("InvalidClientMetadata")
            expect(error.description).toMatch(/grant_types|response_types/)
          })
      )
    }

    // [request, expected grant_types, expected response_types]
    const consistent: ReadonlyArray<readonly [Input, ReadonlyArray<string>, ReadonlyArray<string>]> = [
      [{ grant_types: ["client_credentials"] }, ["client_credentials"], []],
      [{ grant_types: ["client_credentials"], response_types: [] }, ["client_credentials"], []],
      [{ grant_types: ["password", "refresh_token"] }, ["password", "refresh_token"], []],
      [{ redirect_uris: redirectUris }, ["authorization_code"], ["code"]],
      [{ redirect_uris: redirectUris, response_types: ["code"] }, ["authorization_code"], ["code"]],
      [{ redirect_uris: redirectUris, grant_types: ["implicit"] }, ["implicit"], ["token"]],
      [{ redirect_uris: redirectUris, response_types: ["token"] }, ["implicit"], ["token"]],
      [
        { redirect_uris: redirectUris, grant_types: ["authorization_code", "refresh_token"] },
        ["authorization_code", "refresh_token"],
        ["code"]
      ],
      [
        { redirect_uris: redirectUris, grant_types: ["authorization_code", "implicit"] },
        ["authorization_code", "implicit"],
        ["code", "token"]
      ],
      [
        {
          redirect_uris: redirectUris,
          grant_types: ["authorization_code", "implicit"],
          response_types: ["code id_token"]
        },
        ["authorization_code", "implicit"],
        ["code id_token"]
      ]
    ]
    for (const [input, grantTypes, responseTypes] of consistent) {
      it.effect(`R7591-2.1-a accepts ${JSON.stringify(input)}`, () =>
        Effect.gen(function* () {
          const result = yield* validate(input, wideServer)
          expect(result.grant_types).toStrictEqual(grantTypes)
          expect(result.response_types).toStrictEqual(responseTypes)
        })
      )
    }

    it.effect("R7591-2.1-a client_credentials alone needs no redirect_uris and gets response_types []", () =>
      Effect.gen(function* () {
        const result = yield* validate({ grant_types: ["client_credentials"] })
        expect(result.response_types).toStrictEqual([])
        expect(Object.hasOwn(result, "redirect_uris")).toBe(false)
      })
    )

    it.effect("R7591-2-d compares multi-valued response types as sets", () =>
      Effect.gen(function* () {
        const options: ServerOptions = {
          grantTypesSupported: ["authorization_code", "implicit"],
          responseTypesSupported: ["code id_token"]
        }
        const base = { redirect_uris: redirectUris, grant_types: ["authorization_code", "implicit"] }
        const reversed = yield* validate({ ...base, response_types: ["id_token code"] }, options)
        expect(reversed.response_types).toStrictEqual(["id_token code"])
        const both = yield* validate({ ...base, response_types: ["code id_token", "id_token code"] }, options)
        expect(both.response_types).toStrictEqual(["code id_token"])
        const serverReversed = yield* validate(
          { ...base, response_types: ["code id_token"] },
          { ...options, responseTypesSupported: ["id_token code"] }
        )
        expect(serverReversed.response_types).toStrictEqual(["code id_token"])
      })
    )

    const malformedResponseTypes = ["code  id_token", " code", "code ", "code,id_token", "cöde", "code\tid_token"]
    for (const responseType of malformedResponseTypes) {
      it.effect(`R7591-2-d refuses the malformed response type ${JSON.stringify(responseType)}`, () =>
        refuses(
          { redirect_uris: redirectUris, response_types: [responseType] },
          "InvalidClientMetadata",
          "response_types",
          wideServer
        )
      )
    }
  })

  describe("R7591-2.2 / D10 language-tagged members", () => {
    it.effect("R7591-2.2-a/b/f accepts, stores and echoes tagged variants of every localizable member", () =>
      Effect.gen(function* () {
        const input: Input = {
          redirect_uris: redirectUris,
          client_name: "Example",
          "client_name#fr": "Exemple",
          "client_name#ja-Jpan-JP": "クライアント名",
          "logo_uri#ja-Jpan-JP": "https://client.example.org/logo-ja.png",
          "client_uri#es-419": "https://client.example.org/es",
          "tos_uri#en-US": "https://client.example.org/tos-en",
          "policy_uri#de-CH-1996": "https://client.example.org/policy-de",
          "client_name#x-private": "Private"
        }
        const result = yield* validate(input)
        for (const [key, value] of Object.entries(input)) expect(result[key]).toStrictEqual(value)
      })
    )

    const badTags = ["", "e", "en_US", "not a tag", "fr-", "-fr", "en--US", "123", "toolonglang", "en-a", "x-", "fr#fr"]
    for (const tag of badTags) {
      for (const member of ["client_name", "logo_uri"]) {
        it.effect(`D10 refuses ${member}#${tag} (not a BCP 47 tag)`, () =>
          refuses(
            {
              redirect_uris: redirectUris,
              [`${member}#${tag}`]: member === "client_name" ? "Name" : "https://client.example.org/l.png"
            },
            "InvalidClientMetadata",
            member
          )
        )
      }
    }

    const caseTwins: ReadonlyArray<readonly [string, string]> = [
      ["client_name#fr", "client_name#FR"],
      ["client_name#ja-Jpan-JP", "client_name#ja-jpan-jp"],
      ["logo_uri#en-US", "logo_uri#EN-us"]
    ]
    for (const [first, second] of caseTwins) {
      it.effect(`R7591-2.2-c / D10 refuses ${first} and ${second} together`, () =>
        refuses(
          {
            redirect_uris: redirectUris,
            [first]: "https://client.example.org/a",
            [second]: "https://client.example.org/b"
          },
          "InvalidClientMetadata",
          first.slice(0, first.indexOf("#"))
        )
      )
    }

    it.effect("D10 accepts one tag on different members and different tags on one member", () =>
      Effect.gen(function* () {
        const result = yield* validate({
          redirect_uris: redirectUris,
          "client_name#fr": "Exemple",
          "client_uri#FR": "https://client.example.org/fr",
          "client_name#en": "Example",
          "client_name#en-GB": "Example (UK)"
        })
        expect(result["client_name#fr"]).toBe("Exemple")
        expect(result["client_uri#FR"]).toBe("https://client.example.org/fr")
        expect(result["client_name#en"]).toBe("Example")
        expect(result["client_name#en-GB"]).toBe("Example (UK)")
      })
    )

    const badVariants: ReadonlyArray<readonly [string, unknown]> = [
      ["logo_uri#fr", "javascript:alert(1)"],
      ["client_uri#de", "not a url"],
      ["tos_uri#en", 1],
      ["policy_uri#fr", "ftp://client.example.org/policy"],
      ["logo_uri#ja-Jpan-JP", "data:image/png;base64,AAAA"],
      ["client_name#fr", ""],
      ["client_name#fr", 1],
      ["client_name#fr", ["Exemple"]]
    ]
    for (const [key, value] of badVariants) {
      it.effect(`R7591-2.2-f refuses ${key} = ${JSON.stringify(value)} like its untagged member`, () =>
        refuses({ redirect_uris: redirectUris, [key]: value }, "InvalidClientMetadata", key.slice(0, key.indexOf("#")))
      )
    }

    it.effect("R7591-2-m / D10 drops tagged variants of members that are not localizable", () =>
      Effect.gen(function* () {
        const result = yield* validate({
          redirect_uris: redirectUris,
          "foo#fr": "x",
          "scope#fr": "not checked",
          "redirect_uris#fr": ["javascript:alert(1)"],
          "jwks_uri#fr": "javascript:alert(1)",
          "software_id#fr": 1,
          "contacts#fr": "x"
        })
        for (const key of Object.keys(result)) expect(key).not.toContain("#")
      })
    )
  })

  describe("D11 redirect URIs", () => {
    const accepted = [
      "https://client.example.org/cb",
      "https://client.example.org:8443/cb?state=x",
      "HTTPS://CLIENT.EXAMPLE.ORG/cb",
      "http://localhost:8080/cb",
      "http://localhost/cb",
      "http://127.0.0.1/cb",
      "http://127.0.0.1:51004/cb",
      "http://[::1]/cb",
      "http://[::1]:8080/cb",
      "com.example.app:/callback",
      "com.example.app:/oauth2redirect/example-provider"
    ]
    for (const uri of accepted) {
      it.effect(`D11 accepts ${uri}`, () =>
        Effect.gen(function* () {
          const result = yield* validate({ redirect_uris: [uri] })
          expect(result.redirect_uris).toStrictEqual([uri])
        })
      )
    }

    const refused = [
      "http://evil.example/cb",
      "http://localhost.evil.example/cb",
      "http://127.0.0.1.nip.io/cb",
      "http://localhost@evil.example/cb",
      "javascript:alert(1)",
      "JavaScript:alert(1)",
      "data:text/html,x",
      "file:///etc/passwd",
      "vbscript:msgbox(1)",
      "/cb",
      "cb",
      "//client.example.org/cb",
      "https://x/cb#frag",
      "https://client.example.org/cb#",
      "http://localhost/cb#frag",
      "com.example.app:/cb#frag",
      "myapp:/cb",
      "myapp://cb",
      "https:client.example.org/cb",
      "http:/localhost/cb",
      "https://",
      "https://client example.org/cb",
      "https://client.example.org/cb\r\nSet-Cookie: x=y",
      "https://client.example.org/<script>"
    ]
    for (const uri of refused) {
      it.effect(`D11 refuses ${JSON.stringify(uri)} with invalid_redirect_uri`, () =>
        refuses({ redirect_uris: [uri] }, "InvalidRedirectUri", "redirect_uris")
      )
    }

    it.effect("D11 refuses a bad redirect URI after a good one", () =>
      refuses(
        { redirect_uris: ["https://client.example.org/cb", "http://evil.example/cb"] },
        "InvalidRedirectUri",
        "redirect_uris"
      )
    )

    it.effect("D11 / R7591-5-b refuses missing redirect_uris for the default authorization_code grant", () =>
      refuses({ client_name: "A" }, "InvalidRedirectUri", "redirect_uris")
    )

    it.effect("D11 / R7591-5-b refuses an empty redirect_uris for authorization_code", () =>
      refuses({ redirect_uris: [], grant_types: ["authorization_code"] }, "InvalidRedirectUri", "redirect_uris")
    )

    it.effect("D11 / R7591-5-b refuses missing redirect_uris for implicit", () =>
      refuses({ grant_types: ["implicit"] }, "InvalidRedirectUri", "redirect_uris", wideServer)
    )

    it.effect("D11 accepts client_credentials without redirect_uris", () =>
      Effect.gen(function* () {
        const result = yield* Effect.either(validate({ grant_types: ["client_credentials"] }))
        expect(Either.isRight(result)).toBe(true)
      })
    )
  })

  describe("D12 supported values", () => {
    // [member, request, server options that refuse it, server options that accept it]
    const unsupported: ReadonlyArray<readonly [string, Input, ServerOptions, ServerOptions]> = [
      ["grant_types", { grant_types: ["password"] }, {}, { grantTypesSupported: ["authorization_code", "password"] }],
      [
        "grant_types",
        { grant_types: ["urn:ietf:params:oauth:grant-type:jwt-bearer"] },
        {},
        { grantTypesSupported: ["urn:ietf:params:oauth:grant-type:jwt-bearer"] }
      ],
      [
        "grant_types",
        { redirect_uris: redirectUris, grant_types: ["authorization_code", "implicit"] },
        { responseTypesSupported: ["code", "token"] },
        { grantTypesSupported: ["authorization_code", "implicit"], responseTypesSupported: ["code", "token"] }
      ],
      [
        "response_types",
        { redirect_uris: redirectUris, grant_types: ["implicit"], response_types: ["token"] },
        { grantTypesSupported: ["implicit"] },
        { grantTypesSupported: ["implicit"], responseTypesSupported: ["token"] }
      ],
      [
        "response_types",
        {
          redirect_uris: redirectUris,
          grant_types: ["authorization_code", "implicit"],
          response_types: ["code id_token"]
        },
        { grantTypesSupported: ["authorization_code", "implicit"], responseTypesSupported: ["code", "id_token"] },
        { grantTypesSupported: ["authorization_code", "implicit"], responseTypesSupported: ["id_token code"] }
      ],
      [
        "token_endpoint_auth_method",
        { redirect_uris: redirectUris, token_endpoint_auth_method: "client_secret_jwt" },
        {},
        { tokenEndpointAuthMethodsSupported: ["client_secret_jwt"] }
      ],
      [
        "token_endpoint_auth_method",
        { redirect_uris: redirectUris, token_endpoint_auth_method: "tls_client_auth" },
        {},
        { tokenEndpointAuthMethodsSupported: ["tls_client_auth"] }
      ],
      [
        "token_endpoint_auth_signing_alg",
        { redirect_uris: redirectUris, token_endpoint_auth_signing_alg: "HS256" },
        {},
        { tokenEndpointAuthSigningAlgValuesSupported: ["HS256"] }
      ],
      [
        "token_endpoint_auth_signing_alg",
        { redirect_uris: redirectUris, token_endpoint_auth_signing_alg: "RS512" },
        {},
        { tokenEndpointAuthSigningAlgValuesSupported: ["RS512"] }
      ],
      ["scope", { redirect_uris: redirectUris, scope: "admin" }, {}, { scopesSupported: ["admin"] }],
      ["scope", { redirect_uris: redirectUris, scope: "openid admin" }, {}, { scopesSupported: ["openid", "admin"] }],
      ["scope", { redirect_uris: redirectUris, scope: "OPENID" }, {}, { scopesSupported: ["OPENID"] }]
    ]
    for (const [member, input, refusing, supporting] of unsupported) {
      it.effect(`D12 refuses unsupported ${member} in ${JSON.stringify(input)}`, () =>
        refuses(input, "InvalidClientMetadata", member, refusing)
      )
      it.effect(`D12 accepts ${member} in ${JSON.stringify(input)} once the server supports it`, () =>
        Effect.gen(function* () {
          const result = yield* validate(input, supporting)
          expect(result[member]).toStrictEqual(input[member])
        })
      )
    }

    it.effect("D12 refuses token_endpoint_auth_signing_alg none even when listed", () =>
      refuses(
        { redirect_uris: redirectUris, token_endpoint_auth_signing_alg: "none" },
        "InvalidClientMetadata",
        "token_endpoint_auth_signing_alg",
        { tokenEndpointAuthSigningAlgValuesSupported: ["none", "RS256"] }
      )
    )

    it.effect("D12 accepts the default server's supported values", () =>
      Effect.gen(function* () {
        const result = yield* validate({
          redirect_uris: redirectUris,
          grant_types: ["authorization_code", "refresh_token", "client_credentials"],
          token_endpoint_auth_method: "none",
          token_endpoint_auth_signing_alg: "ES256",
          scope: "openid profile email offline_access"
        })
        expect(result.scope).toBe("openid profile email offline_access")
        expect(result.token_endpoint_auth_signing_alg).toBe("ES256")
      })
    )

    it.effect('D12 scopesSupported "any" accepts any well-formed scope', () =>
      Effect.gen(function* () {
        const scope = "anything:read write urn:example:scope https://api.example.com/x !#$%&'()*+,-./:;<=>?@[]^_`{|}~"
        const result = yield* validate({ redirect_uris: redirectUris, scope }, { scopesSupported: "any" })
        expect(result.scope).toBe(scope)
      })
    )

    const malformedScopes = ["a  b", " a", "a ", 'a"b', "a\\b", "é", "a\tb", "a\nb", "\u0000"]
    for (const scope of malformedScopes) {
      it.effect(`D12 / R7591-2-h refuses the malformed scope ${JSON.stringify(scope)} even with "any"`, () =>
        refuses({ redirect_uris: redirectUris, scope }, "InvalidClientMetadata", "scope", { scopesSupported: "any" })
      )
    }
  })

  describe("D13 / R7591-2-k JWK Sets", () => {
    const publicJwk = async (alg: "RS256" | "ES256" | "EdDSA", kid: string): Promise<Jose.JWK> => {
      const { publicKey } = await Jose.generateKeyPair(alg, { extractable: true })
      return { ...(await Jose.exportJWK(publicKey)), kid, use: "sig" }
    }
    const privateJwk = async (alg: "RS256" | "ES256" | "EdDSA"): Promise<Jose.JWK> => {
      const { privateKey } = await Jose.generateKeyPair(alg, { extractable: true })
      return Jose.exportJWK(privateKey)
    }
    const keys = Effect.promise(async () => ({
      rsa: await publicJwk("RS256", "rsa-1"),
      ec: await publicJwk("ES256", "ec-1"),
      ed: await publicJwk("EdDSA", "ed-1"),
      rsaPrivate: await privateJwk("RS256"),
      ecPrivate: await privateJwk("ES256"),
      edPrivate: await privateJwk("EdDSA"),
      oct: await Jose.exportJWK(await Jose.generateSecret("HS256", { extractable: true }))
    })).pipe(Effect.cached, Effect.runSync)

    const privateKeyJwt = { redirect_uris: redirectUris, token_endpoint_auth_method: "private_key_jwt" }

    it.effect("D13 accepts and echoes a public JWK Set (RSA, EC, OKP)", () =>
      Effect.gen(function* () {
        const { rsa, ec, ed } = yield* keys
        const jwks = { keys: [rsa, ec, ed] }
        const result = yield* validate({ ...privateKeyJwt, jwks })
        expect(result.jwks).toStrictEqual(jwks)
        expect(result.token_endpoint_auth_method).toBe("private_key_jwt")
      })
    )

    const algs: ReadonlyArray<"RS256" | "ES256" | "EdDSA"> = ["RS256", "ES256", "EdDSA"]
    for (const alg of algs) {
      it.effect(`D13 accepts a single ${alg} public key`, () =>
        Effect.gen(function* () {
          const jwk = yield* Effect.promise(() => publicJwk(alg, "k"))
          const result = yield* validate({ ...privateKeyJwt, jwks: { keys: [jwk] } })
          expect(result.jwks).toStrictEqual({ keys: [jwk] })
        })
      )
    }

    it.effect("D13 refuses private keys (with d) of every type", () =>
      Effect.gen(function* () {
        const { rsa, rsaPrivate, ecPrivate, edPrivate } = yield* keys
        for (const key of [rsaPrivate, ecPrivate, edPrivate]) {
          expect(Object.hasOwn(key, "d")).toBe(true)
          const error = yield* Effect.flip(validate({ ...privateKeyJwt, jwks: { keys: [rsa, key] } }))
          expectError(error, "InvalidClientMetadata", "jwks")
        }
      })
    )

    it.effect("D13 refuses a symmetric (oct) key", () =>
      Effect.gen(function* () {
        const { oct } = yield* keys
        expect(oct.kty).toBe("oct")
        yield* refuses({ ...privateKeyJwt, jwks: { keys: [oct] } }, "InvalidClientMetadata", "jwks")
        yield* refuses({ ...privateKeyJwt, jwks: { keys: [{ kty: "oct" }] } }, "InvalidClientMetadata", "jwks")
      })
    )

    const garbageKeys: ReadonlyArray<Input> = [
      { kty: "EC", crv: "P-256", x: "abc", y: "abc" },
      { kty: "OKP", crv: "Ed25519", x: "abc" },
      { kty: "EC", crv: "P-999", x: "abc", y: "abc" },
      { kty: "RSA", e: "AQAB" },
      { kty: "foo" },
      { kid: "no-kty" },
      {}
    ]
    for (const key of garbageKeys) {
      it.effect(`D13 refuses the key ${JSON.stringify(key)}`, () =>
        refuses({ ...privateKeyJwt, jwks: { keys: [key] } }, "InvalidClientMetadata", "jwks")
      )
    }

    it.effect('D13 refuses the garbage RSA key { kty: "RSA", n: "abc", e: "AQAB" }', () =>
      refuses(
        { ...privateKeyJwt, jwks: { keys: [{ kty: "RSA", n: "abc", e: "AQAB" }] } },
        "InvalidClientMetadata",
        "jwks"
      )
    )

    it.effect("D13 refuses a key whose alg does not match its type", () =>
      Effect.gen(function* () {
        const { ec } = yield* keys
        yield* refuses({ ...privateKeyJwt, jwks: { keys: [{ ...ec, alg: "RS256" }] } }, "InvalidClientMetadata", "jwks")
      })
    )

    const notSets: ReadonlyArray<unknown> = [
      "x",
      1,
      true,
      [],
      [{ kty: "RSA" }],
      {},
      { keys: "x" },
      { keys: {} },
      { keys: [1] }
    ]
    for (const jwks of notSets) {
      it.effect(`D13 / R7591-2-k refuses jwks = ${JSON.stringify(jwks)}`, () =>
        refuses({ ...privateKeyJwt, jwks }, "InvalidClientMetadata", "jwks")
      )
    }

    it.effect("D13 / R7591-2-k refuses jwks together with jwks_uri", () =>
      Effect.gen(function* () {
        const { rsa } = yield* keys
        yield* refuses(
          { ...privateKeyJwt, jwks: { keys: [rsa] }, jwks_uri: "https://client.example.org/jwks.json" },
          "InvalidClientMetadata",
          "jwks"
        )
        yield* refuses(
          { redirect_uris: redirectUris, jwks: { keys: [rsa] }, jwks_uri: "https://client.example.org/jwks.json" },
          "InvalidClientMetadata",
          "jwks"
        )
      })
    )

    it.effect("D13 refuses private_key_jwt without jwks or jwks_uri", () =>
      refuses(privateKeyJwt, "InvalidClientMetadata", "jwks")
    )

    it.effect("D13 accepts private_key_jwt with jwks_uri or with jwks", () =>
      Effect.gen(function* () {
        const { ec } = yield* keys
        const withUri = yield* validate({ ...privateKeyJwt, jwks_uri: "https://client.example.org/jwks.json" })
        expect(withUri.jwks_uri).toBe("https://client.example.org/jwks.json")
        expect(withUri.token_endpoint_auth_method).toBe("private_key_jwt")
        const withSet = yield* validate({ ...privateKeyJwt, jwks: { keys: [ec] } })
        expect(withSet.jwks).toStrictEqual({ keys: [ec] })
      })
    )

    it.effect("D18 a __proto__ member inside jwks never reaches stored metadata", () =>
      Effect.gen(function* () {
        const { rsa } = yield* keys
        const input: unknown = JSON.parse(
          JSON.stringify({ ...privateKeyJwt, jwks: { keys: [rsa] } }).replace('"kty":', '"__proto__":{"x":1},"kty":')
        )
        const result = yield* Effect.either(validate(input))
        if (Either.isRight(result)) {
          const stored = JSON.stringify(result.right)
          expect(stored).not.toContain("__proto__")
        }
      })
    )
  })
})
