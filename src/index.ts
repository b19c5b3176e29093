/**
 * effect-dcr: OAuth 2.0 Dynamic Client Registration (RFC 7591) and its
 * Management Protocol (RFC 7592) as Effect services.
 *
 * The SQL drivers are subpath modules (`effect-dcr/SqliteStore`,
 * `effect-dcr/PgStore`), so importing this module never loads them.
 *
 * @since 0.1.0
 */
export * as ClientConfiguration from "./ClientConfiguration.js"
export * as ClientEvents from "./ClientEvents.js"
export * as ClientInformation from "./ClientInformation.js"
export * as ClientLookup from "./ClientLookup.js"
export * as ClientMetadata from "./ClientMetadata.js"
export * as ClientStore from "./ClientStore.js"
export * as Credentials from "./Credentials.js"
export * as Dcr from "./Dcr.js"
export * as FetchHandler from "./FetchHandler.js"
export * as InitialAccessTokens from "./InitialAccessTokens.js"
export * as MetadataValidator from "./MetadataValidator.js"
export * as NodeHandler from "./NodeHandler.js"
export * as PermissionPolicy from "./PermissionPolicy.js"
export * as PlatformHttp from "./PlatformHttp.js"
export * as Protocol from "./Protocol.js"
export * as ProtocolError from "./ProtocolError.js"
export * as Registration from "./Registration.js"
export * as RegistrationClient from "./RegistrationClient.js"
export * as RegistrationPolicy from "./RegistrationPolicy.js"
export * as ServerMetadata from "./ServerMetadata.js"
export * as SoftwareStatements from "./SoftwareStatements.js"
export * as SqlClientStore from "./SqlClientStore.js"
export * as TokenAuthenticator from "./TokenAuthenticator.js"
