/**
 * The ceiling: a bare `node:http` server answering every request with the
 * same constant JSON body and headers as a real client information answer.
 */
import { createServer } from "node:http"
import { answerHeaders, sampleAnswer } from "../lib/workload.js"
import { closeServer, envNumber, listen, main, ready } from "../lib/target.js"

main(async () => {
  const port = envNumber("BENCH_PORT")
  const body = Buffer.from(sampleAnswer(port))
  const server = createServer((req, res) => {
    const answer = () => {
      res.writeHead(200, answerHeaders)
      res.end(body)
    }
    if (req.method === "GET") return answer()
    req.on("end", answer)
    req.resume()
  })
  await listen(server, port)
  ready(port, () => closeServer(server))
})
