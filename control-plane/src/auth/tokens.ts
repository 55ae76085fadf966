import { createHash, randomBytes } from "node:crypto";
import { z } from "zod";

/** Every Ferry API token starts with this, so leaked tokens are easy to recognise (and to scan for). */
export const TOKEN_PREFIX = "fry_";

export const Scope = z.enum(["agent", "read", "write", "admin"]);
export type Scope = z.infer<typeof Scope>;

/**
 * What each scope may do. `agent` may only connect an agent and report; `read` may look;
 * `write` may also deploy and run; `admin` may also manage tokens.
 */
export function scopeAllows(granted: readonly Scope[], needed: Scope): boolean {
  switch (needed) {
    case "agent":
      return granted.includes("agent");
    case "read":
      return granted.some((s) => s === "read" || s === "write" || s === "admin");
    case "write":
      return granted.some((s) => s === "write" || s === "admin");
    case "admin":
      return granted.includes("admin");
  }
}

export interface NewSecret {
  secret: string;
  hash: string;
  /** The first characters, safe to show in lists. */
  prefix: string;
}

export function newSecret(): NewSecret {
  const secret = `${TOKEN_PREFIX}${randomBytes(24).toString("base64url")}`;
  return { secret, hash: hashSecret(secret), prefix: secret.slice(0, TOKEN_PREFIX.length + 6) };
}

/** Tokens are high-entropy random strings, so a plain SHA-256 is the right hash (no salt or KDF needed). */
export function hashSecret(secret: string): string {
  return createHash("sha256").update(secret).digest("hex");
}

export function parseScopes(text: string): Scope[] {
  return text
    .split(",")
    .map((s) => Scope.safeParse(s.trim()))
    .flatMap((r) => (r.success ? [r.data] : []));
}
