/**
 * The transport-neutral HTTP face of effect-dcr: one function from a request
 * (method, URL, headers, body bytes) to a response (status, headers, body).
 * It routes, parses the Bearer credentials (RFC 6750 §2.1), enforces the body
 * rules (D18), runs the program, and renders every failure through
 * `ProtocolError.toResponse`. Adapters only translate to and from it.
 *
 * @since 0.1.0
 */
import { randomUUID } from "node:crypto"
import { Cause, Clock, Deferred, Effect, Exit, Fiber, Option, Redacted } from "effect"
import * as ClientConfiguration from "./ClientConfiguration.js"
import { type ClientInformation, toJsonText } from "./ClientInformation.js"
import {
  InvalidRequest,
  MethodNotAllowed,
  MissingToken,
  NotFound,
  noStoreHeaders,
  PayloadTooLarge,
  TooManyRequests,
  type ProtocolError,
  type ProtocolResponse,
  serverError,
  StoreError,
  toResponse
} from "./ProtocolError.js"
import { ClientStore } from "./ClientStore.js"
import { InitialAccessTokens, type RegistrationGrant } from "./InitialAccessTokens.js"
import * as Registration from "./Registration.js"
import { type ServerConfig, ServerMetadata } from "./ServerMetadata.js"
import { parseAuthorization } from "./internal/bearer.js"
import { type JsonObject, parseJsonObject } from "./internal/json.js"

/**
 * A request as every transport can describe it.
 *
 * @since 0.1.0
 * @category models
 */
export interface ProtocolRequest {
  /** The HTTP method, upper case. */
  readonly method: string
  /** Path and optional query, relative to where the endpoints are mounted (e.g. `/register/abc`). */
  readonly url: string
  /** Every `Authorization` header value, in order (several are an error, D6). */
  readonly authorization: ReadonlyArray<string>
  /** The `Content-Type` header, if any. */
  readonly contentType: string | undefined
  /** The body bytes; undefined when there is none. */
  readonly body: Uint8Array | undefined
  /** Set by an adapter that stopped reading a body larger than `maxBodyBytes` (D18). */
  readonly bodyTooLarge?: boolean | undefined
  /** The `Origin` header, for CORS (answered only when `corsOrigins` is configured). */
  readonly origin?: string | undefined
  /** The `Access-Control-Request-Method` header of a CORS preflight. */
  readonly accessControlRequestMethod?: string | undefined
  /** The `X-Request-Id` header, when a proxy set one: logged with the request. */
  readonly requestId?: string | undefined
  /** The client's network address, for the registration rate limit. */
  readonly remoteAddress?: string | undefined
}

/**
 * Every service the protocol runs on.
 *
 * @since 0.1.0
 * @category models
 */
export type Services =
  Registration.RegistrationServices | ClientConfiguration.ConfigurationServices | InitialAccessTokens

const jsonNoStoreHeaders: Readonly<Record<string, string>> = Object.freeze({
  "content-type": "application/json",
  ...noStoreHeaders
})

const informationResponse = (status: number, info: ClientInformation): ProtocolResponse => ({
  status,
  headers: jsonNoStoreHeaders,
  body: toJsonText(info)
})

// Failures with nothing request-specific in them are built once: building an
// error captures a stack trace, which costs more than the rest of a 404.
const notFound = new NotFound()
const missingToken = new MissingToken()
const getOnly = new MethodNotAllowed({ allow: ["GET"] })
const postOnly = new MethodNotAllowed({ allow: ["POST"] })

/** RFC 8414 §3: the metadata document lives below this path (plus the issuer's path, if any). */
const wellKnown = "/.well-known/oauth-authorization-server"

// The document depends only on the configuration: rendered once per configuration.
const discoveryResponses = new WeakMap<ServerConfig, ProtocolResponse>()
const discoveryResponse = (server: ServerConfig): ProtocolResponse => {
  let response = discoveryResponses.get(server)
  if (response === undefined) {
    response = {
      status: 200,
      headers: Object.freeze({ "content-type": "application/json", "cache-control": "public, max-age=300" }),
      body: JSON.stringify(server.discoveryDocument)
    }
    discoveryResponses.set(server, response)
  }
  return response
}

// --- registration rate limit ---------------------------------------------------

/** Per configuration: client address -> token bucket (tokens, last refill in ms). */
const buckets = new WeakMap<ServerConfig, Map<string, { tokens: number; at: number }>>()
const maxTrackedAddresses = 100_000

/**
 * Takes one registration from the address's bucket. Returns 0 when allowed,
 * else the seconds until one is available.
 */
const takeRegistration = (server: ServerConfig, address: string, now: number): number => {
  const limit = server.registrationRateLimit
  if (limit === undefined) return 0
  let table = buckets.get(server)
  if (table === undefined) {
    table = new Map()
    buckets.set(server, table)
  }
  const perMilli = limit.requests / (limit.perSeconds * 1000)
  const bucket = table.get(address) ?? { tokens: limit.requests, at: now }
  bucket.tokens = Math.min(limit.requests, bucket.tokens + (now - bucket.at) * perMilli)
  bucket.at = now
  if (bucket.tokens >= 1) {
    bucket.tokens -= 1
    if (table.size >= maxTrackedAddresses) {
      // Forget the addresses whose buckets have refilled: they are idle.
      for (const [key, value] of table) {
        if (value.tokens + (now - value.at) * perMilli >= limit.requests) table.delete(key)
      }
    }
    table.set(address, bucket)
    return 0
  }
  table.set(address, bucket)
  return Math.max(1, Math.ceil((1 - bucket.tokens) / perMilli / 1000))
}

// --- health ----------------------------------------------------------------

const healthPath = "/healthz"

const healthy: ProtocolResponse = Object.freeze({
  status: 200,
  headers: jsonNoStoreHeaders,
  body: JSON.stringify({ status: "ok" })
})
const unhealthy: ProtocolResponse = Object.freeze({
  status: 503,
  headers: jsonNoStoreHeaders,
  body: JSON.stringify({ status: "unavailable" })
})

/** `GET /healthz`: 200 when the store answers, 503 when it does not. */
const health: Effect.Effect<ProtocolResponse, never, ClientStore> = Effect.flatMap(ClientStore, (store) =>
  (store.ping ?? Effect.void).pipe(
    Effect.as(healthy),
    Effect.catchAllCause((cause) =>
      Effect.as(Effect.logWarning("health check: the store is unreachable", cause), unhealthy)
    )
  )
)

// --- CORS --------------------------------------------------------------------

const corsAllows = (allowed: ReadonlySet<string> | "*", origin: string): boolean =>
  allowed === "*" || allowed.has(origin)

const isPreflight = (request: ProtocolRequest, server: ServerConfig): boolean =>
  request.method === "OPTIONS" &&
  request.origin !== undefined &&
  request.accessControlRequestMethod !== undefined &&
  server.corsOrigins !== undefined &&
  corsAllows(server.corsOrigins, request.origin)

/** The answer to an allowed CORS preflight; `withCors` adds the origin. */
const preflight = (methods: ReadonlyArray<string>): ProtocolResponse => ({
  status: 204,
  headers: {
    ...noStoreHeaders,
    "access-control-allow-methods": methods.join(", "),
    "access-control-allow-headers": "Authorization, Content-Type",
    "access-control-max-age": "600"
  },
  body: undefined
})

const withCors = (
  response: ProtocolResponse,
  allowed: ReadonlySet<string> | "*" | undefined,
  origin: string
): ProtocolResponse => ({
  ...response,
  headers: {
    ...response.headers,
    "access-control-allow-origin": allowed === "*" ? "*" : origin,
    "access-control-expose-headers": "WWW-Authenticate, Allow",
    vary: "Origin"
  }
})

const noContent: ProtocolResponse = Object.freeze({ status: 204, headers: noStoreHeaders, body: undefined })

/** The methods the configuration endpoint serves under this configuration (D4), computed once per configuration. */
const methodsByConfig = new WeakMap<ServerConfig, ReadonlyArray<string>>()
const configurationMethods = (server: ServerConfig): ReadonlyArray<string> => {
  let methods = methodsByConfig.get(server)
  if (methods === undefined) {
    const list = ["GET"]
    if (server.updateEnabled) list.push("PUT")
    if (server.deleteEnabled) list.push("DELETE")
    methods = Object.freeze(list)
    methodsByConfig.set(server, methods)
  }
  return methods
}

/** True when the media type is `application/json`, whatever its parameters (D18). */
const isJsonMediaType = (contentType: string | undefined): boolean => {
  if (contentType === undefined) return false
  const semicolon = contentType.indexOf(";")
  const mediaType = (semicolon === -1 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase()
  return mediaType === "application/json"
}

const hasQueryToken = (query: string): boolean => new URLSearchParams(query).has("access_token")

/** D6: a token sent in a form body is a second, refused way of sending it. */
const hasFormBodyToken = (request: ProtocolRequest): boolean => {
  if (request.body === undefined || request.contentType === undefined) return false
  if (!request.contentType.toLowerCase().startsWith("application/x-www-form-urlencoded")) return false
  return new URLSearchParams(new TextDecoder().decode(request.body)).has("access_token")
}

const readBody = (request: ProtocolRequest, server: ServerConfig): Effect.Effect<JsonObject, ProtocolError> => {
  if (request.bodyTooLarge === true || (request.body !== undefined && request.body.length > server.maxBodyBytes)) {
    return Effect.fail(new PayloadTooLarge({ limit: server.maxBodyBytes }))
  }
  if (!isJsonMediaType(request.contentType)) {
    return Effect.fail(new InvalidRequest({ description: "the request body must be application/json" }))
  }
  const parsed = parseJsonObject(request.body ?? new Uint8Array(0))
  return parsed._tag === "Object"
    ? Effect.succeed(parsed.value)
    : Effect.fail(new InvalidRequest({ description: parsed.reason }))
}

/**
 * D5, D6: the registration access token from the Authorization header only.
 * A failure is returned, not raised: the caller is on the hot path and
 * continues synchronously with the token.
 */
const bearerToken = (
  request: ProtocolRequest,
  query: string
): Redacted.Redacted<string> | MissingToken | InvalidRequest => {
  if ((query !== "" && hasQueryToken(query)) || hasFormBodyToken(request)) {
    return new InvalidRequest({
      description: "the token must be sent only in the Authorization header",
      challenge: true
    })
  }
  const credential = parseAuthorization(request.authorization)
  switch (credential._tag) {
    case "Missing":
      return missingToken
    case "Malformed":
      return new InvalidRequest({ description: credential.reason, challenge: true })
    case "Token":
      return Redacted.make(credential.token)
  }
}

const isTokenFailure = (
  value: Redacted.Redacted<string> | MissingToken | InvalidRequest
): value is MissingToken | InvalidRequest => value instanceof MissingToken || value instanceof InvalidRequest

const bearerTokenEffect = (
  request: ProtocolRequest,
  query: string
): Effect.Effect<Redacted.Redacted<string>, MissingToken | InvalidRequest> => {
  const credential = bearerToken(request, query)
  return isTokenFailure(credential) ? Effect.fail(credential) : Effect.succeed(credential)
}

const ok = (info: ClientInformation): ProtocolResponse => informationResponse(200, info)
const created = (info: ClientInformation): ProtocolResponse => informationResponse(201, info)
const noGrant: Effect.Effect<RegistrationGrant | undefined> = Effect.succeed(undefined)

const route = (
  request: ProtocolRequest,
  server: ServerConfig
): Effect.Effect<ProtocolResponse, ProtocolError | StoreError, Services> => {
  const url = request.url
  const q = url.indexOf("?")
  const path = q === -1 ? url : url.slice(0, q)
  const query = q === -1 ? "" : url.slice(q + 1)
  const base = server.registrationPath

  if (path === healthPath) {
    return request.method === "GET" ? health : Effect.fail(getOnly)
  }
  if (path === base) {
    if (isPreflight(request, server)) return Effect.succeed(preflight(["POST"]))
    if (request.method !== "POST") return Effect.fail(postOnly)
    // Without a generator: registration is a hot path too.
    const registration = Effect.flatMap(InitialAccessTokens, (initialTokens) => {
      // D22: a missing initial access token is D5, a malformed one D6, a bad one 401.
      const granted: Effect.Effect<RegistrationGrant | undefined, ProtocolError | StoreError> =
        initialTokens.mode === "open"
          ? noGrant
          : Effect.flatMap(bearerTokenEffect(request, query), (credential) =>
              Effect.interruptible(initialTokens.authorize(credential))
            )
      return Effect.flatMap(granted, (grant) =>
        Effect.flatMap(readBody(request, server), (body) => Effect.map(Registration.register(body, grant), created))
      )
    })
    if (server.registrationRateLimit === undefined) return registration
    return Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const retryAfter = takeRegistration(server, request.remoteAddress ?? "unknown", now)
      return retryAfter > 0 ? Effect.fail(new TooManyRequests({ retryAfterSeconds: retryAfter })) : registration
    })
  }
  if (path === wellKnown || (server.issuerPath !== "" && path === wellKnown + server.issuerPath)) {
    return request.method === "GET" ? Effect.succeed(discoveryResponse(server)) : Effect.fail(getOnly)
  }
  if (!path.startsWith(base + "/")) return Effect.fail(notFound)
  const segment = path.slice(base.length + 1)
  if (segment === "" || segment.includes("/")) return Effect.fail(notFound)
  let clientId = segment
  if (segment.includes("%")) {
    try {
      clientId = decodeURIComponent(segment)
    } catch {
      return Effect.fail(notFound)
    }
  }

  const methods = configurationMethods(server)
  const method = request.method
  if (isPreflight(request, server)) return Effect.succeed(preflight(methods))
  if (!methods.includes(method)) return Effect.fail(new MethodNotAllowed({ allow: methods }))
  const credential = bearerToken(request, query)
  if (isTokenFailure(credential)) return Effect.fail(credential)
  switch (method) {
    case "GET":
      return Effect.map(ClientConfiguration.read(credential, clientId), ok)
    case "PUT":
      return Effect.flatMap(readBody(request, server), (body) =>
        Effect.map(ClientConfiguration.update(credential, clientId, body), ok)
      )
    default:
      return Effect.as(ClientConfiguration.remove(credential, clientId), noContent)
  }
}

/**
 * The operation timeout. The request runs uninterruptible except where the
 * programs mark it interruptible (reads, validation, the store write itself,
 * which rolls back when interrupted). Past the deadline it is interrupted and
 * its outcome awaited: a write that completed anyway is answered with its
 * success — never a 500 for a change that happened (D20) — and anything else
 * with the timeout failure.
 */
const withDeadline = <E, R>(
  routed: Effect.Effect<ProtocolResponse, E, R>,
  timeout: number
): Effect.Effect<ProtocolResponse, E | StoreError, R> =>
  Effect.gen(function* () {
    // The outcome goes into a Deferred as soon as the work has one: an
    // interrupted fiber's own exit is always "interrupted", even when its
    // uninterruptible part completed the write.
    const outcome = yield* Deferred.make<ProtocolResponse, E>()
    const fiber = yield* Effect.fork(Effect.uninterruptible(Effect.intoDeferred(routed, outcome)))
    const settled = yield* Effect.timeoutOption(Deferred.await(outcome), timeout)
    if (Option.isSome(settled)) return settled.value
    yield* Fiber.interrupt(fiber)
    const done = yield* Deferred.poll(outcome)
    const exit = Option.isSome(done) ? yield* Effect.exit(done.value) : undefined
    if (exit !== undefined && Exit.isSuccess(exit)) return exit.value
    return yield* Effect.fail(new StoreError({ operation: `a request that took longer than ${timeout} ms` }))
  })

/**
 * Handles one request. Never fails: protocol failures become their RFC
 * responses; a store failure or a defect becomes D20's 500, logged with its
 * cause and nothing of it sent.
 *
 * @since 0.1.0
 * @category handlers
 */
export const handle = (request: ProtocolRequest): Effect.Effect<ProtocolResponse, never, Services> =>
  Effect.flatMap(ServerMetadata, (server) => {
    const timeout = server.operationTimeoutMillis
    const routed = route(request, server)
    const bounded = timeout === undefined ? routed : withDeadline(routed, timeout)
    // One handler for failures and defects alike.
    const answered = Effect.catchAllCause(bounded, (cause) => {
      const failure = Cause.failureOption(cause)
      if (failure._tag === "Some" && failure.value._tag !== "StoreError") {
        return Effect.succeed(toResponse(failure.value, server))
      }
      const what = failure._tag === "Some" ? "client store failure" : "unexpected failure while handling a request"
      return Effect.as(Effect.logError(what, cause), serverError)
    })
    // CORS costs nothing unless origins are configured and the request has one.
    const origin = request.origin
    return origin !== undefined && server.corsOrigins !== undefined && corsAllows(server.corsOrigins, origin)
      ? Effect.map(answered, (response) => withCors(response, server.corsOrigins, origin))
      : answered
  })

const requestIdPattern = /^[A-Za-z0-9._:-]{1,128}$/

/**
 * `handle`, then one structured log line per request: request id, method,
 * path (never the query, which could carry a token), status and duration.
 * Logs inside the request carry the same request id. Nothing secret is
 * logged: headers and bodies never are.
 *
 * @since 0.1.0
 * @category handlers
 */
export const handleLogged = (request: ProtocolRequest): Effect.Effect<ProtocolResponse, never, Services> =>
  Effect.gen(function* () {
    const started = yield* Clock.currentTimeNanos
    const requestId =
      request.requestId !== undefined && requestIdPattern.test(request.requestId) ? request.requestId : randomUUID()
    const response = yield* Effect.annotateLogs(handle(request), "request_id", requestId)
    const q = request.url.indexOf("?")
    const durationMs = Number((yield* Clock.currentTimeNanos) - started) / 1e6
    yield* Effect.logInfo("request").pipe(
      Effect.annotateLogs({
        request_id: requestId,
        method: request.method,
        path: q === -1 ? request.url : request.url.slice(0, q),
        status: response.status,
        duration_ms: Math.round(durationMs * 1000) / 1000
      })
    )
    return response
  })
