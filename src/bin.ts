/**
 * The `effect-dcr` executable: `serve` (what `npm start` runs) and
 * `token create`. See `Cli.ts` for the commands and flags, and
 * `Environment.ts` for the environment variables.
 */
import { ValidationError } from "@effect/cli"
import { NodeContext } from "@effect/platform-node"
import { Cause, Effect, Exit, Option } from "effect"
import { run } from "./Cli.js"

const program = run({
  env: process.env,
  print: (line) => process.stdout.write(`${line}\n`),
  // Serve until SIGTERM or SIGINT, then shut down gracefully.
  onListening: (server) =>
    new Promise<void>((resolve, reject) => {
      const stop = () => {
        server.close().then(resolve, reject)
      }
      process.once("SIGINT", stop)
      process.once("SIGTERM", stop)
    })
})(process.argv)

Effect.runPromiseExit(Effect.provide(program, NodeContext.layer)).then((exit) => {
  if (Exit.isSuccess(exit)) process.exit(0)
  const failure = Cause.failureOption(exit.cause)
  // @effect/cli has already printed usage errors (unknown flag, missing value).
  if (Option.isSome(failure) && ValidationError.isValidationError(failure.value)) process.exit(1)
  const error = Option.isSome(failure) ? failure.value : Cause.squash(exit.cause)
  process.stderr.write(`effect-dcr: ${error instanceof Error ? error.message : String(error)}\n`)
  process.exit(1)
})
