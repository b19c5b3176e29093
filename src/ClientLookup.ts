/**
 * Step 2 of RFC 7592: find the client an authenticated token may act on.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Option } from "effect"
import type { RegisteredClient } from "./ClientInformation.js"
import { ClientStore } from "./ClientStore.js"
import { ClientNotFound, InvalidToken, type StoreError } from "./ProtocolError.js"
import { type RegistrationToken, TokenAuthenticator } from "./TokenAuthenticator.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface ClientLookupService {
  /**
   * The client named in the configuration endpoint URI, when `token` is bound
   * to it. A token bound to another client is `InvalidToken` (D1) and nothing
   * is read about the named client; a token whose client is gone is revoked
   * and the answer is `ClientNotFound` (R7592-2.1-f, D2).
   */
  readonly lookup: (
    token: RegistrationToken,
    clientId: string
  ) => Effect.Effect<RegisteredClient, InvalidToken | ClientNotFound | StoreError>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class ClientLookup extends Context.Tag("effect-dcr/ClientLookup")<ClientLookup, ClientLookupService>() {}

const wrongClient = new InvalidToken({ description: "the registration access token is invalid" })

/**
 * Looks the client up in the `ClientStore`, unless the token authenticator
 * read it together with the token (`RegistrationToken.client`, a store with
 * `findByToken`); revokes through the `TokenAuthenticator`, which knows the
 * token's format.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<ClientLookup, never, ClientStore | TokenAuthenticator> = Layer.effect(
  ClientLookup,
  Effect.gen(function* () {
    const store = yield* ClientStore
    const tokens = yield* TokenAuthenticator
    return {
      lookup: (token, clientId) =>
        token.clientId !== clientId
          ? Effect.fail(wrongClient)
          : // Read with the token already (a store with `findByToken`).
            token.client !== undefined
            ? Effect.succeed(token.client)
            : Effect.flatMap(store.findById(clientId), (found) =>
                Option.isSome(found)
                  ? Effect.succeed(found.value)
                  : Effect.zipRight(tokens.revoke(token), Effect.fail(new ClientNotFound({ clientId })))
              )
    }
  })
)
