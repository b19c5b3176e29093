/**
 * The `@effect/platform` adapter: an `HttpApp` and an `HttpRouter` that a host
 * mounts into its Effect HTTP server, under any prefix.
 *
 * ```ts
 * HttpRouter.empty.pipe(HttpRouter.mount("/oauth", PlatformHttp.router))
 * ```
 *
 * With the router mounted at `/oauth`, set the server option `publicUrl` to
 * the public URL of `/oauth` (D17): the endpoints are `/oauth/register` and
 * `/oauth/register/{client_id}`.
 *
 * @since 0.1.0
 */
import { IncomingMessage } from "node:http"
import { HttpBody, HttpIncomingMessage, HttpRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import type * as HttpApp from "@effect/platform/HttpApp"
import { Context, Effect, Option } from "effect"
import { handle, type ProtocolRequest, type Services } from "./Protocol.js"
import type { ProtocolResponse } from "./ProtocolError.js"
import { ServerMetadata } from "./ServerMetadata.js"
import { authorizationValues } from "./internal/bearer.js"
import { joinChunks } from "./internal/chunks.js"

/**
 * Every `Authorization` value. Node folds repeated `Authorization` headers
 * into the first one, which would hide D6's "several headers" case, so the
 * distinct values are read from the underlying message when there is one.
 * (A Fetch `Request` joins them with ", ", which the Bearer parser refuses.)
 */
const authorizationOf = (request: HttpServerRequest.HttpServerRequest): ReadonlyArray<string> => {
  const source = request.source
  if (source instanceof IncomingMessage) {
    // From rawHeaders, only when there is one: headersDistinct copies every header.
    if (source.headers.authorization === undefined) return []
    return authorizationValues(source.rawHeaders)
  }
  const value = request.headers.authorization
  return value === undefined ? [] : [value]
}

const needsBody = (method: string, contentType: string | undefined): boolean =>
  method === "POST" ||
  method === "PUT" ||
  (contentType !== undefined && contentType.toLowerCase().startsWith("application/x-www-form-urlencoded"))

/**
 * Reads the body without buffering more than the limit (D18): a declared
 * length over it is refused unread, and an undeclared one is cut off by the
 * platform's `MaxBodySize`.
 */
const readBody = (request: HttpServerRequest.HttpServerRequest, limit: number): Effect.Effect<ReadBody> => {
  const declared = request.headers["content-length"]
  if (declared !== undefined && Number(declared) > limit) {
    return Effect.succeed({ body: undefined, tooLarge: true })
  }
  // On Node, read the message ourselves: the platform's own limit destroys
  // the socket when it is passed, so the 413 would never reach the client.
  if (request.source instanceof IncomingMessage) return readNodeBody(request.source, limit)
  return request.arrayBuffer.pipe(
    HttpIncomingMessage.withMaxBodySize(Option.some(limit)),
    Effect.map((buffer) => ({ body: new Uint8Array(buffer), tooLarge: buffer.byteLength > limit })),
    // The only way reading fails before the limit is a broken connection,
    // whose answer nobody reads; over the limit, the answer is 413.
    Effect.orElseSucceed(() => ({ body: undefined, tooLarge: true }))
  )
}

interface ReadBody {
  readonly body: Uint8Array | undefined
  readonly tooLarge: boolean
}

/**
 * Reads a Node message up to `limit` bytes; past it, the rest is drained and
 * thrown away (never buffered) so that the answer still goes out.
 */
const readNodeBody = (source: IncomingMessage, limit: number): Effect.Effect<ReadBody> =>
  Effect.async((resume) => {
    const reading = new NodeBodyReading(source, limit, resume)
    return Effect.sync(() => reading.cleanup())
  })

/**
 * One body being read. A class with bound methods rather than closures: this
 * runs for every POST and PUT, and tsx (keepNames) renames each named closure
 * a function makes, every time it makes it.
 */
class NodeBodyReading {
  private readonly chunks: Array<Buffer> = []
  private size = 0
  constructor(
    private readonly source: IncomingMessage,
    private readonly limit: number,
    private readonly resume: (effect: Effect.Effect<ReadBody>) => void
  ) {
    this.onData = this.onData.bind(this)
    this.onEnd = this.onEnd.bind(this)
    this.onError = this.onError.bind(this)
    source.on("data", this.onData)
    source.on("end", this.onEnd)
    source.on("error", this.onError)
  }
  onData(chunk: Buffer): void {
    this.size += chunk.length
    if (this.size > this.limit) {
      this.cleanup()
      this.chunks.length = 0
      this.source.resume()
      this.resume(Effect.succeed({ body: undefined, tooLarge: true }))
      return
    }
    this.chunks.push(chunk)
  }
  onEnd(): void {
    this.cleanup()
    this.resume(Effect.succeed({ body: joinChunks(this.chunks, this.size), tooLarge: false }))
  }
  /** A broken connection: nobody reads the answer. */
  onError(): void {
    this.cleanup()
    this.resume(Effect.succeed({ body: undefined, tooLarge: true }))
  }
  cleanup(): void {
    this.source.off("data", this.onData)
    this.source.off("end", this.onEnd)
    this.source.off("error", this.onError)
  }
}

/**
 * Bodiless platform responses, one per status and frozen headers object: the
 * protocol's headers are constants except where an answer carries something
 * of its own (a challenge, CORS), and a platform response is immutable, so
 * most answers start from one of these and only attach their body. Building
 * one copies the headers into the platform's `Headers`; attaching a body
 * copies them once more.
 */
const templates = new WeakMap<object, Map<number, HttpServerResponse.HttpServerResponse>>()

const templateFor = (status: number, headers: Readonly<Record<string, string>>) => {
  if (!Object.isFrozen(headers)) return HttpServerResponse.empty({ status, headers })
  let byStatus = templates.get(headers)
  if (byStatus === undefined) {
    byStatus = new Map()
    templates.set(headers, byStatus)
  }
  let template = byStatus.get(status)
  if (template === undefined) {
    template = HttpServerResponse.empty({ status, headers })
    byStatus.set(status, template)
  }
  return template
}

/**
 * Converts a protocol response to a platform response. The body stays a
 * string (with its length in bytes): `@effect/platform-node` hands it to
 * `ServerResponse.end`, which writes the head and the body in one write,
 * with no Buffer made for it.
 *
 * @since 0.1.0
 * @category conversions
 */
export const toServerResponse = (response: ProtocolResponse): HttpServerResponse.HttpServerResponse => {
  const template = templateFor(response.status, response.headers)
  return response.body === undefined
    ? template
    : HttpServerResponse.setBody(
        template,
        HttpBody.raw(response.body, {
          contentType: response.headers["content-type"] ?? "application/json",
          contentLength: Buffer.byteLength(response.body, "utf8")
        })
      )
}

/**
 * The endpoints as an `HttpApp`. It reads the request URL relative to where
 * it is mounted.
 *
 * @since 0.1.0
 * @category adapters
 */
export const httpApp: HttpApp.Default<never, Services> = Effect.flatMap(
  Effect.context<HttpServerRequest.HttpServerRequest | ServerMetadata>(),
  (context) => {
    // Without a generator: this runs on every request.
    const request = Context.get(context, HttpServerRequest.HttpServerRequest)
    const server = Context.get(context, ServerMetadata)
    const rateLimited = server.registrationRateLimit !== undefined
    const contentType = request.headers["content-type"]
    const answered = needsBody(request.method, contentType)
      ? Effect.flatMap(readBody(request, server.maxBodyBytes), ({ body, tooLarge }) =>
          handle(toProtocol(request, contentType, rateLimited, body, tooLarge))
        )
      : handle(toProtocol(request, contentType, rateLimited, undefined, false))
    return Effect.map(answered, toServerResponse)
  }
)

const toProtocol = (
  request: HttpServerRequest.HttpServerRequest,
  contentType: string | undefined,
  rateLimited: boolean,
  body: Uint8Array | undefined,
  tooLarge: boolean
): ProtocolRequest => ({
  method: request.method,
  url: request.url,
  authorization: authorizationOf(request),
  contentType,
  body,
  bodyTooLarge: tooLarge,
  origin: request.headers.origin,
  // The peer address costs a system call; only the registration rate limit reads it.
  remoteAddress: rateLimited ? Option.getOrUndefined(request.remoteAddress) : undefined,
  accessControlRequestMethod: request.headers["access-control-request-method"]
})

/**
 * The endpoints as an `HttpRouter` serving `/register`,
 * `/register/{client_id}` (all methods: the protocol answers 405 itself, D4)
 * RFC 8414's `/.well-known/oauth-authorization-server` and `/healthz`. Per RFC 8414 §3
 * the well-known URL sits at the host's root, before the issuer's path: when
 * the router is mounted under a prefix, also route that URL to `httpApp`.
 * Mount it with `HttpRouter.mount(prefix, router)`. It assumes the default
 * `registrationPath`; with another one, route `httpApp` yourself.
 *
 * @since 0.1.0
 * @category adapters
 */
export const router: HttpRouter.HttpRouter<never, Services> = HttpRouter.empty.pipe(
  HttpRouter.all("/register", httpApp),
  HttpRouter.all("/register/*", httpApp),
  HttpRouter.all("/.well-known/oauth-authorization-server", httpApp),
  HttpRouter.all("/.well-known/oauth-authorization-server/*", httpApp),
  HttpRouter.all("/healthz", httpApp)
)
