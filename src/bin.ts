/**
 * `npm start`: the standalone server, configured from the environment.
 *
 * - `PORT` (default 3000), `HOST` (default 127.0.0.1)
 * - `PUBLIC_URL`: the URL clients reach the server at, when it differs from
 *   `http://HOST:PORT` (behind a proxy or TLS terminator, D17)
 */
import { serve } from "./Server.js"

const fail = (message: string): never => {
  process.stderr.write(`effect-dcr: ${message}\n`)
  process.exit(1)
}

const portText = process.env.PORT ?? "3000"
const port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN
if (!(port >= 0 && port <= 65535)) fail(`PORT must be a port number, got ${JSON.stringify(portText)}`)

serve({ port, host: process.env.HOST ?? "127.0.0.1", publicUrl: process.env.PUBLIC_URL || undefined }).then(
  (server) => {
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
  },
  (error: unknown) => fail(error instanceof Error ? error.message : String(error))
)
