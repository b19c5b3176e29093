/**
 * The SQL store on PostgreSQL (`@effect/sql-pg`): for several server
 * instances sharing one database. A subpath module, so importing `effect-dcr`
 * never loads `pg`.
 *
 * @since 0.1.0
 */
import { PgClient } from "@effect/sql-pg"
import { Layer, Redacted } from "effect"
import type { ClientStore } from "./ClientStore.js"
import { StoreError } from "./ProtocolError.js"
import * as SqlClientStore from "./SqlClientStore.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** `postgres://user:password@host:port/database` */
  readonly url: string | Redacted.Redacted<string>
  /** Pool size; default 10. */
  readonly maxConnections?: number | undefined
  /** Seal client secrets at rest (see `SqlClientStore.Options`). */
  readonly sealingKeys?: ReadonlyArray<SqlClientStore.SealingKey> | undefined
}

/**
 * A `ClientStore` on PostgreSQL, migrated at start.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<ClientStore, StoreError> => {
  const client = PgClient.layer({
    url: typeof options.url === "string" ? Redacted.make(options.url) : options.url,
    maxConnections: options.maxConnections ?? 10
  }).pipe(Layer.mapError((cause) => new StoreError({ operation: "connect to the database", cause })))
  return SqlClientStore.layerWith({ sealingKeys: options.sealingKeys }).pipe(Layer.provide(client))
}
