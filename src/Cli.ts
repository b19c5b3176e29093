/**
 * The standalone server's command line (`@effect/cli`):
 *
 * - `effect-dcr serve [flags]` (what `npm start` runs): every flag has an
 *   environment variable of the same meaning; a flag wins over its variable.
 * - `effect-dcr token create [flags]`: mint an initial access token (D22).
 *
 * Both read their configuration through `Environment.fromEnv` (flags are
 * turned into the variables they stand for), so one parser decides what is
 * valid. A configuration error prints one line naming the flag or variable
 * and exits 1 before anything listens.
 *
 * @since 0.1.0
 */
import { Command, Options, Span } from "@effect/cli"
import { Effect, Option } from "effect"
import { ConfigError, fromEnv } from "./Environment.js"
import { createToken } from "./TokenCommand.js"
import { type RunningServer, serve } from "./Server.js"

type Env = Readonly<Record<string, string | undefined>>

/** A flag standing for an environment variable. */
interface Setting {
  readonly flag: string
  readonly variable: string
  readonly description: string
}

const serveSettings: ReadonlyArray<Setting> = [
  { flag: "port", variable: "PORT", description: "port to listen on (0 picks a free one); default 3000" },
  { flag: "host", variable: "HOST", description: "address to listen on; default 127.0.0.1" },
  {
    flag: "public-url",
    variable: "PUBLIC_URL",
    description:
      "the URL clients reach the server at (behind a proxy or TLS terminator); registration_client_uri is built from it; default http://HOST:PORT"
  },
  {
    flag: "database-url",
    variable: "DATABASE_URL",
    description: "file:PATH (SQLite), postgres://… (PostgreSQL) or memory:; default file:./data/effect-dcr.sqlite"
  },
  {
    flag: "sqlite-synchronous",
    variable: "SQLITE_SYNCHRONOUS",
    description:
      "normal or full: with full every SQLite commit is flushed to the disk before it is answered (survives a power loss, one fsync per write); default normal"
  },
  {
    flag: "registration-mode",
    variable: "REGISTRATION_MODE",
    description: "open, static (needs --initial-access-token) or issued (tokens from `token create`); default open"
  },
  {
    flag: "initial-access-token",
    variable: "INITIAL_ACCESS_TOKEN",
    description: "static initial access token(s), comma-separated"
  },
  {
    flag: "rat-rotation",
    variable: "RAT_ROTATION",
    description: "true/false: new registration access token on every update; default true"
  },
  {
    flag: "rat-format",
    variable: "RAT_FORMAT",
    description: "opaque (random, stored hashed) or jwt (signed); default opaque"
  },
  {
    flag: "rat-signing-key",
    variable: "RAT_SIGNING_KEY",
    description: "with jwt: the private signing JWK with its alg, as JSON or @file"
  },
  {
    flag: "update-enabled",
    variable: "UPDATE_ENABLED",
    description: "true/false: serve PUT on the configuration endpoint; default true"
  },
  {
    flag: "delete-enabled",
    variable: "DELETE_ENABLED",
    description: "true/false: serve DELETE on the configuration endpoint; default true"
  },
  {
    flag: "secret-lifetime",
    variable: "SECRET_LIFETIME",
    description: "client secret lifetime in seconds, 0 for never; default 0"
  },
  { flag: "max-body-bytes", variable: "MAX_BODY_BYTES", description: "request body limit in bytes; default 65536" },
  {
    flag: "scopes",
    variable: "SCOPES",
    description: "scopes clients may register, space-separated, or any; default openid profile email offline_access"
  },
  {
    flag: "software-statement-issuers",
    variable: "SOFTWARE_STATEMENT_ISSUERS",
    description: 'trusted statement issuers as JSON or @file: [{"issuer":"…","jwksUri":"…"}] or with "jwks"'
  },
  {
    flag: "software-statement-required",
    variable: "SOFTWARE_STATEMENT_REQUIRED",
    description: "true/false: registrations must carry a statement; default false"
  },
  {
    flag: "cors-origins",
    variable: "CORS_ORIGINS",
    description: "browser origins allowed (CORS), comma-separated, or *; default none"
  },
  { flag: "log-format", variable: "LOG_FORMAT", description: "pretty or json; default pretty" },
  { flag: "log-level", variable: "LOG_LEVEL", description: "trace, debug, info, warning, error or none; default info" },
  { flag: "access-log", variable: "ACCESS_LOG", description: "true/false: one log line per request; default true" },
  {
    flag: "shutdown-timeout",
    variable: "SHUTDOWN_TIMEOUT",
    description: "milliseconds in-flight requests get on SIGTERM/SIGINT; default 10000"
  },
  {
    flag: "registration-rate-limit",
    variable: "REGISTRATION_RATE_LIMIT",
    description: "N/S: at most N registrations per S seconds per client address, 429 past it; default none"
  },
  {
    flag: "require-public-https-uris",
    variable: "REQUIRE_PUBLIC_HTTPS_URIS",
    description: "true/false: jwks_uri, logo_uri and other metadata URLs must be https on a public host; default false"
  },
  { flag: "max-redirect-uris", variable: "MAX_REDIRECT_URIS", description: "redirect URIs per client; default 20" },
  { flag: "max-contacts", variable: "MAX_CONTACTS", description: "contacts per client; default 20" },
  { flag: "max-jwks-keys", variable: "MAX_JWKS_KEYS", description: "keys in a client's jwks; default 10" },
  {
    flag: "headers-timeout",
    variable: "HEADERS_TIMEOUT",
    description: "milliseconds to send the request headers; default 10000"
  },
  {
    flag: "request-timeout",
    variable: "REQUEST_TIMEOUT",
    description: "milliseconds to send the whole request; default 30000"
  },
  {
    flag: "secret-sealing-keys",
    variable: "SECRET_SEALING_KEYS",
    description:
      "seal client secrets at rest: kid:key pairs (32-byte base64url keys), comma-separated, sealing key first"
  },
  {
    flag: "otlp-endpoint",
    variable: "OTEL_EXPORTER_OTLP_ENDPOINT",
    description: "OpenTelemetry collector (OTLP/HTTP) to export spans to, e.g. http://127.0.0.1:4318; default none"
  }
]

const tokenSettings: ReadonlyArray<Setting> = [
  {
    flag: "database-url",
    variable: "DATABASE_URL",
    description: "the server's database (file:PATH or postgres://…); default file:./data/effect-dcr.sqlite"
  }
]

/** One optional text flag per setting, its help naming the variable. */
const settingOptions = (settings: ReadonlyArray<Setting>) =>
  Options.all(
    Object.fromEntries(
      settings.map((setting) => [
        setting.variable,
        Options.text(setting.flag).pipe(
          Options.withPseudoName(setting.variable),
          Options.withDescription(`${setting.description} [env ${setting.variable}]`),
          Options.optional
        )
      ])
    )
  )

/** The environment with the given flags written over their variables. */
const withFlags = (env: Env, flags: Readonly<Record<string, Option.Option<string>>>): Env => {
  const merged: Record<string, string | undefined> = { ...env }
  for (const [variable, value] of Object.entries(flags)) {
    if (Option.isSome(value)) merged[variable] = value.value
  }
  return merged
}

/** A configuration error names the flag when the value came from one. */
const relabel = (
  message: string,
  settings: ReadonlyArray<Setting>,
  flags: Readonly<Record<string, Option.Option<string>>>
): string =>
  settings.reduce(
    (text, setting) =>
      Option.isSome(flags[setting.variable] ?? Option.none())
        ? text.replace(new RegExp(`\\b${setting.variable}\\b`, "g"), `--${setting.flag}`)
        : text,
    message
  )

/**
 * What the commands do, given the process environment: a seam for tests.
 *
 * @since 0.1.0
 * @category models
 */
export interface Effects {
  readonly env: Env
  /** Called with the running server; resolves when it should stop. */
  readonly onListening: (server: RunningServer) => Promise<void>
  readonly print: (line: string) => void
}

const configurationError = (
  error: unknown,
  settings: ReadonlyArray<Setting>,
  flags: Readonly<Record<string, Option.Option<string>>>
): Error =>
  error instanceof ConfigError
    ? new ConfigError(relabel(error.message, settings, flags))
    : error instanceof Error
      ? error
      : new Error(String(error))

/**
 * The `effect-dcr` command.
 *
 * @since 0.1.0
 * @category commands
 */
export const command = (effects: Effects) => {
  const serveCommand = Command.make("serve", { settings: settingOptions(serveSettings) }, ({ settings }) =>
    Effect.tryPromise({
      try: async () => {
        const options = fromEnv(withFlags(effects.env, settings))
        const server = await serve(options)
        effects.print(`effect-dcr listening on ${server.url}`)
        effects.print(`registration endpoint: ${server.registrationEndpoint}`)
        await effects.onListening(server)
      },
      catch: (error) => configurationError(error, serveSettings, settings)
    })
  ).pipe(Command.withDescription("Serve the registration and client configuration endpoints."))

  const createCommand = Command.make(
    "create",
    {
      settings: settingOptions(tokenSettings),
      expiresIn: Options.integer("expires-in").pipe(
        Options.withDescription("lifetime in seconds, 0 for never; default 86400"),
        Options.withDefault(86_400)
      ),
      maxUses: Options.text("max-uses").pipe(
        Options.withDescription("registrations it allows, or unlimited; default 1"),
        Options.withDefault("1")
      ),
      policy: Options.text("policy").pipe(
        Options.withDescription(
          'JSON: {"redirectUriHosts":[…],"scopes":[…],"grantTypes":[…],"fixed":{…}} restricting the clients it registers'
        ),
        Options.optional
      )
    },
    ({ settings, expiresIn, maxUses, policy }) =>
      Effect.tryPromise({
        try: async () => {
          const args = ["--expires-in", String(expiresIn), "--max-uses", maxUses]
          if (Option.isSome(policy)) args.push("--policy", policy.value)
          effects.print(await createToken(withFlags(effects.env, settings), args))
        },
        catch: (error) => configurationError(error, tokenSettings, settings)
      })
  ).pipe(
    Command.withDescription(
      "Mint an initial access token in the server's database (for --registration-mode issued). Prints the token once; only its hash is stored."
    )
  )

  const tokenCommand = Command.make("token").pipe(
    Command.withDescription("Manage initial access tokens."),
    Command.withSubcommands([createCommand])
  )

  return Command.make("effect-dcr").pipe(
    Command.withDescription(
      "OAuth 2.0 Dynamic Client Registration (RFC 7591) and Management (RFC 7592) server. Every serve flag can also be given as the environment variable shown in brackets."
    ),
    Command.withSubcommands([serveCommand, tokenCommand])
  )
}

/**
 * Runs the command line on `args` (without `node` and the script).
 *
 * @since 0.1.0
 * @category commands
 */
export const run = (effects: Effects) =>
  Command.run(command(effects), {
    name: "effect-dcr",
    version: "0.1.0",
    summary: Span.text("Dynamic Client Registration for OAuth 2.0")
  })
