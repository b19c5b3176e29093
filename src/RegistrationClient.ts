/**
 * A typed client for RFC 7591 registration and the RFC 7592 client
 * configuration endpoint, on `@effect/platform`'s `HttpClient`. It speaks to
 * any conforming authorization server, not only this library's.
 *
 * ```ts
 * const program = Effect.gen(function* () {
 *   const client = yield* RegistrationClient.RegistrationClient
 *   const registered = yield* client.register({ redirect_uris: ["https://app.example/cb"] })
 *   const renamed = yield* client.update(registered, { client_name: "Renamed" })
 *   yield* client.delete(renamed)
 * }).pipe(
 *   Effect.provide(RegistrationClient.layer({ registrationEndpoint: "https://as.example/register" })),
 *   Effect.provide(FetchHttpClient.layer)
 * )
 * ```
 *
 * Failures are the same tagged errors the server side uses
 * (`ProtocolError.InvalidToken`, `ProtocolError.InvalidClientMetadata`, …),
 * decoded from the status, the JSON `error` member and the Bearer challenge;
 * anything that is not an RFC answer (a 500, a transport failure, a body that
 * does not decode) is a {@link RegistrationClientError}. Secrets (the client
 * secret, the registration access token, the initial access token) are held
 * as `Redacted` and never appear in an error message.
 *
 * @since 0.1.0
 */
import { spanOptions } from "./internal/span.js"
import { HttpClient, type HttpClientError, HttpClientRequest, type HttpClientResponse } from "@effect/platform"
import { Context, Effect, Layer, ParseResult, Redacted, Schema } from "effect"
import { ClientInformationResponse } from "./ClientInformation.js"
import { type ClientMetadata, secretAuthMethods, serverIssuedMembers, type StandardMembers } from "./ClientMetadata.js"
import {
  InsufficientScope,
  InvalidClientMetadata,
  InvalidRedirectUri,
  InvalidRequest,
  InvalidSoftwareStatement,
  InvalidToken,
  MethodNotAllowed,
  MissingToken,
  PayloadTooLarge,
  type ClientNotFound,
  type NotFound,
  type ProtocolError,
  type TooManyRequests,
  UnapprovedSoftwareStatement
} from "./ProtocolError.js"

// ---------------------------------------------------------------------------
// models

/**
 * One registered client as the last response described it (RFC 7591 §3.2.1,
 * RFC 7592 §3). Every call that succeeds returns a new value; use the newest,
 * since the server may have rotated the registration access token or the
 * secret (R7592-2.1-c, R7592-5-b).
 *
 * @since 0.1.0
 * @category models
 */
export interface Registration {
  readonly clientId: string
  /**
   * The current client secret: the one the last response carried, or, when a
   * read or update response omits it but the client still authenticates with
   * a secret-based method (`token_endpoint_auth_method` of
   * `client_secret_basic` — the RFC 7591 default —, `client_secret_post` or
   * `client_secret_jwt`), the one held before. Undefined for clients without
   * a secret.
   */
  readonly clientSecret: Redacted.Redacted<string> | undefined
  /** Seconds since the epoch, when the server said (R7591-3.2.1-d). */
  readonly clientIdIssuedAt: number | undefined
  /** Seconds since the epoch, 0 for never, when the server said (R7591-3.2.1-e). */
  readonly clientSecretExpiresAt: number | undefined
  /**
   * The token for the client configuration endpoint (R7592-3-c). Undefined
   * only when the server does not implement RFC 7592 and returned none: then
   * `read`, `update` and `delete` fail with reason `"NotManageable"`.
   */
  readonly registrationAccessToken: Redacted.Redacted<string> | undefined
  /** The client configuration endpoint (R7592-3-b); undefined as above. */
  readonly registrationClientUri: string | undefined
  /**
   * Every client metadata member of the last response — everything but the
   * six server-issued members above — including defaults the server applied
   * and members this library does not know (R7592-3-d). `update` starts from
   * exactly these (R7592-2.2-b).
   */
  readonly metadata: ClientMetadata
}

/**
 * Changes for {@link RegistrationClientService.update}: each member present
 * replaces the registered value; a member set to `null` or `undefined` is
 * removed from the registration (RFC 7592 §2.2 treats an omitted member as a
 * deletion). Extension members are allowed. The server-issued members cannot
 * be changed (R7592-2.2-c, R7592-2.2-e, R7592-2.2-f) and are refused by the
 * type; if one slips through at run time it is ignored.
 *
 * @since 0.1.0
 * @category models
 */
export type MetadataChanges = {
  readonly [K in keyof typeof StandardMembers.Type]?: (typeof StandardMembers.Type)[K] | null | undefined
} & {
  readonly software_statement?: string | null | undefined
  readonly client_id?: never
  readonly client_secret?: never
  readonly client_id_issued_at?: never
  readonly client_secret_expires_at?: never
  readonly registration_access_token?: never
  readonly registration_client_uri?: never
} & { readonly [member: string]: unknown }

/**
 * Options of {@link RegistrationClientService.register}.
 *
 * @since 0.1.0
 * @category models
 */
export interface RegisterOptions {
  /** An initial access token for this call only, instead of the one in {@link Options}. */
  readonly initialAccessToken?: Redacted.Redacted<string> | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The RFC 7591 registration endpoint, e.g. `https://as.example.com/register`. */
  readonly registrationEndpoint: string | URL
  /** Sent as `Authorization: Bearer …` on registration when the server requires one (RFC 7591 §3). */
  readonly initialAccessToken?: Redacted.Redacted<string> | undefined
}

// ---------------------------------------------------------------------------
// errors

/**
 * Anything that is not an RFC-defined answer:
 *
 * - `"Transport"`: the request could not be sent or the response not read;
 * - `"Encode"`: the metadata could not be serialised as JSON;
 * - `"UnexpectedStatus"`: a status (and `error` code) that RFC 7591, RFC 7592
 *   and RFC 6750 do not define for this operation, such as a 500
 *   `server_error` or a 404;
 * - `"InvalidResponse"`: a success whose body is not a client information
 *   response, or one that changed the `client_id` (R7592-2.1-d);
 * - `"NotManageable"`: the registration has no registration access token or
 *   client configuration endpoint, so it cannot be read, updated or deleted.
 *
 * Its message never holds a secret: it names the operation, the status, the
 * server's `error` code and description (printable ASCII only), or the
 * members that did not decode, but no value.
 *
 * @since 0.1.0
 * @category errors
 */
export class RegistrationClientError extends Schema.TaggedError<RegistrationClientError>()("RegistrationClientError", {
  reason: Schema.Literal("Transport", "Encode", "UnexpectedStatus", "InvalidResponse", "NotManageable"),
  operation: Schema.Literal("register", "read", "update", "delete"),
  /** The HTTP status, when there was a response. */
  status: Schema.optional(Schema.Number),
  /** The JSON `error` code of the response, if it had one (e.g. `server_error`). */
  error: Schema.optional(Schema.String),
  description: Schema.String
}) {
  override get message(): string {
    const status =
      this.status === undefined ? "" : ` (HTTP ${this.status}${this.error === undefined ? "" : ` ${this.error}`})`
    return `${this.operation} failed: ${this.reason}${status}: ${this.description}`
  }
}

/**
 * Every failure of a client call.
 *
 * @since 0.1.0
 * @category errors
 */
export type ClientError =
  // The server's own errors, but those a client cannot tell apart on the wire
  // (ClientNotFound looks like InvalidToken) or that no RFC names.
  Exclude<ProtocolError, ClientNotFound | NotFound | TooManyRequests> | RegistrationClientError

/**
 * The RFC 7591 §3.2.2 errors, which only calls that send metadata can meet.
 *
 * @since 0.1.0
 * @category errors
 */
export type MetadataError =
  InvalidClientMetadata | InvalidRedirectUri | InvalidSoftwareStatement | UnapprovedSoftwareStatement | PayloadTooLarge

/**
 * The failures of `read` and `delete`, which send no body (R7592-2.1, R7592-2.3).
 *
 * @since 0.1.0
 * @category errors
 */
export type ManagementError = Exclude<ClientError, MetadataError>

// ---------------------------------------------------------------------------
// service

/**
 * @since 0.1.0
 * @category models
 */
export interface RegistrationClientService {
  /**
   * RFC 7591 §3.1: POSTs the metadata to the registration endpoint, with the
   * initial access token as a Bearer token when there is one. Any 2xx with a
   * client information response succeeds (the RFC says 201).
   */
  readonly register: (metadata: ClientMetadata, options?: RegisterOptions) => Effect.Effect<Registration, ClientError>
  /**
   * RFC 7592 §2.1: GETs the client configuration endpoint with the
   * registration access token and returns the registration as the server now
   * describes it, adopting a rotated token or secret (R7592-2.1-c).
   */
  readonly read: (registration: Registration) => Effect.Effect<Registration, ManagementError>
  /**
   * RFC 7592 §2.2: PUTs every metadata member of the last response
   * (R7592-2.2-b) with `changes` applied (a `null` or `undefined` member is
   * removed), plus `client_id` (R7592-2.2-e) and the current `client_secret`
   * when there is one (R7592-2.2-f), and never the four server-managed
   * members (R7592-2.2-c). Adopts a rotated token or secret (R7592-2.2-h).
   */
  readonly update: (registration: Registration, changes?: MetadataChanges) => Effect.Effect<Registration, ClientError>
  /**
   * RFC 7592 §2.3: DELETEs the registration. Any 2xx succeeds (the RFC says
   * 204). Afterwards every credential of the registration is dead.
   */
  readonly delete: (registration: Registration) => Effect.Effect<void, ManagementError>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class RegistrationClient extends Context.Tag("effect-dcr/RegistrationClient")<
  RegistrationClient,
  RegistrationClientService
>() {}

// ---------------------------------------------------------------------------
// decoding

type Operation = RegistrationClientError["operation"]

/**
 * The client information response with the secrets decoded straight into
 * `Redacted`. The RFC 7592 members are optional so that a registration with
 * a server that does not implement RFC 7592 is not lost, and so that a read
 * or update response that omits them keeps the ones held.
 */
const ResponseBody = Schema.Struct(
  {
    ...ClientInformationResponse.fields,
    client_secret: Schema.optional(Schema.Redacted(Schema.String)),
    registration_access_token: Schema.optional(Schema.Redacted(Schema.String)),
    registration_client_uri: Schema.optional(Schema.String)
  },
  ...ClientInformationResponse.records
)

/** Printable ASCII only, bounded: server text goes into messages and logs. */
const sanitize = (text: string): string => {
  let out = ""
  const limit = Math.min(text.length, 300)
  for (let i = 0; i < limit; i++) {
    const c = text.charCodeAt(i)
    out += c >= 0x20 && c <= 0x7e ? text[i] : "?"
  }
  return text.length > limit ? `${out}…` : out
}

const parseJsonObject = (text: string): Readonly<Record<string, unknown>> | undefined => {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return undefined
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined
  const entries: Array<[string, unknown]> = Object.entries(value)
  return Object.fromEntries(entries)
}

const stringMember = (body: Readonly<Record<string, unknown>> | undefined, name: string): string | undefined => {
  const value = body?.[name]
  return typeof value === "string" ? value : undefined
}

/** An auth-param of a `WWW-Authenticate: Bearer …` challenge (RFC 6750 §3). */
const challengeParam = (header: string | undefined, name: string): string | undefined => {
  if (header === undefined) return undefined
  const match = new RegExp(`(?:^|[\\s,])${name}\\s*=\\s*"([^"]*)"`, "i").exec(header)
  return match?.[1]
}

/**
 * What went wrong on the wire, from the platform error's description and its
 * chain of causes (fetch's "fetch failed" hides ECONNREFUSED one level down).
 */
const describeTransportFailure = (error: HttpClientError.HttpClientError): string => {
  const parts: Array<string> = []
  if (error.description !== undefined) parts.push(error.description)
  let cause: unknown = error.cause
  for (let depth = 0; depth < 4 && cause instanceof Error; depth++) {
    const code = "code" in cause && typeof cause.code === "string" ? ` (${cause.code})` : ""
    const text = `${cause.message}${code}`
    if (text !== "" && !parts.includes(text)) parts.push(text)
    cause = cause.cause
  }
  return sanitize(parts.length === 0 ? `${error.reason} error` : parts.join(": "))
}

const invalidResponse = (operation: Operation, status: number, description: string) =>
  new RegistrationClientError({ reason: "InvalidResponse", operation, status, description })

/**
 * Decodes a success body. `null` members count as absent, as RFC 7592 §2.2
 * treats them, since some servers send them for unset metadata.
 */
const decodeRegistration = (
  operation: Operation,
  status: number,
  text: string,
  previous: Registration | undefined
): Effect.Effect<Registration, RegistrationClientError> => {
  const json = parseJsonObject(text)
  if (json === undefined) {
    return Effect.fail(invalidResponse(operation, status, "the response body is not a JSON object"))
  }
  const present = Object.fromEntries(Object.entries(json).filter(([, value]) => value !== null))
  return Schema.decodeUnknown(ResponseBody, { errors: "all" })(present).pipe(
    Effect.mapError((error) => {
      // Paths only: a parse message quotes the actual value, which may be a secret.
      const paths = ParseResult.ArrayFormatter.formatErrorSync(error).map((issue) => issue.path.join(".") || "(body)")
      return invalidResponse(
        operation,
        status,
        `not a client information response; invalid members: ${[...new Set(paths)].join(", ")}`
      )
    }),
    Effect.flatMap((body) => {
      const {
        client_id,
        client_secret,
        client_id_issued_at,
        client_secret_expires_at,
        registration_access_token,
        registration_client_uri,
        ...metadata
      } = body
      if (previous !== undefined && client_id !== previous.clientId) {
        return Effect.fail(invalidResponse(operation, status, "the server changed the client_id (R7592-2.1-d)"))
      }
      // A response that omits the secret keeps the one held, unless the client
      // now authenticates without one (RFC 7591 §2: client_secret_basic by default).
      const method = metadata.token_endpoint_auth_method ?? "client_secret_basic"
      const keepSecret = client_secret === undefined && previous !== undefined && secretAuthMethods.has(method)
      const registration: Registration = {
        clientId: client_id,
        clientSecret: keepSecret ? previous.clientSecret : client_secret,
        clientIdIssuedAt: client_id_issued_at ?? previous?.clientIdIssuedAt,
        clientSecretExpiresAt: keepSecret ? previous.clientSecretExpiresAt : client_secret_expires_at,
        registrationAccessToken: registration_access_token ?? previous?.registrationAccessToken,
        registrationClientUri: registration_client_uri ?? previous?.registrationClientUri,
        metadata
      }
      return Effect.succeed(registration)
    })
  )
}

/**
 * Maps an error response to the tagged error the server meant: by status
 * first where RFC 6750 and RFC 7592 fix one (401, 403, 405, 413), then by the
 * JSON `error` code (or the challenge's, when the body has none).
 */
const decodeFailure = (
  operation: Operation,
  response: HttpClientResponse.HttpClientResponse,
  text: string,
  requestBytes: number
): ClientError => {
  const status = response.status
  const body = parseJsonObject(text)
  const challenge = response.headers["www-authenticate"]
  const code = stringMember(body, "error") ?? challengeParam(challenge, "error")
  const serverDescription = stringMember(body, "error_description") ?? challengeParam(challenge, "error_description")
  const description = sanitize(serverDescription ?? (code === undefined ? `HTTP ${status}` : code))
  switch (status) {
    case 401:
      // RFC 6750 §3.1: a request without credentials gets no error code.
      return code === undefined ? new MissingToken() : new InvalidToken({ description })
    case 403:
      // R7592-2.1-g, D3: RFC 7592 names no code; insufficient_scope is RFC 6750's.
      return new InsufficientScope({ description })
    case 405: {
      const allow = (response.headers["allow"] ?? "")
        .split(",")
        .map((method) => method.trim().toUpperCase())
        .filter((method) => method !== "")
      return new MethodNotAllowed({ allow })
    }
    case 413: {
      // The limit is the server's when its description states one, otherwise the
      // largest limit consistent with the refusal.
      const stated = /(\d+)\s*bytes/.exec(serverDescription ?? "")?.[1]
      return new PayloadTooLarge({ limit: stated === undefined ? Math.max(0, requestBytes - 1) : Number(stated) })
    }
  }
  if (status >= 400 && status < 500) {
    switch (code) {
      case "invalid_token":
        return new InvalidToken({ description })
      case "invalid_request":
        return new InvalidRequest({ description, challenge: challengeParam(challenge, "error") === "invalid_request" })
      case "insufficient_scope":
        return new InsufficientScope({ description })
      case "invalid_client_metadata":
        return new InvalidClientMetadata({ description })
      case "invalid_redirect_uri":
        return new InvalidRedirectUri({ description })
      case "invalid_software_statement":
        return new InvalidSoftwareStatement({ description })
      case "unapproved_software_statement":
        return new UnapprovedSoftwareStatement({ description })
    }
  }
  return new RegistrationClientError({
    reason: "UnexpectedStatus",
    operation,
    status,
    ...(code === undefined ? {} : { error: sanitize(code) }),
    description
  })
}

const isMetadataError = (error: ClientError): error is MetadataError =>
  error._tag === "InvalidClientMetadata" ||
  error._tag === "InvalidRedirectUri" ||
  error._tag === "InvalidSoftwareStatement" ||
  error._tag === "UnapprovedSoftwareStatement" ||
  error._tag === "PayloadTooLarge"

/** A metadata error in answer to a request without metadata is not an RFC answer. */
const asManagementError =
  (operation: Operation) =>
  (error: ClientError): ManagementError =>
    isMetadataError(error)
      ? new RegistrationClientError({
          reason: "UnexpectedStatus",
          operation,
          description: `unexpected ${error._tag} answer: ${sanitize(error.message)}`
        })
      : error

// ---------------------------------------------------------------------------
// constructors

interface Call {
  readonly operation: Operation
  readonly request: HttpClientRequest.HttpClientRequest
  readonly requestBytes: number
}

/**
 * The client on a given `HttpClient`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<RegistrationClientService, never, HttpClient.HttpClient> =>
  Effect.map(HttpClient.HttpClient, (httpClient): RegistrationClientService => {
    const registrationEndpoint = options.registrationEndpoint.toString()

    /** Sends the request and reads the whole response; any non-2xx becomes its tagged error. */
    const send = (call: Call) =>
      httpClient.execute(call.request).pipe(
        Effect.flatMap((response) => Effect.map(response.text, (text) => ({ response, text }))),
        Effect.mapError(
          (error) =>
            new RegistrationClientError({
              reason: "Transport",
              operation: call.operation,
              // The cause's messages and codes only: the request itself (whose
              // headers and body hold secrets) stays out of it.
              description: describeTransportFailure(error)
            })
        ),
        Effect.flatMap(({ response, text }) =>
          response.status >= 200 && response.status < 300
            ? Effect.succeed({ status: response.status, text })
            : Effect.fail(decodeFailure(call.operation, response, text, call.requestBytes))
        )
      )

    const jsonRequest = (
      operation: Operation,
      request: HttpClientRequest.HttpClientRequest,
      body: unknown
    ): Effect.Effect<Call, RegistrationClientError> =>
      Effect.try({
        try: () => JSON.stringify(body),
        catch: () =>
          new RegistrationClientError({
            reason: "Encode",
            operation,
            description: "the metadata is not serialisable as JSON"
          })
      }).pipe(
        Effect.map((text) => ({
          operation,
          request: HttpClientRequest.bodyText(request, text, "application/json"),
          requestBytes: new TextEncoder().encode(text).length
        }))
      )

    /** The configuration endpoint call of a registration, or NotManageable. */
    const managementRequest = (
      operation: Operation,
      registration: Registration,
      build: (uri: string) => HttpClientRequest.HttpClientRequest
    ): Effect.Effect<HttpClientRequest.HttpClientRequest, RegistrationClientError> => {
      const token = registration.registrationAccessToken
      const uri = registration.registrationClientUri
      if (token === undefined || uri === undefined) {
        return Effect.fail(
          new RegistrationClientError({
            reason: "NotManageable",
            operation,
            description: "the server returned no registration access token or client configuration endpoint"
          })
        )
      }
      // R7592-2-b: the RAT as an RFC 6750 Bearer token on every call.
      return Effect.succeed(build(uri).pipe(HttpClientRequest.bearerToken(token), HttpClientRequest.acceptJson))
    }

    const register: RegistrationClientService["register"] = (metadata, registerOptions) => {
      const token = registerOptions?.initialAccessToken ?? options.initialAccessToken
      const base = HttpClientRequest.post(registrationEndpoint).pipe(HttpClientRequest.acceptJson)
      const request = token === undefined ? base : HttpClientRequest.bearerToken(base, token)
      return jsonRequest("register", request, metadata).pipe(
        Effect.flatMap(send),
        Effect.flatMap(({ status, text }) => decodeRegistration("register", status, text, undefined)),
        Effect.withSpan("RegistrationClient.register", spanOptions)
      )
    }

    const read: RegistrationClientService["read"] = (registration) =>
      managementRequest("read", registration, HttpClientRequest.get).pipe(
        Effect.flatMap((request) => send({ operation: "read", request, requestBytes: 0 })),
        Effect.flatMap(({ status, text }) => decodeRegistration("read", status, text, registration)),
        Effect.mapError(asManagementError("read")),
        Effect.withSpan("RegistrationClient.read", { attributes: { clientId: registration.clientId } })
      )

    const update: RegistrationClientService["update"] = (registration, changes = {}) => {
      // R7592-2.2-b: every metadata member of the last response, then the changes.
      const body: Record<string, unknown> = {}
      for (const [name, value] of Object.entries(registration.metadata)) {
        if (!serverIssuedMembers.has(name)) body[name] = value
      }
      const changed: Array<[string, unknown]> = Object.entries(changes)
      for (const [name, value] of changed) {
        if (serverIssuedMembers.has(name)) continue
        // R7592-2.2-d: an omitted member is deleted; null and undefined mean omit.
        if (value === undefined || value === null) delete body[name]
        else body[name] = value
      }
      // R7592-2.2-e, R7592-2.2-f; the four R7592-2.2-c members are never added.
      body.client_id = registration.clientId
      if (registration.clientSecret !== undefined) body.client_secret = Redacted.value(registration.clientSecret)
      return managementRequest("update", registration, HttpClientRequest.put).pipe(
        Effect.flatMap((request) => jsonRequest("update", request, body)),
        Effect.flatMap(send),
        Effect.flatMap(({ status, text }) => decodeRegistration("update", status, text, registration)),
        Effect.withSpan("RegistrationClient.update", { attributes: { clientId: registration.clientId } })
      )
    }

    const remove: RegistrationClientService["delete"] = (registration) =>
      managementRequest("delete", registration, HttpClientRequest.del).pipe(
        Effect.flatMap((request) => send({ operation: "delete", request, requestBytes: 0 })),
        Effect.asVoid,
        Effect.mapError(asManagementError("delete")),
        Effect.withSpan("RegistrationClient.delete", { attributes: { clientId: registration.clientId } })
      )

    return { register, read, update, delete: remove }
  })

/**
 * The client as a layer, on the `HttpClient` in context (for example
 * `FetchHttpClient.layer` or `NodeHttpClient.layerUndici`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<RegistrationClient, never, HttpClient.HttpClient> =>
  Layer.effect(RegistrationClient, make(options))
