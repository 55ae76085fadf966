import type { Provider } from "@ferry/prisma";
import { parseStrings } from "./json.ts";

/**
 * Substring filters that mean the same on both databases. Prisma's `contains` becomes SQL
 * LIKE, where `%` and `_` are wildcards and SQLite ignores ASCII case while PostgreSQL does
 * not. So the database narrows (PostgreSQL: escaped, case-insensitive; SQLite: as is) and
 * `exact` decides in code; callers fetch more when the database's answer held false hits.
 */
export function containsFilter(provider: Provider, text: string): { contains: string } {
  if (provider === "postgresql") {
    // PostgreSQL's LIKE escapes with a backslash by default; ILIKE through `mode`.
    const escaped = text.replace(/[\\%_]/g, (c) => `\\${c}`);
    return { contains: escaped, mode: "insensitive" } as { contains: string };
  }
  return { contains: text };
}

/** Case-insensitive substring test, as the filters above intend. */
export function containsText(haystack: string, needle: string): boolean {
  return haystack.toLocaleLowerCase("en-US").includes(needle.toLocaleLowerCase("en-US"));
}

/** Whether a JSON array of tags holds exactly `tag`. */
export function hasTag(tagsJson: string, tag: string): boolean {
  return parseStrings(tagsJson).includes(tag);
}

/**
 * Reads pages through `fetch(after, n)` (`after`: the key of the last row read) until
 * `limit` rows pass `keep` or the source is exhausted (at most `maxRounds` reads): a page
 * of exact matches over an inexact filter. `last` is the key to continue after.
 */
export async function exactPage<T, K>(
  fetch: (after: K | undefined, n: number) => Promise<T[]>,
  keyOf: (row: T) => K,
  keep: (row: T) => boolean,
  limit: number,
  maxRounds = 20,
): Promise<{ rows: T[]; more: boolean; last: K | undefined }> {
  const rows: T[] = [];
  let after: K | undefined;
  for (let round = 0; round < maxRounds; round++) {
    const batch = await fetch(after, limit + 1);
    for (const [i, row] of batch.entries()) {
      if (i === limit) break; // the extra row only says whether more exist
      after = keyOf(row);
      if (keep(row)) {
        rows.push(row);
        if (rows.length === limit) return { rows, more: i < batch.length - 1, last: after };
      }
    }
    if (batch.length <= limit) return { rows, more: false, last: after };
  }
  return { rows, more: true, last: after };
}
