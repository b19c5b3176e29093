/**
 * A bounded soak (issue 7): several concurrent workers send mixed valid,
 * invalid and racing traffic through `Protocol.handle` while the store fails
 * or stalls at random (`faulty`, before and after writes, inside the write's
 * transaction), on a SQLite file for SOAK_SECONDS (default 20; 60 for the
 * long run) and on PostgreSQL for a quarter of that (when
 * EFFECT_DCR_TEST_PG_URL names a database; CI always sets it).
 *
 * During the run every answer must have the SPEC shape, and every 500 must
 * be explained by a fault injected into that request or by a stall of the
 * store overlapping it (a stalled transaction holds locks others wait on).
 * A success the model rules out (two successes with one RAT, another
 * client's RAT accepted) or a refusal it rules out (a current RAT refused
 * while nothing else touched the client) is an inconsistency.
 *
 * Afterwards, with the store healed, every client is checked against the
 * model: with rollback, a request answered 500 changed nothing, so there is
 * no "uncertain" state — each client is exactly what its last successful
 * write left, its current RAT is live and every earlier one dead, deleted
 * clients and their RATs are gone, and the tables hold nothing else.
 * Inconsistencies must be 0.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import { FaultPlan, faulty, seededRandom, storeOperations } from "./support/faults.js"
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
  sqliteBackend,
  sqliteStoreBackend,
  tokenOwner,
  updateBodyFrom
} from "./support/harness.js"
import { pgUrl } from "./support/pg.js"

type Json = Record<string, unknown>

const soakSeconds = Math.max(1, Number(process.env.SOAK_SECONDS ?? "20") || 20)
const seed = Number(process.env.SOAK_SEED ?? Math.floor(Math.random() * 2 ** 31))
const workers = 6
const timeoutMillis = 500
const faultProbability = 0.03

interface SoakClient {
  readonly clientId: string
  rat: string
  readonly oldRats: Array<string>
  metadata: Json
  /** Every metadata the client has had, for reads racing updates. */
  readonly history: Array<Json>
  info: Json
  deleted: boolean
  /** Mutations in flight, and mutations started so far: what makes a 401 explainable. */
  inflight: number
  started: number
  /** What happened to it, in the order the answers came: for the report of an inconsistency. */
  readonly events: Array<string>
}

interface Figures {
  requests: number
  serverErrors: number
  timeoutsWithoutOwnFault: number
  races: number
  concurrentMutations: number
  inconsistencies: Array<string>
}

const soak = async (harness: Harness, plan: FaultPlan, seconds: number, label: string): Promise<Figures> => {
  const random = seededRandom(seed)
  const pick = <A>(list: ReadonlyArray<A>): A | undefined => list[Math.floor(random() * list.length)]
  const figures: Figures = {
    requests: 0,
    serverErrors: 0,
    timeoutsWithoutOwnFault: 0,
    races: 0,
    concurrentMutations: 0,
    inconsistencies: []
  }
  const clients: Array<SoakClient> = []
  const live = () => clients.filter((client) => !client.deleted)
  const readsToCheck: Array<{ readonly client: SoakClient; readonly metadata: Json }> = []
  let counter = 0
  const inconsistent = (what: string) => {
    if (figures.inconsistencies.length < 50) figures.inconsistencies.push(what)
    else figures.inconsistencies.push("…")
  }

  /** Sends, checks the shape, and explains any 500 by a fault in this request or a stall overlapping it. */
  const send = async (request: Request, client?: SoakClient): Promise<HarnessResponse> => {
    const tag = `${label}-${++counter}`
    const started = Date.now()
    const response = await harness.send(request, tag)
    const ended = Date.now()
    if (client !== undefined) {
      const token = request.authorization?.[0]?.slice(7, 13) ?? "-"
      const faults = plan
        .injectedInto(tag)
        .map((fault) => `${fault.kind} ${fault.point} ${fault.operation}`)
        .join(",")
      client.events.push(
        `${tag} ${request.method} rat=${token} → ${response.status} [${started % 100000}-${ended % 100000}]${faults === "" ? "" : ` faults: ${faults}`}`
      )
    }
    figures.requests++
    const problems = shapeProblems(request, response, { serverErrorAllowed: true })
    if (problems.length > 0) inconsistent(`${request.method} ${request.url}: ${problems.join("; ")}`)
    if (response.status === 500) {
      figures.serverErrors++
      if (plan.injectedInto(tag).length === 0) {
        // Not its own fault: it waited behind a stalled store (a stalled transaction holds
        // locks) or a loaded machine until operationTimeoutMillis cut it off. Either way D20
        // says nothing changed, and the final check holds the store to that.
        const stalled = plan.injected.some(
          (fault) => fault.kind === "stall" && fault.startedAt <= ended && (fault.endedAt ?? Infinity) >= started - 5
        )
        if (stalled || ended - started >= timeoutMillis - 5) figures.timeoutsWithoutOwnFault++
        else inconsistent(`${request.method} ${request.url}: a 500 without a fault or a timeout (${response.body})`)
      }
    }
    return response
  }

  const beginMutation = (client: SoakClient) => {
    if (client.inflight > 0) figures.concurrentMutations++
    client.inflight++
    client.started++
    return { inflightBefore: client.inflight - 1, startedBefore: client.started }
  }

  /** A 401 with this RAT is explained when it is no longer current, or something else touched the client. */
  const explains401 = (client: SoakClient, token: string, at: { inflightBefore: number; startedBefore: number }) =>
    client.deleted || client.rat !== token || at.inflightBefore > 0 || client.started > at.startedBefore

  const register = async (valid: boolean) => {
    const metadata: Json = {
      redirect_uris: [`https://soak${Math.floor(random() * 1000)}.example/cb`],
      client_name: `soak ${counter}`,
      token_endpoint_auth_method: pick(["client_secret_basic", "none", "client_secret_post"]),
      scope: "openid"
    }
    const bad: ReadonlyArray<Request> = [
      {
        method: "POST",
        url: "/register",
        contentType: "application/json",
        body: '{"client_name":"a","client_name":"b"}'
      },
      jsonRequest("POST", "/register", { ...metadata, redirect_uris: ["http://evil.example/cb"] }),
      { method: "POST", url: "/register", contentType: "text/plain", body: JSON.stringify(metadata) },
      {
        method: "POST",
        url: "/register",
        contentType: "application/json",
        body: `{"a":${"[".repeat(40)}${"]".repeat(40)}}`
      },
      { method: "POST", url: "/register", contentType: "application/json", body: "{" }
    ]
    const request = valid ? jsonRequest("POST", "/register", metadata) : (pick(bad) ?? bad[0]!)
    const response = await send(request)
    if (response.status === 500) return
    if (!valid) {
      if (response.status !== 400) inconsistent(`invalid registration answered ${response.status}`)
      return
    }
    if (response.status !== 201) return inconsistent(`valid registration answered ${response.status} ${response.body}`)
    const json = response.json ?? {}
    const clientId = json.client_id
    const rat = json.registration_access_token
    if (typeof clientId !== "string" || typeof rat !== "string") return inconsistent("a 201 without id or RAT")
    const stored = metadataOf(json)
    clients.push({
      clientId,
      rat,
      oldRats: [],
      metadata: stored,
      history: [stored],
      info: json,
      deleted: false,
      inflight: 0,
      started: 0,
      events: [`registered rat=${rat.slice(0, 6)}`]
    })
  }

  const read = async (client: SoakClient) => {
    const token = client.rat
    const at = { inflightBefore: client.inflight, startedBefore: client.started }
    const response = await send(bearer("GET", clientPath(client.clientId), token), client)
    if (response.status === 200) {
      if (response.json?.registration_access_token !== token) inconsistent("a read answered with another RAT")
      readsToCheck.push({ client, metadata: metadataOf(response.json) })
    } else if (response.status === 401) {
      if (!explains401(client, token, at)) {
        inconsistent(`read of ${client.clientId}: 401 with its current RAT: ${client.events.join(" | ")}`)
      }
    } else if (response.status !== 500) inconsistent(`read answered ${response.status}`)
  }

  const update = async (client: SoakClient, name: string) => {
    const token = client.rat
    const at = beginMutation(client)
    const response = await send(
      jsonRequest("PUT", clientPath(client.clientId), updateBodyFrom(client.info, { client_name: name }), token),
      client
    ).finally(() => client.inflight--)
    if (response.status === 200) {
      const rotated = response.json?.registration_access_token
      if (typeof rotated !== "string") return inconsistent("a 200 without a RAT")
      if (client.deleted || client.rat !== token) {
        return inconsistent(
          `update of ${client.clientId} succeeded with a RAT already used up (deleted=${client.deleted}): ${client.events.join(" | ")}`
        )
      }
      if (response.json?.client_name !== name) inconsistent("an update answered with another body")
      client.events.push(`  model: rat ${token.slice(0, 6)} → ${rotated.slice(0, 6)}`)
      client.oldRats.push(token)
      client.rat = rotated
      client.metadata = metadataOf(response.json)
      client.history.push(client.metadata)
      client.info = response.json ?? {}
    } else if (response.status === 401) {
      if (!explains401(client, token, at)) {
        inconsistent(`update of ${client.clientId}: 401 with its current RAT: ${client.events.join(" | ")}`)
      }
    } else if (response.status !== 500) inconsistent(`update answered ${response.status} ${response.body}`)
  }

  const remove = async (client: SoakClient) => {
    const token = client.rat
    const at = beginMutation(client)
    const response = await send(bearer("DELETE", clientPath(client.clientId), token), client).finally(
      () => client.inflight--
    )
    if (response.status === 204) {
      if (client.deleted || client.rat !== token) {
        return inconsistent(
          `delete of ${client.clientId} succeeded with a RAT already used up (deleted=${client.deleted}): ${client.events.join(" | ")}`
        )
      }
      client.deleted = true
      client.oldRats.push(token)
    } else if (response.status === 401) {
      if (!explains401(client, token, at)) {
        inconsistent(`delete of ${client.clientId}: 401 with its current RAT: ${client.events.join(" | ")}`)
      }
    } else if (response.status !== 500) inconsistent(`delete answered ${response.status}`)
  }

  /** D1: one client's RAT at another's endpoint is always refused, and changes nothing. */
  const foreign = async (holder: SoakClient, victim: SoakClient) => {
    const method = pick(["GET", "PUT", "DELETE"]) ?? "GET"
    const request =
      method === "PUT"
        ? jsonRequest(
            "PUT",
            clientPath(victim.clientId),
            updateBodyFrom(victim.info, { client_name: "hijack" }),
            holder.rat
          )
        : bearer(method, clientPath(victim.clientId), holder.rat)
    const response = await send(request)
    if (response.status !== 401 && response.status !== 500) {
      inconsistent(`D1: ${holder.clientId}'s RAT at ${victim.clientId} answered ${response.status}`)
    }
  }

  const stale = async (client: SoakClient) => {
    const token = client.oldRats.at(-1)
    if (token === undefined) return
    const response = await send(bearer("GET", clientPath(client.clientId), token))
    if (response.status !== 401 && response.status !== 500)
      inconsistent(`a rotated-away RAT answered ${response.status}`)
  }

  /** Several updates (and sometimes a delete) of one client with one RAT at once: at most one wins. */
  const burst = async (client: SoakClient) => {
    figures.races++
    const withDelete = random() < 0.3
    await Promise.all([
      update(client, `race a ${counter}`),
      update(client, `race b ${counter}`),
      update(client, `race c ${counter}`),
      ...(withDelete ? [remove(client)] : [])
    ])
    // The losers were told 401 and the model holds the winner; a second winner was flagged by `update`.
  }

  const worker = async (deadline: number) => {
    while (Date.now() < deadline) {
      const roll = random()
      const target = pick(live())
      if (target === undefined || roll < 0.25) await register(random() < 0.85)
      else if (roll < 0.4) await read(target)
      else if (roll < 0.62) await update(target, `worker ${counter}`)
      else if (roll < 0.66) await remove(target)
      else if (roll < 0.76) {
        const victim = pick(live().filter((client) => client !== target))
        if (victim !== undefined) await foreign(target, victim)
      } else if (roll < 0.82) await stale(pick(clients) ?? target)
      else if (roll < 0.9) await burst(target)
      else {
        // Junk the model knows the answer to without any state.
        const response = await send(
          pick<Request>([
            { method: "PATCH", url: clientPath(target.clientId), authorization: [`Bearer ${target.rat}`] },
            { method: "GET", url: clientPath(target.clientId) },
            { method: "GET", url: clientPath(target.clientId), authorization: ["Bearer a b"] },
            { method: "GET", url: "/nowhere" }
          ]) ?? { method: "GET", url: "/nowhere" }
        )
        if (response.status < 400) inconsistent(`junk answered ${response.status}`)
      }
    }
  }

  plan.randomly({
    probability: faultProbability,
    random: seededRandom(seed + 1),
    operations: storeOperations,
    stallShare: 0.08
  })
  const deadline = Date.now() + seconds * 1000
  await Promise.all(Array.from({ length: workers }, () => worker(deadline)))
  plan.disarm()

  // --- the full consistency check, on the healed store -----------------------
  for (const client of clients) {
    const stored = await findClient(harness, client.clientId)
    if (client.deleted) {
      if (stored !== undefined) inconsistent(`deleted client ${client.clientId} is stored`)
    } else if (stored === undefined) {
      inconsistent(`client ${client.clientId} is missing`)
    } else {
      try {
        expect(stored.metadata).toStrictEqual(client.metadata)
      } catch {
        inconsistent(
          `client ${client.clientId}: stored ${JSON.stringify(stored.metadata)}, model ${JSON.stringify(client.metadata)}`
        )
      }
    }
    const owner = await tokenOwner(harness, client.rat)
    if (owner !== (client.deleted ? undefined : client.clientId)) {
      inconsistent(`client ${client.clientId}: current RAT owned by ${String(owner)}`)
    }
    for (const old of client.oldRats) {
      if ((await tokenOwner(harness, old)) !== undefined) inconsistent(`client ${client.clientId}: an old RAT is live`)
    }
    // Recovered: the current RAT works without a restart.
    if (!client.deleted) {
      const response = await harness.send(bearer("GET", clientPath(client.clientId), client.rat))
      if (response.status !== 200)
        inconsistent(`client ${client.clientId}: read after the soak answered ${response.status}`)
    }
  }
  for (const { client, metadata } of readsToCheck) {
    if (!client.history.some((state) => JSON.stringify(state) === JSON.stringify(metadata))) {
      inconsistent(`a read of ${client.clientId} saw metadata no write produced`)
    }
  }
  const known = new Set(clients.map((client) => client.clientId))
  for (const clientId of harness.minted.clientIds) {
    if (!known.has(clientId) && (await findClient(harness, clientId)) !== undefined) {
      inconsistent(`client ${clientId} is stored although its registration failed`)
    }
  }
  // The tables hold exactly the live clients, each with exactly one live RAT.
  const rows = await harness.sql(
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const clientRows = yield* sql`SELECT client_id FROM dcr_clients`
      const tokenRows = yield* sql`SELECT client_id FROM dcr_clients WHERE registration_token_id IS NOT NULL`
      return { clients: clientRows.length, tokens: tokenRows.length }
    })
  )
  const liveCount = live().length
  if (rows.clients !== liveCount) inconsistent(`${rows.clients} client rows for ${liveCount} live clients`)
  if (rows.tokens !== liveCount) inconsistent(`${rows.tokens} RAT rows for ${liveCount} live clients`)
  return figures
}

const report: Array<string> = []

const soakSuite = (name: string, seconds: number, makeBackend: () => Promise<Backend>) =>
  describe(`Soak on ${name}`, () => {
    it(
      `${seconds} s of mixed, racing traffic with random store faults leaves every client exactly as the model says (${name})`,
      async () => {
        const backend = await makeBackend()
        const plan = new FaultPlan(timeoutMillis * 2)
        const harness = makeHarness(backend, {
          server: { operationTimeoutMillis: timeoutMillis },
          wrapStore: (store) => faulty(store, plan)
        })
        try {
          const figures = await soak(harness, plan, seconds, name)
          const stalls = plan.injected.filter((fault) => fault.kind === "stall").length
          const line =
            `soak ${name} (${seconds} s, seed ${seed}): ${figures.requests} requests, ` +
            `${plan.injected.length} faults injected (${stalls} stalls), ${figures.serverErrors} answered 500 ` +
            `(${figures.timeoutsWithoutOwnFault} of them timed out waiting, with no fault of their own), ` +
            `${figures.races} racing bursts + ${figures.concurrentMutations} concurrent mutations of one client, ` +
            `${figures.inconsistencies.length} inconsistencies`
          report.push(line)
          console.log(line)
          expect(figures.inconsistencies, line).toStrictEqual([])
          expect(plan.afterRollsBack).toBe(true)
          // The run must have exercised what it claims to.
          expect(figures.requests).toBeGreaterThan(50)
          expect(plan.injected.length).toBeGreaterThan(0)
          expect(figures.races).toBeGreaterThan(0)
        } finally {
          await harness.dispose()
          await backend.dispose()
        }
      },
      (seconds + 60) * 1000
    )
  })

/**
 * The soak's counterexample, shrunk to one deterministic interleaving: a
 * delete authenticates its RAT, then (held up here by a 300 ms stall before
 * it reads the client) an update with the same RAT commits and rotates it
 * away; the delete then reads the client at its new version, so its
 * compare-and-set succeeds. Both answer success: the rotated-away RAT
 * deleted the client (D15, R7592-2.1-c say it must get 401), and the
 * update's 200 handed out a RAT of a client that no longer exists.
 */
const raceSuite = (name: string, makeBackend: () => Promise<Backend>) =>
  describe(`Races found by the soak, replayed on ${name}`, () => {
    for (const split of [false, true]) {
      it(`D15 D19 R7592-2.1-c a delete that authenticated before a rotating update committed must not succeed with the rotated-away RAT${split ? " (a store without findByToken)" : ""} (${name})`, async () => {
        const backend = await makeBackend()
        const plan = new FaultPlan(300)
        plan.splitLookups = split
        const harness = makeHarness(backend, { wrapStore: (store) => faulty(store, plan) })
        try {
          const registered = await harness.send(
            jsonRequest("POST", "/register", { redirect_uris: ["https://a.example/cb"] })
          )
          expect(registered.status).toBe(201)
          const info = registered.json ?? {}
          const clientId = String(info.client_id)
          const token = String(info.registration_access_token)

          // The delete passes authentication, then waits: having read its token
          // and client in one step, or (split) before it reads the client.
          plan.arm(
            split
              ? { operation: "findById", point: "before", kind: "stall", times: 1 }
              : { operation: "findByToken", point: "after", kind: "stall", times: 1 }
          )
          const deletion = harness.send(bearer("DELETE", clientPath(clientId), token))
          while (plan.injected.length === 0) await new Promise((resolve) => setTimeout(resolve, 5))
          const update = await harness.send(
            jsonRequest("PUT", clientPath(clientId), updateBodyFrom(info, { client_name: "Rotated" }), token)
          )
          const deleted = await deletion

          expect(update.status, update.body).toBe(200)
          const rotated = String(update.json?.registration_access_token)
          // Either order is fine, both successes are not: the update rotated the RAT the delete presented.
          expect(deleted.status, "the rotated-away RAT deleted the client").toBe(401)
          expect((await findClient(harness, clientId))?.metadata).toMatchObject({ client_name: "Rotated" })
          expect(await tokenOwner(harness, rotated)).toBe(clientId)
        } finally {
          await harness.dispose()
          await backend.dispose()
        }
      })
    }
  })

raceSuite("memory", async () => memoryBackend())
raceSuite("SQLite", async () => sqliteBackend())
raceSuite("SqliteStore", async () => sqliteStoreBackend())
if (pgUrl !== undefined) {
  const url = pgUrl
  raceSuite("PostgreSQL", () => postgresBackend(url, "race"))
}

soakSuite("SQLite", soakSeconds, async () => sqliteBackend())
if (pgUrl !== undefined) {
  const url = pgUrl
  soakSuite("PostgreSQL", Math.max(3, Math.round(soakSeconds / 4)), () => postgresBackend(url, "soak"))
} else {
  describe("Soak on PostgreSQL", () => {
    it.skip("needs EFFECT_DCR_TEST_PG_URL=postgres://… (set by .ci/run)", () => {})
  })
}

afterAll(() => {
  if (report.length > 0) console.log(`soak summary:\n  ${report.join("\n  ")}`)
})
