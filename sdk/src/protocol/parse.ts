import { z } from "zod";
import { PROTOCOL_VERSION } from "./common.ts";

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

export function validateMessage<S extends z.ZodType>(schema: S, raw: unknown): ParseResult<z.infer<S>> {
  if (typeof raw === "object" && raw !== null && "v" in raw && raw.v !== PROTOCOL_VERSION) {
    return {
      ok: false,
      code: "UNSUPPORTED_VERSION",
      message: `protocol version ${String(raw.v)} is not supported (this side speaks ${PROTOCOL_VERSION})`,
    };
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) return { ok: false, code: "BAD_MESSAGE", message: z.prettifyError(parsed.error) };
  return { ok: true, value: parsed.data };
}
