import { randomBytes, randomUUID } from "node:crypto";

export const newId = (): string => randomUUID();

const ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";

/** A short random suffix for display names (e.g. run names). */
export function shortId(length = 6): string {
  const bytes = randomBytes(length);
  let out = "";
  for (const b of bytes) out += ALPHABET[b % ALPHABET.length];
  return out;
}
