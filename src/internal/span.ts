/**
 * Spans for the library's programs and steps, only when tracing is on
 * (`ServerMetadata` option `tracing`). A span costs a clock read, a span
 * object and two fiber-ref updates per step; without a tracer that exports
 * them that is pure overhead on every request. Stack traces are never
 * captured: building an `Error` per span dominated a read when profiled, and
 * the span names already say where they come from.
 *
 * @internal
 */
import { Effect } from "effect"
import { ServerMetadata } from "../ServerMetadata.js"

export const spanOptions = { captureStackTrace: false } as const

/** `effect` in a span named `name` when `enabled`, else `effect` itself. */
export const traced = <A, E, R>(
  enabled: boolean,
  name: string,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> => (enabled ? Effect.withSpan(effect, name, spanOptions) : effect)

/** A whole program in a span, when the server's configuration turns tracing on. */
export const tracedProgram = <A, E, R>(
  name: string,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R | ServerMetadata> =>
  Effect.flatMap(ServerMetadata, (server) => traced(server.tracing, name, effect))
