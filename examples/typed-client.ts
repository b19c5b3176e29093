/**
 * The typed client driving a whole RFC 7592 life cycle against a running
 * server: register, read, update (following a rotated registration access
 * token), delete, then check that the deleted registration is refused.
 *
 * Run it against the standalone server (`npm start`):
 *
 *     npx tsx examples/typed-client.ts http://127.0.0.1:3000/register
 *
 * The registration endpoint comes from the first argument, else from
 * DCR_REGISTRATION_ENDPOINT, else http://127.0.0.1:3000/register. A server
 * that requires an initial access token gets DCR_INITIAL_ACCESS_TOKEN.
 *
 * Secrets are never printed: each one is shown as a short SHA-256
 * fingerprint, enough to see when it was rotated.
 */
import { createHash } from "node:crypto"
import { FetchHttpClient } from "@effect/platform"
import { NodeRuntime } from "@effect/platform-node"
import { Console, Effect, Layer, Redacted } from "effect"
import { RegistrationClient } from "effect-dcr"

// An empty argument or variable counts as unset.
const registrationEndpoint =
  process.argv[2] || process.env.DCR_REGISTRATION_ENDPOINT || "http://127.0.0.1:3000/register"
const initialAccessToken = process.env.DCR_INITIAL_ACCESS_TOKEN || undefined

/** A secret as `sha256:1a2b3c4d`: recognisable, not recoverable. */
const fingerprint = (secret: Redacted.Redacted<string> | undefined): string =>
  secret === undefined
    ? "(none)"
    : `sha256:${createHash("sha256").update(Redacted.value(secret)).digest("hex").slice(0, 8)}`

const program = Effect.gen(function* () {
  const client = yield* RegistrationClient.RegistrationClient
  yield* Console.log(`registration endpoint: ${registrationEndpoint}`)

  const registered = yield* client.register({
    redirect_uris: ["https://app.example.org/callback"],
    client_name: "Typed Client Example",
    scope: "openid profile"
  })
  yield* Console.log(
    `registered: client_id=${registered.clientId}` +
      ` client_secret=${fingerprint(registered.clientSecret)}` +
      ` registration_access_token=${fingerprint(registered.registrationAccessToken)}`
  )
  yield* Console.log(`  configuration endpoint: ${registered.registrationClientUri ?? "(none)"}`)

  const read = yield* client.read(registered)
  yield* Console.log(
    `read: client_name=${JSON.stringify(read.metadata.client_name)} scope=${JSON.stringify(read.metadata.scope)}` +
      ` token_endpoint_auth_method=${read.metadata.token_endpoint_auth_method ?? "(unset)"}`
  )

  // Every member of the last response is sent again; `scope: null` removes it.
  const updated = yield* client.update(read, { client_name: "Typed Client Example, renamed", scope: null })
  const rotated =
    updated.registrationAccessToken !== undefined && read.registrationAccessToken !== undefined
      ? Redacted.value(updated.registrationAccessToken) !== Redacted.value(read.registrationAccessToken)
      : false
  yield* Console.log(
    `updated: client_name=${JSON.stringify(updated.metadata.client_name)}` +
      ` scope=${updated.metadata.scope === undefined ? "(removed)" : JSON.stringify(updated.metadata.scope)}` +
      ` registration_access_token=${fingerprint(updated.registrationAccessToken)}` +
      (rotated ? " (rotated)" : " (unchanged)")
  )

  yield* client.delete(updated)
  yield* Console.log(`deleted: ${updated.clientId}`)

  // R7592-5-f: the deleted registration's token is now refused.
  const afterDelete = yield* client.read(updated).pipe(
    Effect.as("still readable (unexpected)"),
    Effect.catchTag("InvalidToken", () => Effect.succeed("refused with InvalidToken"))
  )
  yield* Console.log(`read after delete: ${afterDelete}`)
})

const ClientLive = RegistrationClient.layer({
  registrationEndpoint,
  ...(initialAccessToken === undefined ? {} : { initialAccessToken: Redacted.make(initialAccessToken) })
}).pipe(Layer.provide(FetchHttpClient.layer))

NodeRuntime.runMain(
  program.pipe(
    Effect.tapError((error) => Console.error(`failed: ${error._tag}: ${error.message}`)),
    Effect.provide(ClientLive)
  ),
  // The line above says what failed; no stack trace (the exit code is still 1).
  { disableErrorReporting: true }
)
