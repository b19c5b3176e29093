/**
 * A `node:http` request listener over `Protocol.handle`, for servers that are
 * not Effect servers and for the standalone server (DESIGN §2: it costs far
 * less per request than going through `@effect/platform-node`'s server).
 *
 * @since 0.1.0
 */
import type { IncomingMessage, ServerResponse } from "node:http"
import { Effect, Runtime } from "effect"
import { handle, handleLogged, type ProtocolRequest, type Services } from "./Protocol.js"
import type { ProtocolResponse } from "./ProtocolError.js"
import { ServerMetadata } from "./ServerMetadata.js"

/**
 * @since 0.1.0
 * @category models
 */
export type Listener = (request: IncomingMessage, response: ServerResponse) => void

const header = (value: string | ReadonlyArray<string> | undefined): string | undefined =>
  typeof value === "string" ? value : value?.[0]

/**
 * Every `Authorization` value. Node folds repeated `Authorization` headers
 * into the first in `headers`; D6 must see them all, so the raw headers are
 * scanned — only when there is one at all, which is cheaper than building
 * `headersDistinct` on every request.
 */
const authorizationOf = (req: IncomingMessage): ReadonlyArray<string> => {
  const first = req.headers.authorization
  if (first === undefined) return []
  const raw = req.rawHeaders
  const values: Array<string> = []
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]
    if (name !== undefined && name.length === 13 && name.toLowerCase() === "authorization")
      values.push(raw[i + 1] ?? "")
  }
  return values.length === 0 ? [first] : values
}

const send = (res: ServerResponse, response: ProtocolResponse): void => {
  // With a Content-Length, Node writes status line, headers and body in one
  // go instead of chunked framing (profiling showed writev at 15 % of a read).
  const body = response.body
  if (body === undefined) {
    res.writeHead(response.status, response.headers)
    res.end()
    return
  }
  const bytes = Buffer.from(body, "utf8")
  res.setHeader("content-length", bytes.length)
  res.writeHead(response.status, response.headers)
  res.end(bytes)
}

/**
 * Makes a listener that runs each request on the current runtime, so the
 * services are built once, not per request.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<Listener, never, Services> = Effect.suspend(() => makeWith({ accessLog: false }))

/**
 * `make` with options: `accessLog` logs one structured line per request
 * (`Protocol.handleLogged`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeWith = (options: { readonly accessLog: boolean }): Effect.Effect<Listener, never, Services> =>
  Effect.gen(function* () {
    const runtime = yield* Effect.runtime<Services>()
    const server = yield* ServerMetadata
    const limit = server.maxBodyBytes
    // runCallback: no promise per request, the answer is written from the exit.
    const run = Runtime.runCallback(runtime)
    const respond = options.accessLog ? handleLogged : handle

    const dispatch = (req: IncomingMessage, res: ServerResponse, body: Uint8Array | undefined, tooLarge: boolean) => {
      const request: ProtocolRequest = {
        method: req.method ?? "GET",
        url: req.url ?? "/",
        // Node keeps only the first of repeated Authorization headers in
        // `headers`; D6 needs to see them all.
        authorization: authorizationOf(req),
        contentType: req.headers["content-type"],
        body,
        bodyTooLarge: tooLarge,
        origin: req.headers.origin,
        requestId: header(req.headers["x-request-id"]),
        remoteAddress: req.socket.remoteAddress,
        accessControlRequestMethod: header(req.headers["access-control-request-method"])
      }
      run(respond(request), {
        onExit: (exit) => {
          if (exit._tag === "Failure") {
            res.writeHead(500).end()
            return
          }
          if (tooLarge) res.setHeader("connection", "close")
          send(res, exit.value)
        }
      })
    }

    return (req, res) => {
      const declared = req.headers["content-length"]
      if (declared !== undefined && Number(declared) > limit) {
        // D18: refused without reading a byte of it.
        dispatch(req, res, undefined, true)
        res.once("finish", () => req.destroy())
        return
      }
      // No body announced (a GET, a DELETE): answer without waiting for "end".
      if (declared === undefined && req.headers["transfer-encoding"] === undefined) {
        req.resume()
        dispatch(req, res, undefined, false)
        return
      }
      const chunks: Array<Buffer> = []
      let size = 0
      let tooLarge = false
      req.on("data", (chunk: Buffer) => {
        if (tooLarge) return
        size += chunk.length
        if (size > limit) {
          tooLarge = true
          chunks.length = 0
          req.pause()
          dispatch(req, res, undefined, true)
          res.once("finish", () => req.destroy())
          return
        }
        chunks.push(chunk)
      })
      req.on("end", () => {
        if (tooLarge) return
        dispatch(req, res, size === 0 ? undefined : Buffer.concat(chunks, size), false)
      })
      req.on("error", () => {
        if (!res.headersSent) res.destroy()
      })
    }
  })
