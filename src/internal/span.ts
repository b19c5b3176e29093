/**
 * Span options for every `Effect.withSpan` in the library: no stack trace
 * capture. Capturing one builds an `Error` per span on every request, which
 * profiling showed to dominate a read; the span names already say where they
 * come from.
 *
 * @internal
 */
export const spanOptions = { captureStackTrace: false } as const
