/**
 * A policy that fixes or restricts a client's metadata (D22). It comes with an
 * issued initial access token and stays attached to every client registered
 * with that token, so no later update can escape it.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import type { ClientMetadata } from "./ClientMetadata.js"
import { InvalidClientMetadata, InvalidRedirectUri } from "./ProtocolError.js"

/**
 * The policy as stored and as given to `InitialAccessTokens.mint`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const RegistrationPolicy = Schema.Struct({
  /**
   * Hosts redirect URIs may point at. `*.example.com` allows every subdomain
   * of example.com (not example.com itself).
   */
  redirectUriHosts: Schema.optional(Schema.Array(Schema.String)),
  /** Scopes the client may register. */
  scopes: Schema.optional(Schema.Array(Schema.String)),
  /** Grant types the client may register. */
  grantTypes: Schema.optional(Schema.Array(Schema.String)),
  /** Metadata members forced to these values, whatever the client sends (e.g. `software_id`). */
  fixed: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Unknown }))
})

/**
 * @since 0.1.0
 * @category models
 */
export type RegistrationPolicy = typeof RegistrationPolicy.Type

const hostAllowed = (host: string, allowed: ReadonlyArray<string>): boolean => {
  const lower = host.toLowerCase()
  return allowed.some((pattern) => {
    const p = pattern.toLowerCase()
    return p.startsWith("*.") ? lower.endsWith(p.slice(1)) && lower.length > p.length - 1 : lower === p
  })
}

/** The host of a redirect URI, or undefined for a private-use scheme without one. */
const hostOf = (uri: string): string | undefined => {
  try {
    const host = new URL(uri).hostname
    return host === "" ? undefined : host
  } catch {
    return undefined
  }
}

/**
 * The request with the policy's fixed members written over it: the server's
 * own policy takes precedence over anything the client or a statement says.
 *
 * @since 0.1.0
 * @category combinators
 */
export const applyFixed = (
  policy: RegistrationPolicy | undefined,
  input: { readonly [member: string]: unknown }
): { readonly [member: string]: unknown } => (policy?.fixed === undefined ? input : { ...input, ...policy.fixed })

/**
 * Checks validated metadata against the policy's restrictions.
 *
 * @since 0.1.0
 * @category combinators
 */
export const check = (
  policy: RegistrationPolicy | undefined,
  metadata: ClientMetadata
): InvalidClientMetadata | InvalidRedirectUri | undefined => {
  if (policy === undefined) return undefined
  if (policy.redirectUriHosts !== undefined) {
    const allowed = policy.redirectUriHosts
    for (const uri of metadata.redirect_uris ?? []) {
      const host = hostOf(uri)
      if (host === undefined || !hostAllowed(host, allowed)) {
        return new InvalidRedirectUri({
          description: "redirect_uris: a host is not allowed by the registration policy"
        })
      }
    }
  }
  if (policy.scopes !== undefined && metadata.scope !== undefined) {
    const allowed = new Set(policy.scopes)
    if (!metadata.scope.split(" ").every((scope) => allowed.has(scope))) {
      return new InvalidClientMetadata({ description: "scope: a scope is not allowed by the registration policy" })
    }
  }
  if (policy.grantTypes !== undefined) {
    const allowed = new Set(policy.grantTypes)
    if (!(metadata.grant_types ?? []).every((grant) => allowed.has(grant))) {
      return new InvalidClientMetadata({
        description: "grant_types: a grant type is not allowed by the registration policy"
      })
    }
  }
  return undefined
}
