/**
 * Several standalone servers (`src/bin.ts serve`, as `npm start` runs them) sharing one
 * PostgreSQL database: what one instance writes, every other sees at once,
 * and concurrent updates spread over instances still serialize (D15). Runs
 * only when EFFECT_DCR_TEST_PG_URL names a database (CI always sets it).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { updateBodyFrom } from "./support/http.js"
import { parseObject } from "./support/json.js"
import { pgUrl } from "./support/pg.js"
import { freePort, start, type Started } from "./support/process.js"

interface Instance {
  readonly url: string
  readonly process: Started
}

interface Reply {
  readonly status: number
  readonly text: string
  readonly json: Record<string, unknown> | undefined
}

/** Starts `src/bin.ts` on a free port against `databaseUrl`; its PUBLIC_URL is its own address. */
const startInstance = async (databaseUrl: string, env: Record<string, string> = {}): Promise<Instance> => {
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const started = await start(
    "node",
    ["--import", "tsx", "src/bin.ts", "serve"],
    { PORT: String(port), DATABASE_URL: databaseUrl, PUBLIC_URL: url, ...env },
    /registration endpoint: .*\n/
  )
  return { url, process: started }
}

const call = async (
  method: string,
  url: string,
  init: { readonly token?: string; readonly json?: unknown } = {}
): Promise<Reply> => {
  const headers = new Headers()
  if (init.token !== undefined) headers.set("authorization", `Bearer ${init.token}`)
  let body: string | undefined
  if (init.json !== undefined) {
    headers.set("content-type", "application/json")
    body = JSON.stringify(init.json)
  }
  const response = await fetch(url, { method, headers, ...(body === undefined ? {} : { body }) })
  const text = await response.text()
  return { status: response.status, text, json: text === "" ? undefined : parseObject(text) }
}

/** The same configuration endpoint path, on another instance. */
const on = (instance: Instance, registrationClientUri: string): string => {
  const uri = new URL(registrationClientUri)
  return `${instance.url}${uri.pathname}`
}

const stringMember = (reply: Reply, member: string): string => {
  const value = reply.json?.[member]
  if (typeof value !== "string") throw new Error(`no ${member} in ${reply.status} ${reply.text}`)
  return value
}

const client = {
  redirect_uris: ["https://client.example.org/callback"],
  client_name: "Shared Client",
  scope: "openid profile"
}

const multiInstanceSuite = (databaseUrl: string) =>
  describe("several server processes on one PostgreSQL database", () => {
    // a, b: RAT rotation off; c: the default, rotation on.
    const instances: Array<Instance> = []
    const instance = (index: number): Instance => {
      const found = instances[index]
      if (found === undefined) throw new Error(`instance ${index} did not start`)
      return found
    }

    beforeAll(async () => {
      // Started together: their migrations race on one database, as in a rolling deploy.
      const started = await Promise.allSettled([
        startInstance(databaseUrl, { RAT_ROTATION: "false" }),
        startInstance(databaseUrl, { RAT_ROTATION: "false" }),
        startInstance(databaseUrl)
      ])
      for (const result of started) if (result.status === "fulfilled") instances.push(result.value)
      const failed = started.find((result) => result.status === "rejected")
      if (failed !== undefined) throw failed.reason
    }, 30_000)

    afterAll(async () => {
      await Promise.all(instances.map((running) => running.process.stop()))
    })

    it("R7592-2 register on one instance, read and update on another, delete on a third: all consistent", async () => {
      const [a, b, c] = [instance(0), instance(1), instance(2)]

      const registered = await call("POST", `${a.url}/register`, { json: client })
      expect(registered.status, registered.text).toBe(201)
      const clientId = stringMember(registered, "client_id")
      const token = stringMember(registered, "registration_access_token")
      const uri = stringMember(registered, "registration_client_uri")
      // D17: each instance names itself in the URIs it gives out.
      expect(uri).toBe(`${a.url}/register/${clientId}`)

      // Read on C: the very client A stored.
      const read = await call("GET", on(c, uri), { token })
      expect(read.status, read.text).toBe(200)
      expect(read.json?.client_id).toBe(clientId)
      expect(read.json?.client_name).toBe("Shared Client")
      expect(read.json?.client_secret).toBe(registered.json?.client_secret)
      expect(read.json?.registration_client_uri).toBe(`${c.url}/register/${clientId}`)

      // Update on C (rotation on): the new RAT works everywhere, the old one nowhere (D15).
      const updated = await call("PUT", on(c, uri), {
        token,
        json: updateBodyFrom(read.json ?? {}, { client_name: "Renamed on C", contacts: ["ops@example.org"] })
      })
      expect(updated.status, updated.text).toBe(200)
      const rotated = stringMember(updated, "registration_access_token")
      expect(rotated).not.toBe(token)
      for (const other of [a, b]) {
        const stale = await call("GET", on(other, uri), { token })
        expect(stale.status).toBe(401)
        expect(stale.json?.error).toBe("invalid_token")
        const fresh = await call("GET", on(other, uri), { token: rotated })
        expect(fresh.status, fresh.text).toBe(200)
        expect(fresh.json?.client_name).toBe("Renamed on C")
        expect(fresh.json?.contacts).toStrictEqual(["ops@example.org"])
      }

      // Delete on B: gone for every instance (R7592-5-f).
      const deleted = await call("DELETE", on(b, uri), { token: rotated })
      expect(deleted.status, deleted.text).toBe(204)
      expect(deleted.text).toBe("")
      for (const other of [a, b, c]) {
        const after = await call("GET", on(other, uri), { token: rotated })
        expect(after.status).toBe(401)
        expect(after.json?.error).toBe("invalid_token")
      }
    })

    it("D15 concurrent updates spread over two instances (rotation off) all succeed and one body wins whole", async () => {
      const [a, b, c] = [instance(0), instance(1), instance(2)]
      const registered = await call("POST", `${b.url}/register`, {
        json: { ...client, contacts: ["first@example.org"] }
      })
      expect(registered.status, registered.text).toBe(201)
      const token = stringMember(registered, "registration_access_token")
      const uri = stringMember(registered, "registration_client_uri")
      const bodies = Array.from({ length: 20 }, (_, writer) =>
        updateBodyFrom(registered.json ?? {}, {
          client_name: `Writer ${writer}`,
          contacts: [`writer-${writer}@example.org`, `ops-${writer}@example.org`]
        })
      )

      const responses = await Promise.all(
        bodies.map((json, writer) => call("PUT", on(writer % 2 === 0 ? a : b, uri), { token, json }))
      )

      const failures = responses.filter((response) => response.status !== 200)
      expect(
        responses.map((response) => response.status),
        [
          ...failures.map((response) => `${response.status} ${response.text}`),
          // What the instances logged about it (D20: the cause goes to the log, not the body).
          ...[a, b].flatMap((running) =>
            running.process
              .output()
              .split("\n")
              .filter((line) => line.includes("level=ERROR"))
              .slice(0, 2)
          )
        ].join("\n")
      ).toStrictEqual(bodies.map(() => 200))
      responses.forEach((response, writer) => {
        expect(updateBodyFrom(response.json ?? {}, {})).toStrictEqual(bodies[writer])
        expect(response.json?.registration_access_token).toBe(token)
      })

      // Every instance sees the same final state: exactly one submitted body.
      const finals = await Promise.all([a, b, c].map((other) => call("GET", on(other, uri), { token })))
      for (const final of finals) expect(final.status, final.text).toBe(200)
      const states = finals.map((final) => updateBodyFrom(final.json ?? {}, {}))
      const winner = bodies.findIndex((candidate) => candidate.client_name === states[0]?.client_name)
      expect(winner).toBeGreaterThanOrEqual(0)
      for (const state of states) expect(state).toStrictEqual(bodies[winner])
    })
  })

if (pgUrl !== undefined) {
  multiInstanceSuite(pgUrl)
} else {
  describe("several server processes on one PostgreSQL database", () => {
    it.skip("needs EFFECT_DCR_TEST_PG_URL=postgres://… (set by .ci/run)", () => {})
  })
}
