/**
 * BCP 47 language tags (RFC 5646 §2.1 syntax) for language-tagged metadata
 * members (SPEC R7591-2.2-b, D10).
 *
 * @internal
 */

const langtag =
  /^(?:(?:[a-z]{2,3}(?:-[a-z]{3}){0,3}|[a-z]{4}|[a-z]{5,8})(?:-[a-z]{4})?(?:-(?:[a-z]{2}|[0-9]{3}))?(?:-(?:[a-z0-9]{5,8}|[0-9][a-z0-9]{3}))*(?:-[0-9a-wy-z](?:-[a-z0-9]{2,8})+)*(?:-x(?:-[a-z0-9]{1,8})+)?|x(?:-[a-z0-9]{1,8})+)$/i

// RFC 5646 §2.2.8: the irregular grandfathered tags, which the grammar above cannot describe.
const irregular: ReadonlySet<string> = new Set([
  "en-gb-oed",
  "i-ami",
  "i-bnn",
  "i-default",
  "i-enochian",
  "i-hak",
  "i-klingon",
  "i-lux",
  "i-mingo",
  "i-navajo",
  "i-pwn",
  "i-tao",
  "i-tay",
  "i-tsu",
  "sgn-be-fr",
  "sgn-be-nl",
  "sgn-ch-de"
])

/** True when `tag` is a well-formed BCP 47 language tag. */
export const isLanguageTag = (tag: string): boolean =>
  tag.length <= 64 && (langtag.test(tag) || irregular.has(tag.toLowerCase()))
