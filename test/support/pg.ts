/**
 * The PostgreSQL database tests may use: `.ci/run` creates a fresh one per
 * run and sets EFFECT_DCR_TEST_PG_URL. Locally, without it, PostgreSQL tests
 * are skipped with a message saying how to run them.
 */
export const pgUrl: string | undefined = process.env.EFFECT_DCR_TEST_PG_URL || undefined

if (pgUrl === undefined && process.env.CI !== undefined) {
  throw new Error("CI must run the PostgreSQL tests: set EFFECT_DCR_TEST_PG_URL (.ci/run does)")
}
if (pgUrl === undefined) {
  process.stderr.write(
    "PostgreSQL tests skipped: set EFFECT_DCR_TEST_PG_URL=postgres://postgres@127.0.0.1:5432/<db> to run them\n"
  )
}
