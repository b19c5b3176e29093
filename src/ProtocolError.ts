/**
 * The protocol failures of RFC 7591 / RFC 7592 / RFC 6750 as tagged errors,
 * and the single function that renders any of them as an HTTP response.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * No `Authorization` header, or one with a scheme other than Bearer (D5,
 * RFC 6750 §3.1): 401 with a bare `Bearer realm` challenge and no error code.
 *
 * @since 0.1.0
 * @category errors
 */
export class MissingToken extends Schema.TaggedError<MissingToken>()("MissingToken", {}) {
  override get message(): string {
    return "authentication required"
  }
}

/**
 * The registration access token is unknown, revoked or bound to another client
 * (R6750-3.1-c, D1): 401 `invalid_token`.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidToken extends Schema.TaggedError<InvalidToken>()("InvalidToken", {
  description: Schema.String
}) {
  override get message(): string {
    return this.description
  }
}

/**
 * The token was valid but its client no longer exists (R7592-2.1-f, D2). It is
 * rendered exactly like {@link InvalidToken}, so a caller learns nothing more.
 *
 * @since 0.1.0
 * @category errors
 */
export class ClientNotFound extends Schema.TaggedError<ClientNotFound>()("ClientNotFound", {
  clientId: Schema.String
}) {
  override get message(): string {
    return "the client is not registered"
  }
}

/**
 * A malformed request (D6, D7, D18): 400 `invalid_request`. When `challenge` is
 * true the failure concerns the bearer credentials and the response carries a
 * `WWW-Authenticate: Bearer error="invalid_request"` challenge (R6750-3.1-b).
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidRequest extends Schema.TaggedError<InvalidRequest>()("InvalidRequest", {
  description: Schema.String,
  challenge: Schema.optionalWith(Schema.Boolean, { default: () => false })
}) {
  override get message(): string {
    return this.description
  }
}

/**
 * The permission policy refused the operation (R7592-2.1-g, D3): 403
 * `insufficient_scope`.
 *
 * @since 0.1.0
 * @category errors
 */
export class InsufficientScope extends Schema.TaggedError<InsufficientScope>()("InsufficientScope", {
  description: Schema.String
}) {
  override get message(): string {
    return this.description
  }
}

/**
 * A metadata member is invalid (R7591-3.2.2-e): 400 `invalid_client_metadata`.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidClientMetadata extends Schema.TaggedError<InvalidClientMetadata>()("InvalidClientMetadata", {
  description: Schema.String
}) {
  override get message(): string {
    return this.description
  }
}

/**
 * One or more redirect URIs are invalid (R7591-3.2.2-d, D11): 400
 * `invalid_redirect_uri`.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidRedirectUri extends Schema.TaggedError<InvalidRedirectUri>()("InvalidRedirectUri", {
  description: Schema.String
}) {
  override get message(): string {
    return this.description
  }
}

/**
 * The software statement is malformed, badly signed or expired
 * (R7591-3.2.2-f, D21): 400 `invalid_software_statement`.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidSoftwareStatement extends Schema.TaggedError<InvalidSoftwareStatement>()(
  "InvalidSoftwareStatement",
  { description: Schema.String }
) {
  override get message(): string {
    return this.description
  }
}

/**
 * The software statement's issuer or key is not trusted (R7591-3.2.2-g, D21):
 * 400 `unapproved_software_statement`.
 *
 * @since 0.1.0
 * @category errors
 */
export class UnapprovedSoftwareStatement extends Schema.TaggedError<UnapprovedSoftwareStatement>()(
  "UnapprovedSoftwareStatement",
  { description: Schema.String }
) {
  override get message(): string {
    return this.description
  }
}

/**
 * The endpoint does not serve this method (R7592-2-d, R7592-2.3-e, D4): 405
 * with an `Allow` header.
 *
 * @since 0.1.0
 * @category errors
 */
export class MethodNotAllowed extends Schema.TaggedError<MethodNotAllowed>()("MethodNotAllowed", {
  allow: Schema.Array(Schema.String)
}) {
  override get message(): string {
    return `method not allowed; allowed: ${this.allow.join(", ")}`
  }
}

/**
 * The request body exceeds the configured limit (D18): 413.
 *
 * @since 0.1.0
 * @category errors
 */
export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()("PayloadTooLarge", {
  limit: Schema.Number
}) {
  override get message(): string {
    return `the request body exceeds ${this.limit} bytes`
  }
}

/**
 * Too many registrations from one client address (abuse resistance): 429
 * with `Retry-After`.
 *
 * @since 0.1.0
 * @category errors
 */
export class TooManyRequests extends Schema.TaggedError<TooManyRequests>()("TooManyRequests", {
  retryAfterSeconds: Schema.Number
}) {
  override get message(): string {
    return `too many registrations from this address; retry after ${this.retryAfterSeconds} s`
  }
}

/**
 * No endpoint at this path: 404.
 *
 * @since 0.1.0
 * @category errors
 */
export class NotFound extends Schema.TaggedError<NotFound>()("NotFound", {}) {
  override get message(): string {
    return "no such endpoint"
  }
}

/**
 * The store failed (an outage, a constraint the program did not expect). Not a
 * protocol failure: it becomes D20's 500 `server_error`, and its cause is
 * logged, never sent.
 *
 * @since 0.1.0
 * @category errors
 */
export class StoreError extends Schema.TaggedError<StoreError>()("StoreError", {
  operation: Schema.String,
  cause: Schema.optional(Schema.Defect)
}) {
  override get message(): string {
    return `client store failed during ${this.operation}`
  }
}

/**
 * Every protocol failure the programs and {@link Protocol} can produce.
 *
 * @since 0.1.0
 * @category models
 */
export type ProtocolError =
  | MissingToken
  | InvalidToken
  | ClientNotFound
  | InvalidRequest
  | InsufficientScope
  | InvalidClientMetadata
  | InvalidRedirectUri
  | InvalidSoftwareStatement
  | UnapprovedSoftwareStatement
  | MethodNotAllowed
  | PayloadTooLarge
  | TooManyRequests
  | NotFound

/**
 * A transport-neutral HTTP response.
 *
 * @since 0.1.0
 * @category models
 */
export interface ProtocolResponse {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  /** The JSON text of the body, or undefined for an empty body (204). */
  readonly body: string | undefined
}

/**
 * The OAuth error codes this library sends in a JSON `error` member.
 *
 * @since 0.1.0
 * @category models
 */
export type ErrorCode = (typeof errorCodes)[number]

/**
 * Every `error` code a response of these endpoints may carry.
 *
 * @since 0.1.0
 * @category constants
 */
export const errorCodes = [
  "invalid_request",
  "invalid_token",
  "insufficient_scope",
  "invalid_client_metadata",
  "invalid_redirect_uri",
  "invalid_software_statement",
  "unapproved_software_statement",
  "server_error"
] as const

/**
 * The JSON error body (R7591-3.2.2-c).
 *
 * @since 0.1.0
 * @category schemas
 */
export const ErrorBody = Schema.Struct({
  error: Schema.Literal(...errorCodes),
  error_description: Schema.optional(Schema.String)
})

/**
 * D16: every response carries these, success or error.
 *
 * @since 0.1.0
 * @category constants
 */
export const noStoreHeaders: Readonly<Record<string, string>> = Object.freeze({
  "cache-control": "no-store",
  pragma: "no-cache"
})

const jsonHeaders: Readonly<Record<string, string>> = Object.freeze({
  "content-type": "application/json",
  ...noStoreHeaders
})

/**
 * R6750-3-f and R7591-3.2.2-c: `error_description` may hold only printable
 * ASCII without `"` or `\`. Anything else (including text derived from
 * request input) is replaced, so no header injection or quoting break is
 * possible.
 */
const sanitize = (text: string): string => {
  let out = ""
  const limit = Math.min(text.length, 300)
  for (let i = 0; i < limit; i++) {
    const c = text.charCodeAt(i)
    out += c >= 0x20 && c <= 0x7e && c !== 0x22 && c !== 0x5c ? text[i] : "?"
  }
  return out
}

const quote = (realm: string): string => `"${sanitize(realm)}"`

const challenge = (realm: string, error: ErrorCode, description: string): string =>
  `Bearer realm=${quote(realm)}, error="${error}", error_description="${sanitize(description)}"`

const json = (
  status: number,
  error: ErrorCode,
  description: string,
  extra?: Readonly<Record<string, string>>
): ProtocolResponse => ({
  status,
  headers: extra === undefined ? jsonHeaders : { ...jsonHeaders, ...extra },
  body: JSON.stringify({ error, error_description: sanitize(description) })
})

/**
 * The body and headers of D20's 500: no internal detail, ever.
 *
 * @since 0.1.0
 * @category rendering
 */
export const serverError: ProtocolResponse = Object.freeze({
  status: 500,
  headers: jsonHeaders,
  body: JSON.stringify({ error: "server_error", error_description: "the server could not complete the request" })
})

/**
 * Renders a protocol failure as status, headers and JSON body (D3–D6, D16,
 * D20). This is the only place that decides an error's status code.
 *
 * @since 0.1.0
 * @category rendering
 */
export const toResponse = (
  error: ProtocolError | StoreError,
  options: { readonly realm: string }
): ProtocolResponse => {
  const realm = options.realm
  switch (error._tag) {
    case "MissingToken":
      // D5 / R6750-3.1-e: no error code or other error information.
      return {
        status: 401,
        headers: { ...jsonHeaders, "www-authenticate": `Bearer realm=${quote(realm)}` },
        body: "{}"
      }
    case "InvalidToken":
    case "ClientNotFound": {
      // D1, D2: an unknown token and a token whose client is gone look alike.
      const description = "the registration access token is invalid"
      return json(401, "invalid_token", description, {
        "www-authenticate": challenge(realm, "invalid_token", description)
      })
    }
    case "InvalidRequest":
      return error.challenge
        ? json(400, "invalid_request", error.description, {
            "www-authenticate": challenge(realm, "invalid_request", error.description)
          })
        : json(400, "invalid_request", error.description)
    case "InsufficientScope":
      return json(403, "insufficient_scope", error.description, {
        "www-authenticate": challenge(realm, "insufficient_scope", error.description)
      })
    case "InvalidClientMetadata":
      return json(400, "invalid_client_metadata", error.description)
    case "InvalidRedirectUri":
      return json(400, "invalid_redirect_uri", error.description)
    case "InvalidSoftwareStatement":
      return json(400, "invalid_software_statement", error.description)
    case "UnapprovedSoftwareStatement":
      return json(400, "unapproved_software_statement", error.description)
    case "MethodNotAllowed":
      return json(405, "invalid_request", error.message, { allow: error.allow.join(", ") })
    case "PayloadTooLarge":
      return json(413, "invalid_request", error.message)
    case "TooManyRequests":
      return json(429, "invalid_request", error.message, { "retry-after": String(error.retryAfterSeconds) })
    case "NotFound":
      return json(404, "invalid_request", error.message)
    case "StoreError":
      return serverError
  }
}
