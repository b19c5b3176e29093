/**
 * The RFC 7591 §3 registration program: validate the requested metadata,
 * issue credentials, store the client, answer with its information.
 *
 * @since 0.1.0
 */
import { traced } from "./internal/span.js"
import { Clock, Context, Effect, type Redacted } from "effect"
import type { ClientInformation, RegisteredClient } from "./ClientInformation.js"
import { secretAuthMethods } from "./ClientMetadata.js"
import { ClientEvents } from "./ClientEvents.js"
import { ClientStore } from "./ClientStore.js"
import { Credentials } from "./Credentials.js"
import { MetadataValidator, type MetadataError } from "./MetadataValidator.js"
import { InvalidToken, type StoreError } from "./ProtocolError.js"
import type { RegistrationGrant } from "./InitialAccessTokens.js"
import { type ServerConfig, ServerMetadata } from "./ServerMetadata.js"
import { TokenAuthenticator } from "./TokenAuthenticator.js"

/**
 * The services registration runs on.
 *
 * @since 0.1.0
 * @category models
 */
export type RegistrationServices =
  ServerMetadata | MetadataValidator | Credentials | TokenAuthenticator | ClientStore | ClientEvents

/**
 * @since 0.1.0
 * @category models
 */
export type RegistrationError = MetadataError | InvalidToken

/**
 * The expiry of a secret issued now (D14): 0 for never, else now + lifetime.
 *
 * @since 0.1.0
 * @category utils
 */
export const secretExpiry = (nowSeconds: number, lifetimeSeconds: number): number =>
  lifetimeSeconds === 0 ? 0 : nowSeconds + lifetimeSeconds

const noSecret: Effect.Effect<undefined> = Effect.succeed(undefined)

const openGrant: RegistrationGrant = { policy: undefined, use: undefined }

/**
 * Registers a client from a JSON object of requested metadata. `grant` is
 * what the initial access token allowed (`InitialAccessTokens.authorize`);
 * without one, registration is open. Fails with an RFC 7591 §3.2.2 error and
 * stores nothing when the metadata is not acceptable; fails with
 * `InvalidToken` when the initial access token was used up meanwhile.
 *
 * @since 0.1.0
 * @category programs
 */
export const register = (
  body: unknown,
  grant: RegistrationGrant = openGrant
): Effect.Effect<ClientInformation, RegistrationError | StoreError, RegistrationServices> =>
  // Written without generators: one context read, then plain steps.
  Effect.contextWithEffect((context: Context.Context<RegistrationServices>) => {
    const server = Context.get(context, ServerMetadata)
    const credentials = Context.get(context, Credentials)
    const validated = traced(
      server.tracing,
      "MetadataValidator.validate",
      Effect.interruptible(
        Context.get(context, MetadataValidator).validate(body, { operation: "register", policy: grant.policy })
      )
    )
    const program = Effect.flatMap(validated, (metadata) => {
      // D14: a secret only for methods that use one.
      const method = metadata.token_endpoint_auth_method
      const secret = method !== undefined && secretAuthMethods.has(method) ? credentials.clientSecret : noSecret
      // Nested flatMaps rather than Effect.all: no tuple machinery per request.
      return Effect.flatMap(Clock.currentTimeMillis, (millis) =>
        Effect.flatMap(credentials.clientId, (clientId) =>
          Effect.flatMap(secret, (clientSecret) => {
            const now = Math.floor(millis / 1000)
            return insertClient(context, server, grant, {
              clientId,
              clientIdIssuedAt: now,
              clientSecret,
              clientSecretExpiresAt:
                clientSecret === undefined ? 0 : secretExpiry(now, server.clientSecretLifetimeSeconds),
              metadata,
              version: 1,
              policy: grant.policy
            })
          })
        )
      )
    })
    return traced(server.tracing, "Registration.register", program)
  })

/** Issues the client's registration access token, stores both (spending the grant's use) and answers. */
const insertClient = (
  context: Context.Context<RegistrationServices>,
  server: ServerConfig,
  grant: RegistrationGrant,
  client: RegisteredClient
): Effect.Effect<ClientInformation, InvalidToken | StoreError> =>
  Effect.flatMap(Context.get(context, TokenAuthenticator).issue(client.clientId), (token) =>
    Effect.flatMap(
      // D22: one use of an issued token is spent in the same step as the insert.
      traced(
        server.tracing,
        "ClientStore.insert",
        // Called uninterruptibly: see ClientStore on interruption and commits.
        Context.get(context, ClientStore).insert(client, token.tokenId, grant.use)
      ),
      (outcome) =>
        outcome !== "inserted"
          ? Effect.fail(new InvalidToken({ description: "the initial access token is invalid" }))
          : Effect.as(
              notify(Context.get(context, ClientEvents).registered(client)),
              information(client, token.value, server)
            )
    )
  )

/**
 * The client information response's content: the client with the
 * registration access token it now holds, at its configuration endpoint.
 *
 * @since 0.1.0
 * @category utils
 */
export const information = (
  client: RegisteredClient,
  registrationAccessToken: Redacted.Redacted<string>,
  server: ServerConfig
): ClientInformation => ({
  client,
  registrationAccessToken,
  registrationClientUri: server.clientUri(client.clientId)
})

/**
 * Runs a host hook after a committed change: a failure is logged, never
 * turned into an error answer, because the change has already happened.
 *
 * @since 0.1.0
 * @category utils
 */
export const notify = (hook: Effect.Effect<void>): Effect.Effect<void> =>
  Effect.catchAllCause(hook, (cause) => Effect.logWarning("a ClientEvents hook failed", cause))
