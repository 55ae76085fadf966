import { createHash, randomUUID } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";

/**
 * Where task results are kept so a later attempt (or run) can reuse them. It lives on the
 * agent's side, on the user's infrastructure: the control plane only ever sees a reference.
 */
export interface ResultStore {
  get(key: string): Promise<{ value: unknown; ref: string } | undefined>;
  /** Stores a result and returns its reference; undefined when the value cannot be stored (not JSON). */
  put(key: string, value: unknown, expiresAt?: Date): Promise<string | undefined>;
}

interface StoredResult {
  key: string;
  value: unknown;
  createdAt: string;
  expiresAt?: string;
}

/** A directory of JSON files, one per cache key (named by the key's SHA-256). Writes are atomic. */
export class LocalResultStore implements ResultStore {
  constructor(readonly dir: string) {}

  private file(key: string): { name: string; path: string } {
    const name = `${createHash("sha256").update(key).digest("hex")}.json`;
    return { name, path: join(this.dir, name) };
  }

  async get(key: string): Promise<{ value: unknown; ref: string } | undefined> {
    const { name, path } = this.file(key);
    let stored: StoredResult;
    try {
      stored = JSON.parse(await readFile(path, "utf8")) as StoredResult;
    } catch {
      return undefined; // missing or unreadable: compute again
    }
    if (stored.key !== key) return undefined;
    if (stored.expiresAt && new Date(stored.expiresAt).getTime() <= Date.now()) return undefined;
    return { value: stored.value, ref: `file:${name}` };
  }

  async put(key: string, value: unknown, expiresAt?: Date): Promise<string | undefined> {
    let text: string;
    try {
      const record: StoredResult = {
        key,
        value,
        createdAt: new Date().toISOString(),
        ...(expiresAt ? { expiresAt: expiresAt.toISOString() } : {}),
      };
      text = JSON.stringify(record);
      // A value JSON cannot represent faithfully is not stored (it could not be restored as it was).
      if (value !== undefined && JSON.stringify(value) === undefined) return undefined;
    } catch {
      return undefined;
    }
    const { name, path } = this.file(key);
    await mkdir(this.dir, { recursive: true });
    const tmp = `${path}.${randomUUID()}.tmp`;
    await writeFile(tmp, text);
    await rename(tmp, path);
    return `file:${name}`;
  }
}

/** A stable hash of task inputs (JSON with sorted keys); undefined when they are not JSON. */
export function hashInputs(args: readonly unknown[]): string | undefined {
  try {
    const text = JSON.stringify(args, (_key, value: unknown) =>
      value && typeof value === "object" && !Array.isArray(value)
        ? Object.fromEntries(Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
        : value,
    );
    return createHash("sha256").update(text).digest("hex").slice(0, 32);
  } catch {
    return undefined;
  }
}
