/**
 * The standalone server's command line.
 *
 * - `effect-dcr` (or `npm start`): serve, configured from the environment
 *   (see `Environment.ts` for every variable).
 * - `effect-dcr token create [--expires-in S] [--max-uses N|unlimited] [--policy JSON]`:
 *   mint an initial access token in the server's database (`TokenCommand.ts`).
 *
 * A bad configuration exits with one line naming the problem, before
 * anything listens.
 */
import { fromEnv } from "./Environment.js"
import { serve } from "./Server.js"
import { createToken } from "./TokenCommand.js"

const fail = (message: string): never => {
  process.stderr.write(`effect-dcr: ${message}\n`)
  process.exit(1)
}

const startServer = async () => {
  const server = await serve(fromEnv(process.env))
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

const main = async (args: ReadonlyArray<string>) => {
  const [command, subcommand, ...rest] = args
  if (command === undefined || (command === "serve" && subcommand === undefined)) return startServer()
  if (command === "token" && subcommand === "create") {
    process.stdout.write(`${await createToken(process.env, rest)}\n`)
    return
  }
  throw new Error(`unknown command ${JSON.stringify(args.join(" "))}; use serve or token create`)
}

main(process.argv.slice(2)).catch((error: unknown) => fail(error instanceof Error ? error.message : String(error)))
