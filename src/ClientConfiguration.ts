/**
 * The RFC 7592 §2 client configuration programs: read, update and delete a
 * registered client, authenticated by its registration access token.
 *
 * Each runs the five steps in order: authenticate the token, look the client
 * up, check permission, (update only) validate the metadata, persist.
 *
 * @since 0.1.0
 */
import { traced, tracedProgram } from "./internal/span.js"
import { Clock, Context, Effect, Option, Redacted } from "effect"
import type { ClientInformation, RegisteredClient } from "./ClientInformation.js"
import { type ClientMetadata, forbiddenUpdateMembers, secretAuthMethods } from "./ClientMetadata.js"
import { ClientEvents } from "./ClientEvents.js"
import { ClientLookup } from "./ClientLookup.js"
import { ClientStore, type ClientStoreService, type TokenRotation } from "./ClientStore.js"
import { Credentials } from "./Credentials.js"
import { MetadataValidator, type MetadataError } from "./MetadataValidator.js"
import { type Operation, PermissionPolicy } from "./PermissionPolicy.js"
import {
  ClientNotFound,
  type InsufficientScope,
  InvalidRequest,
  type InvalidToken,
  StoreError
} from "./ProtocolError.js"
import { information, notify, secretExpiry } from "./Registration.js"
import { type ServerConfig, ServerMetadata } from "./ServerMetadata.js"
import { type RegistrationToken, TokenAuthenticator } from "./TokenAuthenticator.js"
import { isJsonObject } from "./internal/json.js"

/**
 * The services the configuration programs run on.
 *
 * @since 0.1.0
 * @category models
 */
export type ConfigurationServices =
  | ServerMetadata
  | TokenAuthenticator
  | ClientLookup
  | PermissionPolicy
  | MetadataValidator
  | Credentials
  | ClientStore
  | ClientEvents

/**
 * The failures of authenticating at the configuration endpoint.
 *
 * @since 0.1.0
 * @category models
 */
export type AccessError = InvalidToken | ClientNotFound | InsufficientScope

/**
 * @since 0.1.0
 * @category models
 */
export type UpdateError = AccessError | InvalidRequest | MetadataError

/** The services the configuration programs take from their context. */
type Steps = Context.Context<TokenAuthenticator | ClientLookup | PermissionPolicy | ServerMetadata>

/**
 * Steps 1–3 over services already taken from the context: one context read
 * per request instead of one per step (this runs on every request).
 */
const authorizeWith = (
  context: Steps,
  credential: Redacted.Redacted<string>,
  clientId: string,
  operation: Operation
): Effect.Effect<
  { readonly token: RegistrationToken; readonly client: RegisteredClient },
  AccessError | StoreError
> => {
  const tracing = Context.get(context, ServerMetadata).tracing
  const lookup = Context.get(context, ClientLookup)
  const policy = Context.get(context, PermissionPolicy)
  // Interruptible even inside an uninterruptible request (see Protocol's
  // operation timeout): nothing is written here.
  return Effect.interruptible(
    Effect.flatMap(
      traced(
        tracing,
        "TokenAuthenticator.authenticate",
        Context.get(context, TokenAuthenticator).authenticate(credential)
      ),
      (token) =>
        Effect.flatMap(traced(tracing, "ClientLookup.lookup", lookup.lookup(token, clientId)), (client) =>
          Effect.as(traced(tracing, "PermissionPolicy.check", policy.check(client, operation)), { token, client })
        )
    )
  )
}

/**
 * Steps 1–3: token → client → permission.
 *
 * @since 0.1.0
 * @category programs
 */
export const authorize = (
  credential: Redacted.Redacted<string>,
  clientId: string,
  operation: Operation
): Effect.Effect<
  { readonly token: RegistrationToken; readonly client: RegisteredClient },
  AccessError | StoreError,
  TokenAuthenticator | ClientLookup | PermissionPolicy | ServerMetadata
> => Effect.contextWithEffect((context: Steps) => authorizeWith(context, credential, clientId, operation))

/**
 * RFC 7592 §2.1: the client's current information. The registration access
 * token is not rotated on read; the response carries the one presented
 * (the store keeps only its hash, D15).
 *
 * @since 0.1.0
 * @category programs
 */
export const read = (
  credential: Redacted.Redacted<string>,
  clientId: string
): Effect.Effect<ClientInformation, AccessError | StoreError, ConfigurationServices> =>
  // Written without generators: this is the hottest path of the library.
  Effect.contextWithEffect((context: Context.Context<ConfigurationServices>) => {
    const server = Context.get(context, ServerMetadata)
    const attempt = Effect.flatMap(authorizeWith(context, credential, clientId, "read"), ({ client, token }) =>
      // D14, R7592-2.1-c: an expired secret is replaced in this very response.
      // Most secrets never expire: no clock read for them.
      client.clientSecret === undefined || client.clientSecretExpiresAt === 0
        ? Effect.succeed(information(client, token.value, server))
        : Effect.map(renewIfExpired(client), (renewed) => information(renewed ?? client, token.value, server))
    )
    return traced(server.tracing, "ClientConfiguration.read", retryOnConflict(attempt))
  })

const nowSeconds = Effect.map(Clock.currentTimeMillis, (millis) => Math.floor(millis / 1000))

/** True when the client holds a secret whose expiry has passed. */
const secretExpired = (client: RegisteredClient, now: number): boolean =>
  client.clientSecret !== undefined && client.clientSecretExpiresAt !== 0 && client.clientSecretExpiresAt <= now

/** The client with a new secret and expiry (D14), one version on. */
const withNewSecret = (client: RegisteredClient) =>
  Effect.gen(function* () {
    const server = yield* ServerMetadata
    const now = yield* nowSeconds
    const next: RegisteredClient = {
      ...client,
      clientSecret: yield* (yield* Credentials).clientSecret,
      clientSecretExpiresAt: secretExpiry(now, server.clientSecretLifetimeSeconds),
      version: client.version + 1
    }
    return next
  })

/** Stores `next` over `previous` (compare-and-set) and tells the host. */
const commitWith = (
  context: Context.Context<ServerMetadata | ClientStore | ClientEvents>,
  previous: RegisteredClient,
  next: RegisteredClient,
  rotation?: TokenRotation
): Effect.Effect<void, Conflict | StoreError> =>
  Effect.flatMap(
    traced(
      Context.get(context, ServerMetadata).tracing,
      "ClientStore.update",
      // Called uninterruptibly: the store decides which part of a write may be
      // interrupted (before its commit point, rolling back); once it has
      // committed, the request runs to its answer (see Protocol's deadline).
      Context.get(context, ClientStore).update(next, previous.version, rotation)
    ),
    (outcome) =>
      outcome === "updated" ? notify(Context.get(context, ClientEvents).updated(previous, next)) : Effect.fail(conflict)
  )

const commit = (previous: RegisteredClient, next: RegisteredClient, rotation?: TokenRotation) =>
  Effect.contextWithEffect((context: Context.Context<ServerMetadata | ClientStore | ClientEvents>) =>
    commitWith(context, previous, next, rotation)
  )

const renewIfExpired = (client: RegisteredClient) =>
  Effect.gen(function* () {
    if (!secretExpired(client, yield* nowSeconds)) return undefined
    const next = yield* withNewSecret(client)
    yield* commit(client, next)
    return next
  })

/**
 * Host API (D14): gives a client a new secret now, with a new expiry. Fails
 * with `ClientNotFound` for an unknown client and with `InvalidRequest` for a
 * client whose authentication method uses no secret.
 *
 * @since 0.1.0
 * @category programs
 */
export const rotateSecret = (
  clientId: string
): Effect.Effect<RegisteredClient, ClientNotFound | InvalidRequest | StoreError, ConfigurationServices> =>
  Effect.gen(function* () {
    const found = yield* (yield* ClientStore).findById(clientId)
    if (Option.isNone(found)) return yield* Effect.fail(new ClientNotFound({ clientId }))
    const client = found.value
    if (client.clientSecret === undefined) {
      return yield* Effect.fail(
        new InvalidRequest({ description: "the client's authentication method uses no secret" })
      )
    }
    const next = yield* withNewSecret(client)
    yield* commit(client, next)
    return next
  }).pipe(retryOnConflict, (program) => tracedProgram("ClientConfiguration.rotateSecret", program))

/**
 * Before a write: the token must still be live now that the client's version
 * has been read. A rotation that committed between authentication and the
 * read would otherwise pass the version check with a token it revoked; one
 * that commits after this check changes the version, which the write's
 * compare-and-set catches. Either way the attempt runs again and fails
 * authentication. Nothing to check when `client` is the one read together
 * with the token (a store with `findByToken`): the token was live at that
 * very version.
 */
const stillLiveWith = (
  store: ClientStoreService,
  token: RegistrationToken,
  client: RegisteredClient
): Effect.Effect<void, Conflict | StoreError> =>
  token.client === client
    ? Effect.void
    : Effect.flatMap(Effect.interruptible(store.findTokenOwner(token.tokenId)), (owner) =>
        Option.isSome(owner) && owner.value === client.clientId ? Effect.void : Effect.fail(conflict)
      )

/** An update lost a compare-and-set race; the whole update runs again. */
class Conflict {
  readonly _tag = "Conflict"
}

const conflict = new Conflict()

const maxAttempts = 32

/**
 * Runs a read-modify-write again when it lost a compare-and-set race: the
 * next attempt starts from authentication, so it sees the winner's rotation
 * or deletion and answers accordingly. Attempts are bounded.
 */
const retryOnConflict = <A, E, R>(self: Effect.Effect<A, E | Conflict, R>): Effect.Effect<A, E | StoreError, R> =>
  attemptNumber(self, 1)

// A plain loop rather than Effect.retry: the common case (no conflict) costs
// one catchIf and nothing else on every request. (Module-level functions, not
// closures made per request: tsx's keepNames renames every closure it makes.)
const attemptNumber = <A, E, R>(
  self: Effect.Effect<A, E | Conflict, R>,
  n: number
): Effect.Effect<A, E | StoreError, R> =>
  Effect.catchIf(self, isConflict, () =>
    n >= maxAttempts
      ? Effect.fail(new StoreError({ operation: "too many concurrent changes of one client" }))
      : // Jittered exponential backoff capped at 50 ms, so that writers
        // that keep colliding spread out.
        Effect.zipRight(
          Effect.interruptible(Effect.sleep(Math.min(50, 1.5 ** n) * (0.5 + Math.random()))),
          attemptNumber(self, n + 1)
        )
  )

const isConflict = (error: unknown): error is Conflict => error instanceof Conflict

/**
 * The request-level checks of D7 (R7592-2.2-c/e/f), before any metadata rule.
 */
const checkUpdateBody = (
  body: unknown,
  client: RegisteredClient,
  credentials: { readonly equals: (a: Redacted.Redacted<string>, b: Redacted.Redacted<string>) => boolean }
): InvalidRequest | undefined => {
  if (!isJsonObject(body)) return new InvalidRequest({ description: "the request body must be a JSON object" })
  for (const member of forbiddenUpdateMembers) {
    if (Object.hasOwn(body, member)) {
      return new InvalidRequest({ description: `the request must not include ${member}` })
    }
  }
  if (body.client_id !== client.clientId) {
    return new InvalidRequest({ description: "client_id must be present and equal to the client's identifier" })
  }
  const presented = body.client_secret
  if (presented !== undefined && presented !== null) {
    // R7592-2.2-f: it must match the current secret; compared in constant time.
    if (
      typeof presented !== "string" ||
      client.clientSecret === undefined ||
      !credentials.equals(Redacted.make(presented), client.clientSecret)
    ) {
      return new InvalidRequest({ description: "client_secret does not match the current secret" })
    }
  }
  return undefined
}

/**
 * RFC 7592 §2.2: replaces the client's metadata with the body (D8: omitted
 * members are deleted, defaults applied again). The client never chooses its
 * secret (D14); the registration access token is rotated when configured
 * (D15). Concurrent updates serialize through the store's compare-and-set:
 * a loser runs again from authentication, so it sees the winner's rotation.
 *
 * @since 0.1.0
 * @category programs
 */
export const update = (
  credential: Redacted.Redacted<string>,
  clientId: string,
  body: unknown
): Effect.Effect<ClientInformation, UpdateError | StoreError, ConfigurationServices> =>
  // Written without generators, like read: one context read, then plain steps.
  Effect.contextWithEffect((context: Context.Context<ConfigurationServices>) => {
    const server = Context.get(context, ServerMetadata)
    const credentials = Context.get(context, Credentials)
    const store = Context.get(context, ClientStore)
    const validator = Context.get(context, MetadataValidator)
    const attempt = Effect.flatMap(authorizeWith(context, credential, clientId, "update"), ({ client, token }) =>
      Effect.flatMap(
        stillLiveWith(store, token, client),
        (): Effect.Effect<ClientInformation, UpdateError | Conflict | StoreError, ServerMetadata | Credentials> => {
          const refused = checkUpdateBody(body, client, credentials)
          if (refused !== undefined) return Effect.fail(refused)
          // D22: the policy the client was registered under still applies.
          const validated = traced(
            server.tracing,
            "MetadataValidator.validate",
            Effect.interruptible(
              validator.validate(body, { operation: "update", current: client, policy: client.policy })
            )
          )
          return Effect.flatMap(validated, (metadata) =>
            Effect.flatMap(secretFor(client, metadata), (source) =>
              commitUpdate(context, server, client, token, {
                clientId: client.clientId,
                clientIdIssuedAt: client.clientIdIssuedAt,
                clientSecret: source?.clientSecret,
                clientSecretExpiresAt: source?.clientSecretExpiresAt ?? 0,
                metadata,
                version: client.version + 1,
                policy: client.policy
              })
            )
          )
        }
      )
    )
    return traced(server.tracing, "ClientConfiguration.update", retryOnConflict(attempt))
  })

/**
 * D14: where an updated client's secret comes from — none when its method
 * uses none, a new one when it has none or it has expired, else its own.
 */
const secretFor = (
  client: RegisteredClient,
  metadata: ClientMetadata
): Effect.Effect<
  Pick<RegisteredClient, "clientSecret" | "clientSecretExpiresAt"> | undefined,
  never,
  ServerMetadata | Credentials
> => {
  const method = metadata.token_endpoint_auth_method
  if (method === undefined || !secretAuthMethods.has(method)) return Effect.succeed(undefined)
  if (client.clientSecret === undefined) return withNewSecret(client)
  // Most secrets never expire: no clock read for them.
  if (client.clientSecretExpiresAt === 0) return Effect.succeed(client)
  return Effect.flatMap(nowSeconds, (now) =>
    secretExpired(client, now) ? withNewSecret(client) : Effect.succeed(client)
  )
}

/** Stores the updated client (rotating its token when configured to) and answers with it. */
const commitUpdate = (
  context: Context.Context<ConfigurationServices>,
  server: ServerConfig,
  client: RegisteredClient,
  token: RegistrationToken,
  next: RegisteredClient
): Effect.Effect<ClientInformation, Conflict | StoreError> => {
  if (!server.rotateRegistrationTokenOnUpdate) {
    return Effect.as(commitWith(context, client, next), information(next, token.value, server))
  }
  return Effect.flatMap(Context.get(context, TokenAuthenticator).issue(client.clientId), (issued) =>
    Effect.as(
      commitWith(context, client, next, { revoke: token.tokenId, issue: issued.tokenId }),
      information(next, issued.value, server)
    )
  )
}

/**
 * RFC 7592 §2.3: deprovisions the client. The client and its registration
 * access token go in one store operation (R7592-5-f, D19); the host's
 * `deleted` hook then revokes whatever else was issued to the client
 * (R7592-2.3-c).
 *
 * @since 0.1.0
 * @category programs
 */
export const remove = (
  credential: Redacted.Redacted<string>,
  clientId: string
): Effect.Effect<void, AccessError | StoreError, ConfigurationServices> =>
  Effect.contextWithEffect((context: Context.Context<ConfigurationServices>) => {
    const server = Context.get(context, ServerMetadata)
    const store = Context.get(context, ClientStore)
    const attempt = Effect.flatMap(authorizeWith(context, credential, clientId, "delete"), ({ client, token }) =>
      Effect.zipRight(
        stillLiveWith(store, token, client),
        // A compare-and-set on the version: if an update (perhaps rotating the
        // very token presented) or a delete won meanwhile, authenticate again.
        Effect.flatMap(
          traced(server.tracing, "ClientStore.remove", store.remove(client.clientId, client.version)),
          (removed) => (removed ? notify(Context.get(context, ClientEvents).deleted(client)) : Effect.fail(conflict))
        )
      )
    )
    return traced(server.tracing, "ClientConfiguration.delete", retryOnConflict(attempt))
  })

export {
  /**
   * RFC 7592 §2.3 under its protocol name: `ClientConfiguration.delete(...)`.
   *
   * @since 0.1.0
   * @category programs
   */
  remove as delete
}
