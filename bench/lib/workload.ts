/**
 * What the benchmark sends: the client metadata every registration and update
 * carries, the requests of each workload, and a constant answer of the same
 * size as a real one for the ceiling servers. Shared by the load generator,
 * the targets and the micro-benchmark, so all of them measure the same thing.
 */
import { Schema } from "effect"

/** The workloads. `mixed` is 70 % read, 20 % update, 10 % register. */
export const Workload = Schema.Literal("read", "update", "register", "mixed")
export type Workload = typeof Workload.Type

/** A pre-registered client the load rotates over: its id and its registration access token. */
export const Credential = Schema.Struct({ clientId: Schema.String, token: Schema.String })
export type Credential = typeof Credential.Type

/** The file a target writes its seeded clients to, and the load generator reads. */
export const CredentialsFile = Schema.Array(Credential)

/**
 * Requested client metadata: a typical confidential web client. With the
 * server-issued members added, an answer is about 800 bytes.
 */
export const metadata = {
  redirect_uris: ["https://app.example.com/oauth/callback", "https://app.example.com/oauth/silent-renew"],
  client_name: "Benchmark Client",
  client_uri: "https://app.example.com",
  logo_uri: "https://app.example.com/logo.png",
  policy_uri: "https://app.example.com/privacy",
  contacts: ["ops@app.example.com"],
  grant_types: ["authorization_code", "refresh_token"],
  response_types: ["code"],
  token_endpoint_auth_method: "client_secret_basic",
  scope: "openid profile email",
  software_id: "4NRB1-0XZABZI9E6-5SM3R",
  software_version: "2.1.0"
}

/** The body of every registration (POST). */
export const registerBody = JSON.stringify(metadata)

/** The body of an update (PUT): the whole registration sent back, with its client id (RFC 7592 §2.2). */
export const updateBody = (clientId: string): string =>
  JSON.stringify({ client_id: clientId, ...metadata, client_name: "Benchmark Client (updated)" })

/** The headers every client information answer carries. */
export const answerHeaders: Readonly<Record<string, string>> = {
  "content-type": "application/json",
  "cache-control": "no-store",
  pragma: "no-cache"
}

/**
 * A constant answer shaped like a real read answer (same members in the same
 * order, values of the same lengths), for the bare and platform ceilings.
 */
export const sampleAnswer = (port: number): string =>
  JSON.stringify({
    client_id: "x".repeat(22),
    client_secret: "s".repeat(43),
    client_id_issued_at: 1_700_000_000,
    client_secret_expires_at: 0,
    ...metadata,
    registration_access_token: "t".repeat(43),
    registration_client_uri: `http://127.0.0.1:${port}/register/${"x".repeat(22)}`
  })

/** One request as the load generator sends it. */
export interface BenchRequest {
  readonly method: "GET" | "PUT" | "POST"
  readonly path: string
  readonly headers: Readonly<Record<string, string>>
  readonly body: string | undefined
}

const json = "application/json"

export const readRequest = (client: Credential): BenchRequest => ({
  method: "GET",
  path: `/register/${client.clientId}`,
  headers: { authorization: `Bearer ${client.token}` },
  body: undefined
})

export const updateRequest = (client: Credential): BenchRequest => ({
  method: "PUT",
  path: `/register/${client.clientId}`,
  headers: { authorization: `Bearer ${client.token}`, "content-type": json },
  body: updateBody(client.clientId)
})

export const registerRequest: BenchRequest = {
  method: "POST",
  path: "/register",
  headers: { "content-type": json },
  body: registerBody
}

/** The order of a mixed block of ten requests: 7 reads, 2 updates, 1 registration. */
export const mixedPattern: ReadonlyArray<Exclude<Workload, "mixed">> = [
  "read",
  "read",
  "update",
  "read",
  "read",
  "read",
  "update",
  "read",
  "read",
  "register"
]

/**
 * Splits the clients between the connections: connection `c` gets clients
 * `c`, `c + n`, `c + 2n`, … so no two connections ever touch the same client
 * (an update never races another on the same record) and every client is
 * used. With fewer clients than connections, clients are shared.
 */
export const slices = (clients: ReadonlyArray<Credential>, connections: number): Array<Array<Credential>> => {
  const result: Array<Array<Credential>> = []
  for (let c = 0; c < connections; c++) {
    const slice: Array<Credential> = []
    for (let i = c; i < clients.length; i += connections) {
      const client = clients[i]
      if (client !== undefined) slice.push(client)
    }
    const fallback = clients[c % Math.max(1, clients.length)]
    if (slice.length === 0 && fallback !== undefined) slice.push(fallback)
    result.push(slice)
  }
  return result
}

/** The requests one connection sends, in order, round and round. */
export const requestsFor = (workload: Workload, clients: ReadonlyArray<Credential>): Array<BenchRequest> => {
  switch (workload) {
    case "register":
      return [registerRequest]
    case "read":
      return clients.map(readRequest)
    case "update":
      return clients.map(updateRequest)
    case "mixed":
      return clients.flatMap((client) =>
        mixedPattern.map((kind) =>
          kind === "read" ? readRequest(client) : kind === "update" ? updateRequest(client) : registerRequest
        )
      )
  }
}
