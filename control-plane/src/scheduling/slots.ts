import { Cron } from "croner";

/**
 * Schedule slots: the instants a schedule fires. Cron expressions are read by `croner` in an
 * IANA time zone (a local time that does not exist on a spring-forward day fires once, at
 * the jump; one that exists twice on a fall-back day fires once); intervals step from an
 * anchor in absolute time. Pure functions of their inputs (no clock): unit-tested.
 */
export type ScheduleSpec =
  | { kind: "cron"; cron: string; timezone: string }
  | { kind: "interval"; intervalSeconds: number; anchor: Date };

export type Catchup = "ALL" | "LATEST" | "SKIP";

/** Throws a readable error when the expression or the time zone is not valid. */
export function checkSpec(spec: ScheduleSpec): void {
  if (spec.kind === "interval") {
    if (!Number.isInteger(spec.intervalSeconds) || spec.intervalSeconds < 1) throw new Error("the interval must be at least 1 s");
    if (Number.isNaN(spec.anchor.getTime())) throw new Error("the anchor is not a valid time");
    return;
  }
  checkTimezone(spec.timezone);
  try {
    const c = cronOf(spec);
    if (!c.nextRun(new Date())) throw new Error("it never fires");
  } catch (err) {
    throw new Error(`invalid cron expression "${spec.cron}": ${err instanceof Error ? err.message : String(err)}`);
  }
}

export function checkTimezone(timezone: string): void {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: timezone });
  } catch {
    throw new Error(`unknown time zone "${timezone}" (use an IANA name such as Europe/Paris or UTC)`);
  }
}

const cache = new Map<string, Cron>();

function cronOf(spec: { cron: string; timezone: string }): Cron {
  const key = `${spec.timezone}\u0000${spec.cron}`;
  let c = cache.get(key);
  if (!c) {
    // Five fields (minutes) or six (seconds first); no run-time job, only the calendar.
    c = new Cron(spec.cron, { timezone: spec.timezone, paused: true, mode: "5-or-6-parts" });
    if (cache.size > 1000) cache.clear();
    cache.set(key, c);
  }
  return c;
}

/** The first slot strictly after `after`, or null (a cron that never fires again). */
export function nextSlot(spec: ScheduleSpec, after: Date): Date | null {
  if (spec.kind === "interval") {
    const step = spec.intervalSeconds * 1000;
    const anchor = spec.anchor.getTime();
    const k = Math.floor((after.getTime() - anchor) / step) + 1;
    return new Date(anchor + k * step);
  }
  // croner strips milliseconds and may return `after` itself when it is a slot: step past it.
  let next = cronOf(spec).nextRun(after);
  while (next && next.getTime() <= after.getTime()) next = cronOf(spec).nextRun(new Date(next.getTime() + 1000));
  return next;
}

/** The latest slot at or before `at`, or null. */
export function latestSlotAtOrBefore(spec: ScheduleSpec, at: Date): Date | null {
  if (spec.kind === "interval") {
    const step = spec.intervalSeconds * 1000;
    const anchor = spec.anchor.getTime();
    const k = Math.floor((at.getTime() - anchor) / step);
    return new Date(anchor + k * step);
  }
  const [prev] = cronOf(spec).previousRuns(1, new Date(at.getTime() + 1000));
  return prev && prev.getTime() <= at.getTime() ? prev : null;
}

/** The slot before `slot` (the start of the data interval that ends at `slot`). */
export function previousSlot(spec: ScheduleSpec, slot: Date): Date | null {
  if (spec.kind === "interval") return new Date(slot.getTime() - spec.intervalSeconds * 1000);
  return latestSlotAtOrBefore(spec, new Date(slot.getTime() - 1000));
}

/** Slots in (after, until], at most `max`. */
export function slotsBetween(spec: ScheduleSpec, after: Date, until: Date, max: number): Date[] {
  const out: Date[] = [];
  let cursor = after;
  while (out.length < max) {
    const next = nextSlot(spec, cursor);
    if (!next || next.getTime() > until.getTime()) break;
    out.push(next);
    cursor = next;
  }
  return out;
}

/** Slots in [notBefore, before), newest first, at most `max` (backwards backfills). */
export function slotsBefore(spec: ScheduleSpec, before: Date, notBefore: Date, max: number): Date[] {
  const out: Date[] = [];
  if (spec.kind === "interval") {
    const step = spec.intervalSeconds * 1000;
    const anchor = spec.anchor.getTime();
    let k = Math.ceil((before.getTime() - anchor) / step) - 1;
    while (out.length < max) {
      const t = anchor + k * step;
      if (t < notBefore.getTime()) break;
      out.push(new Date(t));
      k--;
    }
    return out;
  }
  // croner: the runs before a whole second, newest first.
  const from = new Date(Math.ceil(before.getTime() / 1000) * 1000);
  for (const slot of cronOf(spec).previousRuns(max + 1, from)) {
    if (slot.getTime() >= before.getTime()) continue;
    if (slot.getTime() < notBefore.getTime() || out.length >= max) break;
    out.push(slot);
  }
  return out;
}

/** How many slots lie in [start, end] (at most `cap`; more is reported as cap + 1). */
export function countSlots(spec: ScheduleSpec, start: Date, end: Date, cap: number): number {
  if (spec.kind === "interval") {
    const step = spec.intervalSeconds * 1000;
    const anchor = spec.anchor.getTime();
    const first = Math.ceil((start.getTime() - anchor) / step);
    const last = Math.floor((end.getTime() - anchor) / step);
    return Math.min(cap + 1, Math.max(0, last - first + 1));
  }
  return slotsBetween(spec, new Date(start.getTime() - 1), end, cap + 1).length;
}

export interface Plan {
  /** Slots to create runs for, in time order. */
  create: Date[];
  /** Missed slots left out by the catch-up policy (counted, not listed when many). */
  skipped: number;
  /** The latest slot dealt with: the scheduler's new cursor (unchanged when null). */
  cursor: Date | null;
}

/**
 * What to create in one pass. Slots after `from` up to `now + horizonMs` are candidates;
 * those before `now - graceMs` were missed (the control plane or the schedule was away):
 * the catch-up policy creates all of them, only the latest, or none. At most `maxAhead`
 * future slots and `maxPerPass` slots in all: a long outage is worked through over several
 * passes (ALL) or jumped over (LATEST, SKIP) without enumerating it.
 */
export function planSlots(input: {
  spec: ScheduleSpec;
  from: Date;
  now: Date;
  graceMs: number;
  horizonMs: number;
  maxAhead: number;
  maxPerPass: number;
  catchup: Catchup;
}): Plan {
  const { spec, now, catchup } = input;
  const missedUntil = new Date(now.getTime() - input.graceMs);
  const create: Date[] = [];
  let skipped = 0;
  let cursor: Date | null = null;
  let from = input.from;

  if (from.getTime() < missedUntil.getTime()) {
    if (catchup === "ALL") {
      const missed = slotsBetween(spec, from, missedUntil, input.maxPerPass);
      create.push(...missed);
      if (missed.length === input.maxPerPass) return { create, skipped, cursor: missed.at(-1) ?? null };
      if (missed.length) from = missed.at(-1) as Date;
    } else {
      const latest = latestSlotAtOrBefore(spec, missedUntil);
      if (latest && latest.getTime() > from.getTime()) {
        skipped = countBetween(spec, from, latest) - 1;
        if (catchup === "LATEST") create.push(latest);
        else skipped++;
        from = latest;
        cursor = latest;
      }
    }
  }
  const until = new Date(now.getTime() + input.horizonMs);
  const room = input.maxPerPass - create.length;
  const upcoming = slotsBetween(spec, from, until, Math.max(0, room));
  // Future slots up to the cursor already have their runs: they count against maxAhead.
  let ahead = from.getTime() > now.getTime() ? slotsBetween(spec, now, from, input.maxAhead + 1).length : 0;
  for (const slot of upcoming) {
    if (slot.getTime() > now.getTime() && ++ahead > input.maxAhead) break;
    create.push(slot);
  }
  const last = create.at(-1);
  if (last && (!cursor || last.getTime() > cursor.getTime())) cursor = last;
  return { create, skipped, cursor };
}

/** How many slots lie in (after, until], counted without listing them where possible. */
function countBetween(spec: ScheduleSpec, after: Date, until: Date): number {
  if (spec.kind === "interval") {
    const step = spec.intervalSeconds * 1000;
    return Math.max(0, Math.floor((until.getTime() - after.getTime()) / step));
  }
  return slotsBetween(spec, after, until, 100_000).length;
}
