/**
 * The authorization server's metadata (an RFC 8414 subset) and the options of
 * SPEC part B. The validator checks client metadata against exactly these
 * values, so what is configured is what is accepted.
 *
 * @since 0.1.0
 */
import { Context, Layer, Schema } from "effect"
import { serverIssuedMembers, StandardMembers } from "./ClientMetadata.js"

/**
 * The RFC 8414 members that drive client metadata validation.
 *
 * @since 0.1.0
 * @category schemas
 */
export const AuthorizationServerMetadata = Schema.Struct({
  issuer: Schema.String,
  registration_endpoint: Schema.String,
  scopes_supported: Schema.optional(Schema.Array(Schema.String)),
  response_types_supported: Schema.Array(Schema.String),
  grant_types_supported: Schema.Array(Schema.String),
  token_endpoint_auth_methods_supported: Schema.Array(Schema.String),
  token_endpoint_auth_signing_alg_values_supported: Schema.optional(Schema.Array(Schema.String))
})

/**
 * @since 0.1.0
 * @category models
 */
export type AuthorizationServerMetadata = typeof AuthorizationServerMetadata.Type

/**
 * Extension members by name, each with the schema of its JSON value (D9).
 *
 * @since 0.1.0
 * @category models
 */
export type Extensions = Readonly<Record<string, Schema.Schema.AnyNoContext>>

/**
 * The configuration a host gives. Everything but `publicUrl` has a default.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * The public base URL under which the endpoints are reachable, e.g.
   * `https://as.example.com/oauth`. `registration_client_uri` is built from it
   * and never from request headers (D17).
   */
  readonly publicUrl: string
  /** RFC 8414 `issuer`; defaults to `publicUrl`. */
  readonly issuer?: string | undefined
  /** The path of the registration endpoint below `publicUrl`; default `/register`. */
  readonly registrationPath?: string | undefined
  /** The `realm` of every Bearer challenge; defaults to the issuer. */
  readonly realm?: string | undefined
  /**
   * Scopes a client may register; default `openid profile email offline_access`.
   * `"any"` accepts every well-formed scope and advertises no `scopes_supported`.
   */
  readonly scopesSupported?: ReadonlyArray<string> | "any" | undefined
  /** Scope registered when a client sends none (R7591-2-h); none by default. */
  readonly defaultScope?: string | undefined
  readonly grantTypesSupported?: ReadonlyArray<string> | undefined
  /** Response types; multi-valued ones (`code id_token`) compare as sets. */
  readonly responseTypesSupported?: ReadonlyArray<string> | undefined
  readonly tokenEndpointAuthMethodsSupported?: ReadonlyArray<string> | undefined
  readonly tokenEndpointAuthSigningAlgValuesSupported?: ReadonlyArray<string> | undefined
  /** D15: rotate the registration access token on every successful update; default true. */
  readonly rotateRegistrationTokenOnUpdate?: boolean | undefined
  /** D4: serve PUT on the configuration endpoint; default true. */
  readonly updateEnabled?: boolean | undefined
  /** D4, D19: serve DELETE on the configuration endpoint; default true. */
  readonly deleteEnabled?: boolean | undefined
  /** D18: the largest request body accepted, in bytes; default 64 KiB. */
  readonly maxBodyBytes?: number | undefined
  /** D14: lifetime of issued client secrets in seconds; 0 (default) means they never expire. */
  readonly clientSecretLifetimeSeconds?: number | undefined
  /**
   * D9: extension members (for example OpenID Connect's) that are validated,
   * stored and echoed. Each schema decodes the member's JSON value when the
   * member is present; its encoded form is what is stored and echoed.
   */
  readonly extensions?: Extensions | undefined
  /**
   * More RFC 8414 members for the discovery document, such as
   * `authorization_endpoint`, `token_endpoint` or `jwks_uri`. The members that
   * drive validation always come from the options above, never from here, so
   * what is advertised is what is accepted.
   */
  readonly discoveryMetadata?: { readonly [member: string]: unknown } | undefined
  /**
   * Origins of browser-based clients allowed to call the endpoints (CORS), or
   * `"*"` for any. None by default: no CORS headers are sent.
   */
  readonly corsOrigins?: ReadonlyArray<string> | "*" | undefined
  /**
   * Caps on list sizes a client may register (abuse resistance); defaults:
   * 20 redirect URIs, 20 contacts, 10 JWKS keys.
   */
  readonly limits?:
    | {
        readonly redirectUris?: number | undefined
        readonly contacts?: number | undefined
        readonly jwksKeys?: number | undefined
      }
    | undefined
  /**
   * Production mode for the URLs the server links to or fetches (`jwks_uri`,
   * `logo_uri`, `client_uri`, `tos_uri`, `policy_uri`): https only, never a
   * loopback or private host. Off by default.
   */
  readonly requirePublicHttpsUris?: boolean | undefined
  /**
   * Registrations allowed per client address: at most `requests` per
   * `perSeconds`, answered 429 with `Retry-After` past that. Off by default;
   * counted per server process.
   */
  readonly registrationRateLimit?: { readonly requests: number; readonly perSeconds: number } | undefined
  /**
   * The longest a request may take inside the programs (a stalled store, a
   * slow issuer key fetch): past it the work is interrupted — transactions
   * roll back — and the answer is D20's 500. None by default.
   */
  readonly operationTimeoutMillis?: number | undefined
  /**
   * Run every program and step in an `Effect.withSpan` (for a tracer such as
   * `Telemetry.layerOtlp` or the host's own). Default true; the standalone
   * server turns it on only when it exports spans.
   */
  readonly tracing?: boolean | undefined
}

/**
 * The resolved configuration, as the services read it.
 *
 * @since 0.1.0
 * @category models
 */
export interface ServerConfig {
  readonly issuer: string
  readonly publicUrl: string
  readonly registrationPath: string
  /** `publicUrl` + `registrationPath`: RFC 7591's registration endpoint. */
  readonly registrationEndpoint: string
  readonly realm: string
  readonly scopesSupported: ReadonlySet<string> | undefined
  readonly defaultScope: string | undefined
  readonly grantTypesSupported: ReadonlySet<string>
  /** Normalised: the tokens of each response type sorted and space-joined. */
  readonly responseTypesSupported: ReadonlySet<string>
  readonly tokenEndpointAuthMethodsSupported: ReadonlySet<string>
  readonly tokenEndpointAuthSigningAlgValuesSupported: ReadonlySet<string>
  readonly rotateRegistrationTokenOnUpdate: boolean
  readonly updateEnabled: boolean
  readonly deleteEnabled: boolean
  readonly maxBodyBytes: number
  readonly clientSecretLifetimeSeconds: number
  readonly extensions: Extensions
  /** The RFC 8414 members these values come from. */
  readonly document: AuthorizationServerMetadata
  /** What discovery serves: `discoveryMetadata` with `document` written over it. */
  readonly discoveryDocument: { readonly [member: string]: unknown }
  /** The path of the issuer URL ("" when it has none), for RFC 8414 §3's well-known URL. */
  readonly issuerPath: string
  readonly limits: { readonly redirectUris: number; readonly contacts: number; readonly jwksKeys: number }
  readonly requirePublicHttpsUris: boolean
  readonly registrationRateLimit: { readonly requests: number; readonly perSeconds: number } | undefined
  readonly operationTimeoutMillis: number | undefined
  readonly tracing: boolean
  /** Allowed CORS origins; undefined when CORS is off. */
  readonly corsOrigins: ReadonlySet<string> | "*" | undefined
  /** The fully qualified configuration endpoint URL of a client (R7592-3-b, D17). */
  readonly clientUri: (clientId: string) => string
}

/**
 * The values the standalone server accepts unless told otherwise.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaults = {
  scopesSupported: ["openid", "profile", "email", "offline_access"],
  grantTypesSupported: ["authorization_code", "refresh_token", "client_credentials"],
  responseTypesSupported: ["code"],
  tokenEndpointAuthMethodsSupported: ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
  tokenEndpointAuthSigningAlgValuesSupported: ["RS256", "PS256", "ES256", "EdDSA"],
  maxBodyBytes: 64 * 1024
} as const

/**
 * Sorts the space-separated tokens of a response type so that `"id_token code"`
 * and `"code id_token"` compare equal (RFC 6749 §3.1.1).
 *
 * @since 0.1.0
 * @category utils
 */
export const normalizeResponseType = (value: string): string => {
  const tokens = value.split(" ")
  return tokens.length === 1 ? value : tokens.slice().sort().join(" ")
}

// Names an extension may not take: the RFC 7591 §2 members, and the members
// the server sets in a client information response.
const reservedMembers: ReadonlySet<string> = new Set([
  ...Object.keys(StandardMembers.fields),
  ...serverIssuedMembers,
  "software_statement"
])

// What is advertised must be what is accepted: members that drive validation
// come only from the options, never from discoveryMetadata.
const withoutValidationMembers = (
  extra: { readonly [member: string]: unknown } | undefined
): { readonly [member: string]: unknown } => {
  const result: Record<string, unknown> = {}
  for (const [member, value] of Object.entries(extra ?? {})) {
    if (!(member in AuthorizationServerMetadata.fields)) result[member] = value
  }
  return result
}

const stripTrailingSlash = (url: string): string => (url.endsWith("/") ? url.slice(0, -1) : url)

/**
 * Resolves options into a {@link ServerConfig}. Throws on a configuration that
 * cannot work (a public URL that is not absolute http(s), a negative limit):
 * configuration errors are found at start-up, not on a request.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): ServerConfig => {
  let parsed: URL
  try {
    parsed = new URL(options.publicUrl)
  } catch {
    throw new Error(`publicUrl must be an absolute URL, got ${JSON.stringify(options.publicUrl)}`)
  }
  if (parsed.protocol !== "https:" && parsed.protocol !== "http:") {
    throw new Error(`publicUrl must use http or https, got ${JSON.stringify(options.publicUrl)}`)
  }
  if (parsed.search !== "" || parsed.hash !== "") {
    throw new Error("publicUrl must not have a query or fragment")
  }
  const publicUrl = stripTrailingSlash(options.publicUrl)
  const registrationPath = options.registrationPath ?? "/register"
  if (!registrationPath.startsWith("/") || registrationPath.length < 2 || registrationPath.endsWith("/")) {
    throw new Error(`registrationPath must start with / and not end with /, got ${JSON.stringify(registrationPath)}`)
  }
  const maxBodyBytes = options.maxBodyBytes ?? defaults.maxBodyBytes
  if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes < 2) {
    throw new Error("maxBodyBytes must be a whole number of bytes, at least 2")
  }
  const clientSecretLifetimeSeconds = options.clientSecretLifetimeSeconds ?? 0
  if (!Number.isSafeInteger(clientSecretLifetimeSeconds) || clientSecretLifetimeSeconds < 0) {
    throw new Error("clientSecretLifetimeSeconds must be a whole number of seconds, 0 for never")
  }
  for (const name of Object.keys(options.extensions ?? {})) {
    if (reservedMembers.has(name) || name.includes("#")) {
      throw new Error(`extension member ${JSON.stringify(name)} would shadow a standard or server-managed member`)
    }
  }
  const rate = options.registrationRateLimit
  if (rate !== undefined && !(rate.requests >= 1 && rate.perSeconds > 0)) {
    throw new Error("registrationRateLimit needs requests >= 1 and perSeconds > 0")
  }
  const issuer = options.issuer ?? publicUrl
  const registrationEndpoint = publicUrl + registrationPath
  const grantTypes = options.grantTypesSupported ?? defaults.grantTypesSupported
  const responseTypes = options.responseTypesSupported ?? defaults.responseTypesSupported
  const authMethods = options.tokenEndpointAuthMethodsSupported ?? defaults.tokenEndpointAuthMethodsSupported
  const signingAlgs =
    options.tokenEndpointAuthSigningAlgValuesSupported ?? defaults.tokenEndpointAuthSigningAlgValuesSupported
  const scopes = options.scopesSupported === "any" ? undefined : (options.scopesSupported ?? defaults.scopesSupported)
  const document: AuthorizationServerMetadata = {
    issuer,
    registration_endpoint: registrationEndpoint,
    ...(scopes === undefined ? {} : { scopes_supported: [...scopes] }),
    response_types_supported: [...responseTypes],
    grant_types_supported: [...grantTypes],
    token_endpoint_auth_methods_supported: [...authMethods],
    token_endpoint_auth_signing_alg_values_supported: [...signingAlgs]
  }
  const clientPrefix = registrationEndpoint + "/"
  let issuerPath = ""
  try {
    const path = new URL(issuer).pathname
    issuerPath = path === "/" ? "" : path.endsWith("/") ? path.slice(0, -1) : path
  } catch {
    // a non-URL issuer has no well-known path of its own
  }
  return {
    issuer,
    publicUrl,
    registrationPath,
    registrationEndpoint,
    realm: options.realm ?? issuer,
    scopesSupported: scopes === undefined ? undefined : new Set(scopes),
    defaultScope: options.defaultScope,
    grantTypesSupported: new Set(grantTypes),
    responseTypesSupported: new Set(responseTypes.map(normalizeResponseType)),
    tokenEndpointAuthMethodsSupported: new Set(authMethods),
    tokenEndpointAuthSigningAlgValuesSupported: new Set(signingAlgs),
    rotateRegistrationTokenOnUpdate: options.rotateRegistrationTokenOnUpdate ?? true,
    updateEnabled: options.updateEnabled ?? true,
    deleteEnabled: options.deleteEnabled ?? true,
    maxBodyBytes,
    clientSecretLifetimeSeconds,
    extensions: options.extensions ?? {},
    document,
    discoveryDocument: { ...withoutValidationMembers(options.discoveryMetadata), ...document },
    issuerPath,
    limits: {
      redirectUris: options.limits?.redirectUris ?? 20,
      contacts: options.limits?.contacts ?? 20,
      jwksKeys: options.limits?.jwksKeys ?? 10
    },
    requirePublicHttpsUris: options.requirePublicHttpsUris ?? false,
    registrationRateLimit: options.registrationRateLimit,
    operationTimeoutMillis: options.operationTimeoutMillis,
    tracing: options.tracing ?? true,
    corsOrigins:
      options.corsOrigins === undefined || options.corsOrigins === "*"
        ? options.corsOrigins
        : options.corsOrigins.length === 0
          ? undefined
          : new Set(options.corsOrigins),
    clientUri: (clientId) => clientPrefix + encodeURIComponent(clientId)
  }
}

/**
 * The server's metadata and options.
 *
 * @since 0.1.0
 * @category tags
 */
export class ServerMetadata extends Context.Tag("effect-dcr/ServerMetadata")<ServerMetadata, ServerConfig>() {}

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<ServerMetadata> => Layer.sync(ServerMetadata, () => make(options))
