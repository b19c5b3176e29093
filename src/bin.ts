/**
 * `npm start`: the standalone server, configured from the environment (see
 * `Environment.ts` for every variable). A bad configuration exits with one
 * line naming the problem, before anything listens.
 */
import { fromEnv } from "./Environment.js"
import { serve } from "./Server.js"

const fail = (message: string): never => {
  process.stderr.write(`effect-dcr: ${message}\n`)
  process.exit(1)
}

const start = async () => {
  const options = fromEnv(process.env)
  const server = await serve(options)
  process.stdout.write(`effect-dcr listening on ${server.url}\n`)
  process.stdout.write(`registration endpoint: ${server.registrationEndpoint}\n`)
  const stop = () => {
    server.close().then(
      () => process.exit(0),
      () => process.exit(1)
    )
  }
  process.once("SIGINT", stop)
  process.once("SIGTERM", stop)
}

start().catch((error: unknown) => fail(error instanceof Error ? error.message : String(error)))
