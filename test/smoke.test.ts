import { describe, expect, it } from "vitest"
import { makeTestServer, register } from "./support/http.js"

describe("smoke", () => {
  it("registers and reads", async () => {
    const server = makeTestServer()
    const { clientId, token } = await register(server)
    const read = await server.request("GET", `/register/${clientId}`, { token })
    expect(read.status).toBe(200)
    expect(read.json?.client_id).toBe(clientId)
    await server.dispose()
  })
})
