/**
 * `effect-dcr token create`: mints an initial access token (D22) in the
 * database the server uses (`DATABASE_URL`), for a server running with
 * `REGISTRATION_MODE=issued`.
 *
 * ```sh
 * npm run dcr -- token create --expires-in 3600 --max-uses 5 \
 *   --policy '{"redirectUriHosts":["app.example.com"],"scopes":["openid"]}'
 * ```
 *
 * @since 0.1.0
 */
import { Effect, Layer, ManagedRuntime, Redacted, Schema } from "effect"
import * as Credentials from "./Credentials.js"
import { ConfigError, defaultDatabaseUrl, storeFromUrl } from "./Environment.js"
import * as InitialAccessTokens from "./InitialAccessTokens.js"
import { RegistrationPolicy } from "./RegistrationPolicy.js"

/**
 * What the command was asked for.
 *
 * @since 0.1.0
 * @category models
 */
export interface CreateOptions {
  readonly expiresInSeconds: number
  readonly maxUses: number | undefined
  readonly policy: RegistrationPolicy | undefined
}

const decodePolicy = Schema.decodeUnknownEither(Schema.parseJson(RegistrationPolicy))

/**
 * Parses `--expires-in SECONDS` (default 86400; 0 = never), `--max-uses N`
 * (default 1; `unlimited`) and `--policy JSON`.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseCreateArgs = (args: ReadonlyArray<string>): CreateOptions => {
  let expiresInSeconds = 86_400
  let maxUses: number | undefined = 1
  let policy: RegistrationPolicy | undefined
  for (let i = 0; i < args.length; i += 2) {
    const flag = args[i]
    const value = args[i + 1]
    if (value === undefined) throw new ConfigError(`${flag} needs a value`)
    switch (flag) {
      case "--expires-in":
        if (!/^\d+$/.test(value)) throw new ConfigError("--expires-in must be a whole number of seconds")
        expiresInSeconds = Number(value)
        break
      case "--max-uses":
        if (value === "unlimited") maxUses = undefined
        else if (/^[1-9]\d*$/.test(value)) maxUses = Number(value)
        else throw new ConfigError("--max-uses must be a positive whole number or unlimited")
        break
      case "--policy": {
        const decoded = decodePolicy(value)
        if (decoded._tag === "Left") {
          throw new ConfigError(
            '--policy must be JSON like {"redirectUriHosts":[…],"scopes":[…],"grantTypes":[…],"fixed":{…}}'
          )
        }
        policy = decoded.right
        break
      }
      default:
        throw new ConfigError(`unknown option ${flag}; use --expires-in, --max-uses, --policy`)
    }
  }
  return { expiresInSeconds, maxUses, policy }
}

/**
 * Mints a token in the database named by `DATABASE_URL` and returns what to
 * print: the token on the first line, then its limits.
 *
 * @since 0.1.0
 * @category commands
 */
export const createToken = async (
  env: Readonly<Record<string, string | undefined>>,
  args: ReadonlyArray<string>
): Promise<string> => {
  const options = parseCreateArgs(args)
  const url = env.DATABASE_URL?.trim() || defaultDatabaseUrl
  if (url === "memory:") throw new ConfigError("token create needs a database the server shares: set DATABASE_URL")
  const foundation = Layer.merge(storeFromUrl(url), Credentials.layer)
  const runtime = ManagedRuntime.make(Layer.provideMerge(InitialAccessTokens.layerIssued, foundation))
  try {
    const minted = await runtime.runPromise(
      Effect.flatMap(InitialAccessTokens.InitialAccessTokens, (tokens) =>
        tokens.mint({ expiresInSeconds: options.expiresInSeconds, maxUses: options.maxUses, policy: options.policy })
      )
    )
    const expires = minted.expiresAt === 0 ? "never" : new Date(minted.expiresAt * 1000).toISOString()
    return [
      Redacted.value(minted.token),
      `expires: ${expires}`,
      `uses: ${minted.maxUses ?? "unlimited"}`,
      ...(options.policy === undefined ? [] : [`policy: ${JSON.stringify(options.policy)}`])
    ].join("\n")
  } finally {
    await runtime.dispose()
  }
}
