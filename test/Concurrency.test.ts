/**
 * Concurrency on the SQL stores, through HTTP (the `@effect/platform` adapter
 * in-process, every request its own fiber): compare-and-set updates (D15),
 * the rotation race, delete racing updates (D19, R7592-5-f), initial access
 * tokens spent concurrently (D22), and rollback of a failed update (D20).
 * Every case runs on a SQLite file and on PostgreSQL (when
 * EFFECT_DCR_TEST_PG_URL names a database; CI always sets it).
 */
import { randomUUID } from "node:crypto"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { Deferred, Effect, Fiber, Layer, Option, Redacted, Schedule } from "effect"
import { describe, expect, it } from "vitest"
import * as ClientEvents from "../src/ClientEvents.js"
import type { RegisteredClient } from "../src/ClientInformation.js"
import * as ClientStore from "../src/ClientStore.js"
import * as Credentials from "../src/Credentials.js"
import * as InitialAccessTokens from "../src/InitialAccessTokens.js"
import * as PgStore from "../src/PgStore.js"
import { StoreError } from "../src/ProtocolError.js"
import * as SqlClientStore from "../src/SqlClientStore.js"
import * as SqliteStore from "../src/SqliteStore.js"
import {
  register,
  serversDisposedAfterEach,
  type TestOptions,
  type TestResponse,
  type TestServer,
  updateBodyFrom,
  webClient
} from "./support/http.js"
import { pgUrl } from "./support/pg.js"

const serve = serversDisposedAfterEach()

/** How many requests race in each case. */
const racers = 20

/** A database to run the cases on: a fresh store layer and a raw `SqlClient` layer on the same data. */
interface Backend {
  readonly name: string
  /** A new store (a new file for SQLite; the shared database for PostgreSQL). */
  readonly fresh: () => {
    readonly store: Layer.Layer<ClientStore.ClientStore>
    readonly sql: Layer.Layer<SqlClient.SqlClient>
  }
}

const sqlite: Backend = {
  name: "SQLite",
  fresh: () => {
    const filename = join(mkdtempSync(join(tmpdir(), "effect-dcr-concurrency-")), "store.sqlite")
    return {
      store: Layer.orDie(SqliteStore.layer({ filename })),
      sql: Layer.orDie(SqliteClient.layer({ filename }))
    }
  }
}

const postgres = (url: string): Backend => ({
  name: "PostgreSQL",
  fresh: () => ({
    store: Layer.orDie(PgStore.layer({ url })),
    sql: Layer.orDie(PgClient.layer({ url: Redacted.make(url) }))
  })
})

// ---------------------------------------------------------------------------
// helpers

const clientPath = (clientId: string) => `/register/${encodeURIComponent(clientId)}`

const storedClient = (server: TestServer, clientId: string) =>
  server.run(Effect.flatMap(ClientStore.ClientStore, (store) => store.findById(clientId)))

const tokenOwner = (server: TestServer, token: string) =>
  server.run(Effect.flatMap(ClientStore.ClientStore, (store) => store.findTokenOwner(Credentials.sha256(token))))

const versionOf = (client: Option.Option<RegisteredClient>) => Option.map(client, (found) => found.version)

/** D20: whatever a request loses, it never loses with a 500; a non-2xx answer is an RFC error with a code. */
const expectNoServerError = (responses: ReadonlyArray<TestResponse>): void => {
  for (const response of responses) {
    expect(response.status, response.text).not.toBe(500)
    if (response.status >= 400) expect(typeof response.json?.error, response.text).toBe("string")
  }
}

const statusesOf = (responses: ReadonlyArray<TestResponse>) => responses.map((response) => response.status)

const countStatus = (responses: ReadonlyArray<TestResponse>, status: number) =>
  responses.filter((response) => response.status === status).length

/** A full RFC 7592 §2.2 update body, distinct per writer in both client_name and contacts. */
const writerBody = (registered: Record<string, unknown>, writer: number) =>
  updateBodyFrom(registered, {
    client_name: `Writer ${writer}`,
    contacts: [`writer-${writer}@example.org`, `ops-${writer}@example.org`]
  })

interface Commit {
  readonly from: number
  readonly to: number
  readonly clientName: unknown
}

/** Records every committed update the host is told about (ClientEvents.updated). */
const commitRecorder = () => {
  const commits: Array<Commit> = []
  const layer = ClientEvents.layer({
    updated: (previous, next) =>
      Effect.sync(() => {
        commits.push({ from: previous.version, to: next.version, clientName: next.metadata.client_name })
      })
  })
  return { commits, layer }
}

// ---------------------------------------------------------------------------
// the cases, once per backend

const concurrencySuite = (backend: Backend) =>
  describe(`Concurrency on ${backend.name}`, () => {
    const serverOn = (options: TestOptions = {}) =>
      serve({ credentials: Credentials.layer, ...options, store: backend.fresh().store })

    it(`D15 ${racers} parallel full updates (rotation off) all succeed and the last committed body wins whole (${backend.name})`, async () => {
      const recorder = commitRecorder()
      const server = serverOn({ server: { rotateRegistrationTokenOnUpdate: false }, clientEvents: recorder.layer })
      const { clientId, token, body } = await register(server, {
        ...webClient,
        contacts: ["original@example.org"]
      })
      const bodies = Array.from({ length: racers }, (_, writer) => writerBody(body, writer))

      const responses = await Promise.all(
        bodies.map((json) => server.request("PUT", clientPath(clientId), { json, token }))
      )

      expectNoServerError(responses)
      // Nothing else touches the client: compare-and-set losers run again, so every writer succeeds.
      expect(statusesOf(responses)).toStrictEqual(bodies.map(() => 200))
      // Each 200 echoes exactly what its own request asked for (R7592-2.2-d), the RAT unchanged.
      responses.forEach((response, writer) => {
        expect(updateBodyFrom(response.json ?? {})).toStrictEqual(bodies[writer])
        expect(response.json?.registration_access_token).toBe(token)
      })

      const read = await server.request("GET", clientPath(clientId), { token })
      expect(read.status).toBe(200)
      const final = updateBodyFrom(read.json ?? {})
      // Exactly one submitted body, never client_name of one with contacts of another.
      const winner = bodies.findIndex((candidate) => candidate.client_name === final.client_name)
      expect(winner).toBeGreaterThanOrEqual(0)
      expect(final.contacts).toStrictEqual(bodies[winner]?.contacts)
      expect(final).toStrictEqual(bodies[winner])

      // The version advanced once per 200, through an unbroken chain of compare-and-sets.
      const successes = countStatus(responses, 200)
      expect(versionOf(await storedClient(server, clientId))).toStrictEqual(Option.some(1 + successes))
      const chain = [...recorder.commits].sort((a, b) => a.to - b.to)
      expect(chain.map(({ from, to }) => [from, to])).toStrictEqual(
        Array.from({ length: successes }, (_, i) => [i + 1, i + 2])
      )
      // The stored state is the one the last commit wrote.
      expect(chain.at(-1)?.clientName).toBe(final.client_name)
    })

    it(`D15 rotation race has exactly one winner (${backend.name})`, async () => {
      const server = serverOn({ server: { rotateRegistrationTokenOnUpdate: true } })
      const { clientId, token, body } = await register(server)
      const bodies = Array.from({ length: racers }, (_, writer) => writerBody(body, writer))

      const responses = await Promise.all(
        bodies.map((json) => server.request("PUT", clientPath(clientId), { json, token }))
      )

      expectNoServerError(responses)
      expect(countStatus(responses, 200), statusesOf(responses).join(",")).toBe(1)
      const losers = responses.filter((response) => response.status !== 200)
      expect(losers).toHaveLength(racers - 1)
      for (const loser of losers) {
        expect(loser.status).toBe(401)
        expect(loser.json?.error).toBe("invalid_token")
      }

      const winnerIndex = responses.findIndex((response) => response.status === 200)
      const winner = responses[winnerIndex]
      const rotated = winner?.json?.registration_access_token
      if (typeof rotated !== "string") throw new Error(`the winner carries no RAT: ${winner?.text}`)
      expect(rotated).not.toBe(token)

      // The winner's new RAT works and shows the winner's body; the old one is dead.
      const withNew = await server.request("GET", clientPath(clientId), { token: rotated })
      expect(withNew.status).toBe(200)
      expect(updateBodyFrom(withNew.json ?? {})).toStrictEqual(bodies[winnerIndex])
      const withOld = await server.request("GET", clientPath(clientId), { token })
      expect(withOld.status).toBe(401)
      expect(withOld.json?.error).toBe("invalid_token")

      expect(await tokenOwner(server, token)).toStrictEqual(Option.none())
      expect(await tokenOwner(server, rotated)).toStrictEqual(Option.some(clientId))
      expect(versionOf(await storedClient(server, clientId))).toStrictEqual(Option.some(2))
    })

    it(`D19 R7592-5-f a delete racing updates (rotation off) is never undone (${backend.name})`, async () => {
      const server = serverOn({ server: { rotateRegistrationTokenOnUpdate: false } })
      // Several clients at once, so deletes land before, between and after the updates.
      const rounds = 5
      await Promise.all(
        Array.from({ length: rounds }, async (_, round) => {
          const { clientId, token, body } = await register(server)
          const updates = Array.from({ length: 6 }, (_, writer) =>
            server.request("PUT", clientPath(clientId), { json: writerBody(body, writer), token })
          )
          const deletion = server.request("DELETE", clientPath(clientId), { token })
          // The delete goes out in a different position each round.
          const requests = [...updates.slice(0, round), deletion, ...updates.slice(round)]
          const responses = await Promise.all(requests)

          expectNoServerError(responses)
          expect((await deletion).status).toBe(204)
          for (const status of statusesOf(responses)) expect([200, 204, 401]).toContain(status)
          for (const response of responses) {
            if (response.status === 401) expect(response.json?.error).toBe("invalid_token")
          }

          const read = await server.request("GET", clientPath(clientId), { token })
          expect(read.status).toBe(401)
          expect(read.json?.error).toBe("invalid_token")
          expect(await storedClient(server, clientId)).toStrictEqual(Option.none())
          expect(await tokenOwner(server, token)).toStrictEqual(Option.none())
        })
      )
    })

    it(`D20 D19 a delete racing rotating updates answers no 500 and leaves no live RAT of a deleted client (${backend.name})`, async () => {
      const server = serverOn({ server: { rotateRegistrationTokenOnUpdate: true } })
      const rounds = 10
      await Promise.all(
        Array.from({ length: rounds }, async (_, round) => {
          const { clientId, token, body } = await register(server)
          const updates = Array.from({ length: 3 }, (_, writer) =>
            server.request("PUT", clientPath(clientId), { json: writerBody(body, writer), token })
          )
          const deletion = server.request("DELETE", clientPath(clientId), { token })
          const position = round % 4
          const responses = await Promise.all([...updates.slice(0, position), deletion, ...updates.slice(position)])

          expectNoServerError(responses)
          for (const status of statusesOf(responses)) expect([200, 204, 401]).toContain(status)
          const rotated = responses.flatMap((response) => {
            const value = response.json?.registration_access_token
            return response.status === 200 && typeof value === "string" ? [value] : []
          })
          const owners = await Promise.all([token, ...rotated].map((candidate) => tokenOwner(server, candidate)))
          if (Option.isNone(await storedClient(server, clientId))) {
            // R7592-5-f: every RAT of a deleted client is gone from the store, including one a racing rotation issued.
            expect(
              owners.map(Option.isSome),
              `live RATs of deleted client, old first (${statusesOf(responses).join(",")})`
            ).toStrictEqual(owners.map(() => false))
          } else {
            // The client lives on: exactly one RAT is live, and it works.
            const live = [token, ...rotated].filter((_, i) => Option.isSome(owners[i] ?? Option.none()))
            expect(live).toHaveLength(1)
            expect((await server.request("GET", clientPath(clientId), { token: live[0] ?? "" })).status).toBe(200)
          }
        })
      )
    })

    it(`D15 R7592-2.1-c a delete authenticated before a rotation commits does not succeed with the rotated-away RAT (${backend.name})`, async () => {
      // The delete authenticates, then waits inside the store until the update has committed its rotation.
      const removeEntered = Effect.runSync(Deferred.make<void>())
      const rotationCommitted = Effect.runSync(Deferred.make<void>())
      const gatedStore = Layer.effect(
        ClientStore.ClientStore,
        Effect.map(ClientStore.ClientStore, (store) => ({
          ...store,
          remove: (...args: Parameters<ClientStore.ClientStoreService["remove"]>) =>
            Deferred.succeed(removeEntered, undefined).pipe(
              Effect.zipRight(Deferred.await(rotationCommitted)),
              Effect.zipRight(store.remove(...args))
            )
        }))
      ).pipe(Layer.provide(backend.fresh().store))
      const server = serve({
        credentials: Credentials.layer,
        store: gatedStore,
        clientEvents: ClientEvents.layer({ updated: () => Deferred.succeed(rotationCommitted, undefined) })
      })
      const { clientId, token, body } = await register(server)

      const deletion = server.request("DELETE", clientPath(clientId), { token })
      await Effect.runPromise(Deferred.await(removeEntered))
      const update = await server.request("PUT", clientPath(clientId), { json: writerBody(body, 1), token })
      const deleted = await deletion

      expect(update.status).toBe(200)
      const rotated = update.json?.registration_access_token
      if (typeof rotated !== "string") throw new Error(`no RAT in ${update.text}`)
      // After the rotation the old RAT must get 401 (D15), also for a request already in flight.
      expect(deleted.status).toBe(401)
      expect(deleted.json?.error).toBe("invalid_token")
      expect(versionOf(await storedClient(server, clientId))).toStrictEqual(Option.some(2))
      expect((await server.request("GET", clientPath(clientId), { token: rotated })).status).toBe(200)
    })

    it(`D22 ${racers} parallel registrations spend a 5-use initial access token exactly 5 times (${backend.name})`, async () => {
      const server = serverOn({ initialAccessTokens: InitialAccessTokens.layerIssued })
      const minted = await server.run(
        Effect.flatMap(InitialAccessTokens.InitialAccessTokens, (tokens) => tokens.mint({ maxUses: 5 }))
      )
      const initialToken = Redacted.value(minted.token)

      const responses = await Promise.all(
        Array.from({ length: racers }, (_, i) =>
          server.request("POST", "/register", {
            json: { ...webClient, client_name: `Applicant ${i}` },
            token: initialToken
          })
        )
      )

      expectNoServerError(responses)
      expect(countStatus(responses, 201), statusesOf(responses).join(",")).toBe(5)
      expect(countStatus(responses, 401)).toBe(racers - 5)
      for (const response of responses) {
        if (response.status === 401) expect(response.json?.error).toBe("invalid_token")
      }
      // Every 201 is a stored client; the token has no use left.
      for (const response of responses.filter((candidate) => candidate.status === 201)) {
        const clientId = response.json?.client_id
        if (typeof clientId !== "string") throw new Error(`no client_id in ${response.text}`)
        expect(Option.isSome(await storedClient(server, clientId))).toBe(true)
      }
      const record = await server.run(
        Effect.flatMap(ClientStore.ClientStore, (store) => store.findInitialToken(Credentials.sha256(initialToken)))
      )
      expect(Option.map(record, (found) => found.usesRemaining)).toStrictEqual(Option.some(0))
      const after = await server.request("POST", "/register", { json: webClient, token: initialToken })
      expect(after.status).toBe(401)
    })

    it(`D15 D20 an update whose rotation finds its RAT gone changes nothing: not the client row, not its RAT (${backend.name})`, async () => {
      const server = serverOn()
      const { clientId, token } = await register(server)
      const before = await storedClient(server, clientId)
      if (Option.isNone(before)) throw new Error("the registered client is not stored")
      const client = before.value
      const next: RegisteredClient = {
        ...client,
        metadata: { ...client.metadata, client_name: "Half Written" },
        version: client.version + 1
      }
      const newTokenId = `never-issued-${randomUUID()}`

      // The version matches; the RAT named for revocation is not the live one.
      const outcome = await server.run(
        Effect.flatMap(ClientStore.ClientStore, (store) =>
          store.update(next, client.version, { revoke: "not-a-live-token", issue: newTokenId })
        )
      )

      expect(outcome).toBe("conflict")
      const after = await storedClient(server, clientId)
      expect(Option.map(after, (found) => found.metadata)).toStrictEqual(Option.some(client.metadata))
      expect(versionOf(after)).toStrictEqual(Option.some(client.version))
      expect(await tokenOwner(server, token)).toStrictEqual(Option.some(clientId))
      const issuedOwner = await server.run(
        Effect.flatMap(ClientStore.ClientStore, (store) => store.findTokenOwner(newTokenId))
      )
      expect(issuedOwner).toStrictEqual(Option.none())
      const read = await server.request("GET", clientPath(clientId), { token })
      expect(read.status).toBe(200)
      expect(read.json?.client_name).toBe(webClient.client_name)
    })

    it(`D20 a store failure after the UPDATE ran answers 500 server_error and leaves the client and its RAT as they were (${backend.name})`, async () => {
      const { sql } = backend.fresh()
      // The real SQL store, except that each update fails after its own
      // transaction (a savepoint inside ours) has done all its writes.
      const failingStore = Layer.effect(
        ClientStore.ClientStore,
        Effect.gen(function* () {
          yield* Effect.orDie(SqlClientStore.migrate)
          const client = yield* SqlClient.SqlClient
          const store = yield* SqlClientStore.make
          const update: ClientStore.ClientStoreService["update"] = (next, expectedVersion, rotation) =>
            client
              .withTransaction(
                Effect.zipRight(
                  Effect.flatMap(store.update(next, expectedVersion, rotation), (outcome) =>
                    outcome === "updated" ? Effect.void : Effect.dieMessage(`the inner update was a ${outcome}`)
                  ),
                  Effect.fail(new StoreError({ operation: "injected failure after the update" }))
                )
              )
              .pipe(Effect.catchTag("SqlError", (cause) => Effect.fail(new StoreError({ operation: "update", cause }))))
          return { ...store, update }
        })
      ).pipe(Layer.provide(sql))
      const server = serve({ credentials: Credentials.layer, store: failingStore })
      const { clientId, token, body } = await register(server)
      const before = await storedClient(server, clientId)

      const response = await server.request("PUT", clientPath(clientId), { json: writerBody(body, 1), token })

      expect(response.status).toBe(500)
      expect(response.json?.error).toBe("server_error")
      expect(response.text).not.toMatch(/injected|StoreError|SqlError/)
      const after = await storedClient(server, clientId)
      expect(Option.map(after, (found) => found.metadata)).toStrictEqual(Option.map(before, (found) => found.metadata))
      expect(versionOf(after)).toStrictEqual(versionOf(before))
      // Rotation is on by default: the old RAT still works, so the swap was rolled back too.
      const read = await server.request("GET", clientPath(clientId), { token })
      expect(read.status).toBe(200)
      expect(read.json?.client_name).toBe(webClient.client_name)
    })
  })

/**
 * PostgreSQL runs transactions side by side, so the order in which an update
 * and a delete take their row locks matters. Here a rotating update has done
 * all its writes but not committed yet (the window between its last statement
 * and COMMIT), and a delete of the same client starts meanwhile.
 */
const postgresLockSuite = (url: string) =>
  describe("Concurrency on PostgreSQL: a delete behind an uncommitted rotation", () => {
    it("R7592-5-f D19 a delete queued behind a committing rotation also removes the RAT the rotation issued (PostgreSQL)", async () => {
      const program = Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* SqlClientStore.migrate
        const store = yield* SqlClientStore.make
        const clientId = `lock-order-${randomUUID()}`
        const oldTokenId = `old-${randomUUID()}`
        const newTokenId = `new-${randomUUID()}`
        const client: RegisteredClient = {
          clientId,
          clientIdIssuedAt: 1_700_000_000,
          clientSecret: undefined,
          clientSecretExpiresAt: 0,
          metadata: { client_name: "Lock Order", grant_types: ["client_credentials"], response_types: [] },
          version: 1
        }
        expect(yield* store.insert(client, oldTokenId)).toBe("inserted")

        const written = yield* Deferred.make<void>()
        const commit = yield* Deferred.make<void>()
        // The store's own transaction becomes a savepoint in this one, which stays open until `commit`.
        const updater = yield* Effect.fork(
          sql.withTransaction(
            Effect.gen(function* () {
              const outcome = yield* store.update({ ...client, version: 2 }, 1, {
                revoke: oldTokenId,
                issue: newTokenId
              })
              yield* Deferred.succeed(written, undefined)
              yield* Deferred.await(commit)
              return outcome
            })
          )
        )
        yield* Deferred.await(written)
        const remover = yield* Effect.fork(store.remove(clientId))
        // Let the delete reach the lock the open update holds before the update commits.
        const waiting = sql<{ readonly waiting: number }>`SELECT count(*)::int AS waiting FROM pg_stat_activity
          WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'DELETE FROM dcr_%'`
        yield* waiting.pipe(
          Effect.flatMap((rows) => ((rows[0]?.waiting ?? 0) > 0 ? Effect.void : Effect.fail("not yet"))),
          Effect.retry({ schedule: Schedule.spaced("20 millis"), times: 100 }),
          Effect.ignore
        )
        yield* Deferred.succeed(commit, undefined)

        expect(yield* Fiber.join(updater)).toBe("updated")
        expect(yield* Fiber.join(remover)).toBe(true)
        expect(yield* store.findById(clientId)).toStrictEqual(Option.none())
        expect(yield* store.findTokenOwner(oldTokenId)).toStrictEqual(Option.none())
        // The token the committed rotation issued belongs to a client that no longer exists: it must be gone too.
        expect(yield* store.findTokenOwner(newTokenId)).toStrictEqual(Option.none())
      })
      await Effect.runPromise(program.pipe(Effect.provide(PgClient.layer({ url: Redacted.make(url) })), Effect.orDie))
    })
  })

concurrencySuite(sqlite)

if (pgUrl !== undefined) {
  concurrencySuite(postgres(pgUrl))
  postgresLockSuite(pgUrl)
} else {
  describe("Concurrency on PostgreSQL", () => {
    it.skip("needs EFFECT_DCR_TEST_PG_URL=postgres://… (set by .ci/run)", () => {})
  })
}
