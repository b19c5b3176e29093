/**
 * The library under test: its services on a `ManagedRuntime` over one of the
 * stores, exactly as a host builds them (`Dcr.layer`, `SqliteStore.layer`,
 * `PgStore.layer`), and the seeding of many clients before a run.
 *
 * Registration access tokens are not rotated on update (D15 allows turning it
 * off): with rotation the token of a client changes on every update, and the
 * load generator's prebuilt requests could not follow.
 */
import { randomBytes } from "node:crypto"
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { Effect, Layer, ManagedRuntime, Option, Redacted } from "effect"
import type { RegisteredClient } from "../../src/ClientInformation.js"
import * as ClientStore from "../../src/ClientStore.js"
import { Credentials } from "../../src/Credentials.js"
import * as Dcr from "../../src/Dcr.js"
import * as PgStore from "../../src/PgStore.js"
import { handle, type Services } from "../../src/Protocol.js"
import type { StoreError } from "../../src/ProtocolError.js"
import * as SqliteStore from "../../src/SqliteStore.js"
import { type Credential, registerBody } from "./workload.js"

export type StoreSpec =
  | { readonly kind: "memory" }
  | { readonly kind: "sqlite"; readonly filename: string }
  | { readonly kind: "pg"; readonly url: string }

export type DcrRuntime = ManagedRuntime.ManagedRuntime<Services, StoreError>

const storeLayer = (spec: StoreSpec): Layer.Layer<ClientStore.ClientStore, StoreError> => {
  switch (spec.kind) {
    case "memory":
      return ClientStore.layerMemory
    case "sqlite":
      return SqliteStore.layer({ filename: spec.filename })
    case "pg":
      return PgStore.layer({ url: spec.url })
  }
}

/** The services every adapter serves, built once. */
export const makeRuntime = (spec: StoreSpec, publicUrl: string): DcrRuntime =>
  ManagedRuntime.make(
    // tracing off, as the standalone server runs when it exports no spans.
    Dcr.layer({
      server: { publicUrl, rotateRegistrationTokenOnUpdate: false, tracing: false },
      store: storeLayer(spec)
    })
  )

/** Reads the store spec from BENCH_STORE, BENCH_SQLITE_FILE and BENCH_PG_URL. */
export const storeFromEnv = (): StoreSpec => {
  const kind = process.env.BENCH_STORE ?? "memory"
  if (kind === "memory") return { kind }
  if (kind === "sqlite") {
    const filename = process.env.BENCH_SQLITE_FILE
    if (filename === undefined) throw new Error("BENCH_SQLITE_FILE is not set")
    return { kind, filename }
  }
  if (kind === "pg") {
    const url = process.env.BENCH_PG_URL
    if (url === undefined) throw new Error("BENCH_PG_URL is not set")
    return { kind, url }
  }
  throw new Error(`unknown BENCH_STORE ${kind}`)
}

const encoder = new TextEncoder()

const isRecord = (value: unknown): value is Readonly<Record<string, unknown>> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** Registers one client through the protocol and returns what the store keeps for it. */
const registerTemplate = Effect.gen(function* () {
  const response = yield* handle({
    method: "POST",
    url: "/register",
    authorization: [],
    contentType: "application/json",
    body: encoder.encode(registerBody)
  })
  const parsed: unknown = JSON.parse(response.body ?? "null")
  if (response.status !== 201 || !isRecord(parsed) || typeof parsed.client_id !== "string") {
    return yield* Effect.dieMessage(`seeding: registration answered ${response.status} ${response.body ?? ""}`)
  }
  const store = yield* ClientStore.ClientStore
  const found = yield* store.findById(parsed.client_id)
  if (Option.isNone(found)) return yield* Effect.dieMessage("seeding: the registered client is not in the store")
  return found.value
})

const base64url = (bytes: number): string => randomBytes(bytes).toString("base64url")

interface Seed {
  readonly clientId: string
  readonly secret: string
  readonly token: string
  readonly tokenId: string
}

/** Memory: every client through the store's own `insert`. */
const insertThroughStore = (template: RegisteredClient, seeds: ReadonlyArray<Seed>) =>
  Effect.flatMap(ClientStore.ClientStore, (store) =>
    Effect.forEach(
      seeds,
      (seed) =>
        store.insert({ ...template, clientId: seed.clientId, clientSecret: Redacted.make(seed.secret) }, seed.tokenId),
      { discard: true }
    )
  )

/**
 * SQL stores: the template client's row (as the store wrote it) cloned
 * with multi-row INSERTs on a second connection, 500 clients a statement:
 * 100 000 clients take seconds, where one `insert` each takes minutes.
 * Only the ids, the secret and the token id differ from the template's rows.
 */
const cloneWithSql = <E>(
  connection: Layer.Layer<SqlClient.SqlClient, E>,
  templateId: string,
  seeds: ReadonlyArray<Seed>
) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const [client] = yield* sql`SELECT * FROM dcr_clients WHERE client_id = ${templateId}`
    if (client === undefined) return yield* Effect.dieMessage("seeding: no template row")
    for (let from = 0; from < seeds.length; from += 500) {
      const chunk = seeds.slice(from, from + 500)
      yield* sql`INSERT INTO dcr_clients ${sql.insert(
        chunk.map((seed) => ({
          ...client,
          client_id: seed.clientId,
          client_secret: seed.secret,
          registration_token_id: seed.tokenId
        }))
      )}`
    }
  }).pipe(Effect.provide(connection))

/**
 * Stores `count` clients, each a copy of one client registered through the
 * protocol (so their metadata is exactly what registration stores) with its
 * own random id, secret and registration access token. The rows go straight
 * into the store (memory) or the database (SQL), not over HTTP.
 */
export const seed = async (runtime: DcrRuntime, spec: StoreSpec, count: number): Promise<Array<Credential>> => {
  const template = await runtime.runPromise(registerTemplate)
  const credentials = await runtime.runPromise(Credentials)
  const seeds: Array<Seed> = []
  for (let i = 0; i < count; i++) {
    const token = base64url(32)
    seeds.push({
      clientId: base64url(16),
      secret: base64url(32),
      token,
      tokenId: credentials.hash(Redacted.make(token))
    })
  }
  switch (spec.kind) {
    case "memory":
      await runtime.runPromise(insertThroughStore(template, seeds))
      break
    case "sqlite":
      await Effect.runPromise(cloneWithSql(SqliteClient.layer({ filename: spec.filename }), template.clientId, seeds))
      break
    case "pg":
      await Effect.runPromise(cloneWithSql(PgClient.layer({ url: Redacted.make(spec.url) }), template.clientId, seeds))
      break
  }
  return seeds.map((seed) => ({ clientId: seed.clientId, token: seed.token }))
}
