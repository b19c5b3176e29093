/**
 * RFC 7591 §2 client metadata: the standard members, their language-tagged
 * variants (§2.2, D10), host extension members (D9) and the RFC defaults.
 *
 * Member names stay in RFC snake_case: metadata is a JSON document whose
 * names the RFC fixes, and keeping them spares a key mapping on every request.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * A JSON Web Key Set as far as its shape goes (D13 checks the keys with jose).
 *
 * @since 0.1.0
 * @category schemas
 */
export const JsonWebKeySet = Schema.Struct(
  { keys: Schema.Array(Schema.Record({ key: Schema.String, value: Schema.Unknown })) },
  Schema.Record({ key: Schema.String, value: Schema.Unknown })
)

/**
 * The RFC 7591 §2 members (plus `token_endpoint_auth_signing_alg`, which D12
 * checks against `token_endpoint_auth_signing_alg_values_supported`).
 *
 * @since 0.1.0
 * @category schemas
 */
export const StandardMembers = Schema.Struct({
  redirect_uris: Schema.optional(Schema.Array(Schema.String)),
  token_endpoint_auth_method: Schema.optional(Schema.String),
  token_endpoint_auth_signing_alg: Schema.optional(Schema.String),
  grant_types: Schema.optional(Schema.Array(Schema.String)),
  response_types: Schema.optional(Schema.Array(Schema.String)),
  client_name: Schema.optional(Schema.String),
  client_uri: Schema.optional(Schema.String),
  logo_uri: Schema.optional(Schema.String),
  scope: Schema.optional(Schema.String),
  contacts: Schema.optional(Schema.Array(Schema.String)),
  tos_uri: Schema.optional(Schema.String),
  policy_uri: Schema.optional(Schema.String),
  jwks_uri: Schema.optional(Schema.String),
  jwks: Schema.optional(JsonWebKeySet),
  software_id: Schema.optional(Schema.String),
  software_version: Schema.optional(Schema.String)
})

/**
 * Registered client metadata: the standard members, language-tagged variants
 * such as `client_name#fr`, and any extension members the host declared.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ClientMetadata = Schema.Struct(
  {
    ...StandardMembers.fields,
    /** The software statement the metadata was taken from, kept verbatim (R7591-3.2.1-h). */
    software_statement: Schema.optional(Schema.String)
  },
  Schema.Record({ key: Schema.String, value: Schema.Unknown })
)

/**
 * @since 0.1.0
 * @category models
 */
export type ClientMetadata = typeof ClientMetadata.Type

/**
 * The names of the standard members, in the order responses list them.
 *
 * @since 0.1.0
 * @category constants
 */
export const standardMemberNames: ReadonlyArray<keyof typeof StandardMembers.fields> = Object.keys(
  StandardMembers.fields
).filter((name): name is keyof typeof StandardMembers.fields => name in StandardMembers.fields)

/**
 * Members that may carry language-tagged variants (R7591-2.2-a, D10).
 *
 * @since 0.1.0
 * @category constants
 */
export const localizableMembers: ReadonlySet<string> = new Set([
  "client_name",
  "client_uri",
  "logo_uri",
  "tos_uri",
  "policy_uri"
])

/**
 * Members whose values are URLs of web pages or documents.
 *
 * @since 0.1.0
 * @category constants
 */
export const webUrlMembers: ReadonlySet<string> = new Set([
  "client_uri",
  "logo_uri",
  "tos_uri",
  "policy_uri",
  "jwks_uri"
])

/**
 * The members the server issues in a client information response, as
 * opposed to registered metadata.
 *
 * @since 0.1.0
 * @category constants
 */
export const serverIssuedMembers: ReadonlySet<string> = new Set([
  "client_id",
  "client_secret",
  "client_id_issued_at",
  "client_secret_expires_at",
  "registration_access_token",
  "registration_client_uri"
])

/**
 * The server-managed members a client may never set (R7592-2.2-c, D7).
 *
 * @since 0.1.0
 * @category constants
 */
export const forbiddenUpdateMembers: ReadonlyArray<string> = [
  "registration_access_token",
  "registration_client_uri",
  "client_secret_expires_at",
  "client_id_issued_at"
]

/**
 * Authentication methods that use a client secret (D14).
 *
 * @since 0.1.0
 * @category constants
 */
export const secretAuthMethods: ReadonlySet<string> = new Set([
  "client_secret_basic",
  "client_secret_post",
  "client_secret_jwt"
])

/**
 * RFC 7591 §2 defaults (D8).
 *
 * @since 0.1.0
 * @category constants
 */
export const defaults = {
  token_endpoint_auth_method: "client_secret_basic",
  grant_types: ["authorization_code"],
  response_types: ["code"]
} as const

/**
 * Grant types that redirect through the authorization endpoint, and so need
 * registered redirect URIs (R7591-5-b, D11).
 *
 * @since 0.1.0
 * @category constants
 */
export const redirectGrantTypes: ReadonlySet<string> = new Set(["authorization_code", "implicit"])
