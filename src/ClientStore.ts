/**
 * Step 5 of RFC 7592: persistence. The port every store implements, and the
 * in-memory store.
 *
 * A client holds one registration access token at a time, kept by token id
 * (for opaque tokens the SHA-256 of the token, never the token itself, D15):
 * registering issues it, a rotation replaces it in the same step as the
 * update, a revocation clears it, and removing the client removes it. Every
 * mutation is atomic: a client and its token change together or not at all.
 *
 * Interruption: the programs call the mutations (`insert`, `update`,
 * `remove`) from an uninterruptible region, so that a write that has
 * committed is always answered as the success it is, even past an operation
 * timeout. An implementation marks interruptible (`Effect.interruptible`) the
 * part of a write before its commit point — interrupting it there must leave
 * nothing written — so that a stalled store can still be cut off.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Option } from "effect"
import type { RegisteredClient } from "./ClientInformation.js"
import type { StoreError } from "./ProtocolError.js"
import type { RegistrationPolicy } from "./RegistrationPolicy.js"

/**
 * The outcome of a compare-and-set update.
 *
 * @since 0.1.0
 * @category models
 */
export type UpdateOutcome = "updated" | "conflict" | "missing"

/**
 * An issued initial access token (D22), known by the SHA-256 of its value.
 *
 * @since 0.1.0
 * @category models
 */
export interface InitialTokenRecord {
  readonly tokenId: string
  /** Seconds since the epoch; 0 for never. */
  readonly expiresAt: number
  /** Registrations it still allows; undefined for unlimited. */
  readonly usesRemaining: number | undefined
  /** Restrictions carried over to every client registered with it. */
  readonly policy: RegistrationPolicy | undefined
  /** Seconds since the epoch. */
  readonly createdAt: number
}

/**
 * Spends one use of an initial access token in the same atomic step as an
 * insert: the insert happens only if the token is live at `now` and has a
 * use left.
 *
 * @since 0.1.0
 * @category models
 */
export interface InitialTokenUse {
  readonly tokenId: string
  /** Seconds since the epoch. */
  readonly now: number
}

/**
 * The outcome of an insert.
 *
 * @since 0.1.0
 * @category models
 */
export type InsertOutcome = "inserted" | "initial-token-unavailable"

/**
 * True when an initial access token record can be used at `now`.
 *
 * @since 0.1.0
 * @category utils
 */
export const isUsable = (record: InitialTokenRecord, now: number): boolean =>
  (record.expiresAt === 0 || now < record.expiresAt) && (record.usesRemaining === undefined || record.usesRemaining > 0)

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
  /**
   * Stores a new client with its first token. With `initialToken`, one use of
   * that initial access token is spent in the same atomic step, and nothing
   * is stored when it is no longer usable. A taken client id or token id is a
   * defect (ids are random) or a `StoreError`.
   */
  readonly insert: (
    client: RegisteredClient,
    tokenId: string,
    initialToken?: InitialTokenUse
  ) => Effect.Effect<InsertOutcome, StoreError>
  readonly findById: (clientId: string) => Effect.Effect<Option.Option<RegisteredClient>, StoreError>
  /** The client a token id belongs to, if the token is live. */
  readonly findTokenOwner: (tokenId: string) => Effect.Effect<Option.Option<string>, StoreError>
  /**
   * The client a live token id belongs to, read whole: `findTokenOwner` and
   * `findById` in one step, for a store that can answer both with one lookup
   * (the SQL stores: one statement on the token's index). Optional: when
   * present, the token authenticators use it and `ClientLookup` reads
   * nothing more for a request (issue 6: one index descent per read, not
   * two, which is what keeps reads flat from 1 000 to 100 000 clients).
   */
  readonly findByToken?: ((tokenId: string) => Effect.Effect<Option.Option<RegisteredClient>, StoreError>) | undefined
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
  /**
   * Removes a client and its token; false when it was not there or,
   * given `expectedVersion`, when its stored version differs (a concurrent
   * update won: the caller re-checks its token before trying again).
   */
  readonly remove: (clientId: string, expectedVersion?: number) => Effect.Effect<boolean, StoreError>
  /** Makes a token id stop working (D2); its client, if any, stays, with no live token. */
  readonly revokeToken: (tokenId: string) => Effect.Effect<void, StoreError>
  /** Answers when the store is reachable (`GET /healthz`); absent means always. */
  readonly ping?: Effect.Effect<void, StoreError> | undefined
  /** Stores a newly minted initial access token (D22). */
  readonly insertInitialToken: (record: InitialTokenRecord) => Effect.Effect<void, StoreError>
  readonly findInitialToken: (tokenId: string) => Effect.Effect<Option.Option<InitialTokenRecord>, StoreError>
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
  // token id -> client id, and client id -> its live token id
  const tokenOwners = new Map<string, string>()
  const tokenOf = new Map<string, string>()
  const initialTokens = new Map<string, InitialTokenRecord>()

  return {
    insert: (client, tokenId, initialToken) =>
      Effect.suspend((): Effect.Effect<InsertOutcome> => {
        if (clients.has(client.clientId) || tokenOwners.has(tokenId)) {
          return Effect.die(new Error("ClientStore.insert: client id or token id already taken"))
        }
        if (initialToken !== undefined) {
          const record = initialTokens.get(initialToken.tokenId)
          if (record === undefined || !isUsable(record, initialToken.now)) {
            return Effect.succeed("initial-token-unavailable")
          }
          if (record.usesRemaining !== undefined) {
            initialTokens.set(record.tokenId, { ...record, usesRemaining: record.usesRemaining - 1 })
          }
        }
        clients.set(client.clientId, client)
        tokenOwners.set(tokenId, client.clientId)
        tokenOf.set(client.clientId, tokenId)
        return Effect.succeed("inserted")
      }),
    findById: (clientId) => Effect.sync(() => Option.fromNullable(clients.get(clientId))),
    findTokenOwner: (tokenId) => Effect.sync(() => Option.fromNullable(tokenOwners.get(tokenId))),
    findByToken: (tokenId) =>
      Effect.sync(() => {
        const owner = tokenOwners.get(tokenId)
        return Option.fromNullable(owner === undefined ? undefined : clients.get(owner))
      }),
    update: (client, expectedVersion, rotation) =>
      Effect.sync((): UpdateOutcome => {
        const current = clients.get(client.clientId)
        if (current === undefined) return "missing"
        if (current.version !== expectedVersion) return "conflict"
        if (rotation !== undefined) {
          if (tokenOwners.get(rotation.revoke) !== client.clientId || tokenOwners.has(rotation.issue)) {
            return "conflict"
          }
          tokenOwners.delete(rotation.revoke)
          tokenOwners.set(rotation.issue, client.clientId)
          tokenOf.set(client.clientId, rotation.issue)
        }
        clients.set(client.clientId, client)
        return "updated"
      }),
    remove: (clientId, expectedVersion) =>
      Effect.sync(() => {
        const current = clients.get(clientId)
        if (current === undefined || (expectedVersion !== undefined && current.version !== expectedVersion)) {
          return false
        }
        const existed = clients.delete(clientId)
        const owned = tokenOf.get(clientId)
        if (owned !== undefined) {
          tokenOwners.delete(owned)
          tokenOf.delete(clientId)
        }
        return existed
      }),
    revokeToken: (tokenId) =>
      Effect.sync(() => {
        const owner = tokenOwners.get(tokenId)
        if (owner === undefined) return
        tokenOwners.delete(tokenId)
        tokenOf.delete(owner)
      }),
    insertInitialToken: (record) =>
      Effect.suspend(() => {
        if (initialTokens.has(record.tokenId)) {
          return Effect.die(new Error("ClientStore.insertInitialToken: token id already taken"))
        }
        initialTokens.set(record.tokenId, record)
        return Effect.void
      }),
    findInitialToken: (tokenId) => Effect.sync(() => Option.fromNullable(initialTokens.get(tokenId)))
  }
}

/**
 * The in-memory store: for tests, examples and single-process trials.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory: Layer.Layer<ClientStore> = Layer.sync(ClientStore, makeMemory)
