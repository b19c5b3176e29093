/**
 * Fault injection (issue 7, D20): register, read, update (with rotation) and
 * delete, each with the store failing or stalling at every operation it
 * calls, before the write and after it, on the memory store, a SQLite file
 * (twice: `SqlClientStore` over `@effect/sql-sqlite-node`, and `SqliteStore`
 * on better-sqlite3 directly, issue 6) and PostgreSQL (when
 * EFFECT_DCR_TEST_PG_URL names a database; CI always sets it). On the SQL
 * stores a statement also fails in the database (a trigger): each write's
 * one statement, and the insert that follows spending an initial access
 * token in the same transaction.
 *
 * Every fault must give D20's 500 `{"error":"server_error"}` with nothing
 * internal in it, the cause must be logged, the stored state afterwards must
 * equal the state before the request (every row, read over a separate
 * connection, for SQL), and the very next request once the store heals must
 * succeed on the same running service. A stalled store is bounded by
 * `operationTimeoutMillis`.
 *
 * The memory store has no transactions, and `SqliteStore` commits each write
 * in one synchronous call that no outer transaction can enclose: there a
 * fault after the write is a commit whose acknowledgement was lost. Those cases are pinned separately: the
 * answer is still the bare 500 and the state is the whole committed one,
 * never a part of it.
 *
 * A write that commits after the deadline (a slow COMMIT cannot be
 * interrupted) must be answered as the success it is, or not committed:
 * those tests fail today (see SECURITY.md, open issues).
 */
import { SqlClient } from "@effect/sql"
import { Effect, Either, Option } from "effect"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import type { RegisteredClient } from "../src/ClientInformation.js"
import * as ClientStore from "../src/ClientStore.js"
import * as Credentials from "../src/Credentials.js"
import {
  armDatabaseFault,
  type DatabaseFault,
  disarmDatabaseFaults,
  type FaultKind,
  FaultPlan,
  type FaultPoint,
  faulty,
  injectedMessage,
  installDatabaseFaults,
  type StoreOperation
} from "./support/faults.js"
import {
  type Backend,
  bearer,
  clientPath,
  findClient,
  type Harness,
  type HarnessResponse,
  jsonRequest,
  makeHarness,
  memoryBackend,
  metadataOf,
  postgresBackend,
  type Request,
  shapeProblems,
  type Snapshot,
  snapshot,
  sqliteBackend,
  sqliteStoreBackend,
  stringMember,
  tokenOwner,
  updateBodyFrom,
  webClient
} from "./support/harness.js"
import { makeTestServer } from "./support/http.js"
import { pgUrl } from "./support/pg.js"

/** The operation timeout of every service here: a stalled store answers 500 after this. */
const timeoutMillis = 250
/** Scheduling slack on a loaded CI machine. */
const slackMillis = 2_000

// ---------------------------------------------------------------------------
// The requests under test

interface Prepared {
  readonly clientId: string
  readonly token: string
  readonly info: Record<string, unknown>
}

interface Scenario {
  readonly name: "register" | "read" | "update" | "delete"
  /** The store operations the request calls; the first write is last. */
  readonly operations: ReadonlyArray<StoreOperation>
  /** The lookups it calls instead when the store offers no `findByToken` (`FaultPlan.splitLookups`). */
  readonly splitLookups: ReadonlyArray<StoreOperation>
  readonly request: (prepared: Prepared) => Request
  /** What the request does when the store works. */
  readonly succeeded: (harness: Harness, prepared: Prepared, response: HarnessResponse) => Promise<void>
}

const emptyPrepared: Prepared = { clientId: "", token: "", info: {} }

const register = async (harness: Harness): Promise<Prepared> => {
  const response = await harness.send(jsonRequest("POST", "/register", webClient))
  expect(response.status, response.body).toBe(201)
  const info = response.json ?? {}
  return { clientId: stringMember(info, "client_id"), token: stringMember(info, "registration_access_token"), info }
}

const scenarios: ReadonlyArray<Scenario> = [
  {
    name: "register",
    operations: ["insert"],
    splitLookups: [],
    request: () => jsonRequest("POST", "/register", webClient),
    succeeded: async (harness, _prepared, response) => {
      expect(response.status, response.body).toBe(201)
      const clientId = stringMember(response.json, "client_id")
      expect((await findClient(harness, clientId))?.metadata).toStrictEqual(metadataOf(response.json))
      expect(await tokenOwner(harness, stringMember(response.json, "registration_access_token"))).toBe(clientId)
    }
  },
  {
    name: "read",
    operations: ["findByToken"],
    splitLookups: ["findTokenOwner", "findById"],
    request: ({ clientId, token }) => bearer("GET", clientPath(clientId), token),
    succeeded: async (_harness, { info }, response) => {
      expect(response.status, response.body).toBe(200)
      expect(metadataOf(response.json)).toStrictEqual(metadataOf(info))
    }
  },
  {
    name: "update",
    operations: ["findByToken", "update"],
    splitLookups: ["findTokenOwner", "findById"],
    request: ({ clientId, token, info }) =>
      jsonRequest("PUT", clientPath(clientId), updateBodyFrom(info, { client_name: "Renamed" }), token),
    succeeded: async (harness, { clientId, token }, response) => {
      expect(response.status, response.body).toBe(200)
      expect(response.json?.client_name).toBe("Renamed")
      const rotated = stringMember(response.json, "registration_access_token")
      expect(rotated).not.toBe(token)
      expect(await tokenOwner(harness, token)).toBeUndefined()
      expect(await tokenOwner(harness, rotated)).toBe(clientId)
      expect((await findClient(harness, clientId))?.metadata).toStrictEqual(metadataOf(response.json))
    }
  },
  {
    name: "delete",
    operations: ["findByToken", "remove"],
    splitLookups: ["findTokenOwner", "findById"],
    request: ({ clientId, token }) => bearer("DELETE", clientPath(clientId), token),
    succeeded: async (harness, { clientId, token }, response) => {
      expect(response.status, response.body).toBe(204)
      expect(await findClient(harness, clientId)).toBeUndefined()
      expect(await tokenOwner(harness, token)).toBeUndefined()
    }
  }
]

// ---------------------------------------------------------------------------
// Checks

/** Both snapshots over the same ids and tokens: absent ones as null, so that a new row shows. */
const normalized = (state: Snapshot, keys: Snapshot) => ({
  clients: Object.fromEntries(Object.keys(keys.clients).map((id) => [id, state.clients[id] ?? null])),
  tokens: Object.fromEntries(Object.keys(keys.tokens).map((token) => [token, state.tokens[token] ?? null])),
  tables: state.tables ?? null
})

const expectUnchanged = (before: Snapshot, after: Snapshot): void => {
  expect(normalized(after, after)).toStrictEqual(normalized(before, after))
}

/** D20: exactly a 500 `server_error` with nothing internal; the SPEC shape otherwise. */
const expectServerError = (request: Request, response: HarnessResponse): void => {
  expect(response.status, response.body).toBe(500)
  expect(response.json?.error).toBe("server_error")
  expect(shapeProblems(request, response, { serverErrorAllowed: true })).toStrictEqual([])
}

/** The cause is logged (D20), and no log line carries a secret the server minted. */
const expectLogged = (harness: Harness, from: number, cause: RegExp): void => {
  const lines = harness.logs.slice(from)
  expect(
    lines.some((line) => cause.test(line)),
    lines.join("\n")
  ).toBe(true)
  const secrets = [...harness.minted.tokens, ...harness.minted.secrets]
  for (const line of harness.logs) for (const secret of secrets) expect(line.includes(secret)).toBe(false)
}

const timed = async <A>(run: () => Promise<A>): Promise<{ readonly value: A; readonly millis: number }> => {
  const started = performance.now()
  const value = await run()
  return { value, millis: performance.now() - started }
}

// ---------------------------------------------------------------------------
// The suite, once per backend

interface Case {
  readonly scenario: Scenario
  readonly operation: StoreOperation
  readonly point: FaultPoint
  readonly kind: FaultKind
  /** The store offers no `findByToken` for this request. */
  readonly split: boolean
}

const cases: ReadonlyArray<Case> = [
  ...scenarios.flatMap((scenario) =>
    scenario.operations.flatMap((operation) =>
      (["before", "after"] as const).flatMap((point) =>
        // A stall costs the timeout: one stalled operation per request and point is enough.
        (operation === scenario.operations.at(-1) ? (["fail", "stall"] as const) : (["fail"] as const)).map(
          (kind): Case => ({ scenario, operation, point, kind, split: false })
        )
      )
    )
  ),
  // The same requests on a store without `findByToken`: a fault in either lookup.
  ...scenarios.flatMap((scenario) =>
    scenario.splitLookups.flatMap((operation) =>
      (["before", "after"] as const).map((point): Case => ({ scenario, operation, point, kind: "fail", split: true }))
    )
  )
]

/** The statements inside the SQL store's transactions a trigger makes fail, per request. */
const databaseCases: ReadonlyArray<{
  readonly scenario: Scenario
  readonly fault: DatabaseFault
  readonly where: string
}> = [
  { scenario: scenarios[0]!, fault: "dcr_clients:insert", where: "the client row with its RAT" },
  { scenario: scenarios[2]!, fault: "dcr_clients:update", where: "the compare-and-set that also rotates the RAT" },
  { scenario: scenarios[3]!, fault: "dcr_clients:delete", where: "the client row with its RAT" }
]

/** A client as the store keeps it, for the store-level cases. */
const storedClient = (clientId: string): RegisteredClient => ({
  clientId,
  clientIdIssuedAt: 1_700_000_000,
  clientSecret: undefined,
  clientSecretExpiresAt: 0,
  metadata: { redirect_uris: ["https://client.example.org/cb"], token_endpoint_auth_method: "none" },
  version: 1
})

/** `state` without one client: its row, and its RAT, gone. */
const withoutClient = (state: Snapshot, clientId: string, token: string): Snapshot => ({
  clients: { ...state.clients, [clientId]: undefined },
  tokens: { ...state.tokens, [token]: undefined },
  tables:
    state.tables === undefined
      ? undefined
      : {
          ...state.tables,
          dcr_clients: (state.tables.dcr_clients ?? []).filter(
            (row) => !(typeof row === "object" && row !== null && "client_id" in row && row.client_id === clientId)
          )
        }
})

const faultSuite = (name: Backend["name"], makeBackend: () => Promise<Backend>) =>
  describe(`D20 fault injection on ${name}`, () => {
    const plan = new FaultPlan()
    let harness: Harness | undefined
    const h = (): Harness => {
      if (harness === undefined) throw new Error("the harness is not built")
      return harness
    }
    // Database faults (triggers armed over a second connection) need a database.
    const sqlBacked = name !== "memory"
    // An "after" fault rolls the write back only where the fault wrapper can
    // open a transaction around it: a store running on a `SqlClient` it
    // shares. `SqliteStore` commits each write in one synchronous call, and
    // memory has no transactions: there the write stays, its answer lost.
    const afterRollsBack = name === "SQLite" || name === "PostgreSQL"

    beforeAll(async () => {
      const backend = await makeBackend()
      harness = makeHarness(backend, {
        server: { operationTimeoutMillis: timeoutMillis },
        wrapStore: (store) => faulty(store, plan)
      })
      // Builds the service (and migrates) before any timing matters.
      await register(harness)
      if (sqlBacked) await harness.sql(installDatabaseFaults)
    })
    afterEach(async () => {
      plan.disarm()
      plan.stallMillis = undefined
      plan.splitLookups = false
      if (sqlBacked) await h().sql(disarmDatabaseFaults)
    })
    afterAll(async () => {
      await harness?.dispose()
      await harness?.backend.dispose()
    })

    it(`an "after" fault ${afterRollsBack ? "runs in the write's own transaction" : "is a lost acknowledgement (the write has committed)"} (${name})`, () => {
      expect(plan.afterRollsBack).toBe(afterRollsBack)
    })

    for (const { scenario, operation, point, kind, split } of cases) {
      const lostAck =
        !afterRollsBack && point === "after" && operation === scenario.operations.at(-1) && scenario.name !== "read"
      const title = `D20 ${scenario.name}: ${operation} ${kind === "fail" ? "fails" : "stalls"} ${point} ${
        point === "before" ? "running" : "it ran"
      } → 500 server_error, ${
        lostAck
          ? "the whole write and never a part of it (a lost acknowledgement)"
          : "state as before, next request succeeds"
      }${split ? " (a store without findByToken)" : ""} (${name})`
      it(title, async () => {
        const harness = h()
        const prepared = scenario.name === "register" ? emptyPrepared : await register(harness)
        plan.splitLookups = split
        const request = scenario.request(prepared)
        const before = await snapshot(harness)
        const logsFrom = harness.logs.length
        const tag = `${scenario.name}-${operation}-${point}-${kind}`

        plan.arm({ operation, point, kind })
        const { value: response, millis } = await timed(() => harness.send(request, tag))
        plan.disarm()

        expectServerError(request, response)
        expect(plan.injectedInto(tag).map((fault) => [fault.operation, fault.point, fault.kind])).toContainEqual([
          operation,
          point,
          kind
        ])
        if (kind === "stall") {
          // The slow store is cut off by operationTimeoutMillis, not waited for.
          expect(millis).toBeGreaterThanOrEqual(timeoutMillis - 5)
          expect(millis).toBeLessThan(timeoutMillis + slackMillis)
          expectLogged(harness, logsFrom, new RegExp(`took longer than ${timeoutMillis} ms`))
        } else {
          expectLogged(harness, logsFrom, new RegExp(`${injectedMessage}: ${operation} \\(${point}\\)`))
        }
        const after = await snapshot(harness)

        if (!lostAck) {
          expectUnchanged(before, after)
          // The store has healed: the same request now succeeds, on the same running service.
          await scenario.succeeded(harness, prepared, await harness.send(request))
          return
        }
        // Memory or SqliteStore, after the write: the write is there, whole, but its answer was lost.
        const retried = await harness.send(request)
        switch (scenario.name) {
          case "register": {
            const orphan = harness.minted.clientIds.at(-2)
            if (orphan === undefined) throw new Error("no client id was minted")
            expect(after.clients[orphan]?.metadata).toMatchObject(webClient)
            expect(after.tokens[harness.minted.tokens.at(-2) ?? ""]).toBe(orphan)
            await scenario.succeeded(harness, prepared, retried)
            break
          }
          case "update": {
            // Committed: renamed, old RAT rotated away; the new one was never delivered.
            expect(after.clients[prepared.clientId]?.metadata).toMatchObject({ client_name: "Renamed" })
            expect(after.tokens[prepared.token]).toBeUndefined()
            expect(after.tokens[harness.minted.tokens.at(-1) ?? ""]).toBe(prepared.clientId)
            expect(retried.status).toBe(401)
            expect(retried.json?.error).toBe("invalid_token")
            break
          }
          case "delete": {
            expect(after.clients[prepared.clientId]).toBeUndefined()
            expect(after.tokens[prepared.token]).toBeUndefined()
            expect(retried.status).toBe(401)
            break
          }
        }
      })
    }

    if (sqlBacked) {
      for (const { scenario, fault, where } of databaseCases) {
        it(`D20 ${scenario.name}: the database fails ${fault.replace(":", " ")} (${where}) → 500, the transaction rolls back whole (${name})`, async () => {
          const harness = h()
          const prepared = scenario.name === "register" ? emptyPrepared : await register(harness)
          const request = scenario.request(prepared)
          const before = await snapshot(harness)
          const logsFrom = harness.logs.length

          await harness.sql(armDatabaseFault(fault))
          const response = await harness.send(request)
          await harness.sql(disarmDatabaseFaults)

          expectServerError(request, response)
          expectLogged(harness, logsFrom, new RegExp(injectedMessage))
          expectUnchanged(before, await snapshot(harness))
          await scenario.succeeded(harness, prepared, await harness.send(request))
        })
      }

      it(`D20 D22 the database fails dcr_clients insert after an initial access token's use was spent → StoreError, and the use is given back: the transaction rolls back whole (${name})`, async () => {
        const harness = h()
        const now = Math.floor(Date.now() / 1000)
        const initial = `initial-${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`
        await harness.run(
          Effect.flatMap(ClientStore.ClientStore, (store) =>
            store.insertInitialToken({
              tokenId: initial,
              expiresAt: 0,
              usesRemaining: 1,
              policy: undefined,
              createdAt: now
            })
          )
        )
        const insert = (clientId: string) =>
          harness.run(
            Effect.either(
              Effect.flatMap(ClientStore.ClientStore, (store) =>
                store.insert(storedClient(clientId), `rat-of-${clientId}`, { tokenId: initial, now })
              )
            )
          )
        const clientId = `spent-${initial}`
        const before = await snapshot(harness)

        await harness.sql(armDatabaseFault("dcr_clients:insert"))
        const failed = await insert(clientId)
        await harness.sql(disarmDatabaseFaults)

        expect(Either.isLeft(failed) && failed.left._tag).toBe("StoreError")
        expectUnchanged(before, await snapshot(harness))
        const usesLeft = () =>
          harness.run(
            Effect.map(
              Effect.flatMap(ClientStore.ClientStore, (store) => store.findInitialToken(initial)),
              (record) => Option.map(record, (found) => found.usesRemaining)
            )
          )
        expect(await usesLeft()).toStrictEqual(Option.some(1))
        // Healed: the use is there to spend, once.
        expect(await insert(clientId)).toStrictEqual(Either.right("inserted"))
        expect(await usesLeft()).toStrictEqual(Option.some(0))
        expect(await insert(`${clientId}-again`)).toStrictEqual(Either.right("initial-token-unavailable"))
      })

      for (const point of ["before", "after"] as const) {
        it(`D2 D20 a client deleted between authentication and lookup (a store without findByToken): revoking its RAT fails ${point} the revocation → 500; the RAT went with the row all the same and nothing else changes; the next request is 401 (${name})`, async () => {
          const harness = h()
          const prepared = await register(harness)
          // With findByToken the token and its client are one read: no "between".
          plan.splitLookups = true
          const request = bearer("GET", clientPath(prepared.clientId), prepared.token)
          const before = await snapshot(harness)

          // Another instance deletes the client after this request has authenticated its RAT.
          plan.interleave("findById", () =>
            harness.sql(
              Effect.flatMap(
                SqlClient.SqlClient,
                (sql) => sql`DELETE FROM dcr_clients WHERE client_id = ${prepared.clientId}`
              )
            )
          )
          plan.arm({ operation: "revokeToken", point, kind: "fail" })
          const response = await harness.send(request, `vanished-${point}`)
          plan.disarm()

          expectServerError(request, response)
          expect(plan.injectedInto(`vanished-${point}`).map((fault) => fault.operation)).toStrictEqual(["revokeToken"])
          // A RAT is a column of its client's row: a store cannot hold one whose client is gone.
          expectUnchanged(withoutClient(before, prepared.clientId, prepared.token), await snapshot(harness))
          expect(await tokenOwner(harness, prepared.token)).toBeUndefined()
          // R7592-2.1-f's 401, as for any dead token.
          const again = await harness.send(request)
          expect(again.status).toBe(401)
          expect(again.json?.error).toBe("invalid_token")
        })
      }
    }

    it(`D20 the service recovers by itself: a store failing its next 3 lookups heals without a restart (${name})`, async () => {
      const harness = h()
      const prepared = await register(harness)
      plan.arm({ operation: "findByToken", point: "before", kind: "fail", times: 3 })
      const request = bearer("GET", clientPath(prepared.clientId), prepared.token)
      const statuses: Array<number> = []
      for (let i = 0; i < 4; i++) statuses.push((await harness.send(request)).status)
      // Nothing was disarmed: the store healed by itself after three calls.
      expect(statuses).toStrictEqual([500, 500, 500, 200])
    })

    it(`D20 a full store outage answers 500 everywhere and 503 on /healthz, then everything works again (${name})`, async () => {
      const harness = h()
      const prepared = await register(harness)
      const before = await snapshot(harness)
      for (const operation of [
        "insert",
        "findByToken",
        "findById",
        "findTokenOwner",
        "update",
        "remove",
        "ping"
      ] as const) {
        plan.arm({ operation, point: "before", kind: "fail" })
      }
      const requests = scenarios.map((scenario) => scenario.request(prepared))
      for (const request of requests) expectServerError(request, await harness.send(request))
      const health = await harness.send({ method: "GET", url: "/healthz" })
      expect(health.status).toBe(503)
      expect(shapeProblems({ url: "/healthz" }, health, { serverErrorAllowed: true })).toStrictEqual([])

      plan.disarm()
      expectUnchanged(before, await snapshot(harness))
      expect((await harness.send({ method: "GET", url: "/healthz" })).status).toBe(200)
      await scenarios[0]!.succeeded(harness, prepared, await harness.send(requests[0]!))
      await scenarios[1]!.succeeded(harness, prepared, await harness.send(requests[1]!))
      await scenarios[2]!.succeeded(harness, prepared, await harness.send(requests[2]!))
    })

    for (const scenario of scenarios.filter((candidate) => candidate.name !== "read")) {
      const operation = scenario.operations.at(-1) ?? "insert"
      it(`D20 ${scenario.name}: when the ${operation} commits after operationTimeoutMillis, the answer is the success it is, or nothing is committed (${name})`, async () => {
        const harness = h()
        const prepared = scenario.name === "register" ? emptyPrepared : await register(harness)
        const request = scenario.request(prepared)
        const before = await snapshot(harness)

        // The write commits 150 ms after the deadline; a COMMIT in flight cannot be interrupted.
        plan.stallMillis = timeoutMillis + 150
        plan.arm({ operation, point: "after", kind: "slowCommit" })
        const response = await harness.send(request)
        plan.disarm()

        if (response.status < 300) {
          await scenario.succeeded(harness, prepared, response)
          return
        }
        // D20: a 500 promises that nothing changed; here the write had committed.
        expectServerError(request, response)
        expectUnchanged(before, await snapshot(harness))
      })
    }

    it(`a slow store within operationTimeoutMillis is waited for: every request succeeds (${name})`, async () => {
      const harness = h()
      plan.stallMillis = 40
      plan.arm({ operation: "insert", point: "before", kind: "stall" })
      plan.arm({ operation: "findTokenOwner", point: "after", kind: "stall" })
      const { value: response, millis } = await timed(() => harness.send(scenarios[0]!.request(emptyPrepared)))
      await scenarios[0]!.succeeded(harness, emptyPrepared, response)
      expect(millis).toBeGreaterThanOrEqual(39)
      const prepared = await register(harness)
      await scenarios[2]!.succeeded(harness, prepared, await harness.send(scenarios[2]!.request(prepared)))
    })
  })

faultSuite("memory", async () => memoryBackend())
faultSuite("SQLite", async () => sqliteBackend())
faultSuite("SqliteStore", async () => sqliteStoreBackend())
if (pgUrl !== undefined) {
  const url = pgUrl
  faultSuite("PostgreSQL", () => postgresBackend(url, "faults"))
} else {
  describe("D20 fault injection on PostgreSQL", () => {
    it.skip("needs EFFECT_DCR_TEST_PG_URL=postgres://… (set by .ci/run)", () => {})
  })
}

describe("D20 through an HTTP adapter", () => {
  it("D20 a store failure reaches the @effect/platform adapter as the same bare 500", async () => {
    const plan = new FaultPlan().arm({ operation: "insert", point: "before", kind: "fail" })
    const server = makeTestServer({ store: faulty(ClientStore.layerMemory, plan), credentials: Credentials.layer })
    try {
      const response = await server.request("POST", "/register", { json: webClient })
      expect(response.status).toBe(500)
      expect(response.json).toStrictEqual({
        error: "server_error",
        error_description: "the server could not complete the request"
      })
      expect(response.headers.get("cache-control")).toBe("no-store")
      expect(response.headers.get("pragma")).toBe("no-cache")
      expect(response.text).not.toMatch(/injected|StoreError/)
      plan.disarm()
      expect((await server.request("POST", "/register", { json: webClient })).status).toBe(201)
      expect(plan.injected.map((fault) => fault.operation)).toStrictEqual(["insert"])
    } finally {
      await server.dispose()
    }
  })
})
