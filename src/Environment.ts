/**
 * The standalone server's configuration from environment variables. Every
 * variable is optional; a malformed one is an error naming it, reported
 * before anything listens.
 *
 * | variable | meaning | default |
 * |---|---|---|
 * | `PORT`, `HOST` | where to listen | `3000`, `127.0.0.1` |
 * | `PUBLIC_URL` | the URL clients reach the server at (D17) | `http://HOST:PORT` |
 * | `REGISTRATION_MODE` | `open`, `static` or `issued` (D22) | `open` |
 * | `INITIAL_ACCESS_TOKEN` | the static token(s), comma-separated | — |
 * | `RAT_ROTATION` | rotate the registration access token on update (D15) | `true` |
 * | `RAT_FORMAT` | `opaque` or `jwt` | `opaque` |
 * | `RAT_SIGNING_KEY` | JWK (JSON, or `@file`) signing `jwt` tokens | — |
 * | `DELETE_ENABLED`, `UPDATE_ENABLED` | serve DELETE / PUT (D4, D19) | `true` |
 * | `SECRET_LIFETIME` | client secret lifetime in seconds, 0 = never (D14) | `0` |
 * | `MAX_BODY_BYTES` | request body limit (D18) | `65536` |
 * | `SOFTWARE_STATEMENT_ISSUERS` | JSON (or `@file`): `[{ "issuer", "jwks" or "jwksUri" }]` (D21) | none: statements ignored |
 * | `SOFTWARE_STATEMENT_REQUIRED` | registrations must carry a statement | `false` |
 * | `SCOPES` | scopes clients may register, space-separated, or `any` | `openid profile email offline_access` |
 * | `CORS_ORIGINS` | browser origins allowed to call the endpoints, comma-separated, or `*` | none (CORS off) |
 * | `LOG_FORMAT` | `pretty` or `json` | `pretty` |
 * | `LOG_LEVEL` | `trace`, `debug`, `info`, `warning`, `error` or `none` | `info` |
 * | `ACCESS_LOG` | one log line per request | `true` |
 * | `SHUTDOWN_TIMEOUT` | milliseconds in-flight requests get on SIGTERM/SIGINT | `10000` |
 * | `OTEL_EXPORTER_OTLP_ENDPOINT` | OTLP/HTTP collector to export spans to | none (no tracing export) |
 * | `SECRET_SEALING_KEYS` | `kid:key,…` (32-byte base64url keys, sealing key first): client secrets sealed at rest | none |
 * | `REGISTRATION_RATE_LIMIT` | `N/S`: at most N registrations per S seconds per client address (429 past it) | none |
 * | `REQUIRE_PUBLIC_HTTPS_URIS` | metadata URLs (`jwks_uri`, `logo_uri`, …) must be https on a public host | `false` |
 * | `MAX_REDIRECT_URIS`, `MAX_CONTACTS`, `MAX_JWKS_KEYS` | list size caps | `20`, `20`, `10` |
 * | `HEADERS_TIMEOUT`, `REQUEST_TIMEOUT` | milliseconds a client has to send headers / the whole request | `10000`, `30000` |
 * | `OPERATION_TIMEOUT` | milliseconds a request may spend in the programs and the store (500 past it) | `10000` |
 * | `DATABASE_URL` | `file:PATH` (SQLite), `postgres://…` (PostgreSQL) or `memory:` | `file:./data/effect-dcr.sqlite` |
 * | `SQLITE_SYNCHRONOUS` | SQLite only: `normal` or `full` (every commit flushed to the disk before it is answered) | `normal` |
 *
 * @since 0.1.0
 */
import { readFileSync } from "node:fs"
import { Effect, Layer, Redacted } from "effect"
import { type ClientStore, layerMemory } from "./ClientStore.js"
import type { StoreError } from "./ProtocolError.js"
import type { SealingKey } from "./SqlClientStore.js"
import type * as Jose from "jose"
import type * as Dcr from "./Dcr.js"
import * as InitialAccessTokens from "./InitialAccessTokens.js"
import type { LogLevelName, ServeOptions } from "./Server.js"
import * as SoftwareStatements from "./SoftwareStatements.js"
import * as TokenAuthenticator from "./TokenAuthenticator.js"
import { isJsonObject } from "./internal/json.js"

/**
 * A configuration error: the message names the variable.
 *
 * @since 0.1.0
 * @category errors
 */
export class ConfigError extends Error {}

type Env = Readonly<Record<string, string | undefined>>

const value = (env: Env, name: string): string | undefined => {
  const raw = env[name]
  return raw === undefined || raw.trim() === "" ? undefined : raw.trim()
}

const boolean = (env: Env, name: string): boolean | undefined => {
  const raw = value(env, name)
  if (raw === undefined) return undefined
  if (/^(true|1|yes|on)$/i.test(raw)) return true
  if (/^(false|0|no|off)$/i.test(raw)) return false
  throw new ConfigError(`${name} must be true or false, got ${JSON.stringify(raw)}`)
}

const wholeNumber = (env: Env, name: string, max = Number.MAX_SAFE_INTEGER): number | undefined => {
  const raw = value(env, name)
  if (raw === undefined) return undefined
  if (!/^\d+$/.test(raw) || Number(raw) > max) {
    throw new ConfigError(`${name} must be a whole number up to ${max}, got ${JSON.stringify(raw)}`)
  }
  return Number(raw)
}

/** JSON given inline or, with a leading `@`, read from a file. */
const json = (env: Env, name: string): unknown => {
  const raw = value(env, name)
  if (raw === undefined) return undefined
  let text = raw
  if (raw.startsWith("@")) {
    try {
      text = readFileSync(raw.slice(1), "utf8")
    } catch {
      throw new ConfigError(`${name}: cannot read ${raw.slice(1)}`)
    }
  }
  try {
    const parsed: unknown = JSON.parse(text)
    return parsed
  } catch {
    throw new ConfigError(`${name} is not valid JSON`)
  }
}

const isJwk = (input: unknown): input is Jose.JWK => isJsonObject(input) && typeof input.kty === "string"

const issuersOf = (input: unknown): ReadonlyArray<SoftwareStatements.TrustedIssuer> => {
  if (!Array.isArray(input)) throw new ConfigError("SOFTWARE_STATEMENT_ISSUERS must be a JSON array")
  return input.map((entry, i): SoftwareStatements.TrustedIssuer => {
    const where = `SOFTWARE_STATEMENT_ISSUERS[${i}]`
    if (!isJsonObject(entry) || typeof entry.issuer !== "string") throw new ConfigError(`${where} needs an issuer`)
    const { jwks, jwksUri } = entry
    if (jwksUri !== undefined) {
      if (typeof jwksUri !== "string" || !URL.canParse(jwksUri)) throw new ConfigError(`${where}.jwksUri must be a URL`)
      return { issuer: entry.issuer, jwksUri }
    }
    if (!isJsonObject(jwks) || !Array.isArray(jwks.keys) || !jwks.keys.every(isJwk)) {
      throw new ConfigError(`${where} needs jwks (a JWK Set) or jwksUri`)
    }
    return { issuer: entry.issuer, jwks: { keys: jwks.keys } }
  })
}

const logLevelNames: ReadonlyArray<LogLevelName> = [
  "all",
  "trace",
  "debug",
  "info",
  "warning",
  "error",
  "fatal",
  "none"
]

const rateLimitOf = (env: Env): { readonly requests: number; readonly perSeconds: number } | undefined => {
  const raw = value(env, "REGISTRATION_RATE_LIMIT")
  if (raw === undefined) return undefined
  const match = /^([1-9]\d*)\/([1-9]\d*)$/.exec(raw)
  if (match === null) {
    throw new ConfigError(
      `REGISTRATION_RATE_LIMIT must be N/S (N registrations per S seconds), got ${JSON.stringify(raw)}`
    )
  }
  return { requests: Number(match[1]), perSeconds: Number(match[2]) }
}

/**
 * `SECRET_SEALING_KEYS`: `kid:base64url-32-bytes`, comma-separated, the
 * sealing key first.
 *
 * @since 0.1.0
 * @category constructors
 */
export const sealingKeysOf = (env: Env): ReadonlyArray<SealingKey> | undefined => {
  const raw = value(env, "SECRET_SEALING_KEYS")
  if (raw === undefined) return undefined
  const keys = raw.split(",").map((entry) => {
    const [kid, key, extra] = entry.trim().split(":")
    const bytes = key === undefined ? undefined : Buffer.from(key, "base64url")
    if (kid === undefined || kid === "" || extra !== undefined || bytes === undefined || bytes.length !== 32) {
      throw new ConfigError(
        "SECRET_SEALING_KEYS must be kid:key pairs, comma-separated, each key 32 bytes in base64url"
      )
    }
    return { kid, key: Redacted.make(new Uint8Array(bytes)) }
  })
  if (new Set(keys.map((key) => key.kid)).size !== keys.length) {
    throw new ConfigError("SECRET_SEALING_KEYS must not repeat a kid")
  }
  return keys
}

/**
 * `SQLITE_SYNCHRONOUS`: `normal` (the default) or `full`; see
 * `SqliteStore.Options.synchronous`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const sqliteSynchronousOf = (env: Env): "normal" | "full" | undefined => {
  const raw = value(env, "SQLITE_SYNCHRONOUS")
  if (raw === undefined) return undefined
  if (raw === "normal" || raw === "full") return raw
  throw new ConfigError(`SQLITE_SYNCHRONOUS must be normal or full, got ${JSON.stringify(raw)}`)
}

/**
 * The default database of the standalone server.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultDatabaseUrl = "file:./data/effect-dcr.sqlite"

/**
 * The store a database URL names. The driver module is loaded only when the
 * layer is built, so a SQLite server never loads `pg` and vice versa.
 *
 * @since 0.1.0
 * @category constructors
 */
export const storeFromUrl = (
  url: string,
  sealingKeys?: ReadonlyArray<SealingKey> | undefined,
  sqliteSynchronous?: "normal" | "full" | undefined
): Layer.Layer<ClientStore, StoreError> => {
  if (url === "memory:") return layerMemory
  if (url.startsWith("file:")) {
    const filename = url.slice("file:".length)
    if (filename === "") throw new ConfigError("DATABASE_URL=file: needs a path, e.g. file:./data/effect-dcr.sqlite")
    return Layer.unwrapEffect(
      Effect.map(
        Effect.promise(() => import("./SqliteStore.js")),
        (module) => module.layer({ filename, sealingKeys, synchronous: sqliteSynchronous })
      )
    )
  }
  if (/^postgres(ql)?:\/\//.test(url)) {
    if (!URL.canParse(url)) throw new ConfigError("DATABASE_URL is not a valid postgres:// URL")
    return Layer.unwrapEffect(
      Effect.map(
        Effect.promise(() => import("./PgStore.js")),
        (module) => module.layer({ url: Redacted.make(url), sealingKeys })
      )
    )
  }
  throw new ConfigError("DATABASE_URL must start with file:, postgres:// or postgresql://, or be memory:")
}

/**
 * Reads the server options from an environment (normally `process.env`).
 * Throws `ConfigError` on a malformed variable.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromEnv = (env: Env): ServeOptions => {
  const port = wholeNumber(env, "PORT", 65535)
  const mode = value(env, "REGISTRATION_MODE") ?? "open"
  let initialAccessTokens: Dcr.Options["initialAccessTokens"]
  if (mode === "static") {
    const tokens = (value(env, "INITIAL_ACCESS_TOKEN") ?? "").split(",").map((token) => token.trim())
    if (tokens.some((token) => !/^[A-Za-z0-9\-._~+/]+=*$/.test(token))) {
      throw new ConfigError("REGISTRATION_MODE=static needs INITIAL_ACCESS_TOKEN: one or more tokens, comma-separated")
    }
    initialAccessTokens = InitialAccessTokens.layerStatic(tokens)
  } else if (mode === "issued") {
    initialAccessTokens = InitialAccessTokens.layerIssued
  } else if (mode !== "open") {
    throw new ConfigError(`REGISTRATION_MODE must be open, static or issued, got ${JSON.stringify(mode)}`)
  }

  const format = value(env, "RAT_FORMAT") ?? "opaque"
  let tokenAuthenticator: Dcr.Options["tokenAuthenticator"]
  if (format === "jwt") {
    const key = json(env, "RAT_SIGNING_KEY")
    if (!isJwk(key)) throw new ConfigError("RAT_FORMAT=jwt needs RAT_SIGNING_KEY: a JWK with its alg")
    if (typeof key.alg !== "string" || key.alg === "none") {
      throw new ConfigError("RAT_SIGNING_KEY needs an alg member naming a signing algorithm")
    }
    if (key.kty === "oct" ? typeof key.k !== "string" : typeof key.d !== "string") {
      throw new ConfigError("RAT_SIGNING_KEY must be a private (or oct) key: it signs tokens")
    }
    tokenAuthenticator = TokenAuthenticator.layerJwt({ key })
  } else if (format !== "opaque") {
    throw new ConfigError(`RAT_FORMAT must be opaque or jwt, got ${JSON.stringify(format)}`)
  }

  const issuers = json(env, "SOFTWARE_STATEMENT_ISSUERS")
  const required = boolean(env, "SOFTWARE_STATEMENT_REQUIRED")
  if (required === true && issuers === undefined) {
    throw new ConfigError("SOFTWARE_STATEMENT_REQUIRED needs SOFTWARE_STATEMENT_ISSUERS")
  }
  const softwareStatements =
    issuers === undefined ? undefined : SoftwareStatements.layer({ issuers: issuersOf(issuers), required })

  const publicUrl = value(env, "PUBLIC_URL")
  if (publicUrl !== undefined && !/^https?:\/\/[^/?#]/i.test(publicUrl)) {
    throw new ConfigError(`PUBLIC_URL must be an absolute http(s) URL, got ${JSON.stringify(publicUrl)}`)
  }
  if (publicUrl !== undefined && !URL.canParse(publicUrl)) throw new ConfigError("PUBLIC_URL is not a valid URL")
  const cors = value(env, "CORS_ORIGINS")
  const corsOrigins = cors === undefined ? undefined : cors === "*" ? "*" : cors.split(",").map((o) => o.trim())
  if (Array.isArray(corsOrigins)) {
    for (const origin of corsOrigins) {
      if (!/^https?:\/\/[^/?#]+$/.test(origin)) {
        throw new ConfigError(
          `CORS_ORIGINS must list origins like https://app.example.com, got ${JSON.stringify(origin)}`
        )
      }
    }
  }
  const logFormat = value(env, "LOG_FORMAT")
  if (logFormat !== undefined && logFormat !== "pretty" && logFormat !== "json") {
    throw new ConfigError(`LOG_FORMAT must be pretty or json, got ${JSON.stringify(logFormat)}`)
  }
  const logLevel = value(env, "LOG_LEVEL")
  const level = logLevel === undefined ? undefined : logLevelNames.find((name) => name === logLevel)
  if (logLevel !== undefined && level === undefined) {
    throw new ConfigError(`LOG_LEVEL must be one of ${logLevelNames.join(", ")}, got ${JSON.stringify(logLevel)}`)
  }
  const otlp = value(env, "OTEL_EXPORTER_OTLP_ENDPOINT")
  if (otlp !== undefined && !/^https?:\/\/[^/?#]/.test(otlp)) {
    throw new ConfigError(`OTEL_EXPORTER_OTLP_ENDPOINT must be an http(s) URL, got ${JSON.stringify(otlp)}`)
  }
  const scopes = value(env, "SCOPES")
  return {
    port,
    host: value(env, "HOST"),
    publicUrl,
    corsOrigins,
    logFormat,
    logLevel: level,
    accessLog: boolean(env, "ACCESS_LOG"),
    shutdownTimeoutMillis: wholeNumber(env, "SHUTDOWN_TIMEOUT"),
    otlpEndpoint: otlp,
    // Spans cost time on every request: only when they are exported.
    tracing: otlp !== undefined,
    registrationRateLimit: rateLimitOf(env),
    operationTimeoutMillis: wholeNumber(env, "OPERATION_TIMEOUT") ?? 10_000,
    requirePublicHttpsUris: boolean(env, "REQUIRE_PUBLIC_HTTPS_URIS"),
    limits: {
      redirectUris: wholeNumber(env, "MAX_REDIRECT_URIS"),
      contacts: wholeNumber(env, "MAX_CONTACTS"),
      jwksKeys: wholeNumber(env, "MAX_JWKS_KEYS")
    },
    headersTimeoutMillis: wholeNumber(env, "HEADERS_TIMEOUT"),
    requestTimeoutMillis: wholeNumber(env, "REQUEST_TIMEOUT"),
    rotateRegistrationTokenOnUpdate: boolean(env, "RAT_ROTATION"),
    deleteEnabled: boolean(env, "DELETE_ENABLED"),
    updateEnabled: boolean(env, "UPDATE_ENABLED"),
    clientSecretLifetimeSeconds: wholeNumber(env, "SECRET_LIFETIME"),
    maxBodyBytes: wholeNumber(env, "MAX_BODY_BYTES"),
    scopesSupported: scopes === undefined ? undefined : scopes === "any" ? "any" : scopes.split(/\s+/),
    services: {
      store: storeFromUrl(
        value(env, "DATABASE_URL") ?? defaultDatabaseUrl,
        sealingKeysOf(env),
        sqliteSynchronousOf(env)
      ),
      initialAccessTokens,
      tokenAuthenticator,
      softwareStatements
    }
  }
}
