/**
 * The registered client record and the client information response
 * (RFC 7591 §3.2.1 + RFC 7592 §3).
 *
 * @since 0.1.0
 */
import { Redacted, Schema } from "effect"
import { ClientMetadata, serverIssuedMembers } from "./ClientMetadata.js"
import { stringifyOnce } from "./internal/json.js"
import type { RegistrationPolicy } from "./RegistrationPolicy.js"

/**
 * What the store keeps for one client. The registration access token is not
 * here: the store keeps only its hash, next to the client (D15).
 *
 * @since 0.1.0
 * @category models
 */
export interface RegisteredClient {
  readonly clientId: string
  /** Seconds since the epoch (R7591-3.2.1-d). */
  readonly clientIdIssuedAt: number
  /** Present only for authentication methods that use one (D14). */
  readonly clientSecret: Redacted.Redacted<string> | undefined
  /** Seconds since the epoch, or 0 for never (R7591-3.2.1-e); 0 when there is no secret. */
  readonly clientSecretExpiresAt: number
  /** The validated metadata with the RFC defaults applied. */
  readonly metadata: ClientMetadata
  /** Incremented by every update; the store's compare-and-set compares it. */
  readonly version: number
  /** The registration policy of the initial access token it was registered with (D22). */
  readonly policy?: RegistrationPolicy | undefined
}

/**
 * What the registration and configuration programs answer with: a client and
 * the credentials that go back to its owner.
 *
 * @since 0.1.0
 * @category models
 */
export interface ClientInformation {
  readonly client: RegisteredClient
  /** The token the client uses next: newly issued, rotated, or the one it presented. */
  readonly registrationAccessToken: Redacted.Redacted<string>
  /** The fully qualified configuration endpoint of the client (R7592-3-b). */
  readonly registrationClientUri: string
}

/**
 * The JSON body of a client information response.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ClientInformationResponse = Schema.Struct(
  {
    client_id: Schema.String,
    client_secret: Schema.optional(Schema.String),
    client_id_issued_at: Schema.optional(Schema.Number),
    client_secret_expires_at: Schema.optional(Schema.Number),
    registration_access_token: Schema.String,
    registration_client_uri: Schema.String,
    ...ClientMetadata.fields
  },
  Schema.Record({ key: Schema.String, value: Schema.Unknown })
)

/**
 * @since 0.1.0
 * @category models
 */
export type ClientInformationResponse = typeof ClientInformationResponse.Type

/**
 * Renders the response body: the server-issued members, every registered
 * metadata member including the defaults the server applied (R7591-3.2.1-f,
 * R7592-3-d), and the RFC 7592 §3 members. This is where secrets leave their
 * `Redacted` wrapper, on their way to their owner.
 *
 * @since 0.1.0
 * @category rendering
 */
export const toJson = (info: ClientInformation): ClientInformationResponse => {
  const client = info.client
  const secret = client.clientSecret
  return {
    client_id: client.clientId,
    ...(secret === undefined
      ? { client_id_issued_at: client.clientIdIssuedAt }
      : {
          client_secret: Redacted.value(secret),
          client_id_issued_at: client.clientIdIssuedAt,
          client_secret_expires_at: client.clientSecretExpiresAt
        }),
    ...client.metadata,
    registration_access_token: Redacted.value(info.registrationAccessToken),
    registration_client_uri: info.registrationClientUri
  }
}

/**
 * `JSON.stringify(toJson(info))`, without building the merged object: the
 * metadata's text is computed once per stored metadata object (it never
 * changes) and spliced between the server-issued members.
 *
 * @since 0.1.0
 * @category rendering
 */
export const toJsonText = (info: ClientInformation): string => {
  const client = info.client
  const metadata = client.metadata
  for (const name of serverIssuedMembers) {
    // Never stored (the validator keeps them out); if ever, the slow path resolves them as toJson does.
    if (Object.hasOwn(metadata, name)) return JSON.stringify(toJson(info))
  }
  const secret = client.clientSecret
  const head =
    secret === undefined
      ? `{"client_id":${JSON.stringify(client.clientId)},"client_id_issued_at":${client.clientIdIssuedAt}`
      : `{"client_id":${JSON.stringify(client.clientId)},"client_secret":${JSON.stringify(Redacted.value(secret))},` +
        `"client_id_issued_at":${client.clientIdIssuedAt},"client_secret_expires_at":${client.clientSecretExpiresAt}`
  const members = stringifyOnce(metadata)
  return (
    head +
    (members.length > 2 ? "," + members.slice(1, -1) : "") +
    `,"registration_access_token":${JSON.stringify(Redacted.value(info.registrationAccessToken))}` +
    `,"registration_client_uri":${JSON.stringify(info.registrationClientUri)}}`
  )
}
