/**
 * The SQL store on SQLite (`@effect/sql-sqlite-node`, better-sqlite3): a file,
 * or `:memory:`. A subpath module, so importing `effect-dcr` never loads the
 * native driver.
 *
 * @since 0.1.0
 */
import { mkdirSync } from "node:fs"
import { dirname } from "node:path"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { Effect, Layer } from "effect"
import type { ClientStore } from "./ClientStore.js"
import { StoreError } from "./ProtocolError.js"
import * as SqlClientStore from "./SqlClientStore.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** A file path (its folder is created when missing) or `:memory:`. */
  readonly filename: string
  /** Seal client secrets at rest (see `SqlClientStore.Options`). */
  readonly sealingKeys?: ReadonlyArray<SqlClientStore.SealingKey> | undefined
}

/**
 * A `ClientStore` on SQLite, migrated at start.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<ClientStore, StoreError> => {
  const prepare = Layer.effectDiscard(
    Effect.try({
      try: () => {
        if (options.filename !== ":memory:") mkdirSync(dirname(options.filename), { recursive: true })
      },
      catch: (cause) => new StoreError({ operation: "create the database folder", cause })
    })
  )
  const client = SqliteClient.layer({ filename: options.filename }).pipe(
    Layer.mapError((cause) => new StoreError({ operation: "open the database", cause }))
  )
  return SqlClientStore.layerWith({ sealingKeys: options.sealingKeys }).pipe(
    Layer.provide(client),
    Layer.provide(prepare)
  )
}
