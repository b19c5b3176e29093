/**
 * Step 5 of RFC 7592: persistence. The port every store implements, and the
 * in-memory store.
 *
 * A client owns one or more registration access tokens, kept by token id (for
 * opaque tokens the SHA-256 of the token, never the token itself, D15). Every
 * mutation is atomic: a client and its tokens change together or not at all.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Option } from "effect"
import type { RegisteredClient } from "./ClientInformation.js"
import type { StoreError } from "./ProtocolError.js"

/**
 * The outcome of a compare-and-set update.
 *
 * @since 0.1.0
 * @category models
 */
export type UpdateOutcome = "updated" | "conflict" | "missing"

/**
 * A token swap performed atomically with an update (D15 rotation).
 *
 * @since 0.1.0
 * @category models
 */
export interface TokenRotation {
  /** The token id that stops working. */
  readonly revoke: string
  /** The token id that starts working. */
  readonly issue: string
}

/**
 * @since 0.1.0
 * @category models
 */
export interface ClientStoreService {
  /** Stores a new client with its first token. Fails if the id or token id is taken. */
  readonly insert: (client: RegisteredClient, tokenId: string) => Effect.Effect<void, StoreError>
  readonly findById: (clientId: string) => Effect.Effect<Option.Option<RegisteredClient>, StoreError>
  /** The client a token id belongs to, if the token is live. */
  readonly findTokenOwner: (tokenId: string) => Effect.Effect<Option.Option<string>, StoreError>
  /**
   * Replaces a client if its stored version still equals `expectedVersion`
   * (the stored version becomes `client.version`), swapping tokens in the same
   * step when `rotation` is given. A rotation whose `revoke` id is no longer
   * live is a conflict: only one of two racing rotations can win.
   */
  readonly update: (
    client: RegisteredClient,
    expectedVersion: number,
    rotation?: TokenRotation
  ) => Effect.Effect<UpdateOutcome, StoreError>
  /** Removes a client and every token it owns; false when it was not there. */
  readonly remove: (clientId: string) => Effect.Effect<boolean, StoreError>
  /** Makes one token id stop working (D2). */
  readonly revokeToken: (tokenId: string) => Effect.Effect<void, StoreError>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class ClientStore extends Context.Tag("effect-dcr/ClientStore")<ClientStore, ClientStoreService>() {}

/**
 * A store in process memory. Mutations are synchronous, so each is atomic.
 * Data lives as long as the layer.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory = (): ClientStoreService => {
  const clients = new Map<string, RegisteredClient>()
  // token id -> client id, and client id -> its token ids
  const tokenOwners = new Map<string, string>()
  const tokensOf = new Map<string, Set<string>>()

  return {
    insert: (client, tokenId) =>
      Effect.suspend(() => {
        if (clients.has(client.clientId) || tokenOwners.has(tokenId)) {
          return Effect.die(new Error("ClientStore.insert: client id or token id already taken"))
        }
        clients.set(client.clientId, client)
        tokenOwners.set(tokenId, client.clientId)
        tokensOf.set(client.clientId, new Set([tokenId]))
        return Effect.void
      }),
    findById: (clientId) => Effect.sync(() => Option.fromNullable(clients.get(clientId))),
    findTokenOwner: (tokenId) => Effect.sync(() => Option.fromNullable(tokenOwners.get(tokenId))),
    update: (client, expectedVersion, rotation) =>
      Effect.sync((): UpdateOutcome => {
        const current = clients.get(client.clientId)
        if (current === undefined) return "missing"
        if (current.version !== expectedVersion) return "conflict"
        if (rotation !== undefined) {
          if (tokenOwners.get(rotation.revoke) !== client.clientId || tokenOwners.has(rotation.issue)) {
            return "conflict"
          }
          const owned = tokensOf.get(client.clientId)
          tokenOwners.delete(rotation.revoke)
          owned?.delete(rotation.revoke)
          tokenOwners.set(rotation.issue, client.clientId)
          owned?.add(rotation.issue)
        }
        clients.set(client.clientId, client)
        return "updated"
      }),
    remove: (clientId) =>
      Effect.sync(() => {
        const existed = clients.delete(clientId)
        const owned = tokensOf.get(clientId)
        if (owned !== undefined) {
          for (const tokenId of owned) tokenOwners.delete(tokenId)
          tokensOf.delete(clientId)
        }
        return existed
      }),
    revokeToken: (tokenId) =>
      Effect.sync(() => {
        const owner = tokenOwners.get(tokenId)
        if (owner === undefined) return
        tokenOwners.delete(tokenId)
        tokensOf.get(owner)?.delete(tokenId)
      })
  }
}

/**
 * The in-memory store: for tests, examples and single-process trials.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory: Layer.Layer<ClientStore> = Layer.sync(ClientStore, makeMemory)
