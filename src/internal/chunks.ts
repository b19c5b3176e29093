/**
 * A request body read in chunks, as one byte array.
 *
 * @internal
 */

/** The body of `size` bytes read as `chunks`: undefined when empty, the chunk itself when there is one (no copy). */
export const joinChunks = (chunks: ReadonlyArray<Buffer>, size: number): Uint8Array | undefined =>
  size === 0 ? undefined : chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size)
