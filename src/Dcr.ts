/**
 * Assembles the services into one layer, with any of them replaced by the
 * host's own.
 *
 * @since 0.1.0
 */
import { FetchHttpClient, type HttpClient } from "@effect/platform"
import { Layer } from "effect"
import * as ClientEvents from "./ClientEvents.js"
import * as ClientLookup from "./ClientLookup.js"
import * as ClientStore from "./ClientStore.js"
import * as Credentials from "./Credentials.js"
import * as MetadataValidator from "./MetadataValidator.js"
import * as PermissionPolicy from "./PermissionPolicy.js"
import type { Services } from "./Protocol.js"
import * as InitialAccessTokens from "./InitialAccessTokens.js"
import * as ServerMetadata from "./ServerMetadata.js"
import * as SoftwareStatements from "./SoftwareStatements.js"
import * as TokenAuthenticator from "./TokenAuthenticator.js"

/**
 * What a replacement service may depend on: the foundation services that
 * are built first.
 *
 * @since 0.1.0
 * @category models
 */
export type Foundation = ServerMetadata.ServerMetadata | ClientStore.ClientStore | Credentials.Credentials

/**
 * The server's options plus optional replacements for each service. A
 * replacement may use the foundation services (server metadata, the store,
 * credentials); `ClientLookup` may also use the `TokenAuthenticator`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options<E = never> {
  readonly server: ServerMetadata.Options
  /** Default: `ClientStore.layerMemory`. */
  readonly store?: Layer.Layer<ClientStore.ClientStore, E> | undefined
  /** Default: `Credentials.layer` (CSPRNG). */
  readonly credentials?: Layer.Layer<Credentials.Credentials> | undefined
  /** Default: `TokenAuthenticator.layerOpaque`. */
  readonly tokenAuthenticator?: Layer.Layer<TokenAuthenticator.TokenAuthenticator, never, Foundation> | undefined
  /** Default: `ClientLookup.layer`. */
  readonly clientLookup?:
    Layer.Layer<ClientLookup.ClientLookup, never, Foundation | TokenAuthenticator.TokenAuthenticator> | undefined
  /** Default: `PermissionPolicy.layerAllowAll`. */
  readonly permissionPolicy?: Layer.Layer<PermissionPolicy.PermissionPolicy, never, Foundation> | undefined
  /** Default: `MetadataValidator.layer`. */
  readonly metadataValidator?:
    | Layer.Layer<MetadataValidator.MetadataValidator, never, Foundation | SoftwareStatements.SoftwareStatements>
    | undefined
  /** Default: `SoftwareStatements.layerNone` (statements ignored). Fetching issuer keys uses the `HttpClient` given, or fetch. */
  readonly softwareStatements?:
    Layer.Layer<SoftwareStatements.SoftwareStatements, never, Foundation | HttpClient.HttpClient> | undefined
  /** Default: `InitialAccessTokens.layerOpen` (open registration). */
  readonly initialAccessTokens?: Layer.Layer<InitialAccessTokens.InitialAccessTokens, never, Foundation> | undefined
  /** Default: `ClientEvents.layerNoop`. */
  readonly clientEvents?: Layer.Layer<ClientEvents.ClientEvents, never, Foundation> | undefined
}

/**
 * Every service `Protocol.handle` and the programs need.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <E = never>(options: Options<E>): Layer.Layer<Services, E> => {
  const foundation = Layer.mergeAll(
    ServerMetadata.layer(options.server),
    options.store ?? ClientStore.layerMemory,
    options.credentials ?? Credentials.layer
  )
  const tokens = Layer.provideMerge(options.tokenAuthenticator ?? TokenAuthenticator.layerOpaque, foundation)
  const statements = Layer.provide(options.softwareStatements ?? SoftwareStatements.layerNone, FetchHttpClient.layer)
  const steps = Layer.mergeAll(
    options.clientLookup ?? ClientLookup.layer,
    options.permissionPolicy ?? PermissionPolicy.layerAllowAll,
    (options.metadataValidator ?? MetadataValidator.layer).pipe(Layer.provide(statements)),
    options.initialAccessTokens ?? InitialAccessTokens.layerOpen,
    options.clientEvents ?? ClientEvents.layerNoop
  )
  return Layer.provideMerge(steps, tokens)
}
