/**
 * The JSON text columns (parameters, tags, configuration…) read back: a value that does not
 * parse, or has the wrong shape, gives the fallback instead of failing the request.
 */
export function parseJson<T>(text: string, fallback: T): T {
  try {
    return JSON.parse(text) as T;
  } catch {
    return fallback;
  }
}

/** A JSON object column ({} when it is anything else). */
export function parseObject(text: string): Record<string, unknown> {
  const v = parseJson<unknown>(text, {});
  return v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

/** A JSON array-of-strings column (non-strings dropped). */
export function parseStrings(text: string): string[] {
  const v = parseJson<unknown>(text, []);
  return Array.isArray(v) ? v.filter((s): s is string => typeof s === "string") : [];
}
