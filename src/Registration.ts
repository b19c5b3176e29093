/**
 * The RFC 7591 §3 registration program: validate the requested metadata,
 * issue credentials, store the client, answer with its information.
 *
 * @since 0.1.0
 */
import { traced, tracedProgram } from "./internal/span.js"
import { Clock, Effect } from "effect"
import type { ClientInformation, RegisteredClient } from "./ClientInformation.js"
import { secretAuthMethods } from "./ClientMetadata.js"
import { ClientEvents } from "./ClientEvents.js"
import { ClientStore } from "./ClientStore.js"
import { Credentials } from "./Credentials.js"
import { MetadataValidator, type MetadataError } from "./MetadataValidator.js"
import { InvalidToken, type StoreError } from "./ProtocolError.js"
import type { RegistrationGrant } from "./InitialAccessTokens.js"
import { ServerMetadata } from "./ServerMetadata.js"
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
  Effect.gen(function* () {
    const server = yield* ServerMetadata
    const validator = yield* MetadataValidator
    const credentials = yield* Credentials
    const tokens = yield* TokenAuthenticator
    const store = yield* ClientStore
    const events = yield* ClientEvents

    const metadata = yield* traced(
      server.tracing,
      "MetadataValidator.validate",
      Effect.interruptible(validator.validate(body, { operation: "register", policy: grant.policy }))
    )
    const now = Math.floor((yield* Clock.currentTimeMillis) / 1000)
    const clientId = yield* credentials.clientId
    // D14: a secret only for methods that use one.
    const method = metadata.token_endpoint_auth_method
    const clientSecret =
      method !== undefined && secretAuthMethods.has(method) ? yield* credentials.clientSecret : undefined
    const client: RegisteredClient = {
      clientId,
      clientIdIssuedAt: now,
      clientSecret,
      clientSecretExpiresAt: clientSecret === undefined ? 0 : secretExpiry(now, server.clientSecretLifetimeSeconds),
      metadata,
      version: 1,
      policy: grant.policy
    }
    const token = yield* tokens.issue(clientId)
    // D22: one use of an issued token is spent in the same step as the insert.
    const outcome = yield* traced(
      server.tracing,
      "ClientStore.insert",
      // Called uninterruptibly: see ClientStore on interruption and commits.
      store.insert(client, token.tokenId, grant.use)
    )
    if (outcome !== "inserted") {
      return yield* Effect.fail(new InvalidToken({ description: "the initial access token is invalid" }))
    }
    yield* notify(events.registered(client))
    return {
      client,
      registrationAccessToken: token.value,
      registrationClientUri: server.clientUri(clientId)
    }
  }).pipe((program) => tracedProgram("Registration.register", program))

/**
 * Runs a host hook after a committed change: a failure is logged, never
 * turned into an error answer, because the change has already happened.
 *
 * @since 0.1.0
 * @category utils
 */
export const notify = (hook: Effect.Effect<void>): Effect.Effect<void> =>
  Effect.catchAllCause(hook, (cause) => Effect.logWarning("a ClientEvents hook failed", cause))
