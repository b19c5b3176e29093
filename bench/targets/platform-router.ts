/** The library through `PlatformHttp.router`, served by `@effect/platform-node`'s `NodeHttpServer`. */
import { createServer } from "node:http"
import { HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Effect, Exit, Layer, Scope } from "effect"
import * as PlatformHttp from "../../src/PlatformHttp.js"
import { runDcrTarget } from "../lib/dcr-target.js"

runDcrTarget(async (runtime, port) => {
  // The server runs on the services already built (and seeded) on the runtime.
  const services = await runtime.runtime()
  const app = HttpServer.serve(PlatformHttp.router).pipe(
    Layer.provide(NodeHttpServer.layer(createServer, { port, host: "127.0.0.1" })),
    Layer.provide(Layer.succeedContext(services.context))
  )
  const scope = Effect.runSync(Scope.make())
  await Effect.runPromise(Layer.buildWithScope(app, scope))
  return () => Effect.runPromise(Scope.close(scope, Exit.void))
})
