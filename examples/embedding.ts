/**
 * Embedding effect-dcr in an existing authorization server: every hook of the
 * RFC 7592 reference implementation (Authlib's `ClientConfigurationEndpoint`)
 * and the effect-dcr service that replaces it. `docs/embedding.md` walks
 * through this file; `test/embedding.test.ts` runs it.
 *
 * The host here keeps its own records (plain Maps standing in for its
 * database): its access tokens per client, and an audit trail.
 */
import { Effect, Layer } from "effect"
import {
  ClientEvents,
  ClientLookup,
  ClientStore,
  Dcr,
  PermissionPolicy,
  ProtocolError,
  TokenAuthenticator
} from "effect-dcr"

/** What the host already has: tokens it issued to clients at its token endpoint, and an audit log. */
export const host = {
  accessTokens: new Map<string, Set<string>>(),
  audit: new Array<string>(),
  suspended: new Set<string>(),
  storeReads: 0
}

// --- authenticate_token → TokenAuthenticator -------------------------------
// Authlib: `authenticate_token(request)` finds the registration access token.
// effect-dcr: `TokenAuthenticator.authenticate` turns the Bearer credential
// into a `RegistrationToken` or fails with `InvalidToken` (401). The default
// `layerOpaque` looks tokens up by SHA-256 in the `ClientStore`; `layerJwt`
// verifies signed ones. Wrapping the default adds host behaviour:
export const AuditedTokens = Layer.effect(
  TokenAuthenticator.TokenAuthenticator,
  Effect.gen(function* () {
    const tokens = yield* TokenAuthenticator.TokenAuthenticator
    return {
      ...tokens,
      authenticate: (credential) =>
        tokens.authenticate(credential).pipe(
          Effect.tap((token) => Effect.sync(() => host.audit.push(`token used for ${token.clientId}`))),
          Effect.tapError(() => Effect.sync(() => host.audit.push("invalid registration access token")))
        ),
      // revoke_access_token → TokenAuthenticator.revoke (D2: called when a
      // valid token's client no longer exists).
      revoke: (token) =>
        Effect.zipRight(
          Effect.sync(() => host.audit.push(`token revoked for ${token.clientId}`)),
          tokens.revoke(token)
        )
    }
  })
).pipe(Layer.provide(TokenAuthenticator.layerOpaque))

// --- authenticate_client → ClientLookup -----------------------------------
// Authlib: `authenticate_client(request)` loads the client the token is for.
// effect-dcr: `ClientLookup.lookup(token, clientIdFromUri)`; the default
// refuses a token bound to another client (D1) and revokes the token of a
// client that is gone (D2). Here the host also hides suspended clients:
export const SuspensionAwareLookup = Layer.effect(
  ClientLookup.ClientLookup,
  Effect.gen(function* () {
    const lookup = yield* ClientLookup.ClientLookup
    return {
      lookup: (token, clientId) =>
        host.suspended.has(clientId)
          ? Effect.fail(new ProtocolError.InvalidToken({ description: "the client is suspended" }))
          : lookup.lookup(token, clientId)
    }
  })
).pipe(Layer.provide(ClientLookup.layer))

// --- check_permission → PermissionPolicy ----------------------------------
// Authlib: `check_permission(client, request)` may forbid an operation.
// effect-dcr: `PermissionPolicy.check(client, operation)` failing with
// `InsufficientScope` (403, D3). First-party clients may not delete themselves:
export const FirstPartyPolicy = PermissionPolicy.layerFromPredicate(
  (client, operation) => !(operation === "delete" && client.metadata.software_id === "com.example.first-party")
)

// --- delete_client, revoke tokens → ClientEvents.deleted -------------------
// Authlib: `delete_client(client, request)` removes it and the host revokes
// what was issued to it (RFC 7592 §2.3). effect-dcr removes the client and
// its registration access tokens atomically in the `ClientStore`, then calls
// `ClientEvents.deleted`, where the host revokes its own grants and tokens.
// `updated` and `registered` are there for audit.
export const HostEvents = ClientEvents.layer({
  registered: (client) => Effect.sync(() => host.audit.push(`registered ${client.clientId}`)),
  updated: (previous, next) =>
    Effect.sync(() => host.audit.push(`updated ${next.clientId} v${previous.version}→v${next.version}`)),
  deleted: (client) =>
    Effect.sync(() => {
      host.accessTokens.delete(client.clientId)
      host.audit.push(`deleted ${client.clientId}; its access tokens revoked`)
    })
})

// --- save_client / update_client → ClientStore ----------------------------
// Authlib: `save_client` and `update_client` persist. effect-dcr: the
// `ClientStore` port (insert, compare-and-set update, atomic remove). Use
// `SqliteStore.layer` / `PgStore.layer`, `SqlClientStore.layer` over your own
// `SqlClient`, or your own implementation; here the memory store, with a
// read counter the host wanted. A wrapper that changes how clients are read
// wraps both reads: `findById`, and `findByToken`, which the token
// authenticators use instead of `findTokenOwner` + `findById` when a store
// offers it (one lookup per request).
const countRead = Effect.sync(() => host.storeReads++)
export const CountingStore = Layer.sync(ClientStore.ClientStore, () => {
  const store = ClientStore.makeMemory()
  const findByToken = store.findByToken
  return {
    ...store,
    findById: (clientId: string) => Effect.tap(store.findById(clientId), () => countRead),
    findByToken:
      findByToken === undefined ? undefined : (tokenId: string) => Effect.tap(findByToken(tokenId), () => countRead)
  }
})

// --- get_server_metadata → ServerMetadata -----------------------------------
// Authlib: `get_server_metadata()` supplies the values metadata is checked
// against. effect-dcr: the `server` options of `Dcr.layer` build
// `ServerMetadata`, which the validator and discovery both read.
//
// --- generate_client_registration_info → built in ----------------------------
// Authlib: `generate_client_registration_info(client, request)` produces
// `registration_client_uri` and `registration_access_token`. effect-dcr builds
// them from `publicUrl` (D17) and `TokenAuthenticator.issue`; the response is
// rendered by `ClientInformation.toJson`.

/** Everything together. */
export const HostLive = Dcr.layer({
  server: {
    publicUrl: "https://as.example.com/oauth",
    scopesSupported: ["openid", "profile", "payments:read"],
    discoveryMetadata: { token_endpoint: "https://as.example.com/oauth/token" }
  },
  store: CountingStore,
  tokenAuthenticator: AuditedTokens,
  clientLookup: SuspensionAwareLookup,
  permissionPolicy: FirstPartyPolicy,
  clientEvents: HostEvents
})
