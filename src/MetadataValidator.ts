/**
 * Step 4 of RFC 7592 (and the heart of RFC 7591): turn untrusted JSON into
 * validated client metadata, checked against the server's metadata (D9–D13).
 *
 * @since 0.1.0
 */
import { Context, Effect, Either, Layer, ParseResult, Schema } from "effect"
import * as Jose from "jose"
import type { RegisteredClient } from "./ClientInformation.js"
import {
  type ClientMetadata,
  defaults,
  localizableMembers,
  redirectGrantTypes,
  standardMemberNames,
  webUrlMembers
} from "./ClientMetadata.js"
import { InvalidClientMetadata, InvalidRedirectUri, InvalidSoftwareStatement } from "./ProtocolError.js"
import * as RegistrationPolicy from "./RegistrationPolicy.js"
import { type SoftwareStatementsService, SoftwareStatements, type StatementError } from "./SoftwareStatements.js"
import { normalizeResponseType, type ServerConfig, ServerMetadata } from "./ServerMetadata.js"
import { isLanguageTag } from "./internal/languageTag.js"
import { checkPublicHttpsUrl, checkRedirectUri, checkWebUrl } from "./internal/uri.js"
import { isJsonObject, type JsonObject, withoutDangerousMembers } from "./internal/json.js"

/**
 * What the validator knows about the request.
 *
 * @since 0.1.0
 * @category models
 */
export interface ValidationContext {
  readonly operation: "register" | "update"
  /** The client as stored, on update. */
  readonly current?: RegisteredClient | undefined
  /**
   * The registration policy that applies (D22): from the initial access token
   * at registration, from the stored client on update.
   */
  readonly policy?: RegistrationPolicy.RegistrationPolicy | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export type MetadataError = InvalidClientMetadata | InvalidRedirectUri | StatementError

/**
 * @since 0.1.0
 * @category models
 */
export interface MetadataValidatorService {
  /**
   * Validates a JSON object of requested metadata. Unknown members are dropped
   * (R7591-2-m, D9), `null` counts as omitted (D8), and the RFC 7591 defaults
   * are applied, so the result is exactly what gets registered.
   */
  readonly validate: (input: unknown, context: ValidationContext) => Effect.Effect<ClientMetadata, MetadataError>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class MetadataValidator extends Context.Tag("effect-dcr/MetadataValidator")<
  MetadataValidator,
  MetadataValidatorService
>() {}

type Checked = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly error: MetadataError }

const metadataError = (description: string): { readonly ok: false; readonly error: MetadataError } => ({
  ok: false,
  error: new InvalidClientMetadata({ description })
})
const redirectError = (description: string): { readonly ok: false; readonly error: MetadataError } => ({
  ok: false,
  error: new InvalidRedirectUri({ description })
})
const ok = (value: unknown): Checked => ({ ok: true, value })

const isNonEmptyString = (value: unknown): value is string => typeof value === "string" && value.length > 0

// Read back members that the checks above already validated, without casts.
const stringOf = (value: unknown): string | undefined => (typeof value === "string" ? value : undefined)
const stringsOf = (value: unknown): ReadonlyArray<string> | undefined =>
  Array.isArray(value) && value.every((item) => typeof item === "string") ? value : undefined

// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
const scopeToken = /^[\x21\x23-\x5b\x5d-\x7e]+$/
// RFC 6749 §3.1.1 / §4.1.1: response-type tokens are RFC 6749 NAME characters
const responseTypeToken = /^[A-Za-z0-9_]+$/

const stringMember = (name: string, value: unknown): Checked =>
  isNonEmptyString(value) ? ok(value) : metadataError(`${name} must be a non-empty string`)

const webUrlMember = (name: string, value: unknown, production: boolean): Checked => {
  if (!isNonEmptyString(value)) return metadataError(`${name} must be a non-empty string`)
  const problem = checkWebUrl(value) ?? (production ? checkPublicHttpsUrl(value) : undefined)
  return problem === undefined ? ok(value) : metadataError(`${name} ${problem}`)
}

/** Checks an array of non-empty strings, removing repeated values (R7591-2-n allows replacing). */
const stringArray = (
  name: string,
  value: unknown,
  fail: (description: string) => { readonly ok: false; readonly error: MetadataError },
  each?: (item: string, index: number) => string | undefined,
  max: number = Infinity
): Checked => {
  if (!Array.isArray(value)) return fail(`${name} must be an array of strings`)
  if (value.length > max) return fail(`${name} may hold at most ${max} entries`)
  const seen = new Set<string>()
  const result: Array<string> = []
  for (let i = 0; i < value.length; i++) {
    const item: unknown = value[i]
    if (!isNonEmptyString(item)) return fail(`${name}[${i}] must be a non-empty string`)
    const problem = each?.(item, i)
    if (problem !== undefined) return fail(`${name}[${i}] ${problem}`)
    if (!seen.has(item)) {
      seen.add(item)
      result.push(item)
    }
  }
  return ok(result)
}

/** Which grant types a response type needs (RFC 7591 §2.1 table, OpenID hybrids included). */
const grantsForResponseType = (responseType: string): ReadonlyArray<string> => {
  const tokens = responseType.split(" ")
  const grants: Array<string> = []
  if (tokens.includes("code")) grants.push("authorization_code")
  if (tokens.includes("token") || tokens.includes("id_token")) grants.push("implicit")
  return grants
}

const privateJwkMembers = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] as const

/** RSA keys under 2048 bits are refused, as jose itself refuses to use them. */
const isWeakRsaKey = (key: unknown): boolean => {
  if (typeof key !== "object" || key === null || !("algorithm" in key)) return false
  const algorithm: unknown = key.algorithm
  return (
    typeof algorithm === "object" &&
    algorithm !== null &&
    "modulusLength" in algorithm &&
    typeof algorithm.modulusLength === "number" &&
    algorithm.modulusLength < 2048
  )
}

const inferAlg = (jwk: JsonObject): string | undefined => {
  if (typeof jwk.alg === "string") return jwk.alg
  switch (jwk.kty) {
    case "RSA":
      return "RS256"
    case "EC":
      return jwk.crv === "P-384" ? "ES384" : jwk.crv === "P-521" ? "ES512" : "ES256"
    case "OKP":
      return jwk.crv === "X25519" || jwk.crv === "X448" ? "ECDH-ES" : "EdDSA"
    default:
      return undefined
  }
}

/** Synchronous shape checks of a JWK Set (D13); the keys are imported afterwards. */
const checkJwksShape = (value: unknown, maxKeys: number): Checked => {
  if (!isJsonObject(value) || !Array.isArray(value.keys)) {
    return metadataError("jwks must be a JWK Set: an object with a keys array")
  }
  if (value.keys.length === 0) return metadataError("jwks must hold at least one key")
  if (value.keys.length > maxKeys) return metadataError(`jwks may hold at most ${maxKeys} keys`)
  const kids = new Set<string>()
  for (let i = 0; i < value.keys.length; i++) {
    const key: unknown = value.keys[i]
    if (!isJsonObject(key) || typeof key.kty !== "string") return metadataError(`jwks.keys[${i}] must be a JWK`)
    for (const member of privateJwkMembers) {
      if (Object.hasOwn(key, member)) {
        return metadataError(`jwks.keys[${i}] holds private or symmetric key material (${member})`)
      }
    }
    if (typeof key.kid === "string") {
      if (kids.has(key.kid)) return metadataError(`jwks.keys[${i}] repeats a kid`)
      kids.add(key.kid)
    }
  }
  return ok(withoutDangerousMembers(value))
}

const importJwks = (jwks: JsonObject): Effect.Effect<void, MetadataError> => {
  const keys: ReadonlyArray<unknown> = Array.isArray(jwks.keys) ? jwks.keys : []
  return Effect.forEach(
    keys,
    (key, i) => {
      if (!isJsonObject(key))
        return Effect.fail(new InvalidClientMetadata({ description: `jwks.keys[${i}] must be a JWK` }))
      const alg = inferAlg(key)
      if (alg === undefined) {
        return Effect.fail(new InvalidClientMetadata({ description: `jwks.keys[${i}] has an unsupported key type` }))
      }
      return Effect.tryPromise({
        try: () => Jose.importJWK({ ...key }, alg),
        catch: () => new InvalidClientMetadata({ description: `jwks.keys[${i}] is not a valid public key` })
      }).pipe(
        Effect.filterOrFail(
          (imported) => !isWeakRsaKey(imported),
          () => new InvalidClientMetadata({ description: `jwks.keys[${i}] is an RSA key shorter than 2048 bits` })
        )
      )
    },
    { discard: true }
  )
}

const unsupportedStatements: SoftwareStatementsService = {
  supported: false,
  required: false,
  verify: () => Effect.die(new Error("software statements are not supported"))
}

/**
 * Builds the validation function for a server configuration. Everything that
 * depends only on the configuration (sets, the extension decoder) is prepared
 * here, once, not on every request.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  config: ServerConfig,
  statements: SoftwareStatementsService = unsupportedStatements
): MetadataValidatorService => {
  // One compiled decoder per extension member, prepared once (D9). The
  // decoded value is encoded back so that what is stored is plain JSON.
  const extensionCodecs = new Map(
    Object.entries(config.extensions).map(([name, schema]) => {
      const decode = Schema.decodeUnknownEither(schema, { errors: "first" })
      const encode = Schema.encodeEither(schema)
      return [
        name,
        (value: unknown): Either.Either<unknown, ParseResult.ParseError> => Either.flatMap(decode(value), encode)
      ] as const
    })
  )
  const standardSet: ReadonlySet<string> = new Set(standardMemberNames)

  const checkStandard = (name: string, value: unknown): Checked => {
    switch (name) {
      case "redirect_uris":
        return stringArray(name, value, redirectError, checkRedirectUri, config.limits.redirectUris)
      case "token_endpoint_auth_method":
        if (!isNonEmptyString(value)) return metadataError(`${name} must be a non-empty string`)
        return config.tokenEndpointAuthMethodsSupported.has(value)
          ? ok(value)
          : metadataError(`${name} is not supported by this server`)
      case "token_endpoint_auth_signing_alg":
        if (!isNonEmptyString(value)) return metadataError(`${name} must be a non-empty string`)
        return value !== "none" && config.tokenEndpointAuthSigningAlgValuesSupported.has(value)
          ? ok(value)
          : metadataError(`${name} is not supported by this server`)
      case "grant_types":
        return stringArray(name, value, metadataError, (grant) =>
          config.grantTypesSupported.has(grant) ? undefined : "is not a grant type this server supports"
        )
      case "response_types": {
        const checked = stringArray(name, value, metadataError, (responseType) => {
          const tokens = responseType.split(" ")
          if (!tokens.every((token) => responseTypeToken.test(token))) return "is not a well-formed response type"
          return config.responseTypesSupported.has(normalizeResponseType(responseType))
            ? undefined
            : "is not a response type this server supports"
        })
        if (!checked.ok || !Array.isArray(checked.value)) return checked
        // "code id_token" and "id_token code" are one response type: keep the first spelling.
        const seen = new Set<string>()
        return ok(
          checked.value.filter((responseType: string) => {
            const key = normalizeResponseType(responseType)
            if (seen.has(key)) return false
            seen.add(key)
            return true
          })
        )
      }
      case "scope": {
        if (!isNonEmptyString(value)) return metadataError(`${name} must be a non-empty string`)
        const tokens = value.split(" ")
        for (const token of tokens) {
          if (!scopeToken.test(token)) return metadataError(`${name} must be space-separated scope tokens`)
          if (config.scopesSupported !== undefined && !config.scopesSupported.has(token)) {
            return metadataError(`${name} contains a scope this server does not support`)
          }
        }
        return ok(value)
      }
      case "contacts":
        return stringArray(name, value, metadataError, undefined, config.limits.contacts)
      case "jwks":
        return checkJwksShape(value, config.limits.jwksKeys)
      default:
        return webUrlMembers.has(name)
          ? webUrlMember(name, value, config.requirePublicHttpsUris)
          : stringMember(name, value)
    }
  }

  const checkSync = (input: JsonObject): Either.Either<Record<string, unknown>, MetadataError> => {
    const standard: Record<string, unknown> = {}
    const localized: Array<readonly [string, string]> = []
    const seenVariants = new Set<string>()
    const extensions: Array<readonly [string, unknown]> = []

    for (const key of Object.keys(input)) {
      const value = input[key]
      if (value === null || value === undefined) continue // D8: null counts as omitted
      if (standardSet.has(key)) {
        const checked = checkStandard(key, value)
        if (!checked.ok) return Either.left(checked.error)
        standard[key] = checked.value
        continue
      }
      const hash = key.indexOf("#")
      if (hash > 0) {
        const base = key.slice(0, hash)
        if (!localizableMembers.has(base)) continue // R7591-2-m: not understood, dropped
        const tag = key.slice(hash + 1)
        if (!isLanguageTag(tag))
          return Either.left(new InvalidClientMetadata({ description: `${base}: invalid language tag in ${key}` }))
        // D10 / R7591-2.2-c: tags compare case-insensitively, so two spellings of one tag are ambiguous.
        const canonical = key.toLowerCase()
        if (seenVariants.has(canonical)) {
          return Either.left(
            new InvalidClientMetadata({ description: `${base}: language tag repeated in another case` })
          )
        }
        seenVariants.add(canonical)
        const checked =
          base === "client_name" ? stringMember(key, value) : webUrlMember(key, value, config.requirePublicHttpsUris)
        if (!checked.ok) return Either.left(checked.error)
        if (typeof checked.value === "string") localized.push([key, checked.value])
        continue
      }
      if (extensionCodecs.has(key)) extensions.push([key, withoutDangerousMembers(value)])
      // anything else: not understood, dropped (R7591-2-m)
    }

    // Defaults (R7591-2-b/c/d, D8). When only one of grant_types and
    // response_types is given, the other is derived from RFC 7591 §2.1's
    // table so that the pair is consistent.
    const authMethod = stringOf(standard.token_endpoint_auth_method) ?? defaults.token_endpoint_auth_method
    if (!config.tokenEndpointAuthMethodsSupported.has(authMethod)) {
      return Either.left(
        new InvalidClientMetadata({
          description:
            "token_endpoint_auth_method is required: this server does not support the default client_secret_basic"
        })
      )
    }
    const requestedGrants = stringsOf(standard.grant_types)
    const requestedResponses = stringsOf(standard.response_types)
    let grantTypes: ReadonlyArray<string>
    let responseTypes: ReadonlyArray<string>
    if (requestedGrants === undefined && requestedResponses === undefined) {
      grantTypes = defaults.grant_types
      responseTypes = defaults.response_types
    } else if (requestedGrants === undefined) {
      responseTypes = requestedResponses ?? []
      grantTypes = [...new Set(responseTypes.flatMap(grantsForResponseType))]
      if (grantTypes.length === 0) grantTypes = defaults.grant_types
    } else {
      grantTypes = requestedGrants
      responseTypes =
        requestedResponses ??
        [
          grantTypes.includes("authorization_code") ? "code" : undefined,
          grantTypes.includes("implicit") ? "token" : undefined
        ].filter((type): type is string => type !== undefined)
    }
    if (grantTypes.length === 0)
      return Either.left(new InvalidClientMetadata({ description: "grant_types must not be empty" }))
    for (const grant of grantTypes) {
      if (!config.grantTypesSupported.has(grant)) {
        return Either.left(
          new InvalidClientMetadata({
            description: `grant_types: ${grant === "authorization_code" ? "the default " : ""}grant type is not supported by this server`
          })
        )
      }
    }
    for (const responseType of responseTypes) {
      if (!config.responseTypesSupported.has(normalizeResponseType(responseType))) {
        return Either.left(
          new InvalidClientMetadata({ description: "response_types: response type is not supported by this server" })
        )
      }
    }
    // R7591-2.1-b, D12: no registration into an inconsistent state.
    for (const responseType of responseTypes) {
      for (const grant of grantsForResponseType(responseType)) {
        if (!grantTypes.includes(grant)) {
          return Either.left(
            new InvalidClientMetadata({
              description: `response_types: ${responseType === "code" ? "code" : "a response type"} needs the ${grant} grant type`
            })
          )
        }
      }
    }
    for (const grant of grantTypes) {
      if (redirectGrantTypes.has(grant) && !responseTypes.some((type) => grantsForResponseType(type).includes(grant))) {
        return Either.left(
          new InvalidClientMetadata({ description: `grant_types: ${grant} needs a matching response type` })
        )
      }
    }
    // R7591-5-b, D11: redirect-based grants need registered redirect URIs.
    const redirectUris = stringsOf(standard.redirect_uris)
    if (
      grantTypes.some((grant) => redirectGrantTypes.has(grant)) &&
      (redirectUris === undefined || redirectUris.length === 0)
    ) {
      return Either.left(
        new InvalidRedirectUri({ description: "redirect_uris is required for redirect-based grant types" })
      )
    }
    // R7591-2-k, D13.
    if (standard.jwks !== undefined && standard.jwks_uri !== undefined) {
      return Either.left(new InvalidClientMetadata({ description: "jwks and jwks_uri must not both be present" }))
    }
    if (
      (authMethod === "private_key_jwt" || authMethod === "self_signed_tls_client_auth") &&
      standard.jwks === undefined &&
      standard.jwks_uri === undefined
    ) {
      return Either.left(new InvalidClientMetadata({ description: `${authMethod} needs jwks or jwks_uri` }))
    }

    standard.token_endpoint_auth_method = authMethod
    standard.grant_types = grantTypes
    standard.response_types = responseTypes
    if (standard.scope === undefined && config.defaultScope !== undefined) standard.scope = config.defaultScope

    // Canonical order: standard members, language variants, extensions.
    const result: Record<string, unknown> = {}
    for (const name of standardMemberNames) {
      if (standard[name] !== undefined) result[name] = standard[name]
    }
    for (const [key, value] of localized) result[key] = value
    for (const [name, value] of extensions) {
      const decoded = extensionCodecs.get(name)?.(value)
      if (decoded === undefined) continue
      if (Either.isLeft(decoded)) {
        const issue = ParseResult.ArrayFormatter.formatErrorSync(decoded.left)[0]
        const path = [name, ...(issue?.path ?? [])].map(String).join(".")
        return Either.left(new InvalidClientMetadata({ description: `${path}: ${issue?.message ?? "invalid"}` }))
      }
      result[name] = decoded.right
    }
    return Either.right(result)
  }

  // Not a closure made inside validate: tsx (keepNames) renames each named
  // closure a function makes, on every call.
  const finishWith =
    (context: ValidationContext) =>
    (request: JsonObject, statement: string | undefined): Effect.Effect<ClientMetadata, MetadataError> => {
      // The server's own policy wins over the client and over any statement.
      const checked = checkSync(RegistrationPolicy.applyFixed(context.policy, request))
      if (Either.isLeft(checked)) return Effect.fail(checked.left)
      const metadata = checked.right
      const refused = RegistrationPolicy.check(context.policy, metadata)
      if (refused !== undefined) return Effect.fail(refused)
      if (statement !== undefined) metadata.software_statement = statement
      return isJsonObject(metadata.jwks) ? Effect.as(importJwks(metadata.jwks), metadata) : Effect.succeed(metadata)
    }

  return {
    validate: (input, context) => {
      if (!isJsonObject(input)) {
        return Effect.fail(new InvalidClientMetadata({ description: "client metadata must be a JSON object" }))
      }
      const finish = finishWith(context)
      if (!statements.supported) return finish(input, undefined)
      const presented = input.software_statement
      if (presented === undefined || presented === null) {
        return statements.required
          ? Effect.fail(new InvalidSoftwareStatement({ description: "a software statement is required" }))
          : finish(input, undefined)
      }
      // R7591-2-o, R7591-3.1.1-a, D21: the statement's claims take precedence.
      return Effect.flatMap(statements.verify(presented), (verified) =>
        finish({ ...input, ...verified.claims }, verified.statement)
      )
    }
  }
}

/**
 * RFC 7591 rules checked against the `ServerMetadata` in context.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<MetadataValidator, never, ServerMetadata | SoftwareStatements> = Layer.effect(
  MetadataValidator,
  Effect.zipWith(ServerMetadata, SoftwareStatements, make)
)
