/**
 * Every service configured at once: SQLite storage, a static initial access
 * token, trusted software statements and signed registration access tokens.
 * This is the snippet of the README's "Server options" section; the test
 * `test/examples.test.ts` builds it and registers a client through it.
 */
import { Redacted } from "effect"
import type * as Jose from "jose"
import { Dcr, InitialAccessTokens, SoftwareStatements, TokenAuthenticator } from "effect-dcr"
import * as SqliteStore from "effect-dcr/SqliteStore"

export const makeLive = (options: { readonly ratSigningKey: Jose.JWK; readonly databaseFile: string }) =>
  Dcr.layer({
    server: { publicUrl: "https://as.example.com/oauth", clientSecretLifetimeSeconds: 90 * 86400 },
    store: SqliteStore.layer({ filename: options.databaseFile }), // or PgStore.layer({ url })
    initialAccessTokens: InitialAccessTokens.layerStatic([Redacted.make("change-me")]), // or layerIssued
    softwareStatements: SoftwareStatements.layer({
      issuers: [{ issuer: "https://publisher.example", jwksUri: "https://publisher.example/jwks.json" }],
      required: false
    }),
    tokenAuthenticator: TokenAuthenticator.layerJwt({ key: options.ratSigningKey })
  })
