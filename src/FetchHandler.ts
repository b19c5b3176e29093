/**
 * A Web-standard handler, `(request: Request) => Promise<Response>`, over
 * `Protocol.handle`: for Hono, Next.js route handlers, Bun, Deno, Cloudflare
 * Workers-style hosts and anything else that speaks Fetch.
 *
 * ```ts
 * const { handler, ready, dispose } = FetchHandler.fromLayer(
 *   Dcr.layer({ server: { publicUrl: "https://as.example.com/oauth" } }),
 *   { basePath: "/oauth" }
 * )
 * await ready // fails if the services could not be built
 * app.all("/oauth/*", (c) => handler(c.req.raw))
 * ```
 *
 * The services are built once (a `ManagedRuntime`, or the runtime `make` runs
 * on), never per request (DESIGN §5).
 *
 * @since 0.1.0
 */
import { Effect, type Layer, ManagedRuntime, Runtime } from "effect"
import { handle, handleLogged, type ProtocolRequest, type Services } from "./Protocol.js"
import { InvalidRequest, NotFound, type ProtocolResponse, serverError, toResponse } from "./ProtocolError.js"
import { ServerMetadata } from "./ServerMetadata.js"

/**
 * A Fetch handler.
 *
 * @since 0.1.0
 * @category models
 */
export type Handler = (request: Request) => Promise<Response>

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * Where the endpoints are mounted, e.g. `/oauth`: the protocol sees the
   * request's path and query relative to it, so `/oauth/register` is the
   * registration endpoint. Default: the root. Requests outside it get 404.
   * Set `publicUrl` to the public URL of this path (D17).
   */
  readonly basePath?: string | undefined
  /** One structured log line per request (`Protocol.handleLogged`); default false. */
  readonly accessLog?: boolean | undefined
  /**
   * The client's address, for the registration rate limit: a `Request` does
   * not carry one, so the host says where to find it (e.g. a trusted proxy's
   * header, or its framework's connection info).
   */
  readonly remoteAddress?: ((request: Request) => string | undefined) | undefined
}

/**
 * A handler on its own `ManagedRuntime`, from `fromLayer`.
 *
 * @since 0.1.0
 * @category models
 */
export interface WebHandler {
  readonly handler: Handler
  /**
   * Resolves once the services are built; rejects with the failure if they
   * cannot be. Until then requests wait; after a failure they get D20's 500.
   * Await it at start-up to fail fast.
   */
  readonly ready: Promise<void>
  /** Releases the services (closes the store). Call it once the host stops serving. */
  readonly dispose: () => Promise<void>
}

/** "/oauth/" → "/oauth", "/" → "". */
const normalizeBasePath = (basePath: string | undefined): string => {
  if (basePath === undefined) return ""
  let base = basePath.startsWith("/") ? basePath : "/" + basePath
  while (base.endsWith("/")) base = base.slice(0, -1)
  return base
}

/** The path and query below `base`, or undefined when the request is outside it. */
const relativeUrl = (url: URL, base: string): string | undefined => {
  const path = url.pathname
  if (base === "") return path + url.search
  return path === base || path.startsWith(base + "/") ? path.slice(base.length) + url.search : undefined
}

const needsBody = (method: string, contentType: string | null): boolean =>
  method === "POST" ||
  method === "PUT" ||
  (contentType !== null && contentType.toLowerCase().startsWith("application/x-www-form-urlencoded"))

type Body =
  | { readonly _tag: "Read"; readonly body: Uint8Array | undefined }
  | { readonly _tag: "TooLarge" }
  | { readonly _tag: "Unreadable" }

const tooLarge: Body = { _tag: "TooLarge" }

/** Tells the sender we stop reading; a stream already closed or errored is fine. */
const discard = (stream: ReadableStream<Uint8Array> | ReadableStreamDefaultReader<Uint8Array>): void => {
  stream.cancel().catch(() => undefined)
}

/**
 * Reads the body without buffering more than `limit` bytes (D18): a declared
 * length over the limit is refused unread, and an undeclared one is read
 * chunk by chunk and abandoned as soon as it passes the limit.
 */
const readBody = async (request: Request, limit: number): Promise<Body> => {
  const stream = request.body
  if (stream === null) return { _tag: "Read", body: undefined }
  const declared = request.headers.get("content-length")
  if (declared !== null && Number(declared) > limit) {
    discard(stream)
    return tooLarge
  }
  const reader = stream.getReader()
  const chunks: Array<Uint8Array> = []
  let size = 0
  try {
    for (;;) {
      const chunk = await reader.read()
      if (chunk.done) break
      size += chunk.value.byteLength
      if (size > limit) {
        discard(reader)
        return tooLarge
      }
      chunks.push(chunk.value)
    }
  } catch {
    // The sender went away mid-body: nobody is left to read the answer.
    return { _tag: "Unreadable" }
  }
  if (size === 0) return { _tag: "Read", body: undefined }
  if (chunks.length === 1) return { _tag: "Read", body: chunks[0] }
  const body = new Uint8Array(size)
  let offset = 0
  for (const chunk of chunks) {
    body.set(chunk, offset)
    offset += chunk.byteLength
  }
  return { _tag: "Read", body }
}

/**
 * Converts a protocol response to a Fetch `Response`: 204 (and any other
 * empty answer) without a body, JSON with the protocol's headers otherwise.
 *
 * @since 0.1.0
 * @category conversions
 */
export const toFetchResponse = (response: ProtocolResponse): Response => {
  const headers = new Headers(response.headers)
  if (response.body !== undefined && !headers.has("content-type")) headers.set("content-type", "application/json")
  return new Response(response.body ?? null, { status: response.status, headers })
}

const failed = (): Response => toFetchResponse(serverError)

const optional = (value: string | null): string | undefined => (value === null ? undefined : value)

/**
 * `make` with options (`basePath`, `accessLog`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeWith = (options: Options = {}): Effect.Effect<Handler, never, Services> =>
  Effect.gen(function* () {
    const runtime = yield* Effect.runtime<Services>()
    const server = yield* ServerMetadata
    const base = normalizeBasePath(options.basePath)
    const limit = server.maxBodyBytes
    const run = Runtime.runPromise(runtime)
    const respond = options.accessLog === true ? handleLogged : handle

    return async (request) => {
      let url: string | undefined
      try {
        url = relativeUrl(new URL(request.url), base)
      } catch {
        url = undefined
      }
      if (url === undefined) {
        if (request.body !== null) discard(request.body)
        return toFetchResponse(toResponse(new NotFound(), server))
      }
      const headers = request.headers
      const contentType = headers.get("content-type")
      let read: Body = { _tag: "Read", body: undefined }
      if (needsBody(request.method, contentType)) read = await readBody(request, limit)
      else if (request.body !== null) discard(request.body) // e.g. a DELETE with a body: never read
      if (read._tag === "Unreadable") {
        return toFetchResponse(
          toResponse(new InvalidRequest({ description: "the request body could not be read" }), server)
        )
      }
      const authorization = headers.get("authorization")
      const protocolRequest: ProtocolRequest = {
        method: request.method,
        url,
        // A Fetch `Headers` joins repeated headers with ", ": the joined value
        // is not a valid Bearer credential and is refused (D6) as malformed.
        authorization: authorization === null ? [] : [authorization],
        contentType: optional(contentType),
        body: read._tag === "Read" ? read.body : undefined,
        bodyTooLarge: read._tag === "TooLarge",
        origin: optional(headers.get("origin")),
        accessControlRequestMethod: optional(headers.get("access-control-request-method")),
        requestId: optional(headers.get("x-request-id")),
        remoteAddress: options.remoteAddress?.(request)
      }
      // The request's abort signal is deliberately not wired to interruption:
      // a write the client stopped waiting for still completes or rolls back
      // as a whole, as with the other adapters.
      return run(respond(protocolRequest)).then(toFetchResponse, failed)
    }
  })

/**
 * Makes a handler that runs each request on the current runtime, so the
 * services are built once, not per request. Mirrors `NodeHandler.make`: run
 * it on a `ManagedRuntime` and keep the handler.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<Handler, never, Services> = Effect.suspend(() => makeWith())

/**
 * A handler on a `ManagedRuntime` built from `layer` (for example
 * `Dcr.layer(…)`), with `dispose` to release it. The layer is built once,
 * starting at once; requests that arrive before it is ready wait for it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromLayer = <E>(layer: Layer.Layer<Services, E>, options: Options = {}): WebHandler => {
  const runtime = ManagedRuntime.make(layer)
  const built = runtime.runPromise(makeWith(options))
  const ready = built.then(() => undefined)
  // Surfaced through `ready`; not an unhandled rejection when nobody awaits it.
  ready.catch(() => undefined)
  return {
    handler: (request) => built.then((handler) => handler(request), failed),
    ready,
    dispose: () => runtime.dispose()
  }
}
