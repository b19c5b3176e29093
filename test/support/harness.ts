/**
 * Drives `Protocol.handle` (transport-neutral) on a chosen store, for the
 * fault, fuzz and soak tests: the backends (memory, a SQLite file, a
 * PostgreSQL schema of the test's own), a runtime with captured logs and
 * recorded credentials, the SPEC shape every response must have (D16, D20,
 * D5, R6750-3), and snapshots of the stored state.
 */
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { Cause, Effect, Layer, Logger, ManagedRuntime, Option, Redacted } from "effect"
import type { RegisteredClient } from "../../src/ClientInformation.js"
import { serverIssuedMembers } from "../../src/ClientMetadata.js"
import * as ClientStore from "../../src/ClientStore.js"
import * as Credentials from "../../src/Credentials.js"
import * as Dcr from "../../src/Dcr.js"
import * as Protocol from "../../src/Protocol.js"
import { errorCodes, type ProtocolResponse } from "../../src/ProtocolError.js"
import type * as ServerMetadata from "../../src/ServerMetadata.js"
import * as SqlClientStore from "../../src/SqlClientStore.js"
import * as SqliteStore from "../../src/SqliteStore.js"
import { requestTag } from "./faults.js"

export const publicUrl = "https://as.example.com/oauth"
export const registrationEndpoint = `${publicUrl}/register`

// ---------------------------------------------------------------------------
// Backends

export interface Backend {
  readonly name: "memory" | "SQLite" | "SqliteStore" | "PostgreSQL"
  /**
   * A new store layer on this backend's data. For the SQL backends it also
   * provides the `SqlClient` it runs on, so that `faulty` can put an
   * "after" fault in the same transaction as the write.
   */
  readonly store: () => Layer.Layer<ClientStore.ClientStore>
  /** A separate connection to the same data, to inspect it and arm database faults; none for memory. */
  readonly inspect: Layer.Layer<SqlClient.SqlClient> | undefined
  readonly dispose: () => Promise<void>
}

export const memoryBackend = (): Backend => ({
  name: "memory",
  store: () => ClientStore.layerMemory,
  inspect: undefined,
  dispose: async () => {}
})

const sqlStoreOn = (client: Layer.Layer<SqlClient.SqlClient>): Layer.Layer<ClientStore.ClientStore> =>
  Layer.orDie(SqlClientStore.layer).pipe(Layer.provideMerge(client))

const sqliteFile = () => join(mkdtempSync(join(tmpdir(), "effect-dcr-faults-")), "store.sqlite")

/**
 * A fresh SQLite file under `SqlClientStore` over `@effect/sql-sqlite-node`'s
 * `SqliteClient`: the SQL store as a host that brings its own `SqlClient`
 * runs it (and as `SqliteStore` was before issue 6).
 */
export const sqliteBackend = (): Backend => {
  const filename = sqliteFile()
  const client = () => Layer.orDie(SqliteClient.layer({ filename }))
  return { name: "SQLite", store: () => sqlStoreOn(client()), inspect: client(), dispose: async () => {} }
}

/**
 * A fresh SQLite file under `SqliteStore` (better-sqlite3 directly, issue 6),
 * the store the standalone server runs. Its layer provides no `SqlClient`:
 * each write commits on its own, so an "after" fault is a lost
 * acknowledgement, as on memory. `inspect` is a separate connection.
 */
export const sqliteStoreBackend = (): Backend => {
  const filename = sqliteFile()
  return {
    name: "SqliteStore",
    store: () => Layer.orDie(SqliteStore.layer({ filename })),
    inspect: Layer.orDie(SqliteClient.layer({ filename })),
    dispose: async () => {}
  }
}

const pgClient = (url: string, maxConnections = 10): Layer.Layer<SqlClient.SqlClient> =>
  Layer.orDie(PgClient.layer({ url: Redacted.make(url), maxConnections }))

/**
 * A PostgreSQL schema of its own in the database `url` names (created here,
 * dropped by `dispose`): its tables, triggers and rows are invisible to the
 * other test files sharing the database.
 */
export const postgresBackend = async (url: string, label: string): Promise<Backend> => {
  const schema = `effect_dcr_${label}_${process.pid}_${Date.now().toString(36)}`
    .toLowerCase()
    .replace(/[^a-z0-9_]/g, "_")
  const admin = pgClient(url, 1)
  const adminRun = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) =>
    Effect.runPromise(Effect.provide(effect, admin))
  await adminRun(Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(`CREATE SCHEMA ${schema}`)))
  const scoped = new URL(url)
  scoped.searchParams.set("options", `-c search_path=${schema}`)
  const schemaUrl = scoped.toString()
  return {
    name: "PostgreSQL",
    store: () => sqlStoreOn(pgClient(schemaUrl)),
    inspect: pgClient(schemaUrl, 2),
    dispose: () =>
      adminRun(Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(`DROP SCHEMA ${schema} CASCADE`))).then(
        () => undefined
      )
  }
}

// ---------------------------------------------------------------------------
// The runtime

/** Every credential the server minted, in order (values, not hashes). */
export interface Minted {
  readonly clientIds: Array<string>
  readonly secrets: Array<string>
  readonly tokens: Array<string>
}

/** `Credentials.layer` (CSPRNG), recording what it mints. */
const recordingCredentials = (minted: Minted): Layer.Layer<Credentials.Credentials> =>
  Layer.effect(
    Credentials.Credentials,
    Effect.map(Credentials.Credentials, (real) => ({
      ...real,
      clientId: Effect.tap(real.clientId, (id) => void minted.clientIds.push(id)),
      clientSecret: Effect.tap(real.clientSecret, (secret) => void minted.secrets.push(Redacted.value(secret))),
      registrationToken: Effect.tap(real.registrationToken, (token) => void minted.tokens.push(Redacted.value(token)))
    }))
  ).pipe(Layer.provide(Credentials.layer))

export interface HarnessResponse extends ProtocolResponse {
  /** The parsed body, or undefined when there is none or it is not a JSON object. */
  readonly json: Record<string, unknown> | undefined
}

/** A request, with the optional members of `ProtocolRequest` given as needed. */
export interface Request {
  readonly method: string
  readonly url: string
  readonly authorization?: ReadonlyArray<string>
  readonly contentType?: string | undefined
  readonly body?: Uint8Array | string | undefined
  readonly bodyTooLarge?: boolean
  readonly remoteAddress?: string
}

export interface Harness {
  readonly backend: Backend
  /** Sends one request through `Protocol.handle`; `tag` names it in the fault plan's records. */
  readonly send: (request: Request, tag?: string) => Promise<HarnessResponse>
  /** Runs an effect on the server's services. */
  readonly run: <A, E>(effect: Effect.Effect<A, E, Protocol.Services>) => Promise<A>
  /** Runs an effect on the inspection connection (SQL backends only). */
  readonly sql: <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) => Promise<A>
  /** Every log line the server wrote (message, cause, annotations). */
  readonly logs: Array<string>
  readonly minted: Minted
  readonly dispose: () => Promise<void>
}

const encoder = new TextEncoder()

export interface HarnessOptions {
  readonly server?: Partial<ServerMetadata.Options> | undefined
  /** Wraps the backend's store, e.g. with `faulty`. */
  readonly wrapStore?:
    ((store: Layer.Layer<ClientStore.ClientStore>) => Layer.Layer<ClientStore.ClientStore>) | undefined
}

export const makeHarness = (backend: Backend, options: HarnessOptions = {}): Harness => {
  const logs: Array<string> = []
  const minted: Minted = { clientIds: [], secrets: [], tokens: [] }
  const logger = Logger.make(({ message, cause, annotations }) => {
    const parts = [JSON.stringify(message)]
    if (!Cause.isEmpty(cause)) parts.push(Cause.pretty(cause, { renderErrorCause: true }))
    for (const [key, value] of annotations) parts.push(`${key}=${JSON.stringify(value)}`)
    logs.push(parts.join(" "))
  })
  const store = (options.wrapStore ?? ((layer) => layer))(backend.store())
  const layer = Layer.merge(
    Dcr.layer({
      server: { publicUrl, ...options.server },
      store,
      credentials: recordingCredentials(minted)
    }),
    Logger.replace(Logger.defaultLogger, logger)
  )
  const runtime = ManagedRuntime.make(layer)
  const inspect = backend.inspect === undefined ? undefined : ManagedRuntime.make(backend.inspect)
  return {
    backend,
    send: async (request, tag) => {
      const body = typeof request.body === "string" ? encoder.encode(request.body) : request.body
      const response = await runtime.runPromise(
        Effect.locally(
          Protocol.handle({
            method: request.method,
            url: request.url,
            authorization: request.authorization ?? [],
            contentType: request.contentType,
            body,
            bodyTooLarge: request.bodyTooLarge,
            remoteAddress: request.remoteAddress
          }),
          requestTag,
          tag
        )
      )
      return { ...response, json: parseJsonObject(response.body) }
    },
    run: (effect) => runtime.runPromise(effect),
    sql: (effect) => {
      if (inspect === undefined) return Promise.reject(new Error(`the ${backend.name} backend has no SQL connection`))
      return inspect.runPromise(effect)
    },
    logs,
    minted,
    dispose: async () => {
      await runtime.dispose()
      await inspect?.dispose()
    }
  }
}

const parseJsonObject = (text: string | undefined): Record<string, unknown> | undefined => {
  if (text === undefined) return undefined
  try {
    const value: unknown = JSON.parse(text)
    return typeof value === "object" && value !== null && !Array.isArray(value)
      ? Object.fromEntries(Object.entries(value))
      : undefined
  } catch {
    return undefined
  }
}

// ---------------------------------------------------------------------------
// Requests

export const clientPath = (clientId: string) => `/register/${encodeURIComponent(clientId)}`

export const jsonRequest = (method: string, url: string, json: unknown, token?: string): Request => ({
  method,
  url,
  authorization: token === undefined ? [] : [`Bearer ${token}`],
  contentType: "application/json",
  body: JSON.stringify(json)
})

export const bearer = (method: string, url: string, token: string): Request => ({
  method,
  url,
  authorization: [`Bearer ${token}`]
})

/** Metadata every default server accepts. */
export const webClient = {
  redirect_uris: ["https://client.example.org/callback"],
  client_name: "Example Client",
  scope: "openid profile"
} as const

/** The members a server issues, as opposed to registered metadata. */
export const serverMembers = serverIssuedMembers

/** The registered metadata members of a client information response. */
export const metadataOf = (body: Record<string, unknown> | undefined): Record<string, unknown> => {
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(body ?? {})) if (!serverMembers.has(key)) out[key] = value
  return out
}

export { updateBodyFrom } from "./http.js"

export const stringMember = (body: Record<string, unknown> | undefined, name: string): string => {
  const value = body?.[name]
  if (typeof value !== "string") throw new Error(`no string ${name} in ${JSON.stringify(body)}`)
  return value
}

// ---------------------------------------------------------------------------
// The SPEC shape of every response

/** The `error` codes a response may carry (R7591-3.2.2, R6750-3.1, D20). */
export const allowedErrors: ReadonlySet<string> = new Set(errorCodes)

/** The statuses these endpoints answer with (429 only when a rate limit is configured). */
export const allowedStatuses: ReadonlySet<number> = new Set([200, 201, 204, 400, 401, 403, 404, 405, 413, 500, 503])

/** RFC 8414 discovery answers are cacheable by design; every other answer is no-store (D16). */
export const isDiscoveryPath = (url: string): boolean => {
  const q = url.indexOf("?")
  const path = q === -1 ? url : url.slice(0, q)
  return path === "/.well-known/oauth-authorization-server" || path === "/.well-known/oauth-authorization-server/oauth"
}

/** Printable ASCII without `"` and `\` (R6750-3-f, R7591-3.2.2-c). */
const safeText = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/

/**
 * The problems with a response's shape; empty when it has the SPEC shape:
 * an allowed status; `Cache-Control: no-store` and `Pragma: no-cache` (D16);
 * `Content-Type: application/json` and a JSON object body unless 204; an
 * allowed `error` on every 4xx/5xx except D5's bare 401; a Bearer challenge
 * on every 401 (R6750-3, R7235-3.1); `Allow` on 405 (D4); no CR/LF in any
 * header; 500 exactly D20's `server_error` with nothing internal.
 */
export const shapeProblems = (
  request: { readonly url: string },
  response: HarnessResponse,
  options: { readonly serverErrorAllowed: boolean }
): Array<string> => {
  const problems: Array<string> = []
  const { status, headers } = response
  if (!allowedStatuses.has(status)) problems.push(`status ${status} is not an allowed status`)
  if (status >= 500 && !options.serverErrorAllowed) problems.push(`a ${status} without an injected fault`)
  for (const [name, value] of Object.entries(headers)) {
    if (name !== name.toLowerCase()) problems.push(`header name ${name} is not lower case`)
    if (/[\r\n\0]/.test(value)) problems.push(`header ${name} holds a control character`)
  }
  const discovery = isDiscoveryPath(request.url) && status === 200
  if (!discovery) {
    if (headers["cache-control"] !== "no-store") problems.push(`cache-control is ${headers["cache-control"]}`)
    if (headers.pragma !== "no-cache") problems.push(`pragma is ${headers.pragma}`)
  }
  if (status === 204) {
    if (response.body !== undefined && response.body !== "") problems.push("a 204 with a body")
    return problems
  }
  if (headers["content-type"] !== "application/json") problems.push(`content-type is ${headers["content-type"]}`)
  const json = response.json
  if (json === undefined) {
    problems.push(`the body is not a JSON object: ${String(response.body).slice(0, 200)}`)
    return problems
  }
  const error = json.error
  if (error !== undefined) {
    if (typeof error !== "string" || !allowedErrors.has(error)) problems.push(`error ${JSON.stringify(error)}`)
    if (status < 400) problems.push(`a ${status} with an error member`)
    const description = json.error_description
    if (description !== undefined && (typeof description !== "string" || !safeText.test(description))) {
      problems.push(`error_description ${JSON.stringify(description)} is not printable ASCII without " and \\`)
    }
  }
  const challenge = headers["www-authenticate"]
  if (status === 401) {
    if (challenge === undefined || !challenge.startsWith("Bearer ")) problems.push(`401 with challenge ${challenge}`)
    // D5 / R6750-3.1-e: a bare challenge goes with a body without an error code, and the reverse.
    if ((error === undefined) !== (challenge !== undefined && !challenge.includes("error="))) {
      problems.push(`401 body error ${String(error)} disagrees with challenge ${challenge}`)
    }
  } else if (status >= 400 && error === undefined && status !== 503) {
    // 503 is only the health check's answer, `{"status":"unavailable"}`.
    problems.push(`a ${status} without an error code`)
  }
  if (challenge !== undefined && !challenge.startsWith("Bearer ")) problems.push(`challenge ${challenge}`)
  if (status === 405 && headers.allow === undefined) problems.push("405 without Allow")
  if (status === 500) {
    // D20: nothing but the code and a fixed description.
    const members = Object.keys(json).sort()
    if (error !== "server_error") problems.push(`500 with error ${String(error)}`)
    if (members.some((member) => member !== "error" && member !== "error_description")) {
      problems.push(`500 with members ${members.join(",")}`)
    }
    if (/injected|StoreError|SqlError|dcr_|trigger|stack|at [A-Za-z.]+ \(|\.ts:/i.test(response.body ?? "")) {
      problems.push(`500 leaks internal detail: ${response.body}`)
    }
  }
  if (status === 503 && json.status !== "unavailable") problems.push(`503 body ${response.body}`)
  return problems
}

// ---------------------------------------------------------------------------
// Stored state

/** A client as stored, in comparable form (secret revealed). */
export interface StoredClient {
  readonly clientId: string
  readonly clientIdIssuedAt: number
  readonly clientSecret: string | undefined
  readonly clientSecretExpiresAt: number
  readonly metadata: unknown
  readonly version: number
  readonly policy: unknown
}

export const comparable = (client: RegisteredClient): StoredClient => ({
  clientId: client.clientId,
  clientIdIssuedAt: client.clientIdIssuedAt,
  clientSecret: client.clientSecret === undefined ? undefined : Redacted.value(client.clientSecret),
  clientSecretExpiresAt: client.clientSecretExpiresAt,
  metadata: client.metadata,
  version: client.version,
  policy: client.policy
})

export const findClient = (harness: Harness, clientId: string): Promise<StoredClient | undefined> =>
  harness.run(
    Effect.map(
      Effect.flatMap(ClientStore.ClientStore, (store) => store.findById(clientId)),
      (found) => Option.getOrUndefined(Option.map(found, comparable))
    )
  )

/** The client a registration access token (the value) is live for, if any. */
export const tokenOwner = (harness: Harness, token: string): Promise<string | undefined> =>
  harness.run(
    Effect.map(
      Effect.flatMap(ClientStore.ClientStore, (store) => store.findTokenOwner(Credentials.sha256(token))),
      Option.getOrUndefined
    )
  )

export interface Snapshot {
  /** Every client the server ever minted an id for, as stored (or undefined when absent). */
  readonly clients: Record<string, StoredClient | undefined>
  /** Every registration access token the server ever minted: the client it is live for, or undefined. */
  readonly tokens: Record<string, string | undefined>
  /** For SQL backends, every row of the store's tables. */
  readonly tables: Record<string, ReadonlyArray<unknown>> | undefined
}

/**
 * The whole stored state as far as a test can see it: through the port, for
 * every id and token the server ever minted (so a half-written client or a
 * token without its client shows), and for SQL backends every row, read over
 * a separate connection (so only what was committed counts).
 */
export const snapshot = async (harness: Harness): Promise<Snapshot> => {
  const clients: Record<string, StoredClient | undefined> = {}
  for (const clientId of harness.minted.clientIds) clients[clientId] = await findClient(harness, clientId)
  const tokens: Record<string, string | undefined> = {}
  for (const token of harness.minted.tokens) tokens[token] = await tokenOwner(harness, token)
  const tables =
    harness.backend.inspect === undefined
      ? undefined
      : await harness.sql(
          Effect.gen(function* () {
            const sql = yield* SqlClient.SqlClient
            return {
              dcr_clients: yield* sql`SELECT * FROM dcr_clients ORDER BY client_id`,
              dcr_initial_tokens: yield* sql`SELECT * FROM dcr_initial_tokens ORDER BY token_id`
            }
          })
        )
  return { clients, tokens, tables }
}
