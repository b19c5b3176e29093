/**
 * Mounting effect-dcr in an Effect HTTP server, with two host hooks replaced
 * (the hooks RFC 7592's reference implementation asks a host to write):
 *
 * - `TokenAuthenticator` (Authlib's `authenticate_token`): registration access
 *   tokens carry a `dcr_` prefix, so secret scanners can recognise a leaked
 *   one, and a token without it is refused before the store is asked.
 * - `PermissionPolicy` (Authlib's `check_permission`): clients registered as
 *   kiosk software may read their registration but never change or delete it.
 *
 * Run it with `npx tsx examples/effect-server.ts` (PORT defaults to 3001).
 */
import { createServer } from "node:http"
import { pathToFileURL } from "node:url"
import { HttpRouter, HttpServer } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Effect, Layer, Redacted } from "effect"
import { Dcr, PermissionPolicy, PlatformHttp, ProtocolError, TokenAuthenticator } from "effect-dcr"

const prefix = "dcr_"

/** The default opaque tokens, with a prefix added on issue and required on use. */
export const PrefixedTokens = Layer.effect(
  TokenAuthenticator.TokenAuthenticator,
  Effect.gen(function* () {
    const opaque = yield* TokenAuthenticator.TokenAuthenticator
    return {
      issue: (clientId) =>
        Effect.map(opaque.issue(clientId), (token) => ({
          ...token,
          value: Redacted.make(prefix + Redacted.value(token.value))
        })),
      authenticate: (credential) => {
        const value = Redacted.value(credential)
        // The token handed back on read is the one presented: keep the prefix.
        return value.startsWith(prefix)
          ? Effect.map(opaque.authenticate(Redacted.make(value.slice(prefix.length))), (token) => ({
              ...token,
              value: credential
            }))
          : Effect.fail(new ProtocolError.InvalidToken({ description: "not a registration access token" }))
      },
      revoke: opaque.revoke
    }
  })
).pipe(Layer.provide(TokenAuthenticator.layerOpaque))

/** Kiosk software may only read its registration. */
export const KioskPolicy = PermissionPolicy.layerFromPredicate(
  (client, operation) => operation === "read" || client.metadata.software_id !== "com.example.kiosk"
)

/** The whole server: `/oauth/register` and `/oauth/register/{client_id}` on `port`. */
export const ServerLive = (port: number, publicUrl: string) =>
  HttpRouter.empty.pipe(
    HttpRouter.mount("/oauth", PlatformHttp.router),
    HttpServer.serve(),
    HttpServer.withLogAddress,
    Layer.provide(
      Dcr.layer({
        server: { publicUrl: `${publicUrl}/oauth` },
        tokenAuthenticator: PrefixedTokens,
        permissionPolicy: KioskPolicy
      })
    ),
    Layer.provide(NodeHttpServer.layer(createServer, { port, host: "127.0.0.1" }))
  )

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const port = Number(process.env.PORT ?? 3001)
  // With PORT=0 the OS picks a port; PUBLIC_URL must then be given or is a guess.
  const publicUrl = process.env.PUBLIC_URL ?? `http://127.0.0.1:${port}`
  NodeRuntime.runMain(Layer.launch(ServerLive(port, publicUrl)))
}
