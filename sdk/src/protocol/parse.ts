import { z } from "zod";
import { LIMITS, PROTOCOL_VERSION } from "./common.ts";

export type ParseResult<T> = { ok: true; value: T } | { ok: false; code: "BAD_MESSAGE" | "UNSUPPORTED_VERSION"; message: string };

/**
 * Parses one JSON text against a message schema. Never throws: a receiver turns a
 * failure into an error frame. The version is checked first so a peer speaking another
 * version is told so, rather than getting a list of field errors.
 */
export function parseMessage<S extends z.ZodType>(schema: S, text: string): ParseResult<z.infer<S>> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, code: "BAD_MESSAGE", message: "message is not valid JSON" };
  }
  return validateMessage(schema, raw);
}

/**
 * Stop at the first invalid field or element, as zod's own `validate` does. Without it a frame
 * well under the size limit (a batch of 1000 events, each with 1000 wrong items) makes zod
 * collect a million issues: seconds of CPU and close to a gigabyte, for one error reply.
 */
const FIRST_ISSUE: z.core.ParseContextInternal<z.core.$ZodIssue> = { abortEarly: true };

export function validateMessage<S extends z.ZodType>(schema: S, raw: unknown): ParseResult<z.infer<S>> {
  if (typeof raw === "object" && raw !== null && "v" in raw && raw.v !== PROTOCOL_VERSION) {
    return {
      ok: false,
      code: "UNSUPPORTED_VERSION",
      message: `protocol version ${describe(raw.v)} is not supported (this side speaks ${PROTOCOL_VERSION})`,
    };
  }
  const parsed = schema.safeParse(raw, FIRST_ISSUE);
  if (!parsed.success) return { ok: false, code: "BAD_MESSAGE", message: clip(z.prettifyError(parsed.error)) };
  return { ok: true, value: parsed.data };
}

/** A peer's value in a message: short, and never `String()` of a structure (deep arrays overflow the stack). */
function describe(value: unknown): string {
  if (typeof value === "number" || typeof value === "boolean" || value === null) return String(value);
  if (typeof value === "string") return JSON.stringify(clip(value, 20));
  return Array.isArray(value) ? "(an array)" : `(${typeof value === "object" ? "an object" : typeof value})`;
}

/** Error texts are bounded like every other message (an issue's path can hold a peer's multi-megabyte key). */
function clip(text: string, max: number = LIMITS.maxMessageChars): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
