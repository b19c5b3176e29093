/**
 * Strict JSON body reading for D18: UTF-8, one JSON object, no duplicate member
 * names at any depth.
 *
 * @internal
 */

const decoder = new TextDecoder("utf-8", { fatal: true })

export type JsonObject = { readonly [member: string]: unknown }

export type ParsedBody =
  { readonly _tag: "Object"; readonly value: JsonObject } | { readonly _tag: "Invalid"; readonly reason: string }

/** True for a plain JSON object (not an array, not null). */
export const isJsonObject = (value: unknown): value is JsonObject =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/**
 * Decodes and parses a request body. `JSON.parse` does the parsing (it is
 * native and far faster than anything written here); a second linear scan over
 * the already-valid text rejects duplicate member names, which `JSON.parse`
 * would silently resolve to the last one — two parsers that disagree about a
 * document are a classic way to smuggle values past a validator.
 */
export const parseJsonObject = (bytes: Uint8Array): ParsedBody => {
  let text: string
  try {
    text = decoder.decode(bytes)
  } catch {
    return { _tag: "Invalid", reason: "the request body is not valid UTF-8" }
  }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return { _tag: "Invalid", reason: "the request body is not valid JSON" }
  }
  if (!isJsonObject(value)) {
    return { _tag: "Invalid", reason: "the request body must be a JSON object" }
  }
  const shape = scan(text, maxDepth)
  if (shape === tooDeep) return { _tag: "Invalid", reason: `the request body nests deeper than ${maxDepth} levels` }
  // JSON.parse keeps one member per repeated name: fewer members parsed than written means a repeat.
  if (memberCount(value) !== shape) return { _tag: "Invalid", reason: "the request body repeats a member name" }
  return { _tag: "Object", value }
}

const dangerousMembers: ReadonlySet<string> = new Set(["__proto__", "constructor", "prototype"])

/**
 * A deep copy of a JSON value without members named `__proto__`,
 * `constructor` or `prototype` (D18): what the validator keeps of free-form
 * values (JWK Sets, extension members), so none of them reaches storage.
 */
export const withoutDangerousMembers = (value: unknown): unknown => {
  if (Array.isArray(value)) return value.map(withoutDangerousMembers)
  if (!isJsonObject(value)) return value
  const result: Record<string, unknown> = {}
  for (const key of Object.keys(value)) {
    if (!dangerousMembers.has(key)) result[key] = withoutDangerousMembers(value[key])
  }
  return result
}

/**
 * How deeply a body may nest. Client metadata needs four levels (a JWK Set's
 * key's array member); the limit keeps every later recursive walk (copies,
 * schema decoding, serialisation) far from the stack's end.
 */
export const maxDepth = 32

/** True when some object in the (valid JSON) text repeats a member name. */
export const hasDuplicateMember = (text: string): boolean => {
  const shape = scan(text, Infinity)
  return shape !== tooDeep && memberCount(JSON.parse(text)) !== shape
}

const tooDeep = -1

/**
 * Scans text that `JSON.parse` accepted: the number of member names written
 * in it (in every object, at every depth), or `tooDeep` when it nests deeper
 * than `depthLimit`. Iterative (no recursion), so deep nesting cannot
 * overflow the stack, and it allocates nothing: a repeated name is found by
 * comparing this count with the members `JSON.parse` kept ({@link memberCount}).
 */
const scan = (text: string, depthLimit: number): number => {
  // One bit per open container, innermost last: is it an object?
  const objects: Array<boolean> = []
  let expectKey = false
  let members = 0
  const length = text.length
  let i = 0
  while (i < length) {
    const c = text.charCodeAt(i)
    if (c === 0x7b /* { */) {
      if (objects.length >= depthLimit) return tooDeep
      objects.push(true)
      expectKey = true
      i++
    } else if (c === 0x5b /* [ */) {
      if (objects.length >= depthLimit) return tooDeep
      objects.push(false)
      expectKey = false
      i++
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      objects.pop()
      expectKey = false
      i++
    } else if (c === 0x2c /* , */) {
      expectKey = objects.length > 0 && objects[objects.length - 1] === true
      i++
    } else if (c === 0x22 /* " */) {
      // Jump from quote to quote (most of a body is inside strings); a quote
      // preceded by an odd number of backslashes is escaped.
      let end = text.indexOf('"', i + 1)
      while (end !== -1) {
        let backslashes = 0
        while (text.charCodeAt(end - 1 - backslashes) === 0x5c /* \ */) backslashes++
        if (backslashes % 2 === 0) break
        end = text.indexOf('"', end + 1)
      }
      if (end === -1) end = length
      if (expectKey) {
        members++
        expectKey = false
      }
      i = end + 1
    } else {
      i++
    }
  }
  return members
}

/** The number of members of every object in a parsed JSON value; iterative, so any depth is safe. */
const memberCount = (root: unknown): number => {
  let count = 0
  const pending: Array<unknown> = [root]
  while (pending.length > 0) {
    const value = pending.pop()
    if (Array.isArray(value)) {
      for (const item of value) if (typeof item === "object" && item !== null) pending.push(item)
    } else if (isJsonObject(value)) {
      const keys = Object.keys(value)
      count += keys.length
      for (const key of keys) {
        const member = value[key]
        if (typeof member === "object" && member !== null) pending.push(member)
      }
    }
  }
  return count
}

/**
 * The JSON text of values that are never changed once built (stored client
 * metadata): computed once per value and remembered for as long as the value
 * lives, so a client read many times is serialised once, and a store that
 * kept the text can hand it over instead of having it computed again.
 */
const texts = new WeakMap<object, string>()

/** `JSON.stringify(value)`, remembered. `value` must not be changed afterwards. */
export const stringifyOnce = (value: object): string => {
  let text = texts.get(value)
  if (text === undefined) {
    text = JSON.stringify(value)
    texts.set(value, text)
  }
  return text
}

/** Records that `text` is the JSON text of `value` (which `JSON.parse(text)` just produced). */
export const rememberText = (value: object, text: string): void => {
  texts.set(value, text)
}
