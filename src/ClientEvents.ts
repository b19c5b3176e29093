/**
 * The host's hooks on a client's life: registered, updated, deleted. A host
 * uses `deleted` to revoke the grants and tokens issued to the client
 * (R7592-2.3-c, D19) and all three for audit.
 *
 * Hooks run after the store has committed the change. A failing hook is
 * logged and does not change the answer: the change has already happened.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer } from "effect"
import type { RegisteredClient } from "./ClientInformation.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface ClientEventsService {
  readonly registered: (client: RegisteredClient) => Effect.Effect<void>
  readonly updated: (previous: RegisteredClient, next: RegisteredClient) => Effect.Effect<void>
  readonly deleted: (client: RegisteredClient) => Effect.Effect<void>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class ClientEvents extends Context.Tag("effect-dcr/ClientEvents")<ClientEvents, ClientEventsService>() {}

/**
 * Hooks that do nothing.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerNoop: Layer.Layer<ClientEvents> = Layer.succeed(ClientEvents, {
  registered: () => Effect.void,
  updated: () => Effect.void,
  deleted: () => Effect.void
})

/**
 * Hooks from partial handlers; the missing ones do nothing.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (handlers: Partial<ClientEventsService>): Layer.Layer<ClientEvents> =>
  Layer.succeed(ClientEvents, {
    registered: handlers.registered ?? (() => Effect.void),
    updated: handlers.updated ?? (() => Effect.void),
    deleted: handlers.deleted ?? (() => Effect.void)
  })
