/**
 * The internal helpers (bearer parsing, strict JSON, URI rules, language tags)
 * and ProtocolError.toResponse, table-driven in the style of panva/jose.
 */
import { describe, expect, it } from "vitest"
import { parseAuthorization } from "../src/internal/bearer.js"
import { hasDuplicateMember, maxDepth, parseJsonObject } from "../src/internal/json.js"
import { isLanguageTag } from "../src/internal/languageTag.js"
import { checkRedirectUri, checkWebUrl } from "../src/internal/uri.js"
import * as ProtocolError from "../src/ProtocolError.js"

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text)

describe("parseAuthorization (R6750-2.1-a, D5, D6)", () => {
  it("D5 no Authorization header is Missing", () => {
    expect(parseAuthorization([])).toStrictEqual({ _tag: "Missing" })
  })

  // [header value, token]
  const accepted: ReadonlyArray<readonly [string, string]> = [
    ["Bearer abc", "abc"],
    ["bearer abc", "abc"],
    ["BEARER abc", "abc"],
    ["BeArEr abc", "abc"],
    ["Bearer  abc", "abc"],
    ["Bearer      abc", "abc"],
    ["Bearer abc=", "abc="],
    ["Bearer abc==", "abc=="],
    ["Bearer A-Za-z0-9-._~+/", "A-Za-z0-9-._~+/"],
    ["Bearer mF_9.B5f-4.1JqM", "mF_9.B5f-4.1JqM"]
  ]
  for (const [header, token] of accepted) {
    it(`R6750-2.1-a / D6 accepts ${JSON.stringify(header)}`, () => {
      expect(parseAuthorization([header])).toStrictEqual({ _tag: "Token", token })
    })
  }

  const missing = [
    "Basic dXNlcjpwYXNz",
    "basic dXNlcjpwYXNz",
    "Digest username=x",
    "DPoP abc",
    "Bearerabc",
    "Token abc",
    ""
  ]
  for (const header of missing) {
    it(`R6750-3.1-e / D5 treats ${JSON.stringify(header)} as Missing (no Bearer credentials)`, () => {
      expect(parseAuthorization([header])).toStrictEqual({ _tag: "Missing" })
    })
  }

  const malformed = [
    "Bearer",
    "Bearer ",
    "bearer    ",
    "Bearer a b",
    'Bearer "abc"',
    "Bearer abc,def",
    "Bearer =abc",
    "Bearer a=b",
    "Bearer abc=d",
    "Bearer abc\u00e9",
    "Bearer abc\tdef",
    "Bearer abc;",
    "Bearer a%20b",
    "Bearer abc\r\nX-Injected: 1",
    "Bearer token=abc"
  ]
  for (const header of malformed) {
    it(`R6750-2.1-a / D6 treats ${JSON.stringify(header)} as Malformed`, () => {
      expect(parseAuthorization([header])._tag).toBe("Malformed")
    })
  }

  const several: ReadonlyArray<ReadonlyArray<string>> = [
    ["Bearer abc", "Bearer def"],
    ["Bearer abc", "Bearer abc"],
    ["Basic dXNlcjpwYXNz", "Bearer abc"],
    ["Bearer abc", ""]
  ]
  for (const headers of several) {
    it(`R6750-3.1-b / D6 treats several Authorization headers ${JSON.stringify(headers)} as Malformed`, () => {
      const result = parseAuthorization(headers)
      expect(result._tag).toBe("Malformed")
      if (result._tag === "Malformed") expect(result.reason).toMatch(/more than one/)
    })
  }
})

describe("parseJsonObject / hasDuplicateMember (D18)", () => {
  it("D18 parses a JSON object", () => {
    expect(
      parseJsonObject(bytes('{"client_name":"A","redirect_uris":["https://c.example/cb"],"n":{"x":[1,2]}}'))
    ).toStrictEqual({
      _tag: "Object",
      value: { client_name: "A", redirect_uris: ["https://c.example/cb"], n: { x: [1, 2] } }
    })
  })

  const notObjects = ["[]", "[{}]", "1", "null", '"x"', "true", "false", "1.5"]
  for (const text of notObjects) {
    it(`D18 refuses the JSON value ${text} (not an object)`, () => {
      expect(parseJsonObject(bytes(text))).toStrictEqual({
        _tag: "Invalid",
        reason: "the request body must be a JSON object"
      })
    })
  }

  const notJson = ["", "{", "{'a':1}", '{"a":1,}', '{"a":undefined}', "{a:1}", '{"a":1}{"b":2}', "NaN", '{"a":01}']
  for (const text of notJson) {
    it(`D18 refuses ${JSON.stringify(text)} (not JSON)`, () => {
      expect(parseJsonObject(bytes(text))).toStrictEqual({
        _tag: "Invalid",
        reason: "the request body is not valid JSON"
      })
    })
  }

  const invalidUtf8: ReadonlyArray<readonly [string, ReadonlyArray<number>]> = [
    ["a lone continuation byte", [0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0x80, 0x22, 0x7d]],
    ["a truncated sequence", [0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xc3, 0x28, 0x22, 0x7d]],
    ["an overlong /", [0x7b, 0x22, 0xc0, 0xaf, 0x22, 0x3a, 0x31, 0x7d]],
    ["an encoded surrogate", [0x7b, 0x22, 0xed, 0xa0, 0x80, 0x22, 0x3a, 0x31, 0x7d]],
    ["0xff", [0x7b, 0xff, 0x7d]]
  ]
  for (const [name, data] of invalidUtf8) {
    it(`D18 refuses invalid UTF-8: ${name}`, () => {
      expect(parseJsonObject(Uint8Array.from(data))).toStrictEqual({
        _tag: "Invalid",
        reason: "the request body is not valid UTF-8"
      })
    })
  }

  it("D18 accepts valid multi-byte UTF-8", () => {
    const result = parseJsonObject(bytes('{"client_name#ja-Jpan-JP":"クライアント名 😀"}'))
    expect(result).toStrictEqual({ _tag: "Object", value: { "client_name#ja-Jpan-JP": "クライアント名 😀" } })
  })

  const duplicates = [
    '{"a":1,"a":2}',
    '{"a":1,"b":2,"a":3}',
    '{ "a" : 1 , "a" : 2 }',
    '{"a":{"b":1,"b":2}}',
    '{"x":[{"a":1,"a":2}]}',
    '{"x":[1,[2,{"y":{"a":1,"a":2}}]]}',
    '{"a":1,"\\u0061":2}',
    '{"\\u0061":1,"a":2}',
    '{"\\u0061":1,"\\u0061":2}',
    '{"/":1,"\\/":2}',
    '{"a\\"b":1,"a\\"b":2}',
    '{"a\\\\":1,"a\\\\":2}',
    '{"\\\\":1,"\\u005c":2}',
    '{"a":{},"a":1}',
    '{"a":[1,2],"a":3}',
    '{"a":"x\\"","a":1}',
    '{"a":"\\\\","a":1}',
    '{"__proto__":1,"__proto__":2}',
    '{"constructor":1,"constructor":2}',
    '{"é":1,"\\u00e9":2}',
    '{"😀":1,"\\ud83d\\ude00":2}'
  ]
  for (const text of duplicates) {
    it(`D18 refuses the repeated member name in ${text}`, () => {
      expect(hasDuplicateMember(text)).toBe(true)
      expect(parseJsonObject(bytes(text))).toStrictEqual({
        _tag: "Invalid",
        reason: "the request body repeats a member name"
      })
    })
  }

  const distinct = [
    '{"a":1,"b":2}',
    '{"a":{"a":1}}',
    '{"a":{"b":1},"b":2}',
    '{"x":[{"a":1},{"a":2}]}',
    '{"x":[{"a":1,"b":2},{"a":3,"b":4}],"y":[{"a":5}]}',
    '{"a":"a","b":"a"}',
    '{"a":["a","a"]}',
    '{"a":"\\"a\\":1,\\"a\\":2","b":1}',
    '{"a":"{\\"b\\":1,","b":"}"}',
    '{"a":1,"A":2}',
    '{"a":1,"a ":2}',
    '{"\\\\":1,"\\\\\\\\":2}',
    '{"a\\\\":1,"a":2}',
    '{"client_name#fr":"A","client_name#FR":"B"}',
    '{"x":[{},{}],"y":{}}'
  ]
  for (const text of distinct) {
    it(`D18 finds no repeated member name in ${text}`, () => {
      expect(hasDuplicateMember(text)).toBe(false)
      expect(parseJsonObject(bytes(text))._tag).toBe("Object")
    })
  }

  const depth = 100_000
  it("D18 does not throw on arrays nested 100000 levels deep", () => {
    const text = `{"a":${"[".repeat(depth)}${"]".repeat(depth)}}`
    expect(() => hasDuplicateMember(text)).not.toThrow()
    expect(hasDuplicateMember(text)).toBe(false)
    expect(() => parseJsonObject(bytes(text))).not.toThrow()
    expect(["Object", "Invalid"]).toContain(parseJsonObject(bytes(text))._tag)
  })

  it("D18 does not throw on objects nested 100000 levels deep, and finds a duplicate at the bottom", () => {
    const clean = `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`
    expect(() => hasDuplicateMember(clean)).not.toThrow()
    expect(hasDuplicateMember(clean)).toBe(false)
    const dirty = `${'{"a":'.repeat(depth)}{"b":1,"b":2}${"}".repeat(depth)}`
    expect(hasDuplicateMember(dirty)).toBe(true)
    expect(() => parseJsonObject(bytes(dirty))).not.toThrow()
    expect(parseJsonObject(bytes(dirty))._tag).toBe("Invalid")
  })

  it("D18 refuses bodies nested deeper than maxDepth, and accepts maxDepth itself", () => {
    const nested = (levels: number) => `${'{"a":'.repeat(levels)}1${"}".repeat(levels)}`
    expect(parseJsonObject(bytes(nested(maxDepth)))._tag).toBe("Object")
    expect(parseJsonObject(bytes(nested(maxDepth + 1)))).toStrictEqual({
      _tag: "Invalid",
      reason: `the request body nests deeper than ${maxDepth} levels`
    })
    const arrays = `{"a":${"[".repeat(maxDepth)}${"]".repeat(maxDepth)}}`
    expect(parseJsonObject(bytes(arrays))._tag).toBe("Invalid")
  })

  it("D18 finds a duplicate after leaving 100000 levels of nesting", () => {
    const text = `{"a":${'{"b":'.repeat(depth)}1${"}".repeat(depth)},"a":2}`
    expect(hasDuplicateMember(text)).toBe(true)
  })
})

describe("checkRedirectUri (D11, R7591-5-c)", () => {
  const accepted = [
    "https://client.example.org/cb",
    "https://client.example.org:8443/cb?x=1&y=2",
    "HTTPS://Client.Example.Org/cb",
    "https://client.example.org",
    "http://localhost:8080/cb",
    "http://localhost/cb",
    "http://LOCALHOST/cb",
    "http://127.0.0.1/cb",
    "http://127.0.0.1:51004/cb",
    "http://[::1]/cb",
    "http://[::1]:8080/cb",
    "com.example.app:/callback",
    "com.example.app:/oauth2redirect/example-provider",
    "com.example.app://callback"
  ]
  for (const uri of accepted) {
    it(`D11 accepts ${uri}`, () => {
      expect(checkRedirectUri(uri)).toBeUndefined()
    })
  }

  const refused = [
    "http://evil.example/cb",
    "http://example.com/cb",
    "http://localhost.evil.example/cb",
    "http://127.0.0.1.nip.io/cb",
    "http://localhost@evil.example/cb",
    "http://10.0.0.1/cb",
    "javascript:alert(1)",
    "JAVASCRIPT:alert(1)",
    "data:text/html,x",
    "file:///etc/passwd",
    "vbscript:msgbox(1)",
    "about:blank",
    "blob:https://client.example.org/uuid",
    "/cb",
    "cb",
    "",
    "//client.example.org/cb",
    "https://x/cb#frag",
    "https://client.example.org/cb#",
    "http://localhost/cb#x",
    "com.example.app:/cb#x",
    "myapp:/cb",
    "myapp://cb",
    "https:client.example.org/cb",
    "http:/localhost/cb",
    "https://",
    "http://",
    "https://client example.org/cb",
    "https://client.example.org/c b",
    "https://client.example.org/cb\r\nX: y",
    "https://client.example.org/cb\u0000",
    'https://client.example.org/"cb"',
    "https://client.example.org/<cb>",
    "https://client.example.org/\\cb",
    " https://client.example.org/cb"
  ]
  for (const uri of refused) {
    it(`D11 refuses ${JSON.stringify(uri)}`, () => {
      const problem = checkRedirectUri(uri)
      expect(typeof problem).toBe("string")
      expect(problem).not.toBe("")
    })
  }
})

describe("checkWebUrl (R7591-2-f/g/j/k)", () => {
  const accepted = [
    "https://client.example.org",
    "https://client.example.org/",
    "https://client.example.org/logo.png?size=64",
    "https://client.example.org/tos#section-2",
    "http://client.example.org/policy",
    "HTTPS://CLIENT.EXAMPLE.ORG/",
    "https://client.example.org:8443/jwks.json"
  ]
  for (const url of accepted) {
    it(`R7591-2-f/g/j/k accepts ${url}`, () => {
      expect(checkWebUrl(url)).toBeUndefined()
    })
  }

  const refused = [
    "",
    "client.example.org",
    "/logo.png",
    "//client.example.org/logo.png",
    "https:client.example.org",
    "https:/client.example.org",
    "https://",
    "http://",
    "javascript:alert(1)",
    "data:image/png;base64,AAAA",
    "file:///etc/passwd",
    "ftp://client.example.org/tos",
    "mailto:ops@client.example.org",
    "com.example.app://page",
    "https://client example.org/",
    "https://client.example.org/a b",
    "https://client.example.org/\r\n",
    "https://client.example.org/<x>",
    " https://client.example.org/"
  ]
  for (const url of refused) {
    it(`R7591-2-f/g/j/k refuses ${JSON.stringify(url)}`, () => {
      const problem = checkWebUrl(url)
      expect(typeof problem).toBe("string")
      expect(problem).not.toBe("")
    })
  }
})

describe("isLanguageTag (R7591-2.2-b, D10)", () => {
  const wellFormed = [
    "fr",
    "en",
    "EN",
    "en-US",
    "en-us",
    "ja-Jpan-JP",
    "zh-Hant",
    "zh-Hant-TW",
    "sr-Latn-RS",
    "es-419",
    "de-CH-1996",
    "sl-rozaj-biske",
    "zh-yue-HK",
    "hy-Latn-IT-arevela",
    "en-a-bbb-x-a-ccc",
    "de-DE-u-co-phonebk",
    "x-private",
    "x-whatever-1",
    "qaa-Qaaa-QM-x-southern",
    "i-klingon",
    "en-GB-oed",
    "art-lojban",
    "zh-min-nan"
  ]
  for (const tag of wellFormed) {
    it(`D10 accepts the BCP 47 tag ${tag}`, () => {
      expect(isLanguageTag(tag)).toBe(true)
    })
  }

  it("D10 accepts the irregular grandfathered tags of RFC 5646 §2.2.8", () => {
    for (const tag of ["sgn-BE-FR", "sgn-BE-NL", "sgn-CH-DE", "i-default", "i-enochian"]) {
      expect([tag, isLanguageTag(tag)]).toStrictEqual([tag, true])
    }
  })

  const malformed = [
    "",
    "e",
    "1",
    "123",
    "en_US",
    "en-",
    "-en",
    "en--US",
    "en US",
    "fr ",
    " fr",
    "toolonglang",
    "en-a",
    "en-x",
    "x-",
    "x",
    "en-US-",
    "de-419-DE",
    "a-DE",
    "ar-a-aaa-b-bbb-a-",
    "fr#fr",
    "en-abcdefghi",
    "é",
    "en-US\n"
  ]
  for (const tag of malformed) {
    it(`D10 refuses ${JSON.stringify(tag)}`, () => {
      expect(isLanguageTag(tag)).toBe(false)
    })
  }
})

describe("ProtocolError.toResponse (D1–D6, D16, D18, D20, R6750-3, R7591-3.2.2)", () => {
  const realm = "https://as.example.com"

  interface Param {
    readonly name: string
    readonly value: string
  }

  // challenge = "Bearer" 1*SP auth-param *( "," SP auth-param ), every value a quoted string
  // holding only %x20-21 / %x23-5B / %x5D-7E (R6750-3-b, R6750-3-f).
  const challengeSyntax =
    /^Bearer [a-z_]+="[\x20\x21\x23-\x5b\x5d-\x7e]*"(?:, [a-z_]+="[\x20\x21\x23-\x5b\x5d-\x7e]*")*$/
  const parseChallenge = (header: string | undefined): ReadonlyArray<Param> => {
    expect(header).toBeDefined()
    const text = header ?? ""
    expect(text).toMatch(challengeSyntax)
    return Array.from(text.matchAll(/([a-z_]+)="([^"]*)"/g), (match) => ({
      name: match[1] ?? "",
      value: match[2] ?? ""
    }))
  }
  const paramValues = (params: ReadonlyArray<Param>, name: string): ReadonlyArray<string> =>
    params.filter((param) => param.name === name).map((param) => param.value)

  const parseBody = (body: string | undefined): unknown => {
    expect(body).toBeDefined()
    return JSON.parse(body ?? "")
  }

  const expectNoStore = (response: ProtocolError.ProtocolResponse): void => {
    expect(response.headers["content-type"]).toBe("application/json")
    expect(response.headers["cache-control"]).toBe("no-store")
    expect(response.headers["pragma"]).toBe("no-cache")
  }

  const nasty = 'bad "value" with \\ backslash, caf\u00e9 \u65e5\u672c \r\nSet-Cookie: x=y\t, realm="evil"'

  // [name, error, status, error code (undefined: none), challenge error (undefined: no challenge)]
  const table: ReadonlyArray<
    readonly [
      string,
      ProtocolError.ProtocolError | ProtocolError.StoreError,
      number,
      ProtocolError.ErrorCode | undefined,
      ProtocolError.ErrorCode | "none" | undefined
    ]
  > = [
    ["MissingToken", new ProtocolError.MissingToken(), 401, undefined, "none"],
    [
      "InvalidToken",
      new ProtocolError.InvalidToken({ description: "unknown token" }),
      401,
      "invalid_token",
      "invalid_token"
    ],
    ["ClientNotFound", new ProtocolError.ClientNotFound({ clientId: "c1" }), 401, "invalid_token", "invalid_token"],
    [
      "InvalidRequest",
      new ProtocolError.InvalidRequest({ description: "bad body" }),
      400,
      "invalid_request",
      undefined
    ],
    [
      "InvalidRequest (challenge)",
      new ProtocolError.InvalidRequest({ description: "bad bearer", challenge: true }),
      400,
      "invalid_request",
      "invalid_request"
    ],
    [
      "InsufficientScope",
      new ProtocolError.InsufficientScope({ description: "no delete" }),
      403,
      "insufficient_scope",
      "insufficient_scope"
    ],
    [
      "InvalidClientMetadata",
      new ProtocolError.InvalidClientMetadata({ description: "scope is bad" }),
      400,
      "invalid_client_metadata",
      undefined
    ],
    [
      "InvalidRedirectUri",
      new ProtocolError.InvalidRedirectUri({ description: "redirect_uris[0] is bad" }),
      400,
      "invalid_redirect_uri",
      undefined
    ],
    [
      "InvalidSoftwareStatement",
      new ProtocolError.InvalidSoftwareStatement({ description: "bad signature" }),
      400,
      "invalid_software_statement",
      undefined
    ],
    [
      "UnapprovedSoftwareStatement",
      new ProtocolError.UnapprovedSoftwareStatement({ description: "unknown issuer" }),
      400,
      "unapproved_software_statement",
      undefined
    ],
    [
      "MethodNotAllowed",
      new ProtocolError.MethodNotAllowed({ allow: ["GET", "PUT", "DELETE"] }),
      405,
      "invalid_request",
      undefined
    ],
    ["PayloadTooLarge", new ProtocolError.PayloadTooLarge({ limit: 65536 }), 413, "invalid_request", undefined],
    ["NotFound", new ProtocolError.NotFound(), 404, "invalid_request", undefined],
    [
      "StoreError",
      new ProtocolError.StoreError({ operation: "insert", cause: new Error("db password hunter2 at 10.0.0.5") }),
      500,
      "server_error",
      undefined
    ]
  ]

  for (const [name, error, status, code, challengeError] of table) {
    it(`${name} renders status ${status} with the D16 headers`, () => {
      const response = ProtocolError.toResponse(error, { realm })
      expect(response.status).toBe(status)
      expectNoStore(response)
      for (const value of Object.values(response.headers)) expect(value).toMatch(/^[\x20-\x7e]*$/)
    })

    it(`${name} renders the body ${code === undefined ? "{}" : code}`, () => {
      const response = ProtocolError.toResponse(error, { realm })
      const body = parseBody(response.body)
      if (code === undefined) {
        expect(response.body).toBe("{}")
      } else {
        expect(body).toStrictEqual({ error: code, error_description: expect.any(String) })
        expect(response.body).toMatch(/^[\x20-\x7e]*$/)
      }
    })

    it(`${name} ${challengeError === undefined ? "carries no challenge" : "carries one Bearer challenge with one realm"}`, () => {
      const response = ProtocolError.toResponse(error, { realm })
      const header = response.headers["www-authenticate"]
      if (challengeError === undefined) {
        expect(header).toBeUndefined()
        return
      }
      const params = parseChallenge(header)
      expect(paramValues(params, "realm")).toStrictEqual([realm])
      expect(paramValues(params, "error")).toStrictEqual(challengeError === "none" ? [] : [challengeError])
      expect(paramValues(params, "error_description").length).toBeLessThanOrEqual(1)
      expect(new Set(params.map((param) => param.name)).size).toBe(params.length)
    })
  }

  it("R7235-3.1 / R6750-3-a every 401 carries a WWW-Authenticate header", () => {
    const unauthorized = table.filter(([, error]) => ProtocolError.toResponse(error, { realm }).status === 401)
    expect(unauthorized.length).toBe(3)
    for (const [, error] of unauthorized) {
      expect(ProtocolError.toResponse(error, { realm }).headers["www-authenticate"]).toMatch(/^Bearer /)
    }
  })

  it("D5 / R6750-3.1-e MissingToken is exactly a bare realm challenge and body {}", () => {
    const response = ProtocolError.toResponse(new ProtocolError.MissingToken(), { realm })
    expect(response.headers["www-authenticate"]).toBe(`Bearer realm="${realm}"`)
    expect(response.headers["www-authenticate"]).not.toContain("error")
    expect(response.body).toBe("{}")
  })

  it("D1 / D2 ClientNotFound renders exactly like InvalidToken and does not reveal the client id", () => {
    const notFound = ProtocolError.toResponse(new ProtocolError.ClientNotFound({ clientId: "client-42" }), { realm })
    const invalid = ProtocolError.toResponse(new ProtocolError.InvalidToken({ description: "anything" }), { realm })
    expect(notFound).toStrictEqual(invalid)
    expect(JSON.stringify(notFound)).not.toContain("client-42")
  })

  it("D3 InsufficientScope is 403 with error=insufficient_scope in the challenge and the body", () => {
    const response = ProtocolError.toResponse(new ProtocolError.InsufficientScope({ description: "read only" }), {
      realm
    })
    expect(response.status).toBe(403)
    expect(parseBody(response.body)).toStrictEqual({ error: "insufficient_scope", error_description: "read only" })
    expect(paramValues(parseChallenge(response.headers["www-authenticate"]), "error_description")).toStrictEqual([
      "read only"
    ])
  })

  it("D4 MethodNotAllowed lists exactly the allowed methods", () => {
    const config = ProtocolError.toResponse(new ProtocolError.MethodNotAllowed({ allow: ["GET", "PUT", "DELETE"] }), {
      realm
    })
    expect(config.headers["allow"]).toBe("GET, PUT, DELETE")
    const registration = ProtocolError.toResponse(new ProtocolError.MethodNotAllowed({ allow: ["POST"] }), { realm })
    expect(registration.headers["allow"]).toBe("POST")
    expect(parseBody(registration.body)).toStrictEqual({
      error: "invalid_request",
      error_description: expect.any(String)
    })
  })

  it("D6 InvalidRequest has a Bearer invalid_request challenge only when it concerns the credentials", () => {
    const plain = ProtocolError.toResponse(new ProtocolError.InvalidRequest({ description: "x" }), { realm })
    expect(plain.headers["www-authenticate"]).toBeUndefined()
    const bearer = ProtocolError.toResponse(new ProtocolError.InvalidRequest({ description: "x", challenge: true }), {
      realm
    })
    expect(paramValues(parseChallenge(bearer.headers["www-authenticate"]), "error")).toStrictEqual(["invalid_request"])
  })

  it("D20 StoreError is 500 server_error with no internal detail", () => {
    const response = ProtocolError.toResponse(
      new ProtocolError.StoreError({ operation: "replace", cause: new Error("db password hunter2") }),
      { realm }
    )
    expect(response.status).toBe(500)
    expect(parseBody(response.body)).toStrictEqual({ error: "server_error", error_description: expect.any(String) })
    expect(response.body).not.toContain("hunter2")
    expect(response.body).not.toContain("replace")
  })

  it("R7591-3.2.2-c the body carries the description of a metadata error", () => {
    const response = ProtocolError.toResponse(
      new ProtocolError.InvalidClientMetadata({ description: "scope contains a scope this server does not support" }),
      { realm }
    )
    expect(parseBody(response.body)).toStrictEqual({
      error: "invalid_client_metadata",
      error_description: "scope contains a scope this server does not support"
    })
  })

  const withNastyDescription: ReadonlyArray<readonly [string, ProtocolError.ProtocolError]> = [
    ["InvalidToken", new ProtocolError.InvalidToken({ description: nasty })],
    ["InvalidRequest", new ProtocolError.InvalidRequest({ description: nasty, challenge: true })],
    ["InsufficientScope", new ProtocolError.InsufficientScope({ description: nasty })],
    ["InvalidClientMetadata", new ProtocolError.InvalidClientMetadata({ description: nasty })],
    ["InvalidRedirectUri", new ProtocolError.InvalidRedirectUri({ description: nasty })],
    ["InvalidSoftwareStatement", new ProtocolError.InvalidSoftwareStatement({ description: nasty })],
    ["UnapprovedSoftwareStatement", new ProtocolError.UnapprovedSoftwareStatement({ description: nasty })]
  ]
  for (const [name, error] of withNastyDescription) {
    it(`R6750-3-f / R7591-3.2.2-c ${name} sanitises its description in the header and the body`, () => {
      const response = ProtocolError.toResponse(error, { realm })
      for (const value of Object.values(response.headers)) {
        expect(value).not.toMatch(/[\r\n\u0000-\u001f\u007f-\uffff]/)
      }
      const header = response.headers["www-authenticate"]
      if (header !== undefined) {
        const params = parseChallenge(header)
        expect(paramValues(params, "realm")).toStrictEqual([realm])
        expect(paramValues(params, "error").length).toBe(1)
        for (const param of params) expect(param.value).not.toMatch(/["\\]/)
      }
      const body = parseBody(response.body)
      expect(response.body).toMatch(/^[\x20-\x7e]*$/)
      expect(body).toStrictEqual({ error: expect.any(String), error_description: expect.any(String) })
      if (typeof body === "object" && body !== null && "error_description" in body) {
        const description = body.error_description
        expect(typeof description).toBe("string")
        if (typeof description === "string") expect(description).toMatch(/^[\x20\x21\x23-\x5b\x5d-\x7e]*$/)
      }
    })
  }

  const nastyRealms = ['evil", error="injected', "realm\\", "caf\u00e9", 'a", realm="b', "x\r\nSet-Cookie: y"]
  for (const badRealm of nastyRealms) {
    it(`R6750-3-c / R6750-3-f a realm ${JSON.stringify(badRealm)} yields exactly one realm and no injected parameter`, () => {
      for (const error of [
        new ProtocolError.MissingToken(),
        new ProtocolError.InvalidToken({ description: "x" }),
        new ProtocolError.InsufficientScope({ description: "x" })
      ]) {
        const params = parseChallenge(ProtocolError.toResponse(error, { realm: badRealm }).headers["www-authenticate"])
        expect(paramValues(params, "realm").length).toBe(1)
        expect(paramValues(params, "error").length).toBeLessThanOrEqual(1)
        expect(paramValues(params, "error")).not.toContain("injected")
      }
    })
  }
})
