/**
 * The contract every `ClientStore` implementation must meet (DESIGN §4: one
 * suite, run against every store). Each test builds the layer afresh; ids and
 * token ids are unique per test, so a store whose data outlives one layer
 * build (a shared database) runs the suite just as well.
 */
import { randomUUID } from "node:crypto"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Layer, Option, Redacted } from "effect"
import type { RegisteredClient } from "../src/ClientInformation.js"
import { ClientStore } from "../src/ClientStore.js"

/** A fresh, unique name for one test's client or token. */
const unique = (prefix: string): string => `${prefix}-${randomUUID()}`

/** A client record for store tests. */
export const makeClient = (clientId: string, version = 1, name = "Contract Client"): RegisteredClient => ({
  clientId,
  clientIdIssuedAt: 1_700_000_000,
  clientSecret: Redacted.make(`secret-of-${clientId}`),
  clientSecretExpiresAt: 0,
  metadata: {
    redirect_uris: ["https://client.example.org/cb"],
    client_name: name,
    "client_name#fr": `${name} (fr)`,
    token_endpoint_auth_method: "client_secret_basic",
    grant_types: ["authorization_code"],
    response_types: ["code"]
  },
  version
})

/**
 * A comparable view of a client: `Redacted` hides its value from deep
 * equality, so the secret is unwrapped.
 */
const plain = (client: RegisteredClient) => ({
  clientId: client.clientId,
  clientIdIssuedAt: client.clientIdIssuedAt,
  clientSecret: client.clientSecret === undefined ? undefined : Redacted.value(client.clientSecret),
  clientSecretExpiresAt: client.clientSecretExpiresAt,
  metadata: client.metadata,
  version: client.version
})

const found = (client: Option.Option<RegisteredClient>) => Option.map(client, plain)

/**
 * `withoutFindByToken`: the store under test does not offer the optional
 * `findByToken` (every store of this package does).
 */
export const clientStoreContract = <E>(
  name: string,
  layer: Layer.Layer<ClientStore, E>,
  options: { readonly withoutFindByToken?: boolean } = {}
) =>
  describe(`ClientStore contract: ${name}`, () => {
    it.effect("D15 insert stores the client and its token id; findById and findTokenOwner see them", () =>
      Effect.gen(function* () {
        const store = yield* ClientStore
        const client = makeClient(unique("client"))
        const tokenId = unique("token")
        yield* store.insert(client, tokenId)
        expect(found(yield* store.findById(client.clientId))).toStrictEqual(Option.some(plain(client)))
        expect(yield* store.findTokenOwner(tokenId)).toStrictEqual(Option.some(client.clientId))
        expect(yield* store.findById(unique("absent"))).toStrictEqual(Option.none())
        expect(yield* store.findTokenOwner(unique("absent-token"))).toStrictEqual(Option.none())
      }).pipe(Effect.provide(layer))
    )

    it.effect("a client without a secret round-trips with clientSecret undefined", () =>
      Effect.gen(function* () {
        const store = yield* ClientStore
        const client: RegisteredClient = {
          ...makeClient(unique("public")),
          clientSecret: undefined,
          metadata: { token_endpoint_auth_method: "none", grant_types: ["client_credentials"], response_types: [] }
        }
        yield* store.insert(client, unique("token"))
        expect(found(yield* store.findById(client.clientId))).toStrictEqual(Option.some(plain(client)))
      }).pipe(Effect.provide(layer))
    )

    it.effect("insert of a taken client id or token id does not succeed and changes nothing", () =>
      Effect.gen(function* () {
        const store = yield* ClientStore
        const first = makeClient(unique("client"))
        const tokenId = unique("token")
        yield* store.insert(first, tokenId)

        // The memory store dies; a SQL store may instead fail with StoreError.
        const isDieOrStoreError = (exit: Exit.Exit<unknown, unknown>): boolean =>
          Exit.isFailure(exit) &&
          (Cause.isDie(exit.cause) ||
            Option.exists(Cause.failureOption(exit.cause), (error) => {
              return typeof error === "object" && error !== null && "_tag" in error && error._tag === "StoreError"
            }))

        const sameId = yield* Effect.exit(store.insert(makeClient(first.clientId, 1, "Impostor"), unique("token")))
        expect(isDieOrStoreError(sameId)).toBe(true)
        const other = makeClient(unique("client"))
        const sameToken = yield* Effect.exit(store.insert(other, tokenId))
        expect(isDieOrStoreError(sameToken)).toBe(true)

        expect(found(yield* store.findById(first.clientId))).toStrictEqual(Option.some(plain(first)))
        expect(yield* store.findTokenOwner(tokenId)).toStrictEqual(Option.some(first.clientId))
        expect(yield* store.findById(other.clientId)).toStrictEqual(Option.none())
      }).pipe(Effect.provide(layer))
    )

    it.effect("update is a compare-and-set on the version: updated, then conflict when stale", () =>
      Effect.gen(function* () {
        const store = yield* ClientStore
        const v1 = makeClient(unique("client"))
        const tokenId = unique("token")
        yield* store.insert(v1, tokenId)

        const v2 = { ...makeClient(v1.clientId, 2, "Renamed"), clientSecret: undefined }
        expect(yield* store.update(v2, 1)).toBe("updated")
        expect(found(yield* store.findById(v1.clientId))).toStrictEqual(Option.some(plain(v2)))
        // The token was not touched by an update without rotation.
        expect(yield* store.findTokenOwner(tokenId)).toStrictEqual(Option.some(v1.clientId))

        // A writer that read version 1 lost the race.
        const stale = makeClient(v1.clientId, 2, "Stale writer")
        expect(yield* store.update(stale, 1)).toBe("conflict")
        expect(found(yield* store.findById(v1.clientId))).toStrictEqual(Option.some(plain(v2)))

        const v3 = makeClient(v1.clientId, 3, "Third")
        expect(yield* store.update(v3, 2)).toBe("updated")
        expect(found(yield* store.findById(v1.clientId))).toStrictEqual(Option.some(plain(v3)))
      }).pipe(Effect.provide(layer))
    )

    it.effect("update of an unknown client is missing and stores nothing", () =>
      Effect.gen(function* () {
        const store = yield* ClientStore
        const ghost = makeClient(unique("ghost"), 2)
        expect(yield* store.update(ghost, 1)).toBe("missing")
        const issue = unique("token")
        expect(yield* store.update(ghost, 1, { revoke: unique("token"), issue })).toBe("missing")
        expect(yield* store.findById(ghost.clientId)).toStrictEqual(Option.none())
        expect(yield* store.findTokenOwner(issue)).toStrictEqual(Option.none())
      }).pipe(Effect.provide(layer))
    )

    it.effect("D15 an update with rotation swaps the tokens atomically: old id gone, new id live", () =>
      Effect.gen(function* () {
        const store = yield* ClientStore
        const v1 = makeClient(unique("client"))
        const oldToken = unique("token")
        const newToken = unique("token")
        yield* store.insert(v1, oldToken)
        const v2 = makeClient(v1.clientId, 2, "Rotated")
        expect(yield* store.update(v2, 1, { revoke: oldToken, issue: newToken })).toBe("updated")
        expect(yield* store.findTokenOwner(oldToken)).toStrictEqual(Option.none())
        expect(yield* store.findTokenOwner(newToken)).toStrictEqual(Option.some(v1.clientId))
        expect(found(yield* store.findById(v1.clientId))).toStrictEqual(Option.some(plain(v2)))
      }).pipe(Effect.provide(layer))
    )

    it.effect("a rotation whose revoke id is not live is a conflict and changes nothing", () =>
      Effect.gen(function* () {
        const store = yield* ClientStore
        const v1 = makeClient(unique("client"))
        const liveToken = unique("token")
        yield* store.insert(v1, liveToken)
        const v2 = makeClient(v1.clientId, 2, "Should not land")

        // An id that was never issued.
        const issued = unique("token")
        expect(yield* store.update(v2, 1, { revoke: unique("never-issued"), issue: issued })).toBe("conflict")
        // Another client's live token is not this client's to revoke.
        const other = makeClient(unique("client"))
        const otherToken = unique("token")
        yield* store.insert(other, otherToken)
        expect(yield* store.update(v2, 1, { revoke: otherToken, issue: issued })).toBe("conflict")

        expect(found(yield* store.findById(v1.clientId))).toStrictEqual(Option.some(plain(v1)))
        expect(yield* store.findTokenOwner(liveToken)).toStrictEqual(Option.some(v1.clientId))
        expect(yield* store.findTokenOwner(otherToken)).toStrictEqual(Option.some(other.clientId))
        expect(yield* store.findTokenOwner(issued)).toStrictEqual(Option.none())
      }).pipe(Effect.provide(layer))
    )

    it.effect("of two racing rotations from the same token only one wins", () =>
      Effect.gen(function* () {
        const store = yield* ClientStore
        const v1 = makeClient(unique("client"))
        const token = unique("token")
        yield* store.insert(v1, token)
        const winner = unique("token")
        const loser = unique("token")
        expect(yield* store.update(makeClient(v1.clientId, 2, "Winner"), 1, { revoke: token, issue: winner })).toBe(
          "updated"
        )
        // The loser read version 1 with the same token: conflict either way.
        expect(yield* store.update(makeClient(v1.clientId, 2, "Loser"), 1, { revoke: token, issue: loser })).toBe(
          "conflict"
        )
        // Even with the current version, the revoked token cannot rotate again.
        expect(yield* store.update(makeClient(v1.clientId, 3, "Loser"), 2, { revoke: token, issue: loser })).toBe(
          "conflict"
        )
        expect(yield* store.findTokenOwner(winner)).toStrictEqual(Option.some(v1.clientId))
        expect(yield* store.findTokenOwner(loser)).toStrictEqual(Option.none())
        expect(Option.map(yield* store.findById(v1.clientId), (client) => client.metadata.client_name)).toStrictEqual(
          Option.some("Winner")
        )
      }).pipe(Effect.provide(layer))
    )

    it.effect("R7592-5-f remove deletes the client and all its tokens, and is false the second time", () =>
      Effect.gen(function* () {
        const store = yield* ClientStore
        const client = makeClient(unique("client"))
        const first = unique("token")
        const rotated = unique("token")
        yield* store.insert(client, first)
        expect(yield* store.update(makeClient(client.clientId, 2), 1, { revoke: first, issue: rotated })).toBe(
          "updated"
        )
        const bystander = makeClient(unique("client"))
        const bystanderToken = unique("token")
        yield* store.insert(bystander, bystanderToken)

        expect(yield* store.remove(client.clientId)).toBe(true)
        expect(yield* store.findById(client.clientId)).toStrictEqual(Option.none())
        expect(yield* store.findTokenOwner(first)).toStrictEqual(Option.none())
        expect(yield* store.findTokenOwner(rotated)).toStrictEqual(Option.none())
        expect(yield* store.remove(client.clientId)).toBe(false)
        expect(yield* store.remove(unique("never-there"))).toBe(false)

        // Nothing else was touched.
        expect(found(yield* store.findById(bystander.clientId))).toStrictEqual(Option.some(plain(bystander)))
        expect(yield* store.findTokenOwner(bystanderToken)).toStrictEqual(Option.some(bystander.clientId))
      }).pipe(Effect.provide(layer))
    )

    it.effect("a removed client id can be registered again with a fresh token", () =>
      Effect.gen(function* () {
        const store = yield* ClientStore
        const client = makeClient(unique("client"))
        const token = unique("token")
        yield* store.insert(client, token)
        expect(yield* store.remove(client.clientId)).toBe(true)
        const again = unique("token")
        yield* store.insert(makeClient(client.clientId, 1, "Again"), again)
        expect(yield* store.findTokenOwner(token)).toStrictEqual(Option.none())
        expect(yield* store.findTokenOwner(again)).toStrictEqual(Option.some(client.clientId))
      }).pipe(Effect.provide(layer))
    )

    it.effect("D2 revokeToken makes one token stop working and leaves the client; unknown ids are a no-op", () =>
      Effect.gen(function* () {
        const store = yield* ClientStore
        const client = makeClient(unique("client"))
        const token = unique("token")
        yield* store.insert(client, token)
        yield* store.revokeToken(token)
        expect(yield* store.findTokenOwner(token)).toStrictEqual(Option.none())
        expect(found(yield* store.findById(client.clientId))).toStrictEqual(Option.some(plain(client)))
        // Revoking again, or revoking something never issued, succeeds quietly.
        yield* store.revokeToken(token)
        yield* store.revokeToken(unique("never-issued"))
        // A revoked token cannot be the subject of a rotation either.
        expect(yield* store.update(makeClient(client.clientId, 2), 1, { revoke: token, issue: unique("token") })).toBe(
          "conflict"
        )
        expect(yield* store.remove(client.clientId)).toBe(true)
      }).pipe(Effect.provide(layer))
    )

    it.effect(
      "issue 6 findByToken is findTokenOwner then findById in one step, through insert, update, rotation, revocation and removal",
      () =>
        Effect.gen(function* () {
          const store = yield* ClientStore
          const findByToken = store.findByToken
          expect(findByToken === undefined).toBe(options.withoutFindByToken === true)
          if (findByToken === undefined) return
          const byToken = (tokenId: string) => Effect.map(findByToken(tokenId), found)
          const client = makeClient(unique("client"))
          const first = unique("token")
          yield* store.insert(client, first)
          expect(yield* byToken(first)).toStrictEqual(Option.some(plain(client)))
          expect(yield* byToken(unique("absent-token"))).toStrictEqual(Option.none())

          // An update without rotation: same token, the new state.
          const renamed = makeClient(client.clientId, 2, "Renamed")
          expect(yield* store.update(renamed, 1, undefined)).toBe("updated")
          expect(yield* byToken(first)).toStrictEqual(Option.some(plain(renamed)))
          // With rotation: the old id finds nothing, the new one the new state.
          const second = unique("token")
          const rotated = makeClient(client.clientId, 3, "Rotated")
          expect(yield* store.update(rotated, 2, { revoke: first, issue: second })).toBe("updated")
          expect(yield* byToken(first)).toStrictEqual(Option.none())
          expect(yield* byToken(second)).toStrictEqual(Option.some(plain(rotated)))
          // Revoked: nothing, though the client stays.
          yield* store.revokeToken(second)
          expect(yield* byToken(second)).toStrictEqual(Option.none())
          expect(found(yield* store.findById(client.clientId))).toStrictEqual(Option.some(plain(rotated)))

          // Removed: its token finds nothing.
          const other = makeClient(unique("client"))
          const otherToken = unique("token")
          yield* store.insert(other, otherToken)
          expect(yield* store.remove(other.clientId)).toBe(true)
          expect(yield* byToken(otherToken)).toStrictEqual(Option.none())
        }).pipe(Effect.provide(layer))
    )
  })
