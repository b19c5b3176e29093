/**
 * The store contract on SQLite and PostgreSQL: `SqliteStore` (better-sqlite3
 * directly, issue 6) on `:memory:` and on a file, `SqlClientStore` over
 * `@effect/sql-sqlite-node` (a host's own `SqlClient`) on a file, and
 * `PgStore`. PostgreSQL runs when EFFECT_DCR_TEST_PG_URL names a database
 * (CI always sets it).
 */
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { Layer } from "effect"
import { describe, it } from "vitest"
import * as PgStore from "../src/PgStore.js"
import * as SqlClientStore from "../src/SqlClientStore.js"
import * as SqliteStore from "../src/SqliteStore.js"
import { clientStoreContract } from "./ClientStore.contract.js"
import { pgUrl } from "./support/pg.js"

const freshFile = () => join(mkdtempSync(join(tmpdir(), "effect-dcr-")), "nested", "store.sqlite")

clientStoreContract("SqliteStore on SQLite :memory:", SqliteStore.layer({ filename: ":memory:" }))
clientStoreContract("SqliteStore on a SQLite file", SqliteStore.layer({ filename: freshFile() }))
{
  const filename = join(mkdtempSync(join(tmpdir(), "effect-dcr-")), "store.sqlite")
  clientStoreContract(
    "SqlClientStore on a SQLite file (@effect/sql-sqlite-node)",
    SqlClientStore.layer.pipe(Layer.provide(SqliteClient.layer({ filename })))
  )
}

if (pgUrl !== undefined) {
  clientStoreContract("SqlClientStore on PostgreSQL", PgStore.layer({ url: pgUrl }))
} else {
  describe("SqlClientStore on PostgreSQL", () => {
    it.skip("needs EFFECT_DCR_TEST_PG_URL=postgres://… (set by .ci/run)", () => {})
  })
}
