/** Parses JSON text that must hold an object, without letting `any` escape. */
export const parseObject = (text: string): Record<string, unknown> => {
  const value: unknown = JSON.parse(text)
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error(`expected a JSON object, got: ${text.slice(0, 200)}`)
  }
  return Object.fromEntries(Object.entries(value))
}
