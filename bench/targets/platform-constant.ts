/**
 * `@effect/platform-node`'s own `HttpServer` answering a constant: a router
 * with the library's routes, each returning the same prebuilt JSON answer as
 * the bare server. The platform-router rows are compared with this one
 * (how much the library adds on top of the platform).
 */
import { createServer } from "node:http"
import { HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Effect, Exit, Layer, Scope } from "effect"
import { answerHeaders, sampleAnswer } from "../lib/workload.js"
import { envNumber, main, ready } from "../lib/target.js"

main(async () => {
  const port = envNumber("BENCH_PORT")
  const answer = Effect.succeed(
    HttpServerResponse.text(sampleAnswer(port), { headers: answerHeaders, contentType: "application/json" })
  )
  const router = HttpRouter.empty.pipe(HttpRouter.all("/register", answer), HttpRouter.all("/register/*", answer))
  const app = HttpServer.serve(router).pipe(
    Layer.provide(NodeHttpServer.layer(createServer, { port, host: "127.0.0.1" }))
  )
  const scope = Effect.runSync(Scope.make())
  await Effect.runPromise(Layer.buildWithScope(app, scope))
  ready(port, () => Effect.runPromise(Scope.close(scope, Exit.void)))
})
