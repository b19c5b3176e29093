/**
 * Optional OpenTelemetry tracing: every program and each of its steps runs
 * in an `Effect.withSpan`; this layer exports those spans over OTLP/HTTP.
 * The standalone server loads it only when `OTEL_EXPORTER_OTLP_ENDPOINT`
 * (or `--otlp-endpoint`) is set.
 *
 * @since 0.1.0
 */
import { NodeSdk } from "@effect/opentelemetry"
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http"
import { BatchSpanProcessor } from "@opentelemetry/sdk-trace-base"
import type { Layer } from "effect"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The collector's base URL, e.g. `http://127.0.0.1:4318`; spans go to `/v1/traces`. */
  readonly endpoint: string
  /** `service.name`; default `effect-dcr`. */
  readonly serviceName?: string | undefined
}

/**
 * Exports spans to an OTLP/HTTP collector. Spans are batched and flushed
 * when the layer is released (on shutdown).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerOtlp = (options: Options): Layer.Layer<never> =>
  NodeSdk.layer(() => ({
    resource: { serviceName: options.serviceName ?? "effect-dcr" },
    spanProcessor: new BatchSpanProcessor(
      new OTLPTraceExporter({ url: `${options.endpoint.replace(/\/$/, "")}/v1/traces` })
    )
  }))
