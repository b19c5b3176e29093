/**
 * RFC 6750 §2.1 `Authorization: Bearer` parsing (SPEC R6750-2.1-a, D5, D6).
 *
 * @internal
 */

/** The outcome of reading the `Authorization` header(s) of a request. */
export type BearerCredential =
  /** No header, or a scheme other than Bearer (D5): answer with a bare challenge. */
  | { readonly _tag: "Missing" }
  /** Malformed bearer credentials (D6): answer 400 invalid_request. */
  | { readonly _tag: "Malformed"; readonly reason: string }
  | { readonly _tag: "Token"; readonly token: string }

const missing: BearerCredential = { _tag: "Missing" }

// b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
const b64token = /^[A-Za-z0-9\-._~+/]+=*$/

/**
 * Reads the bearer token from every `Authorization` header value of a request.
 * The scheme name is case-insensitive (RFC 7235 §2.1); exactly one header and
 * one token are allowed, separated from the scheme by one or more spaces.
 */
export const parseAuthorization = (values: ReadonlyArray<string>): BearerCredential => {
  if (values.length === 0) return missing
  if (values.length > 1) {
    return { _tag: "Malformed", reason: "more than one Authorization header" }
  }
  const value = values[0]!
  const space = value.indexOf(" ")
  const scheme = space === -1 ? value : value.slice(0, space)
  if (scheme.toLowerCase() !== "bearer") return missing
  if (space === -1) return { _tag: "Malformed", reason: "the Bearer scheme carries no token" }
  let start = space + 1
  while (start < value.length && value.charCodeAt(start) === 32) start++
  const token = value.slice(start)
  if (token.length === 0) return { _tag: "Malformed", reason: "the Bearer scheme carries no token" }
  if (!b64token.test(token)) {
    return { _tag: "Malformed", reason: "the bearer token has characters outside b64token" }
  }
  return { _tag: "Token", token }
}

/**
 * Every `Authorization` value of a Node request, in order, from its
 * `rawHeaders` (Node keeps only the first in `headers`; D6 must see them all).
 */
export const authorizationValues = (raw: ReadonlyArray<string>): Array<string> => {
  const values: Array<string> = []
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] ?? ""
    if (name.length === 13 && name.toLowerCase() === "authorization") values.push(raw[i + 1] ?? "")
  }
  return values
}
