/** A duration: milliseconds as a number, or a string such as "500ms", "1s", "5m", "2h", "1d". */
export type Duration = number | `${number}${"ms" | "s" | "m" | "h" | "d"}`;

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** Converts a Duration to milliseconds; throws a RangeError naming the bad value. */
export function toMs(value: Duration | string): number {
  if (typeof value === "number") {
    if (!Number.isFinite(value) || value < 0) throw new RangeError(`invalid duration ${value}: expected milliseconds >= 0`);
    return value;
  }
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/.exec(value.trim());
  if (!match) throw new RangeError(`invalid duration "${value}": expected e.g. 500ms, 1s, 5m, 2h`);
  const unit = match[2] as keyof typeof UNIT_MS;
  return Math.round(Number(match[1]) * UNIT_MS[unit]);
}
