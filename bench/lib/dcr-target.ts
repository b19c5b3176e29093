/**
 * The start-up every library target shares: build the services over the
 * store named in the environment, seed the clients, write their credentials
 * for the load generator, serve, and tell the runner.
 */
import { writeFileSync } from "node:fs"
import { makeRuntime, type DcrRuntime, seed, storeFromEnv } from "./dcr.js"
import { env, envNumber, main, ready } from "./target.js"

/** `serve` starts listening on 127.0.0.1:`port` and returns how to stop. */
export const runDcrTarget = (serve: (runtime: DcrRuntime, port: number) => Promise<() => Promise<void>>): void =>
  main(async () => {
    const port = envNumber("BENCH_PORT")
    const spec = storeFromEnv()
    const runtime = makeRuntime(spec, `http://127.0.0.1:${port}`)
    const clients = await seed(runtime, spec, envNumber("BENCH_CLIENTS"))
    writeFileSync(env("BENCH_CLIENTS_FILE"), JSON.stringify(clients))
    const close = await serve(runtime, port)
    ready(port, async () => {
      await close()
      await runtime.dispose()
    })
  })
