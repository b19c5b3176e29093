/**
 * A `node:http` request listener over `Protocol.handle`, for servers that are
 * not Effect servers and for the standalone server (DESIGN §2: it costs far
 * less per request than going through `@effect/platform-node`'s server).
 *
 * @since 0.1.0
 */
import type { IncomingMessage, ServerResponse } from "node:http"
import { Effect, type Exit, Runtime } from "effect"
import { handle, handleLogged, type ProtocolRequest, type Services } from "./Protocol.js"
import type { ProtocolResponse } from "./ProtocolError.js"
import { ServerMetadata } from "./ServerMetadata.js"
import { joinChunks } from "./internal/chunks.js"

/**
 * @since 0.1.0
 * @category models
 */
export type Listener = (request: IncomingMessage, response: ServerResponse) => void

/** What the protocol reads of a request's headers, from one pass over `rawHeaders`. */
interface Headers {
  /** Every `Authorization` value, in order: D6 must see repeated ones, which `req.headers` folds. */
  authorization: Array<string>
  contentType: string | undefined
  contentLength: string | undefined
  transferEncoding: boolean
  origin: string | undefined
  requestId: string | undefined
  accessControlRequestMethod: string | undefined
}

/**
 * Reads the headers the protocol needs straight from `rawHeaders`, the first
 * value of each (Node keeps the first of a repeated Content-Type or Origin
 * too), without building `req.headers`, which lower-cases and copies every
 * header of every request.
 */
const readHeaders = (raw: ReadonlyArray<string>): Headers => {
  const headers: Headers = {
    authorization: [],
    contentType: undefined,
    contentLength: undefined,
    transferEncoding: false,
    origin: undefined,
    requestId: undefined,
    accessControlRequestMethod: undefined
  }
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] ?? ""
    const value = raw[i + 1] ?? ""
    // Dispatch on the length first: most headers are none of these.
    switch (name.length) {
      case 6:
        if (headers.origin === undefined && name.toLowerCase() === "origin") headers.origin = value
        break
      case 12:
        if (headers.contentType === undefined && name.toLowerCase() === "content-type") headers.contentType = value
        else if (headers.requestId === undefined && name.toLowerCase() === "x-request-id") headers.requestId = value
        break
      case 13:
        if (name.toLowerCase() === "authorization") headers.authorization.push(value)
        break
      case 14:
        if (headers.contentLength === undefined && name.toLowerCase() === "content-length")
          headers.contentLength = value
        break
      case 17:
        if (name.toLowerCase() === "transfer-encoding") headers.transferEncoding = true
        break
      case 29:
        if (headers.accessControlRequestMethod === undefined && name.toLowerCase() === "access-control-request-method")
          headers.accessControlRequestMethod = value
        break
    }
  }
  return headers
}

const send = (res: ServerResponse, response: ProtocolResponse): void => {
  const body = response.body
  if (body === undefined) {
    res.writeHead(response.status, response.headers)
    res.end()
    return
  }
  // A string body with a Content-Length: Node joins it to the head and sends
  // both in one write, with no chunked framing and no Buffer copy of the body.
  res.setHeader("content-length", Buffer.byteLength(body, "utf8"))
  res.writeHead(response.status, response.headers)
  res.end(body, "utf8")
}

/**
 * What to do with a request's outcome. Made by a module-level function that
 * returns an unnamed closure: tsx (keepNames) renames every named closure a
 * function makes, on every request.
 */
const answerWith =
  (
    res: ServerResponse,
    tooLarge: boolean,
    queue: (res: ServerResponse, answer: ProtocolResponse) => void
  ): ((exit: Exit.Exit<ProtocolResponse>) => void) =>
  (exit) => {
    if (exit._tag === "Failure") {
      res.writeHead(500).end()
      return
    }
    if (tooLarge) res.setHeader("connection", "close")
    queue(res, exit.value)
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

    // Answers are written together once per turn of the event loop (in its
    // check phase, right after the poll phase that read the requests), not
    // one by one as each is ready: under load the writes of many connections
    // then go out back to back, which costs the kernel far less than
    // interleaving them with request parsing (measured: about a quarter of a
    // read's CPU). With one request in flight the answer waits for nothing.
    let waitingResponses: Array<ServerResponse> = []
    let waitingAnswers: Array<ProtocolResponse> = []
    const flush = () => {
      const responses = waitingResponses
      const answers = waitingAnswers
      waitingResponses = []
      waitingAnswers = []
      for (let i = 0; i < responses.length; i++) {
        const res = responses[i]
        const answer = answers[i]
        if (res === undefined || answer === undefined) continue
        try {
          send(res, answer)
        } catch {
          // One answer that cannot be written must not hold up the others.
          res.destroy()
        }
      }
    }
    const queue = (res: ServerResponse, answer: ProtocolResponse) => {
      if (waitingResponses.push(res) === 1) setImmediate(flush)
      waitingAnswers.push(answer)
    }

    // The peer address costs a system call; only the registration rate limit reads it.
    const wantsAddress = server.registrationRateLimit !== undefined

    const dispatch = (
      req: IncomingMessage,
      res: ServerResponse,
      headers: Headers,
      body: Uint8Array | undefined,
      tooLarge: boolean
    ) => {
      const request: ProtocolRequest = {
        method: req.method ?? "GET",
        url: req.url ?? "/",
        authorization: headers.authorization,
        contentType: headers.contentType,
        body,
        bodyTooLarge: tooLarge,
        origin: headers.origin,
        requestId: headers.requestId,
        remoteAddress: wantsAddress ? req.socket.remoteAddress : undefined,
        accessControlRequestMethod: headers.accessControlRequestMethod
      }
      run(respond(request), { onExit: answerWith(res, tooLarge, queue) })
    }

    return (req, res) => {
      const headers = readHeaders(req.rawHeaders)
      const declared = headers.contentLength
      if (declared !== undefined && Number(declared) > limit) {
        // D18: refused without reading a byte of it.
        dispatch(req, res, headers, undefined, true)
        res.once("finish", () => req.destroy())
        return
      }
      // No body announced (a GET, a DELETE): answer without waiting for "end".
      if (declared === undefined && !headers.transferEncoding) {
        req.resume()
        dispatch(req, res, headers, undefined, false)
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
          dispatch(req, res, headers, undefined, true)
          res.once("finish", () => req.destroy())
          return
        }
        chunks.push(chunk)
      })
      req.on("end", () => {
        if (tooLarge) return
        dispatch(req, res, headers, joinChunks(chunks, size), false)
      })
      req.on("error", () => {
        if (!res.headersSent) res.destroy()
      })
    }
  })
