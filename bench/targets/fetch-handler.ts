/**
 * The library through `FetchHandler.make`, a `(Request) => Promise<Response>`
 * handler, behind a minimal `node:http` bridge: the body is buffered, then a
 * `Request` is built, and the `Response` is written back. The bridge's own
 * cost is part of what this row measures, as it would be for any host that
 * runs a Fetch handler on Node.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import * as FetchHandler from "../../src/FetchHandler.js"
import { runDcrTarget } from "../lib/dcr-target.js"
import { closeServer, listen } from "../lib/target.js"

const toHeaders = (req: IncomingMessage): Headers => {
  const headers = new Headers()
  const raw = req.rawHeaders
  for (let i = 0; i + 1 < raw.length; i += 2) headers.append(raw[i] ?? "", raw[i + 1] ?? "")
  return headers
}

const bridge =
  (handler: FetchHandler.Handler, origin: string) =>
  (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => chunks.push(chunk))
    req.on("end", () => {
      const method = req.method ?? "GET"
      const body = chunks.length === 0 ? null : Buffer.concat(chunks)
      const request = new Request(origin + (req.url ?? "/"), { method, headers: toHeaders(req), body })
      handler(request)
        .then(async (response) => {
          const headers: Record<string, string> = {}
          response.headers.forEach((value, name) => {
            headers[name] = value
          })
          res.writeHead(response.status, headers)
          res.end(Buffer.from(await response.arrayBuffer()))
        })
        .catch(() => {
          if (!res.headersSent) res.writeHead(500)
          res.end()
        })
    })
  }

runDcrTarget(async (runtime, port) => {
  const handler = await runtime.runPromise(FetchHandler.make)
  const server = createServer(bridge(handler, `http://127.0.0.1:${port}`))
  await listen(server, port)
  return () => closeServer(server)
})
