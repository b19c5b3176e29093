/**
 * effect-dcr's Web-standard handler, `(Request) => Promise<Response>`, served
 * by a plain `node:http` server. The same `handler` drops into Hono
 * (`app.all("/oauth/*", (c) => handler(c.req.raw))`), a Next.js route
 * handler, Bun.serve or Deno.serve; here a small bridge turns Node's
 * request into a `Request` and the `Response` back.
 *
 * Run it with `npx tsx examples/fetch-handler.ts` (PORT defaults to 3002;
 * DATABASE_FILE keeps clients in SQLite, otherwise they live in memory):
 *
 *   curl -s -X POST http://127.0.0.1:3002/oauth/register \
 *     -H 'content-type: application/json' \
 *     -d '{"redirect_uris":["https://app.example/cb"]}'
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import { pathToFileURL } from "node:url"
import { ClientStore, Dcr, FetchHandler } from "effect-dcr"
import * as SqliteStore from "effect-dcr/SqliteStore"

/**
 * The bridge: `node:http` → `Request` → handler → `Response` → `node:http`.
 * The body is handed over as a stream, so the handler's size limit (D18)
 * applies before anything is buffered; when the handler stops reading, the
 * rest is drained (not the connection cut) so the answer still goes out.
 */
export const toNodeListener =
  (handler: FetchHandler.Handler) =>
  (req: IncomingMessage, res: ServerResponse): void => {
    // Every header as sent, repeats included (Headers joins them with ", ").
    const headers = new Headers()
    const raw = req.rawHeaders
    for (let i = 0; i + 1 < raw.length; i += 2) headers.append(raw[i] ?? "", raw[i + 1] ?? "")
    let open = true // false once the body ended or the handler stopped reading
    const drain = () => {
      open = false
      req.resume() // drop the rest unbuffered; the connection stays usable for the answer
    }
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        req.on("data", (chunk: Buffer) => {
          if (!open) return
          controller.enqueue(chunk)
          if ((controller.desiredSize ?? 0) <= 0) req.pause() // back-pressure: wait for pull
        })
        req.on("end", () => {
          if (open) controller.close()
          open = false
        })
        req.on("error", (error) => {
          if (open) controller.error(error)
          open = false
        })
      },
      pull: () => {
        req.resume()
      },
      cancel: drain
    })
    res.once("finish", drain) // a body the handler never read
    const hasBody = req.method !== "GET" && req.method !== "HEAD"
    // The origin is fixed: nothing reads it, and the Host header is never trusted (D17).
    const init = { method: req.method ?? "GET", headers, ...(hasBody ? { body, duplex: "half" } : {}) }
    Promise.resolve()
      .then(() => handler(new Request(`http://localhost${req.url ?? "/"}`, init)))
      .then(async (response) => {
        res.statusCode = response.status
        response.headers.forEach((value, name) => res.setHeader(name, value))
        res.end(new Uint8Array(await response.arrayBuffer()))
      })
      .catch(() => {
        if (!res.headersSent) res.writeHead(400).end() // e.g. a request target no URL can hold
      })
  }

const main = async () => {
  const port = Number(process.env.PORT ?? 3002)
  // The endpoints live under /oauth; publicUrl is that path's public URL (D17).
  const publicUrl = process.env.PUBLIC_URL ?? `http://127.0.0.1:${port}/oauth`
  const databaseFile = process.env.DATABASE_FILE
  // The services are built once, on a ManagedRuntime, not per request.
  const { handler, ready, dispose } = FetchHandler.fromLayer(
    Dcr.layer({
      server: { publicUrl },
      store: databaseFile === undefined ? ClientStore.layerMemory : SqliteStore.layer({ filename: databaseFile })
    }),
    { basePath: "/oauth" }
  )
  await ready // a bad configuration or an unreachable database stops us here
  const server = createServer(toNodeListener(handler))
  server.listen(port, "127.0.0.1", () => {
    console.log(`Listening on http://127.0.0.1:${port}/oauth (registration endpoint ${publicUrl}/register)`)
  })
  // Stop accepting, finish what is in flight, then close the store.
  const stop = () => server.close(() => void dispose().then(() => process.exit(0)))
  process.once("SIGINT", stop)
  process.once("SIGTERM", stop)
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    console.error(error)
    process.exit(1)
  })
}
