/**
 * The store contract on SQLite (memory and file) and PostgreSQL. PostgreSQL
 * runs when EFFECT_DCR_TEST_PG_URL names a database (CI always sets it).
 */
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, it } from "vitest"
import * as PgStore from "../src/PgStore.js"
import * as SqliteStore from "../src/SqliteStore.js"
import { clientStoreContract } from "./ClientStore.contract.js"
import { pgUrl } from "./support/pg.js"

clientStoreContract("SqlClientStore on SQLite :memory:", SqliteStore.layer({ filename: ":memory:" }))
clientStoreContract(
  "SqlClientStore on a SQLite file",
  SqliteStore.layer({ filename: join(mkdtempSync(join(tmpdir(), "effect-dcr-")), "nested", "store.sqlite") })
)

if (pgUrl !== undefined) {
  clientStoreContract("SqlClientStore on PostgreSQL", PgStore.layer({ url: pgUrl }))
} else {
  describe("SqlClientStore on PostgreSQL", () => {
    it.skip("needs EFFECT_DCR_TEST_PG_URL=postgres://… (set by .ci/run)", () => {})
  })
}
