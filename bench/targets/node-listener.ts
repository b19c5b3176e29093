/** The library through `NodeHandler.make`, a `node:http` listener (what the standalone server uses). */
import { createServer } from "node:http"
import * as NodeHandler from "../../src/NodeHandler.js"
import { runDcrTarget } from "../lib/dcr-target.js"
import { closeServer, listen } from "../lib/target.js"

runDcrTarget(async (runtime, port) => {
  const server = createServer(await runtime.runPromise(NodeHandler.make))
  await listen(server, port)
  return () => closeServer(server)
})
