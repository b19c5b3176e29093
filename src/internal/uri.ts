/**
 * URI rules for client metadata (SPEC R7591-2-f/g/j/k, R7591-5-c, D11).
 *
 * @internal
 */

// RFC 3986 scheme, then ":"; rejects relative references and WHATWG-only forms.
const schemePrefix = /^([A-Za-z][A-Za-z0-9+.-]*):/
// Controls, spaces and characters RFC 3986 never allows unescaped.
const forbiddenChars = /[\u0000-\u0020\u007f-\u009f"<>\\^`{|}]/

// "scheme://" followed by a non-empty authority. WHATWG's URL parser would
// turn `https:///evil.example` into host `evil.example`; RFC 3986 says the
// host is empty there, and an empty host is refused.
const withAuthority = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]/

const loopbackHosts = new Set(["localhost", "127.0.0.1", "[::1]"])

/** Why a URI was refused, or undefined when it is acceptable. */
export type UriProblem = string | undefined

const parse = (value: string): URL | undefined => {
  if (forbiddenChars.test(value)) return undefined
  try {
    return new URL(value)
  } catch {
    return undefined
  }
}

/**
 * A URL that must point at a web page or document (`client_uri`, `logo_uri`,
 * `tos_uri`, `policy_uri`, `jwks_uri`): absolute `http` or `https` with a host.
 */
export const checkWebUrl = (value: string): UriProblem => {
  const scheme = schemePrefix.exec(value)?.[1]?.toLowerCase()
  if (scheme !== "https" && scheme !== "http") return "must be an absolute http or https URL"
  if (!withAuthority.test(value)) return "must be an absolute http or https URL with a host"
  const url = parse(value)
  if (url === undefined || url.hostname === "") return "is not a valid URL"
  return undefined
}

/**
 * D11: absolute, no fragment; `https`; `http` only on a loopback host; or a
 * private-use scheme containing a dot (RFC 8252 §7.1). Everything else,
 * including `javascript:`, `data:` and `file:`, is refused.
 */
export const checkRedirectUri = (value: string): UriProblem => {
  const scheme = schemePrefix.exec(value)?.[1]?.toLowerCase()
  if (scheme === undefined) return "must be an absolute URI"
  if (value.includes("#")) return "must not contain a fragment"
  const url = parse(value)
  if (url === undefined) return "is not a valid URI"
  if (scheme === "https") {
    if (!withAuthority.test(value) || url.hostname === "") return "must name a host"
    return undefined
  }
  if (scheme === "http") {
    if (!withAuthority.test(value) || url.hostname === "") return "must name a host"
    if (!loopbackHosts.has(url.hostname.toLowerCase())) return "may use http only on a loopback host"
    return undefined
  }
  if (!scheme.includes(".")) return "must use https, http on loopback, or a private-use scheme with a dot"
  return undefined
}
