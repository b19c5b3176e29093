/**
 * Issue 7, item 4: secrets at rest and in transit. Raw SQLite and PostgreSQL
 * rows hold no plaintext registration access token or initial access token
 * (D15, D22); client secrets sealed at rest as compact JWEs with key
 * rotation; `SECRET_SEALING_KEYS` parsing; RATs, secrets and client ids from
 * the CSPRNG checked statistically (R7592-5-e, D15); constant-time
 * comparison over equal-length digests (D7). PostgreSQL runs when
 * EFFECT_DCR_TEST_PG_URL names a database (CI always sets it).
 */
import { randomBytes, randomUUID, timingSafeEqual } from "node:crypto"
import { existsSync, mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { Effect, Layer, Redacted } from "effect"
import * as Jose from "jose"
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest"
import type * as ClientStore from "../src/ClientStore.js"
import * as Credentials from "../src/Credentials.js"
import { ConfigError, fromEnv, sealingKeysOf } from "../src/Environment.js"
import * as InitialAccessTokens from "../src/InitialAccessTokens.js"
import * as PgStore from "../src/PgStore.js"
import { serverError } from "../src/ProtocolError.js"
import type { SealingKey } from "../src/SqlClientStore.js"
import * as SqliteStore from "../src/SqliteStore.js"
import { makeTestServer, type TestServer, updateBodyFrom, webClient } from "./support/http.js"
import { pgUrl } from "./support/pg.js"

// Records what `Credentials.constantTimeEquals` hands to `timingSafeEqual`.
vi.mock(import("node:crypto"), async (importOriginal) => {
  const actual = await importOriginal()
  return { ...actual, timingSafeEqual: vi.fn(actual.timingSafeEqual) }
})

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

const stringOf = (value: unknown): string => {
  if (typeof value !== "string") throw new Error(`expected a string, got ${JSON.stringify(value)}`)
  return value
}

type Row = { readonly [column: string]: unknown }

interface Cell {
  readonly table: string
  readonly column: string
  readonly text: string
}

const cellText = (value: unknown): string => {
  if (value === null || value === undefined) return ""
  if (typeof value === "string") return value
  if (value instanceof Uint8Array) return Buffer.from(value).toString("latin1")
  if (typeof value === "object") return JSON.stringify(value)
  return String(value)
}

/** Every cell of every table the query lists, as text. */
const dumpTables = (
  listTables: (sql: SqlClient.SqlClient) => Effect.Effect<ReadonlyArray<string>, unknown>
): Effect.Effect<ReadonlyArray<Cell>, unknown, SqlClient.SqlClient> =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const cells: Array<Cell> = []
    for (const table of yield* listTables(sql)) {
      const rows: ReadonlyArray<Row> = yield* sql`SELECT * FROM ${sql(table)}`
      for (const row of rows) {
        for (const [column, value] of Object.entries(row)) cells.push({ table, column, text: cellText(value) })
      }
    }
    return cells
  })

const namesOf = (rows: ReadonlyArray<Row>, column: string): ReadonlyArray<string> =>
  rows.map((row) => stringOf(row[column]))

const sqliteTables = (sql: SqlClient.SqlClient) =>
  Effect.map(sql`SELECT name FROM sqlite_master WHERE type = 'table'`, (rows) => namesOf(rows, "name"))

const pgTables = (sql: SqlClient.SqlClient) =>
  Effect.map(sql`SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`, (rows) =>
    namesOf(rows, "table_name")
  )

/** A raw view of a database, bypassing the store. */
interface RawDatabase {
  readonly run: <A>(effect: Effect.Effect<A, unknown, SqlClient.SqlClient>) => Promise<A>
  readonly listTables: (sql: SqlClient.SqlClient) => Effect.Effect<ReadonlyArray<string>, unknown>
}

const rawSqlite = (filename: string): RawDatabase => ({
  run: (effect) => Effect.runPromise(Effect.provide(effect, Layer.orDie(SqliteClient.layer({ filename })))),
  listTables: sqliteTables
})

const rawPg = (url: string): RawDatabase => ({
  run: (effect) => Effect.runPromise(Effect.provide(effect, Layer.orDie(PgClient.layer({ url: Redacted.make(url) })))),
  listTables: pgTables
})

const storedSecretColumn = (raw: RawDatabase, clientId: string): Promise<unknown> =>
  raw.run(
    Effect.flatMap(SqlClient.SqlClient, (sql) =>
      Effect.map(
        sql`SELECT client_secret FROM dcr_clients WHERE client_id = ${clientId}`,
        (rows) => rows[0]?.client_secret
      )
    )
  )

/** A PostgreSQL database of its own for this file, dropped afterwards. */
const freshPgDatabase = (adminUrl: string) => {
  const name = `effect_dcr_secrets_${randomUUID().replaceAll("-", "")}`
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  const admin = (statement: (sql: SqlClient.SqlClient) => Effect.Effect<unknown, unknown>) =>
    rawPg(adminUrl).run(Effect.flatMap(SqlClient.SqlClient, statement))
  return {
    url: url.toString(),
    create: () => admin((sql) => sql`CREATE DATABASE ${sql(name)}`),
    drop: () => admin((sql) => sql`DROP DATABASE IF EXISTS ${sql(name)} WITH (FORCE)`)
  }
}

const withServer = async <A>(
  options: Parameters<typeof makeTestServer>[0],
  use: (server: TestServer) => Promise<A>
): Promise<A> => {
  const server = makeTestServer(options)
  try {
    return await use(server)
  } finally {
    await server.dispose()
  }
}

const registerWith = async (server: TestServer, token?: string) => {
  const response = await server.request("POST", "/register", {
    json: webClient,
    ...(token === undefined ? {} : { token })
  })
  expect(response.status).toBe(201)
  const body = response.json ?? {}
  return {
    body,
    clientId: stringOf(body.client_id),
    rat: stringOf(body.registration_access_token),
    secret: stringOf(body.client_secret)
  }
}

/** PUT the same metadata back (RFC 7592 §2.2): the RAT rotates (D15), the secret stays (D14). */
const updateWith = async (server: TestServer, clientId: string, rat: string, body: Record<string, unknown>) => {
  const response = await server.request("PUT", `/register/${clientId}`, { token: rat, json: updateBodyFrom(body) })
  expect(response.status).toBe(200)
  const next = response.json ?? {}
  return { body: next, rat: stringOf(next.registration_access_token), secret: stringOf(next.client_secret) }
}

const readSecret = async (server: TestServer, clientId: string, rat: string): Promise<string> => {
  const response = await server.request("GET", `/register/${clientId}`, { token: rat })
  expect(response.status).toBe(200)
  return stringOf(response.json?.client_secret)
}

// ---------------------------------------------------------------------------
// Raw rows: no plaintext RAT or initial access token
// ---------------------------------------------------------------------------

interface Exercised {
  readonly clientId: string
  readonly secret: string
  /** Every RAT the client ever had, oldest first; the last is the live one. */
  readonly rats: ReadonlyArray<string>
  readonly initialTokens: ReadonlyArray<string>
}

/** Mints two initial access tokens, registers with one, then updates twice (two rotations). */
const exerciseIssuedMode = (store: Layer.Layer<ClientStore.ClientStore>): Promise<Exercised> =>
  withServer(
    { credentials: Credentials.layer, store, initialAccessTokens: InitialAccessTokens.layerIssued },
    async (server) => {
      const [used, unused] = await server.run(
        Effect.flatMap(InitialAccessTokens.InitialAccessTokens, (tokens) =>
          Effect.all([tokens.mint({ maxUses: 2 }), tokens.mint({ maxUses: 1 })])
        )
      )
      const initialTokens = [Redacted.value(used.token), Redacted.value(unused.token)]
      const created = await registerWith(server, initialTokens[0])
      const first = await updateWith(server, created.clientId, created.rat, created.body)
      const second = await updateWith(server, created.clientId, first.rat, first.body)
      const rats = [created.rat, first.rat, second.rat]
      expect(new Set(rats).size).toBe(3)
      // Rotation took: the old RATs are dead, the last one is live.
      for (const old of rats.slice(0, 2)) {
        expect((await server.request("GET", `/register/${created.clientId}`, { token: old })).status).toBe(401)
      }
      expect(await readSecret(server, created.clientId, second.rat)).toBe(created.secret)
      return { clientId: created.clientId, secret: created.secret, rats, initialTokens }
    }
  )

const expectNoPlaintextTokens = async (raw: RawDatabase, exercised: Exercised): Promise<void> => {
  const cells = await raw.run(dumpTables(raw.listTables))
  const tables = new Set(cells.map((cell) => cell.table))
  for (const table of ["dcr_clients", "dcr_initial_tokens"]) expect(tables).toContain(table)
  // The dump does see this client's data (so an empty result below means something).
  expect(cells.some((cell) => cell.text === exercised.clientId)).toBe(true)

  for (const token of [...exercised.rats, ...exercised.initialTokens]) {
    const leaks = cells.filter((cell) => cell.text.includes(token)).map((cell) => `${cell.table}.${cell.column}`)
    expect(leaks).toStrictEqual([])
  }

  // D15: the live RAT is kept only as its SHA-256; the rotated ones are gone.
  const tokenRows = await raw.run(
    Effect.flatMap(
      SqlClient.SqlClient,
      (sql) => sql`SELECT registration_token_id AS token_id FROM dcr_clients WHERE client_id = ${exercised.clientId}`
    )
  )
  expect(namesOf(tokenRows, "token_id")).toStrictEqual([Credentials.sha256(exercised.rats[2] ?? "")])
  // D22: issued initial access tokens likewise.
  const initialRows = await raw.run(
    Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT token_id, uses_remaining FROM dcr_initial_tokens`)
  )
  const initialIds = namesOf(initialRows, "token_id")
  for (const token of exercised.initialTokens) expect(initialIds).toContain(Credentials.sha256(token))
}

describe("issue 7 secrets at rest: raw rows hold no plaintext RAT or initial access token (D15, D22)", () => {
  it("SQLite file: every cell of every table, and the database file's bytes", async () => {
    const filename = join(mkdtempSync(join(tmpdir(), "effect-dcr-secrets-")), "store.sqlite")
    const exercised = await exerciseIssuedMode(Layer.orDie(SqliteStore.layer({ filename })))
    await expectNoPlaintextTokens(rawSqlite(filename), exercised)

    // Not even in free pages or the write-ahead log.
    const files = [filename, `${filename}-wal`].filter((file) => existsSync(file))
    const bytes = Buffer.concat(files.map((file) => readFileSync(file)))
    expect(bytes.includes(exercised.clientId)).toBe(true)
    for (const token of [...exercised.rats, ...exercised.initialTokens]) expect(bytes.includes(token)).toBe(false)
  })

  if (pgUrl !== undefined) {
    const database = freshPgDatabase(pgUrl)
    describe("PostgreSQL", () => {
      beforeAll(() => database.create())
      afterAll(() => database.drop())
      it("PostgreSQL: every cell of every table", async () => {
        const exercised = await exerciseIssuedMode(Layer.orDie(PgStore.layer({ url: database.url })))
        await expectNoPlaintextTokens(rawPg(database.url), exercised)
      })
    })
  } else {
    describe("PostgreSQL", () => {
      it.skip("needs EFFECT_DCR_TEST_PG_URL=postgres://… (set by .ci/run)", () => {})
    })
  }
})

// ---------------------------------------------------------------------------
// Sealing client secrets at rest
// ---------------------------------------------------------------------------

const keyOf = (kid: string): SealingKey => ({ kid, key: Redacted.make(new Uint8Array(randomBytes(32))) })

const sealedHeader = (stored: unknown): Jose.CompactJWEHeaderParameters => {
  const value = stringOf(stored)
  expect(value.startsWith("jwe:")).toBe(true)
  const compact = value.slice("jwe:".length)
  expect(compact.split(".")).toHaveLength(5)
  const header = Jose.decodeProtectedHeader(compact)
  return {
    alg: stringOf(header.alg),
    enc: stringOf(header.enc),
    ...(header.kid === undefined ? {} : { kid: header.kid })
  }
}

const expectSealed = async (raw: RawDatabase, clientId: string, secret: string, kid: string): Promise<void> => {
  const stored = await storedSecretColumn(raw, clientId)
  expect(stringOf(stored)).not.toContain(secret)
  expect(sealedHeader(stored)).toStrictEqual({ alg: "dir", enc: "A256GCM", kid })
}

const expectServerError = async (server: TestServer, clientId: string, rat: string): Promise<void> => {
  const response = await server.request("GET", `/register/${clientId}`, { token: rat })
  expect(response.status).toBe(500)
  // D20: never garbage, never the sealed value, no detail.
  expect(response.text).toBe(serverError.body)
}

/** The whole rotation story against one database. */
const sealingSuite = (
  name: string,
  setup: () => { readonly store: (keys: ReadonlyArray<SealingKey>) => Layer.Layer<ClientStore.ClientStore> },
  raw: () => RawDatabase
) =>
  describe(name, () => {
    it("issue 7 sealing: jwe:-prefixed dir/A256GCM values; rotation [k2, k1]; a missing or wrong key is a 500; plain values stay readable", async () => {
      const { store } = setup()
      const db = raw()
      const k1 = keyOf("k1")
      const k2 = keyOf("k2")

      // 1. Sealed with k1: the column holds a compact JWE naming k1, not the secret; reads return the secret.
      const sealedByK1 = await withServer({ credentials: Credentials.layer, store: store([k1]) }, async (server) => {
        const a = await registerWith(server)
        const c = await registerWith(server)
        await expectSealed(db, a.clientId, a.secret, "k1")
        await expectSealed(db, c.clientId, c.secret, "k1")
        expect(await readSecret(server, a.clientId, a.rat)).toBe(a.secret)
        expect(stringOf(await storedSecretColumn(db, a.clientId))).not.toBe(
          stringOf(await storedSecretColumn(db, c.clientId))
        )
        return { a, c }
      })
      const { a, c } = sealedByK1

      // 2. Rotation: [k2, k1] opens k1 values and seals new and rewritten ones with k2.
      const rotated = await withServer({ credentials: Credentials.layer, store: store([k2, k1]) }, async (server) => {
        expect(await readSecret(server, a.clientId, a.rat)).toBe(a.secret)
        await expectSealed(db, a.clientId, a.secret, "k1") // a read rewrites nothing
        const b = await registerWith(server)
        await expectSealed(db, b.clientId, b.secret, "k2")
        expect(await readSecret(server, b.clientId, b.rat)).toBe(b.secret)
        const updated = await updateWith(server, a.clientId, a.rat, a.body)
        expect(updated.secret).toBe(a.secret)
        await expectSealed(db, a.clientId, a.secret, "k2")
        expect(await readSecret(server, a.clientId, updated.rat)).toBe(a.secret)
        return { b, aRat: updated.rat }
      })
      const { b } = rotated

      // 3. Only k2: k2 values open; a k1 value cannot, and the read fails as a 500.
      await withServer({ credentials: Credentials.layer, store: store([k2]) }, async (server) => {
        expect(await readSecret(server, b.clientId, b.rat)).toBe(b.secret)
        expect(await readSecret(server, a.clientId, rotated.aRat)).toBe(a.secret)
        await expectServerError(server, c.clientId, c.rat)
      })

      // 4. No keys: plain values are written and read; a sealed value is never returned as the secret.
      const d = await withServer({ credentials: Credentials.layer, store: store([]) }, async (server) => {
        const d = await registerWith(server)
        expect(await storedSecretColumn(db, d.clientId)).toBe(d.secret)
        expect(await readSecret(server, d.clientId, d.rat)).toBe(d.secret)
        await expectServerError(server, b.clientId, b.rat)
        return d
      })

      // 5. Keys again (the migration path): the unsealed value reads, and an update seals it.
      //    A different key under the name k2 does not open k2 values (AES-GCM authenticates).
      const k3 = keyOf("k3")
      const impostor = keyOf("k2")
      await withServer({ credentials: Credentials.layer, store: store([k3, impostor]) }, async (server) => {
        expect(await readSecret(server, d.clientId, d.rat)).toBe(d.secret)
        expect(await storedSecretColumn(db, d.clientId)).toBe(d.secret)
        const updated = await updateWith(server, d.clientId, d.rat, d.body)
        expect(updated.secret).toBe(d.secret)
        await expectSealed(db, d.clientId, d.secret, "k3")
        expect(await readSecret(server, d.clientId, updated.rat)).toBe(d.secret)
        await expectServerError(server, b.clientId, b.rat)
      })
    })
  })

{
  let filename = ""
  sealingSuite(
    "issue 7 secrets at rest: client secrets sealed on SQLite",
    () => {
      filename = join(mkdtempSync(join(tmpdir(), "effect-dcr-sealing-")), "store.sqlite")
      return { store: (keys) => Layer.orDie(SqliteStore.layer({ filename, sealingKeys: keys })) }
    },
    () => rawSqlite(filename)
  )
}

describe("issue 7 secrets at rest: sealing keys that share a kid", () => {
  it("a store given the same kid twice never hands out a secret it cannot read back (refusing to start is fine)", async () => {
    const filename = join(mkdtempSync(join(tmpdir(), "effect-dcr-sealing-")), "store.sqlite")
    const store = Layer.orDie(SqliteStore.layer({ filename, sealingKeys: [keyOf("k1"), keyOf("k1")] }))
    await withServer({ credentials: Credentials.layer, store }, async (server) => {
      const outcome = await server.request("POST", "/register", { json: webClient }).then(
        (response) => response,
        (refused: unknown) => ({ refused })
      )
      if ("refused" in outcome) return // the configuration was refused before serving: acceptable
      expect(outcome.status).toBe(201)
      const clientId = stringOf(outcome.json?.client_id)
      const rat = stringOf(outcome.json?.registration_access_token)
      expect(await readSecret(server, clientId, rat)).toBe(outcome.json?.client_secret)
    })
  })
})

if (pgUrl !== undefined) {
  const database = freshPgDatabase(pgUrl)
  describe("PostgreSQL database for sealing", () => {
    beforeAll(() => database.create())
    afterAll(() => database.drop())
    sealingSuite(
      "issue 7 secrets at rest: client secrets sealed on PostgreSQL",
      () => ({ store: (keys) => Layer.orDie(PgStore.layer({ url: database.url, sealingKeys: keys })) }),
      () => rawPg(database.url)
    )
  })
} else {
  describe("issue 7 secrets at rest: client secrets sealed on PostgreSQL", () => {
    it.skip("needs EFFECT_DCR_TEST_PG_URL=postgres://… (set by .ci/run)", () => {})
  })
}

// ---------------------------------------------------------------------------
// SECRET_SEALING_KEYS
// ---------------------------------------------------------------------------

describe("issue 7 secrets at rest: SECRET_SEALING_KEYS parsing (Environment.sealingKeysOf)", () => {
  const key1 = randomBytes(32)
  const key2 = randomBytes(32)
  const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString("base64url")

  it("absent or blank: no sealing", () => {
    expect(sealingKeysOf({})).toBeUndefined()
    expect(sealingKeysOf({ SECRET_SEALING_KEYS: "" })).toBeUndefined()
    expect(sealingKeysOf({ SECRET_SEALING_KEYS: "   " })).toBeUndefined()
  })

  it("kid:key pairs, comma-separated, in order (the sealing key first), spaces tolerated", () => {
    const one = sealingKeysOf({ SECRET_SEALING_KEYS: `k1:${b64(key1)}` }) ?? []
    expect(one.map((key) => key.kid)).toStrictEqual(["k1"])
    expect(Buffer.from(Redacted.value(one[0]?.key ?? Redacted.make(new Uint8Array()))).equals(key1)).toBe(true)

    const two = sealingKeysOf({ SECRET_SEALING_KEYS: ` k2:${b64(key2)} , k1:${b64(key1)} ` }) ?? []
    expect(two.map((key) => key.kid)).toStrictEqual(["k2", "k1"])
    expect(two.map((key) => Buffer.from(Redacted.value(key.key)).toString("hex"))).toStrictEqual([
      key2.toString("hex"),
      key1.toString("hex")
    ])
    // The key material is redacted when logged.
    expect(String(two[0]?.key)).not.toContain(b64(key2))
  })

  const bad: ReadonlyArray<readonly [string, string]> = [
    ["a kid without a key", "k1"],
    ["an empty key", "k1:"],
    ["an empty kid", `:${b64(key1)}`],
    ["an extra part", `k1:${b64(key1)}:x`],
    ["a 31-byte key", `k1:${b64(randomBytes(31))}`],
    ["a 33-byte key", `k1:${b64(randomBytes(33))}`],
    ["a hex key (64 characters, not 32 bytes of base64url)", `k1:${key1.toString("hex")}`],
    ["not base64url", "k1:!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"],
    ["an empty entry", `k1:${b64(key1)},`],
    ["one bad entry among good ones", `k1:${b64(key1)},k2:short`],
    ["the same kid twice (a value sealed with the first could never be opened)", `k1:${b64(key1)},k1:${b64(key2)}`]
  ]
  for (const [what, value] of bad) {
    it(`refuses ${what}: ConfigError naming the variable, not echoing key material`, () => {
      let thrown: unknown
      try {
        sealingKeysOf({ SECRET_SEALING_KEYS: value })
      } catch (error) {
        thrown = error
      }
      expect(thrown).toBeInstanceOf(ConfigError)
      const message = thrown instanceof Error ? thrown.message : ""
      expect(message).toContain("SECRET_SEALING_KEYS")
      expect(message).not.toContain(b64(key1))
      expect(message).not.toContain(b64(key2))
    })
  }

  it("fromEnv refuses a bad SECRET_SEALING_KEYS before anything starts", () => {
    expect(() => fromEnv({ DATABASE_URL: "memory:", SECRET_SEALING_KEYS: "k1:short" })).toThrow(ConfigError)
    expect(() => fromEnv({ DATABASE_URL: "memory:", SECRET_SEALING_KEYS: `k1:${b64(key1)}` })).not.toThrow()
  })
})

// ---------------------------------------------------------------------------
// CSPRNG statistics (R7592-5-e, D15)
// ---------------------------------------------------------------------------

const base64urlAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
/** The 43rd character of 256 bits in base64url carries 4 bits and two zero bits. */
const last256 = "AEIMQUYcgkosw048"
/** The 22nd character of 128 bits in base64url carries 2 bits and four zero bits. */
const last128 = "AQgw"

/** Pearson's chi-square statistic of observed counts against a uniform distribution. */
const chiSquare = (counts: ReadonlyArray<number>): number => {
  const total = counts.reduce((sum, count) => sum + count, 0)
  const expected = total / counts.length
  return counts.reduce((sum, count) => sum + (count - expected) ** 2 / expected, 0)
}

/** Wilson–Hilferty approximation of the chi-square quantile with `dof` degrees of freedom at upper-tail z. */
const chiSquareCritical = (dof: number, z: number): number =>
  dof * (1 - 2 / (9 * dof) + z * Math.sqrt(2 / (9 * dof))) ** 3
/** The standard normal upper-tail quantile for p = 1e-6. */
const zOneInAMillion = 4.753424

/** Symbol counts over character positions [from, to) of every value. */
const symbolCounts = (
  values: ReadonlyArray<string>,
  alphabet: string,
  from: number,
  to: number
): ReadonlyArray<number> => {
  const index = new Map([...alphabet].map((symbol, i) => [symbol, i]))
  const counts = new Array<number>(alphabet.length).fill(0)
  for (const value of values) {
    for (let i = from; i < to; i++) {
      const at = index.get(value[i] ?? "")
      if (at === undefined) throw new Error(`${JSON.stringify(value[i])} is not in the alphabet`)
      counts[at] = (counts[at] ?? 0) + 1
    }
  }
  return counts
}

/** For each of the 8 × bytes bit positions, in how many values it is set. */
const bitCounts = (values: ReadonlyArray<Buffer>, bytes: number): ReadonlyArray<number> => {
  const counts = new Array<number>(bytes * 8).fill(0)
  for (const value of values) {
    for (let bit = 0; bit < bytes * 8; bit++) {
      if (((value[bit >> 3] ?? 0) >> (7 - (bit & 7))) & 1) counts[bit] = (counts[bit] ?? 0) + 1
    }
  }
  return counts
}

/** Bits whose set count is outside 50 % ± 6 σ. */
const unbalancedBits = (counts: ReadonlyArray<number>, n: number): ReadonlyArray<number> => {
  const sigma = Math.sqrt(n * 0.25)
  return counts.flatMap((count, bit) => (Math.abs(count - n / 2) > 6 * sigma ? [bit] : []))
}

describe("issue 7 R7592-5-e D15: RATs, secrets and client ids from the CSPRNG (Credentials.layer)", () => {
  const samples = 10_000
  const generated = Effect.runSync(
    Effect.flatMap(Credentials.Credentials, (credentials) =>
      Effect.all({
        rats: Effect.map(Effect.replicateEffect(credentials.registrationToken, samples), (rs) =>
          rs.map(Redacted.value)
        ),
        secrets: Effect.map(Effect.replicateEffect(credentials.clientSecret, samples), (ss) => ss.map(Redacted.value)),
        clientIds: Effect.replicateEffect(credentials.clientId, samples)
      })
    ).pipe(Effect.provide(Credentials.layer))
  )
  const tokens = [...generated.rats, ...generated.secrets]

  it("the critical values used below are right (Wilson–Hilferty, p = 1e-6)", () => {
    expect(chiSquareCritical(63, zOneInAMillion)).toBeGreaterThan(128)
    expect(chiSquareCritical(63, zOneInAMillion)).toBeLessThan(136)
    expect(chiSquareCritical(15, zOneInAMillion)).toBeGreaterThan(54)
    expect(chiSquareCritical(15, zOneInAMillion)).toBeLessThan(61)
  })

  it("10 000 RATs and 10 000 secrets: no repeats at all, 43 base64url characters = 32 bytes (256 bits)", () => {
    expect(new Set(generated.rats).size).toBe(samples)
    expect(new Set(generated.secrets).size).toBe(samples)
    expect(new Set(tokens).size).toBe(2 * samples)
    const malformed = tokens.filter(
      (token) =>
        !/^[A-Za-z0-9_-]{43}$/.test(token) ||
        !last256.includes(token.slice(-1)) ||
        Buffer.from(token, "base64url").length !== 32 ||
        Buffer.from(token, "base64url").toString("base64url") !== token
    )
    expect(malformed).toStrictEqual([])
  })

  it("10 000 client ids: no repeats, 22 base64url characters = 16 bytes (128 bits)", () => {
    expect(new Set(generated.clientIds).size).toBe(samples)
    const malformed = generated.clientIds.filter(
      (id) =>
        !/^[A-Za-z0-9_-]{22}$/.test(id) || !last128.includes(id.slice(-1)) || Buffer.from(id, "base64url").length !== 16
    )
    expect(malformed).toStrictEqual([])
  })

  it("character frequencies are uniform: chi-square over 64 symbols (positions 1–42) and over the 16 allowed last symbols", () => {
    const body = chiSquare(symbolCounts(tokens, base64urlAlphabet, 0, 42))
    expect(body).toBeLessThan(chiSquareCritical(63, zOneInAMillion))
    const last = chiSquare(symbolCounts(tokens, last256, 42, 43))
    expect(last).toBeLessThan(chiSquareCritical(15, zOneInAMillion))
    // Client ids too (positions 1–21).
    const ids = chiSquare(symbolCounts(generated.clientIds, base64urlAlphabet, 0, 21))
    expect(ids).toBeLessThan(chiSquareCritical(63, zOneInAMillion))
  })

  it("every one of the 256 bits is set in 50 % ± 6 σ of the 20 000 values, and bytes are uniform (255 dof)", () => {
    const decoded = tokens.map((token) => Buffer.from(token, "base64url"))
    expect(unbalancedBits(bitCounts(decoded, 32), decoded.length)).toStrictEqual([])
    const byteCounts = new Array<number>(256).fill(0)
    for (const value of decoded) for (const byte of value) byteCounts[byte] = (byteCounts[byte] ?? 0) + 1
    expect(chiSquare(byteCounts)).toBeLessThan(chiSquareCritical(255, zOneInAMillion))
  })

  it("the checks can fail: they reject a biased alphabet and a stuck bit", () => {
    // 2 % of characters forced to "A": a weak generator the chi-square must catch.
    const biased = tokens.map((token, i) =>
      [...token].map((char, j) => (j < 42 && (i * 43 + j) % 50 === 0 ? "A" : char)).join("")
    )
    expect(chiSquare(symbolCounts(biased, base64urlAlphabet, 0, 42))).toBeGreaterThan(
      chiSquareCritical(63, zOneInAMillion)
    )
    const stuck = tokens.map((token) => {
      const bytes = Buffer.from(token, "base64url")
      bytes[5] = (bytes[5] ?? 0) | 0x10
      return bytes
    })
    expect(unbalancedBits(bitCounts(stuck, 32), stuck.length)).toStrictEqual([43])
  })

  it("what registration hands out has the same shape: a 43-character RAT and secret, a 22-character client id", async () => {
    await withServer({ credentials: Credentials.layer }, async (server) => {
      const created = await registerWith(server)
      expect(created.rat).toMatch(/^[A-Za-z0-9_-]{43}$/)
      expect(created.secret).toMatch(/^[A-Za-z0-9_-]{43}$/)
      expect(created.clientId).toMatch(/^[A-Za-z0-9_-]{22}$/)
      expect(created.rat).not.toBe(created.secret)
    })
  })
})

// ---------------------------------------------------------------------------
// Constant-time comparison (D7, D22)
// ---------------------------------------------------------------------------

describe("issue 7 secrets in transit: comparisons in constant time over equal-length digests", () => {
  const spy = vi.mocked(timingSafeEqual)
  beforeEach(() => {
    spy.mockClear()
  })

  it("Credentials.constantTimeEquals: right answers for equal, different and different-length inputs", () => {
    const cases: ReadonlyArray<readonly [string, string, boolean]> = [
      ["s3cret-value", "s3cret-value", true],
      ["s3cret-value", "s3cret-valuE", false],
      ["s3cret-value", "S3cret-value", false],
      ["short", "a much longer presented value", false],
      ["a much longer presented value", "short", false],
      ["", "", true],
      ["", "x", false],
      ["x", "", false],
      ["é", "e\u0301", false],
      ["ü-naïve-ключ", "ü-naïve-ключ", true],
      ["a".repeat(100_000), "a".repeat(100_000), true],
      ["a".repeat(100_000), "a".repeat(99_999) + "b", false]
    ]
    for (const [a, b, equal] of cases) {
      expect({ a: a.slice(0, 20), b: b.slice(0, 20), equal: Credentials.constantTimeEquals(a, b) }).toStrictEqual({
        a: a.slice(0, 20),
        b: b.slice(0, 20),
        equal
      })
    }
    // Every comparison went through timingSafeEqual on two 32-byte digests, whatever the input lengths.
    expect(spy.mock.calls).toHaveLength(cases.length)
    const lengths = spy.mock.calls.map(([x, y]) => [x.byteLength, y.byteLength])
    expect(new Set(lengths.map((pair) => pair.join("/")))).toStrictEqual(new Set(["32/32"]))
  })

  it("Credentials.layer's equals on redacted values agrees", () => {
    const equals = Effect.runSync(
      Effect.map(Credentials.Credentials, (c) => c.equals).pipe(Effect.provide(Credentials.layer))
    )
    expect(equals(Redacted.make("abc"), Redacted.make("abc"))).toBe(true)
    expect(equals(Redacted.make("abc"), Redacted.make("abd"))).toBe(false)
    expect(equals(Redacted.make("abc"), Redacted.make("abcd"))).toBe(false)
    expect(spy.mock.calls.every(([x, y]) => x.byteLength === 32 && y.byteLength === 32)).toBe(true)
    expect(spy.mock.calls).toHaveLength(3)
  })

  it("D7: an update presenting a client_secret of another length is 400 invalid_request (not a 500), through the digest compare", async () => {
    await withServer({ credentials: Credentials.layer }, async (server) => {
      const created = await registerWith(server)
      spy.mockClear()
      for (const presented of ["x", `${created.secret}x`, created.secret.slice(0, -1)]) {
        const response = await server.request("PUT", `/register/${created.clientId}`, {
          token: created.rat,
          json: updateBodyFrom(created.body, { client_secret: presented, client_name: "Changed" })
        })
        expect(response.status).toBe(400)
        expect(response.json?.error).toBe("invalid_request")
      }
      expect(spy.mock.calls.length).toBeGreaterThanOrEqual(3)
      expect(spy.mock.calls.every(([x, y]) => x.byteLength === 32 && y.byteLength === 32)).toBe(true)
      const after = await server.request("GET", `/register/${created.clientId}`, { token: created.rat })
      expect(after.status).toBe(200)
      expect(after.json?.client_name).toBe(webClient.client_name)
      expect(after.json?.client_secret).toBe(created.secret)
    })
  })

  it("D22: a static initial access token of another length is 401 invalid_token (not a 500), through the digest compare", async () => {
    const token = randomBytes(32).toString("base64url")
    await withServer(
      { credentials: Credentials.layer, initialAccessTokens: InitialAccessTokens.layerStatic([token]) },
      async (server) => {
        spy.mockClear()
        for (const presented of ["x", `${token}x`, token.slice(0, -1)]) {
          const response = await server.request("POST", "/register", { token: presented, json: webClient })
          expect(response.status).toBe(401)
          expect(response.json?.error).toBe("invalid_token")
        }
        expect(spy.mock.calls.length).toBeGreaterThanOrEqual(3)
        expect(spy.mock.calls.every(([x, y]) => x.byteLength === 32 && y.byteLength === 32)).toBe(true)
        expect((await server.request("POST", "/register", { token, json: webClient })).status).toBe(201)
      }
    )
  })
})
