/**
 * The standalone server: the endpoints on a `node:http` server, with every
 * default service (memory store for now).
 *
 * @since 0.1.0
 */
import { createServer, type Server as HttpServer } from "node:http"
import type { AddressInfo } from "node:net"
import { Effect, Layer, Logger, LogLevel, ManagedRuntime } from "effect"
import * as Dcr from "./Dcr.js"
import * as NodeHandler from "./NodeHandler.js"
import type { Services } from "./Protocol.js"
import type { StoreError } from "./ProtocolError.js"
import * as ServerMetadata from "./ServerMetadata.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface ServeOptions extends Omit<ServerMetadata.Options, "publicUrl"> {
  /** Default 3000; 0 picks a free port. */
  readonly port?: number | undefined
  /** Default 127.0.0.1. */
  readonly host?: string | undefined
  /** Default `http://{host}:{port}` (D17). */
  readonly publicUrl?: string | undefined
  /** Replacements for any service (`Dcr.layer`'s options). */
  readonly services?: Omit<Dcr.Options<StoreError>, "server"> | undefined
  /** `pretty` (default) or `json`: one JSON object per line. */
  readonly logFormat?: "pretty" | "json" | undefined
  /** The least severe level logged; default `info`. */
  readonly logLevel?: LogLevelName | undefined
  /** One log line per request (id, method, path, status, duration); default true. */
  readonly accessLog?: boolean | undefined
  /** How long `close` waits for in-flight requests before cutting connections; default 10 000 ms. */
  readonly shutdownTimeoutMillis?: number | undefined
  /** An OTLP/HTTP collector to export spans to (`Telemetry.layerOtlp`); none by default. */
  readonly otlpEndpoint?: string | undefined
  /** Time a client has to send the request headers (slow-loris); default 10 000 ms. */
  readonly headersTimeoutMillis?: number | undefined
  /** Time a client has to send the whole request; default 30 000 ms. */
  readonly requestTimeoutMillis?: number | undefined
}

/**
 * The log levels, by name.
 *
 * @since 0.1.0
 * @category models
 */
export type LogLevelName = "all" | "trace" | "debug" | "info" | "warning" | "error" | "fatal" | "none"

const logLevels: Record<LogLevelName, LogLevel.LogLevel> = {
  all: LogLevel.All,
  trace: LogLevel.Trace,
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warning: LogLevel.Warning,
  error: LogLevel.Error,
  fatal: LogLevel.Fatal,
  none: LogLevel.None
}

/**
 * The logger of the standalone server.
 *
 * @since 0.1.0
 * @category layers
 */
export const loggerLayer = (format: "pretty" | "json", level: LogLevelName): Layer.Layer<never> =>
  Layer.merge(format === "json" ? Logger.json : Logger.pretty, Logger.minimumLogLevel(logLevels[level]))

/**
 * A running server.
 *
 * @since 0.1.0
 * @category models
 */
export interface RunningServer {
  /** Where it listens, e.g. `http://127.0.0.1:3000`. */
  readonly url: string
  /** The registration endpoint as clients must call it. */
  readonly registrationEndpoint: string
  /**
   * Graceful shutdown: stops accepting connections, lets in-flight requests
   * finish (cutting them after `shutdownTimeoutMillis`), then closes the
   * database.
   */
  readonly close: () => Promise<void>
}

const listen = (server: HttpServer, port: number, host: string): Promise<AddressInfo> =>
  new Promise((resolve, reject) => {
    server.once("error", reject)
    server.listen(port, host, () => {
      server.off("error", reject)
      const address = server.address()
      if (address === null || typeof address === "string") reject(new Error("the server has no TCP address"))
      else resolve(address)
    })
  })

const hostForUrl = (host: string): string => (host.includes(":") ? `[${host}]` : host)

/**
 * Starts the server and resolves once it listens.
 *
 * @since 0.1.0
 * @category constructors
 */
export const serve = async (options: ServeOptions = {}): Promise<RunningServer> => {
  const host = options.host ?? "127.0.0.1"
  const {
    services,
    port: _port,
    host: _host,
    logFormat,
    logLevel,
    accessLog,
    shutdownTimeoutMillis,
    otlpEndpoint,
    headersTimeoutMillis,
    requestTimeoutMillis,
    ...serverOptions
  } = options
  // A bad configuration is refused before anything listens.
  if (options.publicUrl !== undefined) ServerMetadata.make({ ...serverOptions, publicUrl: options.publicUrl })
  const headersTimeout = headersTimeoutMillis ?? 10_000
  const http = createServer({
    // A client that trickles its headers or body in (slow-loris) is cut off.
    headersTimeout,
    requestTimeout: requestTimeoutMillis ?? 30_000,
    // Node checks those timeouts only this often (30 s by default).
    connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(headersTimeout / 2)))
  })
  const address = await listen(http, options.port ?? 3000, host)
  const url = `http://${hostForUrl(host)}:${address.port}`
  let runtime: ManagedRuntime.ManagedRuntime<Services, StoreError> | undefined
  try {
    const config = { ...serverOptions, publicUrl: options.publicUrl ?? url }
    // Validates the configuration now, not on the first request.
    const resolved = ServerMetadata.make(config)
    // The OpenTelemetry SDK is loaded only when an endpoint is configured.
    const telemetry =
      otlpEndpoint === undefined
        ? Layer.empty
        : Layer.unwrapEffect(
            Effect.map(
              Effect.promise(() => import("./Telemetry.js")),
              (module) => module.layerOtlp({ endpoint: otlpEndpoint })
            )
          )
    runtime = ManagedRuntime.make(
      Layer.mergeAll(
        Dcr.layer({ ...services, server: config }),
        loggerLayer(logFormat ?? "pretty", logLevel ?? "info"),
        telemetry
      )
    )
    const listener = await runtime.runPromise(NodeHandler.makeWith({ accessLog: accessLog ?? true }))
    http.on("request", listener)
    return {
      url,
      registrationEndpoint: resolved.registrationEndpoint,
      close: async () => {
        const closed = new Promise<void>((resolve) => http.close(() => resolve()))
        // Keep-alive connections close as soon as their request is done...
        const sweep = setInterval(() => http.closeIdleConnections(), 50)
        http.closeIdleConnections()
        // ...and in-flight requests get a bounded time to finish.
        const cut = setTimeout(() => http.closeAllConnections(), shutdownTimeoutMillis ?? 10_000)
        await closed
        clearInterval(sweep)
        clearTimeout(cut)
        await runtime?.dispose()
      }
    }
  } catch (error) {
    http.close()
    await runtime?.dispose()
    throw error
  }
}
