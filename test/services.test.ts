/**
 * Unit tests of each service's default layer, and of the two programs run
 * without HTTP. Credentials are deterministic (`Credentials.layerTest`) and
 * time comes from `TestClock`.
 */
import { createHash } from "node:crypto"
import { describe, expect, it, layer } from "@effect/vitest"
import { Effect, Exit, Cause, Layer, Option, Redacted, TestClock } from "effect"
import type { RegisteredClient } from "../src/ClientInformation.js"
import * as ClientConfiguration from "../src/ClientConfiguration.js"
import * as ClientEvents from "../src/ClientEvents.js"
import * as ClientLookup from "../src/ClientLookup.js"
import * as ClientStore from "../src/ClientStore.js"
import * as Credentials from "../src/Credentials.js"
import * as Dcr from "../src/Dcr.js"
import * as PermissionPolicy from "../src/PermissionPolicy.js"
import * as Registration from "../src/Registration.js"
import * as TokenAuthenticator from "../src/TokenAuthenticator.js"
import { clientStoreContract, makeClient } from "./ClientStore.contract.js"

const base64url256 = /^[A-Za-z0-9_-]{43}$/
const base64url128 = /^[A-Za-z0-9_-]{22}$/
const nodeSha256 = (value: string): string => createHash("sha256").update(value, "utf8").digest("base64url")

// ---------------------------------------------------------------------------
// Credentials
// ---------------------------------------------------------------------------

layer(Credentials.layer)("Credentials.layer", (it) => {
  it.effect("R7592-5-e D15 secrets and tokens are 256-bit base64url (43 chars), client ids 128-bit (22 chars)", () =>
    Effect.gen(function* () {
      const credentials = yield* Credentials.Credentials
      for (let i = 0; i < 50; i++) {
        expect(Redacted.value(yield* credentials.clientSecret)).toMatch(base64url256)
        expect(Redacted.value(yield* credentials.registrationToken)).toMatch(base64url256)
        expect(yield* credentials.clientId).toMatch(base64url128)
      }
    })
  )

  it.effect("R7591-3.2.1-b R7591-3.2.1-c D15 no value repeats over 1000 draws", () =>
    Effect.gen(function* () {
      const credentials = yield* Credentials.Credentials
      const seen = new Set<string>()
      for (let i = 0; i < 1000; i++) {
        seen.add(yield* credentials.clientId)
        seen.add(Redacted.value(yield* credentials.clientSecret))
        seen.add(Redacted.value(yield* credentials.registrationToken))
      }
      expect(seen.size).toBe(3000)
    })
  )

  it.effect("D15 hash is SHA-256 base64url and never equals its input", () =>
    Effect.gen(function* () {
      const credentials = yield* Credentials.Credentials
      // FIPS 180-2 test vector "abc".
      expect(credentials.hash(Redacted.make("abc"))).toBe("ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0")
      expect(Credentials.sha256("abc")).toBe("ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0")
      const inputs = ["", "a", "rat-1", "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0", "ünïcødé 🔑"]
      for (let i = 0; i < 100; i++) inputs.push(Redacted.value(yield* credentials.registrationToken))
      for (const input of inputs) {
        const hashed = credentials.hash(Redacted.make(input))
        expect(hashed).toBe(nodeSha256(input))
        expect(hashed).toMatch(base64url256)
        expect(hashed).not.toBe(input)
      }
    })
  )

  it.effect("R7592-2.2-f D7 equals is true for equal values, false otherwise, including different lengths", () =>
    Effect.gen(function* () {
      const { equals } = yield* Credentials.Credentials
      const secret = Redacted.value(yield* (yield* Credentials.Credentials).clientSecret)
      expect(equals(Redacted.make(secret), Redacted.make(secret))).toBe(true)
      expect(equals(Redacted.make(""), Redacted.make(""))).toBe(true)
      expect(equals(Redacted.make(secret), Redacted.make(secret.slice(0, -1)))).toBe(false)
      expect(equals(Redacted.make(secret), Redacted.make(secret + "x"))).toBe(false)
      expect(equals(Redacted.make("abc"), Redacted.make("abd"))).toBe(false)
      expect(equals(Redacted.make("abc"), Redacted.make(""))).toBe(false)
      expect(equals(Redacted.make("a"), Redacted.make("a".repeat(10_000)))).toBe(false)
      expect(Credentials.constantTimeEquals("same", "same")).toBe(true)
      expect(Credentials.constantTimeEquals("short", "much longer value")).toBe(false)
    })
  )
})

describe("Credentials.layerTest", () => {
  it.effect("gives client-1, secret-2, rat-3, … in the order asked, with real hashing", () =>
    Effect.gen(function* () {
      const credentials = yield* Credentials.Credentials
      expect(yield* credentials.clientId).toBe("client-1")
      expect(Redacted.value(yield* credentials.clientSecret)).toBe("secret-2")
      expect(Redacted.value(yield* credentials.registrationToken)).toBe("rat-3")
      expect(yield* credentials.clientId).toBe("client-4")
      expect(credentials.hash(Redacted.make("rat-3"))).toBe(nodeSha256("rat-3"))
      expect(credentials.equals(Redacted.make("rat-3"), Redacted.make("rat-3"))).toBe(true)
      expect(credentials.equals(Redacted.make("rat-3"), Redacted.make("rat-33"))).toBe(false)
    }).pipe(Effect.provide(Credentials.layerTest))
  )

  it.effect("each build of the layer starts again at 1", () =>
    Effect.gen(function* () {
      const first = yield* Effect.provide(Credentials.Credentials, Credentials.layerTest)
      const second = yield* Effect.provide(Credentials.Credentials, Credentials.layerTest)
      expect(yield* first.clientId).toBe("client-1")
      expect(yield* first.clientId).toBe("client-2")
      expect(yield* second.clientId).toBe("client-1")
    })
  )
})

// ---------------------------------------------------------------------------
// ClientStore
// ---------------------------------------------------------------------------

clientStoreContract("layerMemory", ClientStore.layerMemory)

describe("ClientStore.layerMemory specifics", () => {
  it.effect("a duplicate insert is a defect, not a typed failure", () =>
    Effect.gen(function* () {
      const store = yield* ClientStore.ClientStore
      yield* store.insert(makeClient("a"), "t-a")
      const exit = yield* Effect.exit(store.insert(makeClient("a"), "t-other"))
      expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
    }).pipe(Effect.provide(ClientStore.layerMemory))
  )

  it.effect("each build of the layer is a new, empty store", () =>
    Effect.gen(function* () {
      yield* Effect.provide(
        Effect.flatMap(ClientStore.ClientStore, (store) => store.insert(makeClient("a"), "t-a")),
        ClientStore.layerMemory
      )
      const fresh = yield* Effect.provide(
        Effect.flatMap(ClientStore.ClientStore, (store) => store.findById("a")),
        ClientStore.layerMemory
      )
      expect(Option.isNone(fresh)).toBe(true)
    })
  )
})

// ---------------------------------------------------------------------------
// TokenAuthenticator
// ---------------------------------------------------------------------------

const foundation = Layer.merge(ClientStore.layerMemory, Credentials.layerTest)
const opaqueLayer = Layer.provideMerge(TokenAuthenticator.layerOpaque, foundation)

describe("TokenAuthenticator.layerOpaque", () => {
  it.effect("R7592-2-b issue then authenticate round-trips; the token id is the SHA-256 (D15)", () =>
    Effect.gen(function* () {
      const tokens = yield* TokenAuthenticator.TokenAuthenticator
      const store = yield* ClientStore.ClientStore
      const issued = yield* tokens.issue("c1")
      expect(Redacted.value(issued.value)).toBe("rat-1")
      expect(issued.tokenId).toBe(nodeSha256("rat-1"))
      expect(issued.tokenId).not.toBe(Redacted.value(issued.value))
      yield* store.insert(makeClient("c1"), issued.tokenId)

      const token = yield* tokens.authenticate(Redacted.make("rat-1"))
      expect(token.clientId).toBe("c1")
      expect(token.tokenId).toBe(nodeSha256("rat-1"))
      expect(Redacted.value(token.value)).toBe("rat-1")
    }).pipe(Effect.provide(opaqueLayer))
  )

  it.effect("R6750-3.1-c an unknown token is InvalidToken", () =>
    Effect.gen(function* () {
      const tokens = yield* TokenAuthenticator.TokenAuthenticator
      const store = yield* ClientStore.ClientStore
      const issued = yield* tokens.issue("c1")
      yield* store.insert(makeClient("c1"), issued.tokenId)
      for (const guess of ["rat-2", "", "RAT-1", "rat-1 ", issued.tokenId]) {
        const error = yield* Effect.flip(tokens.authenticate(Redacted.make(guess)))
        expect(error._tag).toBe("InvalidToken")
      }
    }).pipe(Effect.provide(opaqueLayer))
  )

  it.effect("D2 revoke then authenticate is InvalidToken; the client stays", () =>
    Effect.gen(function* () {
      const tokens = yield* TokenAuthenticator.TokenAuthenticator
      const store = yield* ClientStore.ClientStore
      const issued = yield* tokens.issue("c1")
      yield* store.insert(makeClient("c1"), issued.tokenId)
      const token = yield* tokens.authenticate(issued.value)
      yield* tokens.revoke(token)
      const error = yield* Effect.flip(tokens.authenticate(issued.value))
      expect(error._tag).toBe("InvalidToken")
      expect(Option.isSome(yield* store.findById("c1"))).toBe(true)
    }).pipe(Effect.provide(opaqueLayer))
  )
})

// ---------------------------------------------------------------------------
// ClientLookup
// ---------------------------------------------------------------------------

/**
 * A memory store that records reads and revocations, and can hide clients.
 * Without `findByToken` unless asked: a host's store answering the token's
 * owner and the client in two steps, which is where a client can vanish
 * between them.
 */
const makeSpyStore = (options: { readonly findByToken?: boolean } = {}) => {
  const inner = ClientStore.makeMemory()
  const calls: Array<string> = []
  const hidden = new Set<string>()
  const findByToken = inner.findByToken
  const service: ClientStore.ClientStoreService = {
    ...inner,
    findByToken:
      options.findByToken === true && findByToken !== undefined
        ? (tokenId) =>
            Effect.suspend(() => {
              calls.push(`findByToken:${tokenId}`)
              return findByToken(tokenId)
            })
        : undefined,
    findTokenOwner: (tokenId) =>
      Effect.suspend(() => {
        calls.push(`findTokenOwner:${tokenId}`)
        return inner.findTokenOwner(tokenId)
      }),
    findById: (clientId) =>
      Effect.suspend(() => {
        calls.push(`findById:${clientId}`)
        return hidden.has(clientId) ? Effect.succeed(Option.none()) : inner.findById(clientId)
      }),
    revokeToken: (tokenId) =>
      Effect.suspend(() => {
        calls.push(`revokeToken:${tokenId}`)
        return inner.revokeToken(tokenId)
      })
  }
  return { service, calls, hidden, layer: Layer.succeed(ClientStore.ClientStore, service) }
}

const lookupLayer = (store: Layer.Layer<ClientStore.ClientStore>) =>
  Layer.provideMerge(
    ClientLookup.layer,
    Layer.provideMerge(TokenAuthenticator.layerOpaque, Layer.merge(store, Credentials.layerTest))
  )

describe("ClientLookup.layer", () => {
  it.effect("R7592-2.1-a finds the client the token is bound to", () => {
    const spy = makeSpyStore()
    return Effect.gen(function* () {
      const tokens = yield* TokenAuthenticator.TokenAuthenticator
      const issued = yield* tokens.issue("a")
      yield* spy.service.insert(makeClient("a"), issued.tokenId)
      const token = yield* tokens.authenticate(issued.value)
      const client = yield* (yield* ClientLookup.ClientLookup).lookup(token, "a")
      expect(client.clientId).toBe("a")
    }).pipe(Effect.provide(lookupLayer(spy.layer)))
  })

  it.effect("D1 R7592-1.2-b a token bound to another client is InvalidToken, and the other client is not read", () => {
    const spy = makeSpyStore()
    return Effect.gen(function* () {
      const tokens = yield* TokenAuthenticator.TokenAuthenticator
      const forA = yield* tokens.issue("a")
      yield* spy.service.insert(makeClient("a"), forA.tokenId)
      const forB = yield* tokens.issue("b")
      yield* spy.service.insert(makeClient("b"), forB.tokenId)
      const tokenA = yield* tokens.authenticate(forA.value)
      spy.calls.length = 0

      const lookup = (yield* ClientLookup.ClientLookup).lookup
      const error = yield* Effect.flip(lookup(tokenA, "b"))
      expect(error._tag).toBe("InvalidToken")
      // An id that does not exist answers exactly alike: nothing is revealed.
      const other = yield* Effect.flip(lookup(tokenA, "no-such-client"))
      expect(other).toStrictEqual(error)
      expect(spy.calls).toStrictEqual([])
      // And nothing was revoked: A's token still works.
      expect((yield* tokens.authenticate(forA.value)).clientId).toBe("a")
    }).pipe(Effect.provide(lookupLayer(spy.layer)))
  })

  it.effect("D2 R7592-2.1-f a valid token whose client is gone is ClientNotFound, and the token is revoked", () => {
    const spy = makeSpyStore()
    return Effect.gen(function* () {
      const tokens = yield* TokenAuthenticator.TokenAuthenticator
      const issued = yield* tokens.issue("a")
      yield* spy.service.insert(makeClient("a"), issued.tokenId)
      const token = yield* tokens.authenticate(issued.value)
      // The client vanished behind the token's back (a store without cascade, a race).
      spy.hidden.add("a")

      const error = yield* Effect.flip((yield* ClientLookup.ClientLookup).lookup(token, "a"))
      expect(error._tag).toBe("ClientNotFound")
      expect(error._tag === "ClientNotFound" ? error.clientId : undefined).toBe("a")
      expect(spy.calls).toContain(`revokeToken:${issued.tokenId}`)
      expect(yield* spy.service.findTokenOwner(issued.tokenId)).toStrictEqual(Option.none())
      expect((yield* Effect.flip(tokens.authenticate(issued.value)))._tag).toBe("InvalidToken")
    }).pipe(Effect.provide(lookupLayer(spy.layer)))
  })

  it.effect(
    "issue 6 a store with findByToken: the token and its client are one read, and ClientLookup reads nothing more",
    () => {
      const spy = makeSpyStore({ findByToken: true })
      return Effect.gen(function* () {
        const tokens = yield* TokenAuthenticator.TokenAuthenticator
        const issued = yield* tokens.issue("a")
        yield* spy.service.insert(makeClient("a"), issued.tokenId)
        const token = yield* tokens.authenticate(issued.value)
        expect(token.client?.clientId).toBe("a")
        const client = yield* (yield* ClientLookup.ClientLookup).lookup(token, "a")
        expect(client).toBe(token.client)
        expect(spy.calls).toStrictEqual([`findByToken:${issued.tokenId}`])
        // D1 still holds: the token names its own client only.
        expect((yield* Effect.flip((yield* ClientLookup.ClientLookup).lookup(token, "b")))._tag).toBe("InvalidToken")
      }).pipe(Effect.provide(lookupLayer(spy.layer)))
    }
  )

  it.effect("D2 R7592-2.1-f a store with findByToken: a removed client's token is no longer live, InvalidToken", () => {
    const spy = makeSpyStore({ findByToken: true })
    return Effect.gen(function* () {
      const tokens = yield* TokenAuthenticator.TokenAuthenticator
      const issued = yield* tokens.issue("a")
      yield* spy.service.insert(makeClient("a"), issued.tokenId)
      yield* spy.service.remove("a")
      expect((yield* Effect.flip(tokens.authenticate(issued.value)))._tag).toBe("InvalidToken")
    }).pipe(Effect.provide(lookupLayer(spy.layer)))
  })

  it.effect("D2 a client removed between authentication and lookup is ClientNotFound", () => {
    const spy = makeSpyStore()
    return Effect.gen(function* () {
      const tokens = yield* TokenAuthenticator.TokenAuthenticator
      const issued = yield* tokens.issue("a")
      yield* spy.service.insert(makeClient("a"), issued.tokenId)
      const token = yield* tokens.authenticate(issued.value)
      yield* spy.service.remove("a")
      const error = yield* Effect.flip((yield* ClientLookup.ClientLookup).lookup(token, "a"))
      expect(error._tag).toBe("ClientNotFound")
      expect(spy.calls).toContain(`revokeToken:${issued.tokenId}`)
    }).pipe(Effect.provide(lookupLayer(spy.layer)))
  })
})

// ---------------------------------------------------------------------------
// PermissionPolicy
// ---------------------------------------------------------------------------

const operations: ReadonlyArray<PermissionPolicy.Operation> = ["read", "update", "delete"]

layer(PermissionPolicy.layerAllowAll)("PermissionPolicy.layerAllowAll", (it) => {
  it.effect("allows every operation", () =>
    Effect.gen(function* () {
      const policy = yield* PermissionPolicy.PermissionPolicy
      for (const operation of operations) {
        expect(Exit.isSuccess(yield* Effect.exit(policy.check(makeClient("a"), operation)))).toBe(true)
      }
    })
  )
})

describe("PermissionPolicy.layerFromPredicate", () => {
  it.effect("D3 R7592-2.1-g R7592-2.2-k R7592-2.3-h a refusal is InsufficientScope naming the operation", () =>
    Effect.gen(function* () {
      const policy = yield* PermissionPolicy.PermissionPolicy
      const kiosk: RegisteredClient = {
        ...makeClient("kiosk"),
        metadata: { software_id: "kiosk", grant_types: ["client_credentials"], response_types: [] }
      }
      const normal = makeClient("normal")
      for (const operation of operations) {
        expect(Exit.isSuccess(yield* Effect.exit(policy.check(normal, operation)))).toBe(true)
      }
      expect(Exit.isSuccess(yield* Effect.exit(policy.check(kiosk, "read")))).toBe(true)
      const refused: ReadonlyArray<PermissionPolicy.Operation> = ["update", "delete"]
      for (const operation of refused) {
        const error = yield* Effect.flip(policy.check(kiosk, operation))
        expect(error._tag).toBe("InsufficientScope")
        expect(error.description).toContain(operation)
      }
    }).pipe(
      Effect.provide(
        PermissionPolicy.layerFromPredicate(
          (client, operation) => operation === "read" || client.metadata.software_id !== "kiosk"
        )
      )
    )
  )
})

// ---------------------------------------------------------------------------
// Registration.register
// ---------------------------------------------------------------------------

const publicUrl = "https://as.example.com"
const dcr = (
  options: Omit<Dcr.Options, "server" | "credentials"> & { readonly server?: Partial<Dcr.Options["server"]> } = {}
) => Dcr.layer({ ...options, credentials: Credentials.layerTest, server: { publicUrl, ...options.server } })

const webClient = {
  redirect_uris: ["https://client.example.org/cb"],
  client_name: "Example",
  scope: "openid profile"
}

describe("Registration.register", () => {
  it.effect("R7591-3.2.1-d client_id_issued_at is the clock's time in seconds; secrets never expire by default", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(1_700_000_000_999)
      const info = yield* Registration.register(webClient)
      expect(info.client.clientId).toBe("client-1")
      expect(info.client.clientIdIssuedAt).toBe(1_700_000_000)
      expect(info.client.clientSecret === undefined ? undefined : Redacted.value(info.client.clientSecret)).toBe(
        "secret-2"
      )
      expect(info.client.clientSecretExpiresAt).toBe(0)
      expect(Redacted.value(info.registrationAccessToken)).toBe("rat-3")
      expect(info.registrationClientUri).toBe("https://as.example.com/register/client-1")
      expect(info.client.version).toBe(1)
      // R7591-3.2.1-f: defaults applied and part of what is registered.
      expect(info.client.metadata).toStrictEqual({
        redirect_uris: ["https://client.example.org/cb"],
        token_endpoint_auth_method: "client_secret_basic",
        grant_types: ["authorization_code"],
        response_types: ["code"],
        client_name: "Example",
        scope: "openid profile"
      })

      yield* TestClock.adjust("90 minutes")
      const later = yield* Registration.register(webClient)
      expect(later.client.clientIdIssuedAt).toBe(1_700_000_000 + 90 * 60)
    }).pipe(Effect.provide(dcr()))
  )

  it.effect("R7591-3.2.1-e D14 with clientSecretLifetimeSeconds 3600 the secret expires at issued_at + 3600", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(1_234_567_890_000)
      const info = yield* Registration.register(webClient)
      expect(info.client.clientIdIssuedAt).toBe(1_234_567_890)
      expect(info.client.clientSecretExpiresAt).toBe(1_234_567_890 + 3600)
      expect(Registration.secretExpiry(100, 0)).toBe(0)
      expect(Registration.secretExpiry(100, 3600)).toBe(3700)
    }).pipe(Effect.provide(dcr({ server: { clientSecretLifetimeSeconds: 3600 } })))
  )

  it.effect("R7591-3.2.1-c D14 a public client (none) gets no secret and expiry 0", () =>
    Effect.gen(function* () {
      const info = yield* Registration.register({ ...webClient, token_endpoint_auth_method: "none" })
      expect(info.client.clientSecret).toBeUndefined()
      expect(info.client.clientSecretExpiresAt).toBe(0)
      // No secret was drawn: the token is the second credential.
      expect(Redacted.value(info.registrationAccessToken)).toBe("rat-2")
    }).pipe(Effect.provide(dcr({ server: { clientSecretLifetimeSeconds: 3600 } })))
  )

  it.effect("D19 the ClientEvents.registered hook is called with the stored client", () => {
    const seen: Array<RegisteredClient> = []
    return Effect.gen(function* () {
      const info = yield* Registration.register(webClient)
      expect(seen).toHaveLength(1)
      expect(seen[0]?.clientId).toBe(info.client.clientId)
      expect(seen[0]?.metadata).toStrictEqual(info.client.metadata)
    }).pipe(
      Effect.provide(
        dcr({
          clientEvents: ClientEvents.layer({
            registered: (client) =>
              Effect.sync(() => {
                seen.push(client)
              })
          })
        })
      )
    )
  })

  it.effect("a failing registered hook does not change the answer: the client is stored", () =>
    Effect.gen(function* () {
      const info = yield* Registration.register(webClient)
      const stored = yield* (yield* ClientStore.ClientStore).findById(info.client.clientId)
      expect(Option.isSome(stored)).toBe(true)
    }).pipe(Effect.provide(dcr({ clientEvents: ClientEvents.layer({ registered: () => Effect.die("hook broke") }) })))
  )

  it.effect("R7591-3.2.2-d R7591-3.2.2-e invalid metadata fails typed and stores nothing", () =>
    Effect.gen(function* () {
      const badRedirect = yield* Effect.flip(Registration.register({ redirect_uris: ["http://evil.example/cb"] }))
      expect(badRedirect._tag).toBe("InvalidRedirectUri")
      const badScope = yield* Effect.flip(Registration.register({ ...webClient, scope: "openid admin" }))
      expect(badScope._tag).toBe("InvalidClientMetadata")
      const missingRedirects = yield* Effect.flip(Registration.register({ client_name: "No redirects" }))
      expect(missingRedirects._tag).toBe("InvalidRedirectUri")
      // No credential was drawn and nothing stored: the next client is client-1.
      const info = yield* Registration.register(webClient)
      expect(info.client.clientId).toBe("client-1")
    }).pipe(Effect.provide(dcr()))
  )
})

// ---------------------------------------------------------------------------
// ClientConfiguration programs (no HTTP)
// ---------------------------------------------------------------------------

const rat = (info: { readonly registrationAccessToken: Redacted.Redacted<string> }) =>
  Redacted.value(info.registrationAccessToken)
const token = (value: string) => Redacted.make(value)
const secretOf = (client: RegisteredClient) =>
  client.clientSecret === undefined ? undefined : Redacted.value(client.clientSecret)

describe("ClientConfiguration programs", () => {
  it.effect("R7592-2.1-b R7592-2.1-d read returns the client, the presented RAT and the configuration URI", () =>
    Effect.gen(function* () {
      const created = yield* Registration.register(webClient)
      const read = yield* ClientConfiguration.read(token(rat(created)), "client-1")
      expect(read.client.clientId).toBe("client-1")
      expect(read.client.metadata).toStrictEqual(created.client.metadata)
      expect(secretOf(read.client)).toBe("secret-2")
      expect(rat(read)).toBe(rat(created))
      expect(read.registrationClientUri).toBe("https://as.example.com/register/client-1")
    }).pipe(Effect.provide(dcr()))
  )

  it.effect("R7592-2.1-e R7592-2.2-i R7592-2.3-f an unknown RAT is InvalidToken for read, update and delete", () =>
    Effect.gen(function* () {
      yield* Registration.register(webClient)
      const wrong = token("rat-999")
      expect((yield* Effect.flip(ClientConfiguration.read(wrong, "client-1")))._tag).toBe("InvalidToken")
      expect(
        (yield* Effect.flip(ClientConfiguration.update(wrong, "client-1", { client_id: "client-1", ...webClient })))
          ._tag
      ).toBe("InvalidToken")
      expect((yield* Effect.flip(ClientConfiguration.delete(wrong, "client-1")))._tag).toBe("InvalidToken")
    }).pipe(Effect.provide(dcr()))
  )

  it.effect("D1 R7592-1.2-b A's RAT never reads, updates or deletes B", () =>
    Effect.gen(function* () {
      const a = yield* Registration.register(webClient)
      const b = yield* Registration.register({ ...webClient, client_name: "B" })
      const tokenA = token(rat(a))
      const idB = b.client.clientId
      expect((yield* Effect.flip(ClientConfiguration.read(tokenA, idB)))._tag).toBe("InvalidToken")
      const body = { client_id: idB, redirect_uris: ["https://evil.example.com/cb"] }
      expect((yield* Effect.flip(ClientConfiguration.update(tokenA, idB, body)))._tag).toBe("InvalidToken")
      expect((yield* Effect.flip(ClientConfiguration.delete(tokenA, idB)))._tag).toBe("InvalidToken")
      const stillB = yield* ClientConfiguration.read(token(rat(b)), idB)
      expect(stillB.client.version).toBe(1)
      expect(stillB.client.metadata).toStrictEqual(b.client.metadata)
      // A's token was not revoked by its misuse.
      expect((yield* ClientConfiguration.read(tokenA, a.client.clientId)).client.clientId).toBe(a.client.clientId)
    }).pipe(Effect.provide(dcr()))
  )

  it.effect("R7592-2.2-d R7592-2.2-h D8 D15 update replaces the metadata, keeps id and secret, rotates the RAT", () =>
    Effect.gen(function* () {
      const created = yield* Registration.register({ ...webClient, contacts: ["a@example.org"] })
      const before = rat(created)
      const updated = yield* ClientConfiguration.update(token(before), "client-1", {
        client_id: "client-1",
        client_secret: "secret-2",
        redirect_uris: ["https://client.example.org/new"],
        client_name: "Renamed",
        client_uri: null
      })
      expect(updated.client.clientId).toBe("client-1")
      expect(updated.client.version).toBe(2)
      expect(updated.client.clientIdIssuedAt).toBe(created.client.clientIdIssuedAt)
      expect(secretOf(updated.client)).toBe("secret-2")
      // Omitted members (scope, contacts) are gone; the defaults are back.
      expect(updated.client.metadata).toStrictEqual({
        redirect_uris: ["https://client.example.org/new"],
        token_endpoint_auth_method: "client_secret_basic",
        grant_types: ["authorization_code"],
        response_types: ["code"],
        client_name: "Renamed"
      })
      expect(rat(updated)).toBe("rat-4")
      expect(rat(updated)).not.toBe(before)
      // R7592-2.1-c: the old RAT now fails, the new one works.
      expect((yield* Effect.flip(ClientConfiguration.read(token(before), "client-1")))._tag).toBe("InvalidToken")
      const read = yield* ClientConfiguration.read(token(rat(updated)), "client-1")
      expect(read.client.metadata).toStrictEqual(updated.client.metadata)
    }).pipe(Effect.provide(dcr()))
  )

  it.effect("D15 with rotation off the RAT survives an update", () =>
    Effect.gen(function* () {
      const created = yield* Registration.register(webClient)
      const updated = yield* ClientConfiguration.update(token(rat(created)), "client-1", {
        client_id: "client-1",
        ...webClient,
        client_name: "Same token"
      })
      expect(rat(updated)).toBe(rat(created))
      expect((yield* ClientConfiguration.read(token(rat(created)), "client-1")).client.metadata.client_name).toBe(
        "Same token"
      )
    }).pipe(Effect.provide(dcr({ server: { rotateRegistrationTokenOnUpdate: false } })))
  )

  it.effect("D14 switching to none drops the secret; switching back issues a new one", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(5_000_000)
      const created = yield* Registration.register(webClient)
      const pub = yield* ClientConfiguration.update(token(rat(created)), "client-1", {
        client_id: "client-1",
        ...webClient,
        token_endpoint_auth_method: "none"
      })
      expect(pub.client.clientSecret).toBeUndefined()
      expect(pub.client.clientSecretExpiresAt).toBe(0)
      yield* TestClock.adjust("10 seconds")
      const conf = yield* ClientConfiguration.update(token(rat(pub)), "client-1", {
        client_id: "client-1",
        ...webClient,
        token_endpoint_auth_method: "client_secret_post"
      })
      const secret = secretOf(conf.client)
      expect(secret).toBeDefined()
      expect(secret).not.toBe("secret-2")
      expect(conf.client.clientSecretExpiresAt).toBe(5_000 + 10 + 60)
    }).pipe(Effect.provide(dcr({ server: { clientSecretLifetimeSeconds: 60 } })))
  )

  it.effect("R7592-2.2-c R7592-2.2-e R7592-2.2-f D7 bad update bodies are InvalidRequest and change nothing", () =>
    Effect.gen(function* () {
      const created = yield* Registration.register(webClient)
      const credential = token(rat(created))
      const valid = { client_id: "client-1", ...webClient }
      const bodies: ReadonlyArray<unknown> = [
        { ...valid, registration_access_token: rat(created) },
        { ...valid, registration_client_uri: created.registrationClientUri },
        { ...valid, client_secret_expires_at: 0 },
        { ...valid, client_id_issued_at: created.client.clientIdIssuedAt },
        { ...valid, client_id_issued_at: null },
        webClient,
        { ...webClient, client_id: "client-2" },
        { ...webClient, client_id: 1 },
        { ...valid, client_secret: "secret-3" },
        { ...valid, client_secret: "secret-22" },
        { ...valid, client_secret: 2 },
        [valid],
        "client-1"
      ]
      for (const body of bodies) {
        const error = yield* Effect.flip(ClientConfiguration.update(credential, "client-1", body))
        expect(error._tag).toBe("InvalidRequest")
      }
      // Nothing changed, and the RAT was not rotated.
      const read = yield* ClientConfiguration.read(credential, "client-1")
      expect(read.client.version).toBe(1)
      expect(read.client.metadata).toStrictEqual(created.client.metadata)
      expect(secretOf(read.client)).toBe("secret-2")
    }).pipe(Effect.provide(dcr()))
  )

  it.effect("R7592-2.2-l invalid metadata in an update fails with the RFC 7591 error and changes nothing", () =>
    Effect.gen(function* () {
      const created = yield* Registration.register(webClient)
      const credential = token(rat(created))
      const redirect = yield* Effect.flip(
        ClientConfiguration.update(credential, "client-1", {
          client_id: "client-1",
          redirect_uris: ["https://client.example.org/cb#fragment"]
        })
      )
      expect(redirect._tag).toBe("InvalidRedirectUri")
      const metadata = yield* Effect.flip(
        ClientConfiguration.update(credential, "client-1", { client_id: "client-1", ...webClient, client_uri: "nope" })
      )
      expect(metadata._tag).toBe("InvalidClientMetadata")
      const read = yield* ClientConfiguration.read(credential, "client-1")
      expect(read.client.version).toBe(1)
      expect(read.client.metadata).toStrictEqual(created.client.metadata)
    }).pipe(Effect.provide(dcr()))
  )

  it.effect("R7592-2.3-b R7592-5-f D19 delete removes the client and its RAT, and calls the deleted hook", () => {
    const deleted: Array<string> = []
    return Effect.gen(function* () {
      const created = yield* Registration.register(webClient)
      const credential = token(rat(created))
      yield* ClientConfiguration.delete(credential, "client-1")
      expect(deleted).toStrictEqual(["client-1"])
      expect((yield* Effect.flip(ClientConfiguration.read(credential, "client-1")))._tag).toBe("InvalidToken")
      expect((yield* Effect.flip(ClientConfiguration.delete(credential, "client-1")))._tag).toBe("InvalidToken")
      expect(
        (yield* Effect.flip(
          ClientConfiguration.update(credential, "client-1", { client_id: "client-1", ...webClient })
        ))._tag
      ).toBe("InvalidToken")
      expect(yield* (yield* ClientStore.ClientStore).findById("client-1")).toStrictEqual(Option.none())
      expect(deleted).toStrictEqual(["client-1"])
    }).pipe(
      Effect.provide(
        dcr({
          clientEvents: ClientEvents.layer({
            deleted: (client) =>
              Effect.sync(() => {
                deleted.push(client.clientId)
              })
          })
        })
      )
    )
  })

  it.effect("D3 R7592-2.2-k R7592-2.3-h a refusing policy gives InsufficientScope and changes nothing", () =>
    Effect.gen(function* () {
      const created = yield* Registration.register(webClient)
      const credential = token(rat(created))
      const update = yield* Effect.flip(
        ClientConfiguration.update(credential, "client-1", { client_id: "client-1", ...webClient, client_name: "X" })
      )
      expect(update._tag).toBe("InsufficientScope")
      expect((yield* Effect.flip(ClientConfiguration.delete(credential, "client-1")))._tag).toBe("InsufficientScope")
      const read = yield* ClientConfiguration.read(credential, "client-1")
      expect(read.client.metadata.client_name).toBe("Example")
      expect(read.client.version).toBe(1)
    }).pipe(
      Effect.provide(
        dcr({ permissionPolicy: PermissionPolicy.layerFromPredicate((_, operation) => operation === "read") })
      )
    )
  )

  it.effect("R7592-2.1-g D3 a policy that refuses read gives InsufficientScope on read", () =>
    Effect.gen(function* () {
      const created = yield* Registration.register(webClient)
      expect((yield* Effect.flip(ClientConfiguration.read(token(rat(created)), "client-1")))._tag).toBe(
        "InsufficientScope"
      )
    }).pipe(Effect.provide(dcr({ permissionPolicy: PermissionPolicy.layerFromPredicate(() => false) })))
  )

  it.effect(
    "D2 R7592-2.1-f R7592-2.2-j R7592-2.3-g a client gone behind its RAT is ClientNotFound, then InvalidToken",
    () => {
      const spy = makeSpyStore()
      return Effect.gen(function* () {
        const created = yield* Registration.register(webClient)
        const credential = token(rat(created))
        spy.hidden.add("client-1")
        expect((yield* Effect.flip(ClientConfiguration.read(credential, "client-1")))._tag).toBe("ClientNotFound")
        // The RAT was revoked at once: every later call is InvalidToken.
        expect((yield* Effect.flip(ClientConfiguration.read(credential, "client-1")))._tag).toBe("InvalidToken")
        expect((yield* Effect.flip(ClientConfiguration.delete(credential, "client-1")))._tag).toBe("InvalidToken")
      }).pipe(Effect.provide(dcr({ store: spy.layer })))
    }
  )

  for (const findByToken of [true, false]) {
    it.effect(
      `issue 6 update reads the store ${findByToken ? "once (findByToken): the token was live at the version it read, so no second token check" : "three times without findByToken: owner, client, then the token still live"} before it writes`,
      () => {
        const spy = makeSpyStore({ findByToken })
        return Effect.gen(function* () {
          const created = yield* Registration.register(webClient)
          spy.calls.length = 0
          const updated = yield* ClientConfiguration.update(token(rat(created)), "client-1", {
            client_id: "client-1",
            ...webClient,
            client_name: "Renamed"
          })
          expect(updated.client.metadata.client_name).toBe("Renamed")
          const tokenId = Credentials.sha256(rat(created))
          expect(spy.calls).toStrictEqual(
            findByToken
              ? [`findByToken:${tokenId}`]
              : [`findTokenOwner:${tokenId}`, "findById:client-1", `findTokenOwner:${tokenId}`]
          )
        }).pipe(Effect.provide(dcr({ store: spy.layer })))
      }
    )
  }

  it.effect(
    "D15 issue 6 with findByToken, an update that read its client before a rotation committed loses the compare-and-set and then fails authentication",
    () => {
      const spy = makeSpyStore({ findByToken: true })
      return Effect.gen(function* () {
        const created = yield* Registration.register(webClient)
        const stale = token(rat(created))
        // The token and the client as read by a request that is about to write.
        const authenticated = yield* (yield* TokenAuthenticator.TokenAuthenticator).authenticate(stale)
        const client = authenticated.client
        if (client === undefined) throw new Error("the token was not read with its client")
        // Another request rotates the token (and the version) first.
        const rotated = yield* ClientConfiguration.update(stale, "client-1", { client_id: "client-1", ...webClient })
        expect(Redacted.value(rotated.registrationAccessToken)).not.toBe(rat(created))
        // The stale write: right client, old version, old token.
        const store = yield* ClientStore.ClientStore
        const outcome = yield* store.update({ ...client, version: client.version + 1 }, client.version, {
          revoke: authenticated.tokenId,
          issue: "never-delivered"
        })
        expect(outcome).toBe("conflict")
        // Run again from authentication, as the program does: the old token is dead.
        expect((yield* Effect.flip(ClientConfiguration.update(stale, "client-1", webClient)))._tag).toBe("InvalidToken")
      }).pipe(Effect.provide(dcr({ store: spy.layer, server: { rotateRegistrationTokenOnUpdate: true } })))
    }
  )
})
