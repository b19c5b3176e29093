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
 * True for hosts that name this machine or a private network: loopback,
 * link-local, RFC 1918, unique-local IPv6, and `localhost` names. A server
 * that fetches or links such URLs can be steered at its own network (SSRF).
 */
export const isInternalHost = (hostname: string): boolean => {
  // `localhost.` is `localhost`: trailing dots are dropped before comparing.
  const host = hostname
    .toLowerCase()
    .replace(/^\[|\]$/g, "")
    .replace(/\.+$/, "")
  if (host === "localhost" || host.endsWith(".localhost") || host === "0.0.0.0" || host === "::" || host === "::1") {
    return true
  }
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host)
  if (v4 !== null) {
    const [a, b] = [Number(v4[1]), Number(v4[2])]
    return (
      a === 127 ||
      a === 10 ||
      a === 0 ||
      (a === 169 && b === 254) ||
      (a === 172 && b >= 16 && b <= 31) ||
      (a === 192 && b === 168)
    )
  }
  // IPv4-mapped IPv6, unique-local fc00::/7, link-local fe80::/10
  return host.startsWith("::ffff:") || /^f[cd][0-9a-f]{2}:/.test(host) || /^fe[89ab][0-9a-f]:/.test(host)
}

/**
 * The production rule for URLs the server links to or fetches (`jwks_uri`,
 * `logo_uri`, …): https, and not an internal host.
 */
export const checkPublicHttpsUrl = (value: string): UriProblem => {
  const url = parse(value)
  if (url === undefined) return "is not a valid URL"
  if (url.protocol !== "https:") return "must use https"
  if (isInternalHost(url.hostname)) return "must not point at a loopback or private host"
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
