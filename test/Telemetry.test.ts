/**
 * With OTEL_EXPORTER_OTLP_ENDPOINT set, the server exports the spans of the
 * programs and their steps to an OTLP/HTTP collector (a local stand-in here).
 */
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { afterAll, describe, expect, it } from "vitest"
import { freePort, start } from "./support/process.js"

describe("OpenTelemetry export", () => {
  const received: Array<Buffer> = []
  let collector: Server | undefined
  afterAll(
    () => new Promise<void>((resolve) => (collector === undefined ? resolve() : collector.close(() => resolve())))
  )

  it("sends the spans of register and read, with their steps, to the collector on shutdown", async () => {
    collector = createServer((req, res) => {
      const chunks: Array<Buffer> = []
      req.on("data", (chunk: Buffer) => chunks.push(chunk))
      req.on("end", () => {
        if (req.url === "/v1/traces") received.push(Buffer.concat(chunks))
        res.writeHead(200, { "content-type": "application/json" }).end("{}")
      })
    })
    await new Promise<void>((resolve) => collector?.listen(0, "127.0.0.1", () => resolve()))
    const address = collector.address()
    if (address === null || typeof address === "string") throw new Error("no collector address")
    const collectorUrl = `http://127.0.0.1:${(address satisfies AddressInfo).port}`

    const port = await freePort()
    const server = await start(
      "node",
      ["--import", "tsx", "src/bin.ts", "serve", "--otlp-endpoint", collectorUrl],
      { PORT: String(port), DATABASE_URL: "memory:", ACCESS_LOG: "false" },
      /registration endpoint: .*\n/
    )
    const created = await fetch(`http://127.0.0.1:${port}/register`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ grant_types: ["client_credentials"] })
    })
    expect(created.status).toBe(201)
    const body: unknown = await created.json()
    if (
      typeof body !== "object" ||
      body === null ||
      !("registration_client_uri" in body) ||
      !("registration_access_token" in body)
    ) {
      throw new Error("unexpected registration response")
    }
    const read = await fetch(String(body.registration_client_uri), {
      headers: { authorization: `Bearer ${String(body.registration_access_token)}` }
    })
    expect(read.status).toBe(200)
    await server.stop()
    const exported = Buffer.concat(received).toString("latin1")
    for (const span of [
      "Registration.register",
      "MetadataValidator.validate",
      "ClientStore.insert",
      "ClientConfiguration.read",
      "TokenAuthenticator.authenticate",
      "ClientLookup.lookup",
      "PermissionPolicy.check"
    ]) {
      expect(exported).toContain(span)
    }
    // Span data never carries the token.
    expect(exported).not.toContain(String(body.registration_access_token))
  })
})
