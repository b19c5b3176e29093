/**
 * Who may register (RFC 7591 §3, D22): open registration, a static initial
 * access token, or issued tokens stored hashed with an expiry, a number of
 * uses and a registration policy.
 *
 * @since 0.1.0
 */
import { Clock, Context, Effect, Layer, Option, Redacted } from "effect"
import { ClientStore, type InitialTokenRecord, type InitialTokenUse, isUsable } from "./ClientStore.js"
import { Credentials } from "./Credentials.js"
import { InvalidToken, type StoreError } from "./ProtocolError.js"
import type { RegistrationPolicy } from "./RegistrationPolicy.js"

/**
 * What a presented initial access token grants.
 *
 * @since 0.1.0
 * @category models
 */
export interface RegistrationGrant {
  /** Restrictions the new client is registered under (and keeps). */
  readonly policy: RegistrationPolicy | undefined
  /** The use to spend, atomically with the insert, for issued tokens. */
  readonly use: InitialTokenUse | undefined
}

/**
 * A newly minted initial access token.
 *
 * @since 0.1.0
 * @category models
 */
export interface MintedToken {
  /** The token: shown once, stored only as its SHA-256. */
  readonly token: Redacted.Redacted<string>
  /** Seconds since the epoch; 0 for never. */
  readonly expiresAt: number
  /** Registrations it allows; undefined for unlimited. */
  readonly maxUses: number | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface MintOptions {
  /** Lifetime in seconds; default 86400 (a day). 0 for never. */
  readonly expiresInSeconds?: number | undefined
  /** Registrations it allows; default 1. Undefined in an explicit `{ maxUses: undefined }` means unlimited. */
  readonly maxUses?: number | undefined
  readonly policy?: RegistrationPolicy | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface InitialAccessTokensService {
  /** "open": no token is asked for; otherwise registration needs one (D5 when it is missing). */
  readonly mode: "open" | "static" | "issued"
  /** Checks a presented token; `InvalidToken` when it is unknown, expired or used up. */
  readonly authorize: (
    credential: Redacted.Redacted<string>
  ) => Effect.Effect<RegistrationGrant, InvalidToken | StoreError>
  /** Mints an issued token (D22). Works in every mode; only the issued mode accepts them. */
  readonly mint: (options?: MintOptions) => Effect.Effect<MintedToken, StoreError>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class InitialAccessTokens extends Context.Tag("effect-dcr/InitialAccessTokens")<
  InitialAccessTokens,
  InitialAccessTokensService
>() {}

const rejected = new InvalidToken({ description: "the initial access token is invalid" })

/**
 * How registration is gated.
 *
 * @since 0.1.0
 * @category models
 */
export type Mode =
  | { readonly _tag: "Open" }
  | { readonly _tag: "Static"; readonly tokens: ReadonlyArray<Redacted.Redacted<string>> }
  | { readonly _tag: "Issued" }

const nowSeconds = Effect.map(Clock.currentTimeMillis, (millis) => Math.floor(millis / 1000))

/**
 * @since 0.1.0
 * @category constructors
 */
export const make = (mode: Mode): Effect.Effect<InitialAccessTokensService, never, ClientStore | Credentials> =>
  Effect.gen(function* () {
    const store = yield* ClientStore
    const credentials = yield* Credentials
    const open: RegistrationGrant = { policy: undefined, use: undefined }

    const mint = (options: MintOptions = {}): Effect.Effect<MintedToken, StoreError> =>
      Effect.gen(function* () {
        const now = yield* nowSeconds
        const token = yield* credentials.registrationToken
        const lifetime = options.expiresInSeconds ?? 86_400
        const maxUses = "maxUses" in options ? options.maxUses : 1
        const record: InitialTokenRecord = {
          tokenId: credentials.hash(token),
          expiresAt: lifetime === 0 ? 0 : now + lifetime,
          usesRemaining: maxUses,
          policy: options.policy,
          createdAt: now
        }
        yield* store.insertInitialToken(record)
        return { token, expiresAt: record.expiresAt, maxUses }
      })

    const authorize = (
      credential: Redacted.Redacted<string>
    ): Effect.Effect<RegistrationGrant, InvalidToken | StoreError> => {
      switch (mode._tag) {
        case "Open":
          return Effect.succeed(open)
        case "Static": {
          // Every configured token is compared, in constant time, whatever matches.
          let matched = false
          for (const token of mode.tokens) matched = credentials.equals(credential, token) || matched
          return matched ? Effect.succeed(open) : Effect.fail(rejected)
        }
        case "Issued": {
          const tokenId = credentials.hash(credential)
          return Effect.flatMap(Effect.zip(store.findInitialToken(tokenId), nowSeconds), ([record, now]) =>
            Option.isSome(record) && isUsable(record.value, now)
              ? Effect.succeed({ policy: record.value.policy, use: { tokenId, now } })
              : Effect.fail(rejected)
          )
        }
      }
    }

    return {
      mode: mode._tag === "Open" ? "open" : mode._tag === "Static" ? "static" : "issued",
      authorize,
      mint
    }
  })

/**
 * Anyone may register.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerOpen: Layer.Layer<InitialAccessTokens, never, ClientStore | Credentials> = Layer.effect(
  InitialAccessTokens,
  make({ _tag: "Open" })
)

/**
 * Registration needs one of these tokens.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerStatic = (
  tokens: ReadonlyArray<string | Redacted.Redacted<string>>
): Layer.Layer<InitialAccessTokens, never, ClientStore | Credentials> => {
  if (tokens.length === 0) throw new Error("layerStatic needs at least one token")
  return Layer.effect(
    InitialAccessTokens,
    make({
      _tag: "Static",
      tokens: tokens.map((token) => (typeof token === "string" ? Redacted.make(token) : token))
    })
  )
}

/**
 * Registration needs a token minted by `mint` (or the CLI), live and with a
 * use left.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerIssued: Layer.Layer<InitialAccessTokens, never, ClientStore | Credentials> = Layer.effect(
  InitialAccessTokens,
  make({ _tag: "Issued" })
)
