/**
 * Protocol fuzzing (issue 7): whole requests generated with fast-check and
 * sent through `Protocol.handle` — any method, any path (client paths in
 * several encodings, random, percent-encoded junk, very long), header sets
 * (no Authorization, several, odd schemes, very long, non-ASCII, valid and
 * invalid b64tokens), bodies (random bytes, huge, deeply nested, numbers at
 * the limits, `__proto__`/`constructor`/`prototype` keys, duplicate keys,
 * wrong and missing content types) — alone and in sequences mixing valid and
 * invalid calls across several clients.
 *
 * A simple model (client id → metadata, current and past RATs, secret,
 * deleted) predicts each answer: every problem a request certainly has (a
 * wrong method, no or malformed credentials, a RAT not bound to the client,
 * a body that is too large, not JSON, repeats a key, nests too deep, breaks
 * D7) is a (status, error) the answer may name; a request with none of them
 * must succeed, with exactly the metadata the model expects. After every
 * step: never a 5xx, the SPEC shape (harness.ts `shapeProblems`), no secret
 * of any client in an error answer, and the store equal to the model for
 * every client (metadata, secret, live and dead RATs, deleted clients gone,
 * nothing stored that the model does not know), with no prototype polluted.
 *
 * Runs on the memory store and SQLite (`SqlClientStore` over
 * `@effect/sql-sqlite-node`, and `SqliteStore`). FUZZ_RUNS=<n> multiplies the runs.
 */
import { FastCheck as fc } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import {
  type Backend,
  clientPath,
  findClient,
  type Harness,
  type HarnessResponse,
  isDiscoveryPath,
  makeHarness,
  memoryBackend,
  metadataOf,
  publicUrl,
  type Request,
  shapeProblems,
  sqliteBackend,
  sqliteStoreBackend,
  tokenOwner,
  updateBodyFrom
} from "./support/harness.js"

type Json = Record<string, unknown>

const multiplier = Math.max(1, Math.floor(Number(process.env.FUZZ_RUNS ?? "1")) || 1)
const singleRuns = 150 * multiplier
const sequenceRuns = 30 * multiplier
const sequenceLength = 30
const maxBodyBytes = 64 * 1024

const totals = {
  single: 0,
  sequences: 0,
  sequenceSteps: 0,
  setup: 0,
  statuses: new Map<number, number>()
}

// ---------------------------------------------------------------------------
// The model

interface ModelClient {
  readonly clientId: string
  rat: string
  readonly oldRats: Array<string>
  metadata: Json
  /** The last client information response: update bodies are built from it (R7592-2.2-b). */
  info: Json
  secret: string | undefined
  deleted: boolean
}

interface Model {
  readonly clients: Array<ModelClient>
  /** How many client ids the server had minted before this model began. */
  readonly mintedBefore: number
  readonly tokensBefore: number
}

const secretMethods: ReadonlySet<string> = new Set(["client_secret_basic", "client_secret_post", "client_secret_jwt"])

// ---------------------------------------------------------------------------
// Generators

const supportedScopes = ["openid", "profile", "email", "offline_access"]
const domain = fc.domain().filter((host) => !/(^|\.)xn--/i.test(host))
const segment = fc.stringMatching(/^[A-Za-z0-9_.~-]{1,10}$/)
const port = fc
  .option(fc.integer({ min: 1, max: 65535 }), { nil: undefined })
  .map((p) => (p === undefined ? "" : `:${p}`))

/** D11: https anywhere, http on loopback, a private-use scheme with a dot. */
const redirectUri: fc.Arbitrary<string> = fc.oneof(
  fc.tuple(domain, port, segment).map(([host, p, s]) => `https://${host}${p}/${s}/cb`),
  fc.tuple(fc.constantFrom("localhost", "127.0.0.1", "[::1]"), port).map(([host, p]) => `http://${host}${p}/callback`),
  fc.constantFrom("com.example.app:/cb", "org.example.native:/oauth")
)

const humanText: fc.Arbitrary<string> = fc.oneof(
  fc.string({ minLength: 1, maxLength: 30 }),
  fc.string({ minLength: 1, maxLength: 20, unit: "grapheme" })
)

const optional = <A>(arb: fc.Arbitrary<A>) => fc.option(arb, { nil: undefined, freq: 2 })

/** Client metadata the default server accepts and echoes unchanged. */
const validMetadata: fc.Arbitrary<Json> = fc
  .record({
    redirects: fc.uniqueArray(redirectUri, { minLength: 1, maxLength: 3 }),
    method: fc.constantFrom("client_secret_basic", "client_secret_post", "none"),
    grants: fc.constantFrom(["authorization_code"], ["authorization_code", "refresh_token"]),
    name: optional(humanText),
    scope: optional(fc.shuffledSubarray(supportedScopes, { minLength: 1 }).map((scopes) => scopes.join(" "))),
    contacts: optional(fc.uniqueArray(fc.emailAddress(), { minLength: 1, maxLength: 2 })),
    clientUri: optional(domain.map((host) => `https://${host}/`))
  })
  .map((g): Json => {
    const metadata: Json = {
      redirect_uris: g.redirects,
      token_endpoint_auth_method: g.method,
      grant_types: g.grants,
      response_types: ["code"]
    }
    if (g.name !== undefined) metadata.client_name = g.name
    if (g.scope !== undefined) metadata.scope = g.scope
    if (g.contacts !== undefined) metadata.contacts = g.contacts
    if (g.clientUri !== undefined) metadata.client_uri = g.clientUri
    return metadata
  })

type UpdateChange =
  | { readonly _tag: "same" }
  | { readonly _tag: "rename"; readonly name: string }
  | { readonly _tag: "dropScope" }
  | { readonly _tag: "nullScope" }
  | { readonly _tag: "omitSecret" }
  | { readonly _tag: "switchToNone" }
  | { readonly _tag: "noClientId" }
  | { readonly _tag: "otherClientId"; readonly id: string }
  | { readonly _tag: "forbidden"; readonly member: string }
  | { readonly _tag: "wrongSecret"; readonly secret: unknown }
  | { readonly _tag: "replace"; readonly member: string; readonly value: unknown }

const updateChange: fc.Arbitrary<UpdateChange> = fc.oneof(
  { weight: 4, arbitrary: fc.constant<UpdateChange>({ _tag: "same" }) },
  { weight: 6, arbitrary: humanText.map((name): UpdateChange => ({ _tag: "rename", name })) },
  fc.constant<UpdateChange>({ _tag: "dropScope" }),
  fc.constant<UpdateChange>({ _tag: "nullScope" }),
  fc.constant<UpdateChange>({ _tag: "omitSecret" }),
  fc.constant<UpdateChange>({ _tag: "switchToNone" }),
  fc.constant<UpdateChange>({ _tag: "noClientId" }),
  fc.string({ maxLength: 24 }).map((id): UpdateChange => ({ _tag: "otherClientId", id })),
  fc
    .constantFrom(
      "registration_access_token",
      "registration_client_uri",
      "client_secret_expires_at",
      "client_id_issued_at"
    )
    .map((member): UpdateChange => ({ _tag: "forbidden", member })),
  fc
    .oneof(fc.string({ maxLength: 50 }), fc.integer(), fc.boolean())
    .map((secret): UpdateChange => ({ _tag: "wrongSecret", secret })),
  fc
    .tuple(
      fc.constantFrom(
        "redirect_uris",
        "grant_types",
        "response_types",
        "scope",
        "client_name",
        "token_endpoint_auth_method",
        "contacts",
        "jwks",
        "jwks_uri",
        "logo_uri",
        "client_name#fr",
        "software_statement"
      ),
      fc.jsonValue({ maxDepth: 2 })
    )
    .map(([member, value]): UpdateChange => ({ _tag: "replace", member, value }))
)

type AuthSpec =
  | { readonly _tag: "values"; readonly values: ReadonlyArray<string> }
  | {
      readonly _tag: "rat"
      readonly ref: number
      readonly which: "current" | "stale" | "other"
      readonly scheme: string
      readonly spaces: number
      readonly twice: boolean
      readonly trailing: string
    }

const values = (...list: ReadonlyArray<string>): AuthSpec => ({ _tag: "values", values: list })

const authJunk: fc.Arbitrary<AuthSpec> = fc.oneof(
  fc.constant(values()),
  fc
    .constantFrom(
      "Basic dXNlcjpwYXNz",
      "Bearer",
      "Bearer ",
      "Bearer   ",
      "Bearer a b",
      'Bearer "abc"',
      "Bearer ====",
      "Bearer =abc",
      "Bearer abc=def",
      "Bearer abc==",
      "Bearer a,b",
      "Bearer\tabc",
      "Bearerabc",
      " Bearer abc",
      "Negotiate abc",
      "DPoP abc",
      "Token abc",
      "Beärer abc",
      "Bearer héllo",
      "Bearer 令牌",
      "Bearer abc\u0000",
      "bearer",
      "Basic",
      ""
    )
    .map((value) => values(value)),
  fc.array(fc.string({ maxLength: 30 }), { minLength: 1, maxLength: 3 }).map((list) => values(...list)),
  fc.string({ maxLength: 30, unit: "grapheme" }).map((token) => values(`Bearer ${token}`)),
  fc.string({ maxLength: 30, unit: "binary" }).map((token) => values(`Bearer ${token}`)),
  fc.stringMatching(/^[A-Za-z0-9\-._~+/]{1,60}=*$/).map((token) => values(`Bearer ${token}`)),
  fc.integer({ min: 1_000, max: 20_000 }).map((n) => values(`Bearer ${"A".repeat(n)}`)),
  fc.integer({ min: 1_000, max: 20_000 }).map((n) => values(`${"x".repeat(n)} abc`)),
  {
    weight: 6,
    arbitrary: fc
      .record({
        ref: fc.nat(),
        which: fc.constantFrom("current" as const, "stale" as const, "other" as const, "other" as const),
        scheme: fc.constantFrom("Bearer", "bearer", "BEARER", "BeArEr"),
        spaces: fc.integer({ min: 1, max: 3 }),
        twice: fc.boolean(),
        trailing: fc.constantFrom("", "", "", " ", "=", ".", "\t", "x")
      })
      .map((spec): AuthSpec => ({ _tag: "rat", ...spec }))
  }
)

const methodJunk: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    "GET",
    "PUT",
    "DELETE",
    "POST",
    "PATCH",
    "HEAD",
    "OPTIONS",
    "TRACE",
    "CONNECT",
    "get",
    "put",
    "Delete",
    "post",
    "",
    " GET",
    "GET ",
    "PROPFIND",
    "M-SEARCH"
  ),
  fc.string({ maxLength: 12 })
)

const pathJunk: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    "/register",
    "/register/",
    "/register//",
    "/register/a/b",
    "/REGISTER",
    "//register",
    "/register/%",
    "/register/%E0%A4%A",
    "/register/%ZZ",
    "/register/%00",
    "/register/..",
    "/register/.",
    "/register/%2e%2e",
    "/register/a%2Fb",
    "/register%2Fx",
    "/.well-known/oauth-authorization-server",
    "/.well-known/oauth-authorization-server/oauth",
    "/.well-known/openid-configuration",
    "/healthz",
    "/healthz/",
    "/",
    "",
    "*",
    "/oauth/register",
    "register",
    "/register?",
    "/register#x",
    "/register/ ",
    "/register/\u0000",
    "/register/\u00e9",
    "/register/%F0%9F%98%80",
    "/register/%C0%AF",
    "/register/__proto__",
    "/register/constructor",
    "/register/%5F%5Fproto%5F%5F"
  ),
  fc.webPath(),
  fc.string({ maxLength: 40 }).map((s) => `/${s}`),
  fc.string({ maxLength: 40, unit: "binary" }).map((s) => `/register/${s}`),
  fc
    .array(
      fc.oneof(
        fc.constantFrom("%", "%%", "%G0", "%0", "%FF", "%C3%28", "%ED%A0%80", "%2F", "/", "?", "#", "%3F"),
        fc.stringMatching(/^[0-9a-fA-F]{0,3}$/),
        fc.string({ maxLength: 3 })
      ),
      { maxLength: 12 }
    )
    .map((parts) => `/register/${parts.join("")}`),
  fc.integer({ min: 1_000, max: 100_000 }).map((n) => `/register/${"a".repeat(n)}`),
  fc.integer({ min: 100, max: 5_000 }).map((n) => `/${"x/".repeat(n)}`)
)

const queryJunk: fc.Arbitrary<string> = fc.constantFrom(
  "?",
  "?x=1",
  "?access_token=abc",
  "?access%5Ftoken=abc",
  "?ACCESS_TOKEN=abc",
  "?a=1&access_token=",
  "?access_token=<rat>",
  "#frag",
  "?%%%"
)

const contentTypeJunk: fc.Arbitrary<string | undefined> = fc.oneof(
  fc.constant(undefined),
  fc.constantFrom(
    "",
    "text/plain",
    "application/jsonx",
    "application/json; charset=utf-8",
    "APPLICATION/JSON",
    "Application/Json;charset=UTF-8",
    " application/json ",
    "application/json;",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "text/json",
    "application/merge-patch+json",
    "application/json, text/plain",
    "json"
  ),
  fc.string({ maxLength: 20 })
)

type BodyJunk =
  | { readonly _tag: "none" }
  | { readonly _tag: "bytes"; readonly bytes: Uint8Array }
  | { readonly _tag: "text"; readonly text: string }
  | { readonly _tag: "json"; readonly value: unknown }
  | { readonly _tag: "nonObject"; readonly text: string }
  | { readonly _tag: "invalidUtf8"; readonly bytes: ReadonlyArray<number> }
  | { readonly _tag: "bom" }
  | { readonly _tag: "padded"; readonly size: number }
  | { readonly _tag: "tooLargeFlag" }
  | { readonly _tag: "deep"; readonly depth: number; readonly objects: boolean }
  | { readonly _tag: "number"; readonly literal: string; readonly member: "x_num" | "client_name" | "grant_types" }
  | { readonly _tag: "proto"; readonly member: string }
  | { readonly _tag: "duplicate"; readonly key: string; readonly escaped: boolean; readonly nested: boolean }
  | { readonly _tag: "formToken"; readonly useRat: boolean }

const bodyJunk: fc.Arbitrary<BodyJunk> = fc.oneof(
  { weight: 1, arbitrary: fc.constant<BodyJunk>({ _tag: "none" }) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((bytes): BodyJunk => ({ _tag: "bytes", bytes })) },
  {
    weight: 1,
    arbitrary: fc
      .oneof(fc.string({ maxLength: 100 }), fc.string({ maxLength: 60, unit: "binary" }))
      .map((text): BodyJunk => ({ _tag: "text", text }))
  },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((value): BodyJunk => ({ _tag: "json", value })) },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom("[]", "null", "1", '"x"', "true", "[{}]", "", " ", "{", "}", "{}}", "{'a':1}", "{a:1}", '{"a":1,}')
      .map((text): BodyJunk => ({ _tag: "nonObject", text }))
  },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom([0xff], [0xc3, 0x28], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xc0, 0xaf])
      .map((bytes): BodyJunk => ({ _tag: "invalidUtf8", bytes }))
  },
  { weight: 1, arbitrary: fc.constant<BodyJunk>({ _tag: "bom" }) },
  {
    weight: 3,
    arbitrary: fc
      .oneof(
        fc.constantFrom(maxBodyBytes - 1, maxBodyBytes, maxBodyBytes + 1),
        fc.integer({ min: maxBodyBytes + 1, max: 3 * maxBodyBytes })
      )
      .map((size): BodyJunk => ({ _tag: "padded", size }))
  },
  { weight: 1, arbitrary: fc.constant<BodyJunk>({ _tag: "tooLargeFlag" }) },
  {
    weight: 4,
    arbitrary: fc
      .record({
        depth: fc.oneof(
          fc.integer({ min: 1, max: 40 }),
          fc.constantFrom(30, 31, 31, 32, 32, 33),
          fc.integer({ min: 1_000, max: 20_000 })
        ),
        objects: fc.boolean()
      })
      .map((spec): BodyJunk => ({ _tag: "deep", ...spec }))
  },
  {
    weight: 3,
    arbitrary: fc
      .record({
        literal: fc.constantFrom(
          "1e309",
          "-1e309",
          "-0",
          "9007199254740993",
          "1e-400",
          "-9007199254740993",
          "0.1e1",
          "1E+2"
        ),
        member: fc.constantFrom("x_num" as const, "client_name" as const, "grant_types" as const)
      })
      .map((spec): BodyJunk => ({ _tag: "number", ...spec }))
  },
  {
    weight: 4,
    arbitrary: fc
      .constantFrom(
        '"__proto__": {"client_name": "evil", "scope": "openid email", "polluted": true}',
        '"constructor": {"prototype": {"polluted": true}}',
        '"prototype": {"polluted": true}',
        '"__proto__": null',
        '"__proto__": [1, 2]',
        '"__proto__": {"redirect_uris": ["https://evil.example/cb"], "token_endpoint_auth_method": "none"}',
        '"x_obj": {"__proto__": {"polluted": true}, "constructor": {"prototype": {"polluted": true}}}'
      )
      .map((member): BodyJunk => ({ _tag: "proto", member }))
  },
  {
    weight: 3,
    arbitrary: fc
      .record({
        key: fc.constantFrom("x_dup", "client_name", "redirect_uris", "__proto__", "scope"),
        escaped: fc.boolean(),
        nested: fc.boolean()
      })
      .map((spec): BodyJunk => ({ _tag: "duplicate", ...spec }))
  },
  { weight: 1, arbitrary: fc.boolean().map((useRat): BodyJunk => ({ _tag: "formToken", useRat })) }
)

type Intent = "register" | "read" | "update" | "delete" | "discovery" | "health" | "junk"

interface Step {
  readonly intent: Intent
  /** Which model client the path names (modulo their number). */
  readonly ref: number
  readonly metadata: Json
  readonly change: UpdateChange
  readonly encoding: "plain" | "percentAll" | "percentLower"
  readonly method: string | undefined
  readonly path: string | undefined
  readonly query: string | undefined
  readonly auth: AuthSpec | undefined
  /** `[value]`: replace the content type with `value` (undefined: none sent). */
  readonly contentType: readonly [string | undefined] | undefined
  readonly body: BodyJunk | undefined
}

/** The dimensions of a request that a step may corrupt. */
const dimensions = ["method", "path", "query", "auth", "contentType", "body"] as const
type Dimension = (typeof dimensions)[number]

/**
 * Steps: a valid call of the intent with `corrupt` of its dimensions replaced
 * by junk (weights: none, one, two or three), or a request random in every
 * dimension (the `junk` intent).
 */
const stepArb = (weights: {
  readonly none: number
  readonly one: number
  readonly several: number
}): fc.Arbitrary<Step> =>
  fc
    .record({
      intent: fc.oneof(
        { weight: 4, arbitrary: fc.constant<Intent>("register") },
        { weight: 3, arbitrary: fc.constant<Intent>("read") },
        { weight: 4, arbitrary: fc.constant<Intent>("update") },
        { weight: 1, arbitrary: fc.constant<Intent>("delete") },
        { weight: 1, arbitrary: fc.constantFrom<Intent>("discovery", "health") },
        { weight: 1, arbitrary: fc.constant<Intent>("junk") }
      ),
      ref: fc.nat(),
      metadata: validMetadata,
      change: updateChange,
      encoding: fc.constantFrom("plain" as const, "plain" as const, "percentAll" as const, "percentLower" as const),
      junk: fc.record({
        method: methodJunk,
        path: pathJunk,
        query: queryJunk,
        auth: authJunk,
        contentType: contentTypeJunk.map((value): readonly [string | undefined] => [value]),
        body: bodyJunk
      }),
      corrupt: fc.oneof(
        { weight: weights.none, arbitrary: fc.constant<ReadonlyArray<Dimension>>([]) },
        { weight: weights.one, arbitrary: fc.constantFrom(...dimensions).map((d): ReadonlyArray<Dimension> => [d]) },
        { weight: weights.several, arbitrary: fc.subarray([...dimensions], { minLength: 2, maxLength: 3 }) }
      )
    })
    .map(({ junk, corrupt, ...step }): Step => {
      const all = step.intent === "junk"
      const pick = <A>(dimension: Dimension, value: A): A | undefined =>
        all || corrupt.includes(dimension) ? value : undefined
      return {
        ...step,
        method: pick("method", junk.method),
        path: pick("path", junk.path),
        query: all ? undefined : pick("query", junk.query),
        auth: pick("auth", junk.auth),
        contentType: pick("contentType", junk.contentType),
        body: pick("body", junk.body)
      }
    })

// ---------------------------------------------------------------------------
// From a step and the model to a request and its prediction

interface Outcome {
  readonly status: number
  /** The `error` member the answer carries; undefined: none (D5). */
  readonly errors: ReadonlyArray<string | undefined>
}

const outcome = (status: number, ...errors: ReadonlyArray<string | undefined>): Outcome => ({ status, errors })
const invalidRequest = outcome(400, "invalid_request")
const metadataProblem = outcome(400, "invalid_client_metadata", "invalid_redirect_uri")
const unknownBodyOutcomes: ReadonlyArray<Outcome> = [invalidRequest, metadataProblem]

/** What a body is, as far as an endpoint is concerned. */
type Label =
  /** Acceptable: the answer must be success with this metadata (undefined: whatever the answer says). */
  | { readonly _tag: "valid"; readonly expected: Json | undefined }
  | { readonly _tag: "problem"; readonly outcome: Outcome }
  /** Unknowable without re-implementing validation: success or a 400. */
  | { readonly _tag: "maybe" }

const valid = (expected: Json | undefined): Label => ({ _tag: "valid", expected })
const problem = (o: Outcome): Label => ({ _tag: "problem", outcome: o })
const maybe: Label = { _tag: "maybe" }

interface BodyPlan {
  readonly bytes: Uint8Array | undefined
  readonly contentType: string | undefined
  readonly bodyTooLarge: boolean
  readonly registration: Label
  /** The label at the configuration endpoint of `clientId`. */
  readonly update: (clientId: string) => Label
}

type Success =
  | { readonly _tag: "register"; readonly expected: Json | undefined }
  | { readonly _tag: "read"; readonly client: ModelClient; readonly token: string }
  | {
      readonly _tag: "update"
      readonly client: ModelClient
      readonly token: string
      readonly expected: Json | undefined
    }
  | { readonly _tag: "delete"; readonly client: ModelClient; readonly token: string }
  | { readonly _tag: "health" }
  | { readonly _tag: "discovery" }

interface Prediction {
  /** Problems the request certainly has: the answer must name one of them (or of `possible`). */
  readonly certain: ReadonlyArray<Outcome>
  /** Problems it may have. */
  readonly possible: ReadonlyArray<Outcome>
  /** What success means; undefined when it cannot succeed. */
  readonly success: Success | undefined
}

const encoder = new TextEncoder()
const strictDecoder = new TextDecoder("utf-8", { fatal: true })

const percentAll = (id: string, lower: boolean) =>
  [...encoder.encode(id)]
    .map((byte) => {
      const hex = byte.toString(16).padStart(2, "0")
      return `%${lower ? hex : hex.toUpperCase()}`
    })
    .join("")

const withoutMember = (json: Json, member: string): Json => {
  const out: Json = {}
  for (const [key, value] of Object.entries(json)) if (key !== member) out[key] = value
  return out
}

/** The body of an update of `client` with `change`, and its label at each client's configuration endpoint. */
const updateBody = (client: ModelClient, change: UpdateChange): { readonly body: Json; readonly label: Label } => {
  const base = updateBodyFrom(client.info)
  switch (change._tag) {
    case "same":
      return { body: base, label: valid(client.metadata) }
    case "rename":
      return {
        body: { ...base, client_name: change.name },
        label: valid({ ...client.metadata, client_name: change.name })
      }
    case "dropScope":
      return { body: withoutMember(base, "scope"), label: valid(withoutMember(client.metadata, "scope")) }
    case "nullScope":
      return { body: { ...base, scope: null }, label: valid(withoutMember(client.metadata, "scope")) }
    case "omitSecret":
      return { body: withoutMember(base, "client_secret"), label: valid(client.metadata) }
    case "switchToNone":
      return {
        body: { ...withoutMember(base, "client_secret"), token_endpoint_auth_method: "none" },
        label: valid({ ...client.metadata, token_endpoint_auth_method: "none" })
      }
    case "noClientId":
      return { body: withoutMember(base, "client_id"), label: problem(invalidRequest) }
    case "otherClientId":
      return {
        body: { ...base, client_id: change.id },
        label: change.id === client.clientId ? valid(client.metadata) : problem(invalidRequest)
      }
    case "forbidden":
      return { body: { ...base, [change.member]: 1 }, label: problem(invalidRequest) }
    case "wrongSecret":
      return {
        body: { ...base, client_secret: change.secret },
        label:
          change.secret === null || (typeof change.secret === "string" && change.secret === client.secret)
            ? valid(client.metadata)
            : problem(invalidRequest)
      }
    case "replace":
      return { body: { ...base, [change.member]: change.value }, label: maybe }
  }
}

/** Appends members to the JSON text of a non-empty object. */
const appendMembers = (json: Json, members: string): string => {
  const text = JSON.stringify(json)
  return `${text.slice(0, -1)},${members}}`
}

const escapedKey = (key: string) => [...key].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`).join("")

/** The label of arbitrary bytes: parsed as the server must (D18) when that is certain, else `maybe`. */
const labelOf = (bytes: Uint8Array): { readonly registration: Label; readonly update: (clientId: string) => Label } => {
  let value: unknown
  try {
    value = JSON.parse(strictDecoder.decode(bytes))
  } catch {
    return { registration: problem(invalidRequest), update: () => problem(invalidRequest) }
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { registration: problem(invalidRequest), update: () => problem(invalidRequest) }
  }
  const clientId = Object.entries(value).find(([key]) => key === "client_id")?.[1]
  // D7: an update body must name the client; registration validity is unknowable here.
  return { registration: maybe, update: (id) => (clientId === id ? maybe : problem(invalidRequest)) }
}

const buildBody = (step: Step, target: ModelClient | undefined, model: Model): BodyPlan => {
  // The valid body of the intent, and its labels.
  let base: Json = step.metadata
  let registration: Label = valid(step.metadata)
  let update: (clientId: string) => Label = () => problem(invalidRequest)
  let hasBody = step.intent === "register" || step.intent === "update"
  if (step.intent === "update" && target !== undefined) {
    const built = updateBody(target, step.change)
    base = built.body
    registration = maybe
    update = (clientId) => (clientId === target.clientId ? built.label : problem(invalidRequest))
  }
  const plan = (bytes: Uint8Array | undefined, reg: Label, upd: (clientId: string) => Label, flag = false) => ({
    bytes,
    contentType: bytes === undefined ? undefined : "application/json",
    bodyTooLarge: flag,
    registration: reg,
    update: upd
  })
  const junk = step.body
  if (junk === undefined) {
    return hasBody
      ? plan(encoder.encode(JSON.stringify(base)), registration, update)
      : plan(undefined, problem(invalidRequest), () => problem(invalidRequest))
  }
  hasBody = true
  const always = (label: Label) => plan(undefined, label, () => label)
  switch (junk._tag) {
    case "none":
      return always(problem(invalidRequest))
    case "bytes": {
      const labels = labelOf(junk.bytes)
      return plan(junk.bytes, labels.registration, labels.update)
    }
    case "text":
    case "nonObject": {
      const bytes = encoder.encode(junk.text)
      const labels = labelOf(bytes)
      return plan(bytes, labels.registration, labels.update)
    }
    case "json": {
      const bytes = encoder.encode(JSON.stringify(junk.value))
      const labels = labelOf(bytes)
      return plan(bytes, labels.registration, labels.update)
    }
    case "invalidUtf8": {
      const bytes = encoder.encode(JSON.stringify({ ...base, client_name: "X" }))
      // Invalid bytes inside a string value.
      const at = bytes.indexOf(0x58)
      const out = new Uint8Array([...bytes.slice(0, at), ...junk.bytes, ...bytes.slice(at + 1)])
      return plan(out, problem(invalidRequest), () => problem(invalidRequest))
    }
    case "bom": {
      const bytes = new Uint8Array([0xef, 0xbb, 0xbf, ...encoder.encode(JSON.stringify(base))])
      return plan(bytes, maybe, () => maybe)
    }
    case "padded": {
      const text = JSON.stringify(base)
      const padding = Math.max(0, junk.size - text.length - ',"x_pad":""'.length)
      const bytes = encoder.encode(appendMembers(base, `"x_pad":"${"a".repeat(padding)}"`))
      const tooLarge = problem(outcome(413, "invalid_request"))
      return bytes.length > maxBodyBytes ? plan(bytes, tooLarge, () => tooLarge) : plan(bytes, registration, update)
    }
    case "tooLargeFlag": {
      const tooLarge = problem(outcome(413, "invalid_request"))
      return plan(encoder.encode(JSON.stringify(base)), tooLarge, () => tooLarge, true)
    }
    case "deep": {
      const open = junk.objects ? '{"a":'.repeat(junk.depth) : "[".repeat(junk.depth)
      const close = junk.objects ? "}".repeat(junk.depth) : "]".repeat(junk.depth)
      const inner = junk.objects ? "1" : ""
      const bytes = encoder.encode(appendMembers(base, `"x_deep":${open}${inner}${close}`))
      // D18: the top-level object plus `depth` containers; at most 32 levels.
      return 1 + junk.depth > 32
        ? plan(bytes, problem(invalidRequest), () => problem(invalidRequest))
        : plan(bytes, registration, update)
    }
    case "number": {
      if (junk.member === "x_num") {
        return plan(encoder.encode(appendMembers(base, `"x_num":${junk.literal}`)), registration, update)
      }
      const replaced = withoutMember(base, junk.member)
      const value = junk.member === "client_name" ? junk.literal : `[${junk.literal}]`
      const bytes = encoder.encode(appendMembers(replaced, `"${junk.member}":${value}`))
      const wrong = problem(outcome(400, "invalid_client_metadata"))
      return plan(bytes, wrong, (clientId) => (update(clientId)._tag === "problem" ? update(clientId) : wrong))
    }
    case "proto":
      // D18: such members never reach stored metadata, nor change what else is stored.
      return plan(encoder.encode(appendMembers(base, junk.member)), registration, update)
    case "duplicate": {
      const second = junk.escaped ? escapedKey(junk.key) : junk.key
      const members = junk.nested ? `"x_obj":{"${junk.key}":1,"${second}":2}` : `"${junk.key}":1,"${second}":2`
      return plan(encoder.encode(appendMembers(base, members)), problem(invalidRequest), () => problem(invalidRequest))
    }
    case "formToken": {
      const token = junk.useRat ? (target?.rat ?? model.clients[0]?.rat ?? "abc") : "abc"
      return {
        bytes: encoder.encode(`access_token=${encodeURIComponent(token)}`),
        contentType: "application/x-www-form-urlencoded",
        bodyTooLarge: false,
        registration: problem(invalidRequest),
        update: () => problem(invalidRequest)
      }
    }
  }
}

const resolveAuth = (spec: AuthSpec | undefined, step: Step, target: ModelClient | undefined, model: Model) => {
  if (spec === undefined) {
    const configuration = step.intent === "read" || step.intent === "update" || step.intent === "delete"
    return configuration && target !== undefined ? [`Bearer ${target.rat}`] : []
  }
  if (spec._tag === "values") return [...spec.values]
  // D1: "other" is the current RAT of a live client other than the one the path names.
  const others = model.clients.filter((client) => client !== target && !client.deleted)
  const pool = spec.which === "other" ? others : model.clients
  const holder = pool.length === 0 ? undefined : pool[spec.ref % pool.length]
  const token =
    holder === undefined
      ? "no-client-yet"
      : spec.which === "stale"
        ? (holder.oldRats.at(-1) ?? `stale${holder.rat.slice(5)}`)
        : holder.rat
  const value = `${spec.scheme}${" ".repeat(spec.spaces)}${token}${spec.trailing}`
  return spec.twice ? [value, value] : [value]
}

const resolve = (step: Step, model: Model): { readonly request: Request; readonly body: BodyPlan } => {
  const clients = model.clients
  const target = clients.length === 0 ? undefined : clients[step.ref % clients.length]
  const method =
    step.method ??
    { register: "POST", read: "GET", update: "PUT", delete: "DELETE", discovery: "GET", health: "GET", junk: "GET" }[
      step.intent
    ]
  let path = step.path
  if (path === undefined) {
    switch (step.intent) {
      case "register":
      case "junk":
        path = "/register"
        break
      case "discovery":
        path = "/.well-known/oauth-authorization-server"
        break
      case "health":
        path = "/healthz"
        break
      default:
        path =
          target === undefined
            ? "/register/nobody"
            : step.encoding === "plain"
              ? clientPath(target.clientId)
              : `/register/${percentAll(target.clientId, step.encoding === "percentLower")}`
    }
  }
  const query = step.query === "?access_token=<rat>" ? `?access_token=${target?.rat ?? "x"}` : (step.query ?? "")
  const body = buildBody(step, target, model)
  const contentType = step.contentType === undefined ? body.contentType : step.contentType[0]
  return {
    request: {
      method,
      url: path + query,
      authorization: resolveAuth(step.auth, step, target, model),
      contentType,
      body: body.bytes,
      bodyTooLarge: body.bodyTooLarge
    },
    body
  }
}

/** RFC 6750 §2.1 with D5/D6, from the RFC's grammar. */
const readAuthorization = (
  values: ReadonlyArray<string>
):
  | { readonly _tag: "missing" }
  | { readonly _tag: "malformed" }
  | { readonly _tag: "token"; readonly token: string } => {
  if (values.length === 0) return { _tag: "missing" }
  if (values.length > 1) return { _tag: "malformed" }
  const value = values[0] ?? ""
  const space = value.indexOf(" ")
  const scheme = space === -1 ? value : value.slice(0, space)
  if (scheme.toLowerCase() !== "bearer") return { _tag: "missing" }
  const token = space === -1 ? "" : value.slice(space).replace(/^ +/, "")
  if (!/^[A-Za-z0-9\-._~+/]+=*$/.test(token)) return { _tag: "malformed" }
  return { _tag: "token", token }
}

/** D18: `application/json` with any parameters. */
const isJsonMediaType = (contentType: string | undefined) =>
  contentType !== undefined && contentType.split(";")[0]?.trim().toLowerCase() === "application/json"

const bodyOutcomes = (request: Request, label: Label) => {
  const certain: Array<Outcome> = []
  const possible: Array<Outcome> = []
  const size =
    request.body === undefined ? 0 : typeof request.body === "string" ? request.body.length : request.body.length
  if (request.bodyTooLarge === true || size > maxBodyBytes) certain.push(outcome(413, "invalid_request"))
  if (!isJsonMediaType(request.contentType)) certain.push(invalidRequest)
  if (label._tag === "problem") certain.push(label.outcome)
  if (label._tag === "maybe") possible.push(...unknownBodyOutcomes)
  return { certain, possible, expected: label._tag === "valid" ? label.expected : undefined }
}

const only = (o: Outcome): Prediction => ({ certain: [o], possible: [], success: undefined })
const methodNotAllowed = outcome(405, "invalid_request")
const notFound = outcome(404, "invalid_request")

const predict = (request: Request, body: BodyPlan, model: Model): Prediction => {
  const url = request.url
  const q = url.indexOf("?")
  const path = q === -1 ? url : url.slice(0, q)
  const query = q === -1 ? "" : url.slice(q + 1)
  const method = request.method
  if (path === "/healthz")
    return method === "GET" ? { certain: [], possible: [], success: { _tag: "health" } } : only(methodNotAllowed)
  if (isDiscoveryPath(path)) {
    return method === "GET" ? { certain: [], possible: [], success: { _tag: "discovery" } } : only(methodNotAllowed)
  }
  if (path === "/register") {
    if (method !== "POST") return only(methodNotAllowed)
    // Open registration: credentials play no part (D22 off).
    const outcomes = bodyOutcomes(request, body.registration)
    return {
      certain: outcomes.certain,
      possible: outcomes.possible,
      success: { _tag: "register", expected: outcomes.expected }
    }
  }
  if (!path.startsWith("/register/")) return only(notFound)
  const segment = path.slice("/register/".length)
  if (segment === "" || segment.includes("/")) return only(notFound)
  let clientId: string
  try {
    clientId = decodeURIComponent(segment)
  } catch {
    return only(notFound)
  }
  const certain: Array<Outcome> = []
  const possible: Array<Outcome> = []
  if (method !== "GET" && method !== "PUT" && method !== "DELETE") certain.push(methodNotAllowed)
  // D6: a token anywhere but the Authorization header.
  if (query !== "" && new URLSearchParams(query).has("access_token")) certain.push(invalidRequest)
  const form = request.contentType?.toLowerCase().startsWith("application/x-www-form-urlencoded") === true
  if (form && request.body !== undefined) {
    const text = typeof request.body === "string" ? request.body : new TextDecoder().decode(request.body)
    if (new URLSearchParams(text).has("access_token")) certain.push(invalidRequest)
  }
  const credentials = readAuthorization(request.authorization ?? [])
  let holder: ModelClient | undefined
  let token = ""
  if (credentials._tag === "missing") certain.push(outcome(401, undefined))
  else if (credentials._tag === "malformed") certain.push(invalidRequest)
  else {
    token = credentials.token
    holder = model.clients.find((client) => !client.deleted && client.rat === credentials.token)
    // D1, D2: only the current RAT of this very client.
    if (holder === undefined || holder.clientId !== clientId) certain.push(outcome(401, "invalid_token"))
  }
  let success: Success | undefined
  if (holder !== undefined) {
    if (method === "GET") success = { _tag: "read", client: holder, token }
    if (method === "DELETE") success = { _tag: "delete", client: holder, token }
  }
  if (method === "PUT") {
    const outcomes = bodyOutcomes(request, body.update(clientId))
    certain.push(...outcomes.certain)
    possible.push(...outcomes.possible)
    if (holder !== undefined) success = { _tag: "update", client: holder, token, expected: outcomes.expected }
  }
  return { certain, possible, success }
}

// ---------------------------------------------------------------------------
// Checking one answer, applying it to the model, comparing with the store

const successStatus = (success: Success): number =>
  success._tag === "register" ? 201 : success._tag === "delete" ? 204 : 200

const describeOutcomes = (outcomes: ReadonlyArray<Outcome>) =>
  outcomes.map((o) => `${o.status} ${o.errors.map(String).join("|")}`).join(", ")

/** Why the answer contradicts the prediction; undefined when it does not. */
const verdict = (prediction: Prediction, response: HarnessResponse): string | undefined => {
  const error = response.json?.error
  const code = typeof error === "string" ? error : undefined
  if (response.status < 300) {
    if (prediction.certain.length > 0) {
      return `answered ${response.status} although the request certainly has: ${describeOutcomes(prediction.certain)}`
    }
    if (prediction.success === undefined) return `answered ${response.status} to a request that cannot succeed`
    const status = successStatus(prediction.success)
    return response.status === status ? undefined : `answered ${response.status}, expected ${status}`
  }
  const allowed = [...prediction.certain, ...prediction.possible]
  if (allowed.some((o) => o.status === response.status && o.errors.includes(code))) return undefined
  return `answered ${response.status} ${String(code)}, expected ${
    allowed.length === 0 ? `success (${prediction.success?._tag})` : `one of: ${describeOutcomes(allowed)}`
  }`
}

const str = (json: Json | undefined, member: string): string => {
  const value = json?.[member]
  if (typeof value !== "string") throw new Error(`no string ${member} in ${JSON.stringify(json)}`)
  return value
}

const optionalString = (json: Json | undefined, member: string): string | undefined => {
  const value = json?.[member]
  return typeof value === "string" ? value : undefined
}

/** Checks a success answer against the model, then applies it. */
const apply = (success: Success, response: HarnessResponse, model: Model): void => {
  const json = response.json
  const checkInformation = (clientId: string) => {
    expect(json?.client_id).toBe(clientId)
    // D17: built from the public URL, never from the request.
    expect(json?.registration_client_uri).toBe(`${publicUrl}${clientPath(clientId)}`)
    // D14: a secret exactly for the methods that use one, with its expiry.
    const method = json?.token_endpoint_auth_method
    const usesSecret = typeof method === "string" && secretMethods.has(method)
    expect(typeof json?.client_secret === "string", JSON.stringify(json)).toBe(usesSecret)
    expect(typeof json?.client_secret_expires_at === "number").toBe(usesSecret)
  }
  switch (success._tag) {
    case "health":
      expect(json?.status).toBe("ok")
      return
    case "discovery":
      expect(json?.issuer).toBe(publicUrl)
      expect(json?.registration_endpoint).toBe(`${publicUrl}/register`)
      return
    case "register": {
      const clientId = str(json, "client_id")
      expect(model.clients.some((client) => client.clientId === clientId)).toBe(false)
      checkInformation(clientId)
      const metadata = metadataOf(json)
      if (success.expected !== undefined) expect(metadata).toStrictEqual(success.expected)
      model.clients.push({
        clientId,
        rat: str(json, "registration_access_token"),
        oldRats: [],
        metadata,
        info: json ?? {},
        secret: optionalString(json, "client_secret"),
        deleted: false
      })
      return
    }
    case "read": {
      const client = success.client
      checkInformation(client.clientId)
      expect(metadataOf(json)).toStrictEqual(client.metadata)
      expect(json?.registration_access_token).toBe(success.token)
      expect(optionalString(json, "client_secret")).toBe(client.secret)
      return
    }
    case "update": {
      const client = success.client
      checkInformation(client.clientId)
      const metadata = metadataOf(json)
      if (success.expected !== undefined) expect(metadata).toStrictEqual(success.expected)
      const rotated = str(json, "registration_access_token")
      // D15: rotated on every successful update (the default).
      expect(rotated).not.toBe(success.token)
      const secret = optionalString(json, "client_secret")
      // D14: a method that keeps using a secret keeps the same one.
      if (client.secret !== undefined && secret !== undefined) expect(secret).toBe(client.secret)
      client.oldRats.push(client.rat)
      client.rat = rotated
      client.metadata = metadata
      client.info = json ?? {}
      client.secret = secret
      return
    }
    case "delete":
      expect(response.body).toBeUndefined()
      success.client.deleted = true
      return
  }
}

const dangerousKeys: ReadonlySet<string> = new Set(["__proto__", "constructor", "prototype"])

const hasDangerousKey = (value: unknown): boolean => {
  if (Array.isArray(value)) return value.some(hasDangerousKey)
  if (typeof value !== "object" || value === null) return false
  return Object.entries(value).some(([key, inner]) => dangerousKeys.has(key) || hasDangerousKey(inner))
}

const prototypeNames = Object.getOwnPropertyNames(Object.prototype).sort()

/** The store equals the model for every client; nothing else the server minted is stored. */
const expectStoreMatches = async (harness: Harness, model: Model): Promise<void> => {
  for (const client of model.clients) {
    const stored = await findClient(harness, client.clientId)
    if (client.deleted) {
      expect(stored, `deleted client ${client.clientId} is still stored`).toBeUndefined()
    } else {
      expect(stored?.metadata, `stored metadata of ${client.clientId}`).toStrictEqual(client.metadata)
      expect(stored?.clientSecret).toBe(client.secret)
      expect(hasDangerousKey(stored?.metadata)).toBe(false)
    }
    expect(await tokenOwner(harness, client.rat), `current RAT of ${client.clientId}`).toBe(
      client.deleted ? undefined : client.clientId
    )
    for (const old of client.oldRats) expect(await tokenOwner(harness, old), "a rotated-away RAT").toBeUndefined()
  }
  const known = new Set(model.clients.map((client) => client.clientId))
  for (const clientId of harness.minted.clientIds.slice(model.mintedBefore)) {
    if (!known.has(clientId)) expect(await findClient(harness, clientId), `unknown client ${clientId}`).toBeUndefined()
  }
  const tokens = new Set(model.clients.flatMap((client) => [client.rat, ...client.oldRats]))
  for (const token of harness.minted.tokens.slice(model.tokensBefore)) {
    if (!tokens.has(token)) expect(await tokenOwner(harness, token), "a RAT never handed out").toBeUndefined()
  }
  // D18: no prototype was polluted by a `__proto__` or `constructor` member.
  expect(Object.getOwnPropertyNames(Object.prototype).sort()).toStrictEqual(prototypeNames)
  expect(Object.hasOwn(Object.prototype, "polluted")).toBe(false)
}

/** Every secret of every client; none may appear in an error answer or in another client's answer. */
const secretsOf = (model: Model, except: string | undefined) =>
  model.clients.flatMap((client) =>
    client.clientId === except
      ? []
      : [client.rat, ...client.oldRats, ...(client.secret === undefined ? [] : [client.secret])]
  )

const count = (status: number) => totals.statuses.set(status, (totals.statuses.get(status) ?? 0) + 1)

/** Sends one generated step and checks everything; throws on any violation. */
const runStep = async (harness: Harness, model: Model, step: Step): Promise<void> => {
  const { request, body } = resolve(step, model)
  const prediction = predict(request, body, model)
  const response = await harness.send(request)
  count(response.status)
  const context = () =>
    `${request.method} ${request.url.slice(0, 200)} auth=${JSON.stringify(request.authorization).slice(0, 200)} ` +
    `ct=${String(request.contentType)} → ${response.status} ${String(response.body).slice(0, 300)}`
  expect(shapeProblems(request, response, { serverErrorAllowed: false }), context()).toStrictEqual([])
  const wrong = verdict(prediction, response)
  expect(wrong, context()).toBeUndefined()
  // No error answer carries any secret; a success carries only its own client's.
  const owner = response.status < 300 ? optionalString(response.json, "client_id") : undefined
  const text = `${response.body ?? ""} ${Object.values(response.headers).join(" ")}`
  for (const secret of secretsOf(model, owner))
    expect(text.includes(secret), `a secret leaks: ${context()}`).toBe(false)
  if (response.status < 300 && prediction.success !== undefined) apply(prediction.success, response, model)
  await expectStoreMatches(harness, model)
}

// ---------------------------------------------------------------------------
// The properties

const setupRequest = async (harness: Harness, request: Request): Promise<HarnessResponse> => {
  totals.setup++
  return harness.send(request)
}

/** A fresh model with three clients: one with a secret and a rotated-away RAT, one public, one deleted. */
const seedModel = async (harness: Harness): Promise<Model> => {
  const model: Model = {
    clients: [],
    mintedBefore: harness.minted.clientIds.length,
    tokensBefore: harness.minted.tokens.length
  }
  const registerOne = async (metadata: Json) => {
    const response = await setupRequest(harness, {
      method: "POST",
      url: "/register",
      contentType: "application/json",
      body: JSON.stringify(metadata)
    })
    expect(response.status, response.body).toBe(201)
    apply({ _tag: "register", expected: metadata }, response, model)
    const client = model.clients.at(-1)
    if (client === undefined) throw new Error("no client")
    return client
  }
  const confidential = await registerOne({
    redirect_uris: ["https://a.example/cb"],
    token_endpoint_auth_method: "client_secret_basic",
    grant_types: ["authorization_code"],
    response_types: ["code"],
    client_name: "Confidential",
    scope: "openid profile"
  })
  const renamed = await setupRequest(harness, {
    method: "PUT",
    url: clientPath(confidential.clientId),
    authorization: [`Bearer ${confidential.rat}`],
    contentType: "application/json",
    body: JSON.stringify(updateBodyFrom(confidential.info, { client_name: "Confidential 2" }))
  })
  expect(renamed.status, renamed.body).toBe(200)
  apply(
    {
      _tag: "update",
      client: confidential,
      token: confidential.rat,
      expected: { ...confidential.metadata, client_name: "Confidential 2" }
    },
    renamed,
    model
  )
  await registerOne({
    redirect_uris: ["http://localhost:8080/cb"],
    token_endpoint_auth_method: "none",
    grant_types: ["authorization_code", "refresh_token"],
    response_types: ["code"]
  })
  const doomed = await registerOne({
    redirect_uris: ["com.example.app:/cb"],
    token_endpoint_auth_method: "client_secret_post",
    grant_types: ["authorization_code"],
    response_types: ["code"]
  })
  const deleted = await setupRequest(harness, {
    method: "DELETE",
    url: clientPath(doomed.clientId),
    authorization: [`Bearer ${doomed.rat}`]
  })
  expect(deleted.status).toBe(204)
  apply({ _tag: "delete", client: doomed, token: doomed.rat }, deleted, model)
  return model
}

const fuzzSuite = (name: string, backend: () => Backend) =>
  describe(`Protocol fuzzing on ${name}`, () => {
    it(
      `${singleRuns} single generated requests answer in the SPEC shape, never 5xx, and change state only as the model says (${name})`,
      async () => {
        const harness = makeHarness(backend())
        try {
          await fc.assert(
            fc.asyncProperty(stepArb({ none: 1, one: 6, several: 2 }), async (step) => {
              const model = await seedModel(harness)
              totals.single++
              await runStep(harness, model, step)
            }),
            { numRuns: singleRuns }
          )
        } finally {
          await harness.dispose()
          await harness.backend.dispose()
        }
      },
      120_000 * multiplier
    )

    it(
      `${sequenceRuns} sequences of up to ${sequenceLength} valid and invalid calls across several clients keep store and model equal after every step (${name})`,
      async () => {
        await fc.assert(
          fc.asyncProperty(
            fc.array(stepArb({ none: 6, one: 3, several: 1 }), {
              minLength: 1,
              maxLength: sequenceLength,
              size: "max"
            }),
            async (steps) => {
              const harness = makeHarness(backend())
              totals.sequences++
              try {
                const model: Model = { clients: [], mintedBefore: 0, tokensBefore: 0 }
                for (const step of steps) {
                  totals.sequenceSteps++
                  await runStep(harness, model, step)
                }
              } finally {
                await harness.dispose()
                await harness.backend.dispose()
              }
            }
          ),
          { numRuns: sequenceRuns }
        )
      },
      120_000 * multiplier
    )
  })

fuzzSuite("the memory store", memoryBackend)
fuzzSuite("SQLite", sqliteBackend)
fuzzSuite("SqliteStore", sqliteStoreBackend)

afterAll(() => {
  const statuses = [...totals.statuses.entries()]
    .sort(([a], [b]) => a - b)
    .map(([status, n]) => `${status}×${n}`)
    .join(" ")
  const fuzzed = totals.single + totals.sequenceSteps
  console.log(
    `fuzz summary: ${fuzzed} requests fuzzed (${totals.single} single, ${totals.sequenceSteps} in ${totals.sequences} sequences) ` +
      `+ ${totals.setup} setup requests; statuses ${statuses}; 5xx: ${[...totals.statuses.keys()].filter((s) => s >= 500).length}` +
      (multiplier > 1 ? `; FUZZ_RUNS=${multiplier}` : "")
  )
})
