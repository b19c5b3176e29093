/**
 * Step 3 of RFC 7592: may this client perform this operation on its own
 * registration? A refusal is 403 `insufficient_scope` (R7592-2.1-g,
 * R7592-2.2-k, R7592-2.3-h, D3).
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer } from "effect"
import type { RegisteredClient } from "./ClientInformation.js"
import { InsufficientScope } from "./ProtocolError.js"

/**
 * The configuration endpoint's operations.
 *
 * @since 0.1.0
 * @category models
 */
export type Operation = "read" | "update" | "delete"

/**
 * @since 0.1.0
 * @category models
 */
export interface PermissionPolicyService {
  readonly check: (client: RegisteredClient, operation: Operation) => Effect.Effect<void, InsufficientScope>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class PermissionPolicy extends Context.Tag("effect-dcr/PermissionPolicy")<
  PermissionPolicy,
  PermissionPolicyService
>() {}

/**
 * Every client may read, update and delete its own registration.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerAllowAll: Layer.Layer<PermissionPolicy> = Layer.succeed(PermissionPolicy, {
  check: () => Effect.void
})

/**
 * The refusal a predicate-based policy answers with.
 *
 * @since 0.1.0
 * @category constructors
 */
export const denied = (operation: Operation): InsufficientScope =>
  new InsufficientScope({ description: `the client may not ${operation} its registration` })

/**
 * A policy from a synchronous rule: `allow(client, operation)` returning false
 * refuses. For example, read-only clients:
 * `layerFromPredicate((client, op) => op === "read" || client.metadata.software_id !== "kiosk")`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFromPredicate = (
  allow: (client: RegisteredClient, operation: Operation) => boolean
): Layer.Layer<PermissionPolicy> =>
  Layer.succeed(PermissionPolicy, {
    check: (client, operation) => (allow(client, operation) ? Effect.void : Effect.fail(denied(operation)))
  })
