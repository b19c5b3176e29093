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
import { Clock, Effect, Option, Redacted } from "effect"
import type { ClientInformation, RegisteredClient } from "./ClientInformation.js"
import { forbiddenUpdateMembers, secretAuthMethods } from "./ClientMetadata.js"
import { ClientEvents } from "./ClientEvents.js"
import { ClientLookup } from "./ClientLookup.js"
import { ClientStore, type TokenRotation } from "./ClientStore.js"
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
import { notify, secretExpiry } from "./Registration.js"
import { ServerMetadata } from "./ServerMetadata.js"
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
> =>
  // Interruptible even inside an uninterruptible request (see Protocol's
  // operation timeout): nothing is written here.
  Effect.interruptible(
    Effect.gen(function* () {
      const server = yield* ServerMetadata
      const token = yield* traced(
        server.tracing,
        "TokenAuthenticator.authenticate",
        (yield* TokenAuthenticator).authenticate(credential)
      )
      const client = yield* traced(server.tracing, "ClientLookup.lookup", (yield* ClientLookup).lookup(token, clientId))
      yield* traced(server.tracing, "PermissionPolicy.check", (yield* PermissionPolicy).check(client, operation))
      return { token, client }
    })
  )

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
  Effect.gen(function* () {
    const server = yield* ServerMetadata
    const { client, token } = yield* authorize(credential, clientId, "read")
    // D14, R7592-2.1-c: an expired secret is replaced in this very response.
    const current = (yield* renewExpiredSecret(client)) ?? client
    return { client: current, registrationAccessToken: token.value, registrationClientUri: server.clientUri(clientId) }
  }).pipe(retryOnConflict, (program) => tracedProgram("ClientConfiguration.read", program))

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
const commit = (previous: RegisteredClient, next: RegisteredClient, rotation?: TokenRotation) =>
  Effect.gen(function* () {
    const server = yield* ServerMetadata
    const outcome = yield* traced(
      server.tracing,
      "ClientStore.update",
      // Called uninterruptibly: the store decides which part of a write may be
      // interrupted (before its commit point, rolling back); once it has
      // committed, the request runs to its answer (see Protocol's deadline).
      (yield* ClientStore).update(next, previous.version, rotation)
    )
    if (outcome !== "updated") return yield* Effect.fail(new Conflict())
    yield* notify((yield* ClientEvents).updated(previous, next))
  })

/** Replaces an expired secret; undefined when the secret is still good. */
const renewExpiredSecret = (client: RegisteredClient) =>
  // Most secrets never expire: no clock read, no generator for them.
  client.clientSecret === undefined || client.clientSecretExpiresAt === 0
    ? Effect.succeed(undefined)
    : renewIfExpired(client)

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
 * authentication.
 */
const stillLive = (token: RegistrationToken, clientId: string) =>
  Effect.flatMap(ClientStore, (store) =>
    Effect.flatMap(Effect.interruptible(store.findTokenOwner(token.tokenId)), (owner) =>
      Option.isSome(owner) && owner.value === clientId ? Effect.void : Effect.fail(new Conflict())
    )
  )

/** An update lost a compare-and-set race; the whole update runs again. */
class Conflict {
  readonly _tag = "Conflict"
}

const maxAttempts = 32

/**
 * Runs a read-modify-write again when it lost a compare-and-set race: the
 * next attempt starts from authentication, so it sees the winner's rotation
 * or deletion and answers accordingly. Attempts are bounded.
 */
const retryOnConflict = <A, E, R>(self: Effect.Effect<A, E | Conflict, R>): Effect.Effect<A, E | StoreError, R> => {
  // A plain loop rather than Effect.retry: the common case (no conflict)
  // costs one catchIf and nothing else on every request.
  const attempt = (n: number): Effect.Effect<A, E | StoreError, R> =>
    Effect.catchIf(self, isConflict, () =>
      n >= maxAttempts
        ? Effect.fail(new StoreError({ operation: "too many concurrent changes of one client" }))
        : // Jittered exponential backoff capped at 50 ms, so that writers
          // that keep colliding spread out.
          Effect.zipRight(
            Effect.interruptible(Effect.sleep(Math.min(50, 1.5 ** n) * (0.5 + Math.random()))),
            attempt(n + 1)
          )
    )
  return attempt(1)
}

const isConflict = (error: unknown): error is Conflict => error instanceof Conflict

/**
 * The request-level checks of D7 (R7592-2.2-c/e/f), before any metadata rule.
 */
const checkUpdateBody = (
  body: unknown,
  client: RegisteredClient,
  credentials: { readonly equals: (a: Redacted.Redacted<string>, b: Redacted.Redacted<string>) => boolean }
): Effect.Effect<void, InvalidRequest> => {
  if (!isJsonObject(body))
    return Effect.fail(new InvalidRequest({ description: "the request body must be a JSON object" }))
  for (const member of forbiddenUpdateMembers) {
    if (Object.hasOwn(body, member)) {
      return Effect.fail(new InvalidRequest({ description: `the request must not include ${member}` }))
    }
  }
  if (body.client_id !== client.clientId) {
    return Effect.fail(
      new InvalidRequest({ description: "client_id must be present and equal to the client's identifier" })
    )
  }
  const presented = body.client_secret
  if (presented !== undefined && presented !== null) {
    // R7592-2.2-f: it must match the current secret; compared in constant time.
    if (
      typeof presented !== "string" ||
      client.clientSecret === undefined ||
      !credentials.equals(Redacted.make(presented), client.clientSecret)
    ) {
      return Effect.fail(new InvalidRequest({ description: "client_secret does not match the current secret" }))
    }
  }
  return Effect.void
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
  Effect.gen(function* () {
    const server = yield* ServerMetadata
    const credentials = yield* Credentials
    const { client, token } = yield* authorize(credential, clientId, "update")
    yield* stillLive(token, clientId)
    yield* checkUpdateBody(body, client, credentials)
    // D22: the policy the client was registered under still applies.
    const metadata = yield* traced(
      server.tracing,
      "MetadataValidator.validate",
      Effect.interruptible(
        (yield* MetadataValidator).validate(body, { operation: "update", current: client, policy: client.policy })
      )
    )

    // D14: a secret exactly when the method uses one; an expired one is replaced.
    const method = metadata.token_endpoint_auth_method
    const usesSecret = method !== undefined && secretAuthMethods.has(method)
    const keepsSecret = usesSecret && client.clientSecret !== undefined && !secretExpired(client, yield* nowSeconds)
    const secretSource = keepsSecret ? client : usesSecret ? yield* withNewSecret(client) : undefined
    const next: RegisteredClient = {
      clientId: client.clientId,
      clientIdIssuedAt: client.clientIdIssuedAt,
      clientSecret: secretSource?.clientSecret,
      clientSecretExpiresAt: secretSource?.clientSecretExpiresAt ?? 0,
      metadata,
      version: client.version + 1,
      policy: client.policy
    }
    let registrationAccessToken = token.value
    let rotation: TokenRotation | undefined
    if (server.rotateRegistrationTokenOnUpdate) {
      const issued = yield* (yield* TokenAuthenticator).issue(client.clientId)
      rotation = { revoke: token.tokenId, issue: issued.tokenId }
      registrationAccessToken = issued.value
    }
    yield* commit(client, next, rotation)
    const info: ClientInformation = {
      client: next,
      registrationAccessToken,
      registrationClientUri: server.clientUri(next.clientId)
    }
    return info
  }).pipe(retryOnConflict, (program) => tracedProgram("ClientConfiguration.update", program))

/**
 * RFC 7592 §2.3: deprovisions the client. The client and every token it owns
 * go in one store operation (R7592-5-f, D19); the host's `deleted` hook then
 * revokes whatever else was issued to the client (R7592-2.3-c).
 *
 * @since 0.1.0
 * @category programs
 */
export const remove = (
  credential: Redacted.Redacted<string>,
  clientId: string
): Effect.Effect<void, AccessError | StoreError, ConfigurationServices> =>
  Effect.gen(function* () {
    const server = yield* ServerMetadata
    const { client, token } = yield* authorize(credential, clientId, "delete")
    yield* stillLive(token, clientId)
    // A compare-and-set on the version: if an update (perhaps rotating the
    // very token presented) or a delete won meanwhile, authenticate again.
    const removed = yield* traced(
      server.tracing,
      "ClientStore.remove",
      (yield* ClientStore).remove(client.clientId, client.version)
    )
    if (!removed) return yield* Effect.fail(new Conflict())
    yield* notify((yield* ClientEvents).deleted(client))
  }).pipe(retryOnConflict, (program) => tracedProgram("ClientConfiguration.delete", program))

export {
  /**
   * RFC 7592 §2.3 under its protocol name: `ClientConfiguration.delete(...)`.
   *
   * @since 0.1.0
   * @category programs
   */
  remove as delete
}
