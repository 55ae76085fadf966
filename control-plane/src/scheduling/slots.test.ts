import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  checkSpec,
  countSlots,
  latestSlotAtOrBefore,
  nextSlot,
  planSlots,
  previousSlot,
  type ScheduleSpec,
  slotsBefore,
  slotsBetween,
} from "./slots.ts";

const iso = (d: Date | null | undefined) => d?.toISOString();
const at = (s: string) => new Date(s);

describe("schedule slots", () => {
  const daily0230Berlin: ScheduleSpec = { kind: "cron", cron: "30 2 * * *", timezone: "Europe/Berlin" };
  const hourlyBerlin: ScheduleSpec = { kind: "cron", cron: "0 * * * *", timezone: "Europe/Berlin" };

  it("cron in a time zone: 02:30 local is 01:30 UTC in winter and 00:30 UTC in summer", () => {
    assert.equal(iso(nextSlot(daily0230Berlin, at("2026-01-10T12:00:00Z"))), "2026-01-11T01:30:00.000Z");
    assert.equal(iso(nextSlot(daily0230Berlin, at("2026-07-10T12:00:00Z"))), "2026-07-11T00:30:00.000Z");
  });

  it("spring forward: a local time that does not exist fires once that day", () => {
    // 2026-03-29 in Berlin: 02:00 CET jumps to 03:00 CEST.
    const slots = slotsBetween(daily0230Berlin, at("2026-03-27T12:00:00Z"), at("2026-03-31T12:00:00Z"), 10);
    const days = slots.map((d) => d.toISOString().slice(0, 10));
    assert.deepEqual(days, ["2026-03-28", "2026-03-29", "2026-03-30", "2026-03-31"]);
    assert.equal(new Set(days).size, days.length, "one run per day");
  });

  it("fall back: a local time that exists twice fires once; an hourly schedule fires every real hour", () => {
    // 2026-10-25 in Berlin: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
    const slots = slotsBetween(daily0230Berlin, at("2026-10-24T12:00:00Z"), at("2026-10-26T12:00:00Z"), 10);
    assert.deepEqual(slots.map(iso), ["2026-10-25T00:30:00.000Z", "2026-10-26T01:30:00.000Z"]);
    const hours = slotsBetween(hourlyBerlin, at("2026-10-24T23:30:00Z"), at("2026-10-25T03:30:00Z"), 10);
    assert.deepEqual(hours.map(iso), [
      "2026-10-25T00:00:00.000Z",
      "2026-10-25T01:00:00.000Z",
      "2026-10-25T02:00:00.000Z",
      "2026-10-25T03:00:00.000Z",
    ]);
  });

  it("intervals step from their anchor; slots are strictly after the cursor", () => {
    const every15: ScheduleSpec = { kind: "interval", intervalSeconds: 900, anchor: at("2026-01-01T00:05:00Z") };
    assert.equal(iso(nextSlot(every15, at("2026-03-01T10:00:00Z"))), "2026-03-01T10:05:00.000Z");
    assert.equal(iso(nextSlot(every15, at("2026-03-01T10:05:00Z"))), "2026-03-01T10:20:00.000Z");
    assert.equal(iso(latestSlotAtOrBefore(every15, at("2026-03-01T10:19:59Z"))), "2026-03-01T10:05:00.000Z");
    assert.equal(iso(previousSlot(every15, at("2026-03-01T10:20:00Z"))), "2026-03-01T10:05:00.000Z");
    // Before the anchor too.
    assert.equal(iso(nextSlot(every15, at("2025-12-31T23:59:00Z"))), "2026-01-01T00:05:00.000Z");
  });

  it("a cron slot is not repeated when the cursor is exactly on it; previousSlot gives the data interval start", () => {
    const slot = at("2026-01-11T01:30:00Z");
    assert.equal(iso(nextSlot(daily0230Berlin, slot)), "2026-01-12T01:30:00.000Z");
    assert.equal(iso(previousSlot(daily0230Berlin, slot)), "2026-01-10T01:30:00.000Z");
    assert.equal(iso(latestSlotAtOrBefore(daily0230Berlin, slot)), slot.toISOString());
  });

  it("walks backwards and counts slots in a range (backfills)", () => {
    const hourly: ScheduleSpec = { kind: "cron", cron: "0 * * * *", timezone: "UTC" };
    assert.deepEqual(slotsBefore(hourly, at("2026-03-01T10:00:00Z"), at("2026-03-01T08:00:00Z"), 10).map(iso), [
      "2026-03-01T09:00:00.000Z",
      "2026-03-01T08:00:00.000Z",
    ]);
    const every15: ScheduleSpec = { kind: "interval", intervalSeconds: 900, anchor: at("2026-01-01T00:00:00Z") };
    assert.deepEqual(slotsBefore(every15, at("2026-03-01T10:20:00Z"), at("2026-03-01T09:50:00Z"), 10).map(iso), [
      "2026-03-01T10:15:00.000Z",
      "2026-03-01T10:00:00.000Z",
    ]);
    assert.equal(countSlots(hourly, at("2026-03-01T00:00:00Z"), at("2026-03-01T23:00:00Z"), 1000), 24);
    assert.equal(countSlots(every15, at("2026-03-01T00:00:00Z"), at("2026-03-01T00:59:59Z"), 1000), 4);
    assert.equal(countSlots(every15, at("2026-01-01T00:00:00Z"), at("2027-01-01T00:00:00Z"), 10_000), 10_001);
  });

  it("rejects bad expressions and time zones with a readable message", () => {
    assert.throws(() => checkSpec({ kind: "cron", cron: "61 * * * *", timezone: "UTC" }), /invalid cron expression/);
    assert.throws(() => checkSpec({ kind: "cron", cron: "0 * * * *", timezone: "Mars/Olympus" }), /unknown time zone/);
    assert.throws(() => checkSpec({ kind: "interval", intervalSeconds: 0, anchor: new Date() }), /at least 1 s/);
    checkSpec({ kind: "cron", cron: "*/5 * * * *", timezone: "America/New_York" });
  });
});

describe("planning a scheduler pass (fake clock)", () => {
  const everyMinute: ScheduleSpec = { kind: "interval", intervalSeconds: 60, anchor: at("2026-01-01T00:00:00Z") };
  const base = { spec: everyMinute, graceMs: 30_000, horizonMs: 5 * 60_000, maxAhead: 3, maxPerPass: 1000 };

  it("creates upcoming slots up to the horizon, at most maxAhead in the future", () => {
    const now = at("2026-03-01T10:00:10Z");
    const plan = planSlots({ ...base, from: at("2026-03-01T10:00:00Z"), now, catchup: "LATEST" });
    assert.deepEqual(plan.create.map(iso), ["2026-03-01T10:01:00.000Z", "2026-03-01T10:02:00.000Z", "2026-03-01T10:03:00.000Z"]);
    assert.equal(plan.skipped, 0);
    assert.equal(iso(plan.cursor), "2026-03-01T10:03:00.000Z");
    // The next pass from the cursor adds nothing until time moves on.
    const again = planSlots({ ...base, from: plan.cursor as Date, now, catchup: "LATEST" });
    assert.deepEqual(again.create, []);
    const later = planSlots({ ...base, from: plan.cursor as Date, now: at("2026-03-01T10:01:10Z"), catchup: "LATEST" });
    assert.deepEqual(later.create.map(iso), ["2026-03-01T10:04:00.000Z"]);
  });

  it("a slot within the grace period is not missed", () => {
    const plan = planSlots({ ...base, from: at("2026-03-01T09:59:30Z"), now: at("2026-03-01T10:00:20Z"), catchup: "SKIP" });
    assert.equal(iso(plan.create[0]), "2026-03-01T10:00:00.000Z");
    assert.equal(plan.skipped, 0);
  });

  it("after an outage: ALL creates every missed slot, LATEST only the last one, SKIP none", () => {
    const from = at("2026-03-01T08:00:00Z"); // the last slot handled before a two-hour outage
    const now = at("2026-03-01T10:00:10Z");
    const all = planSlots({ ...base, from, now, catchup: "ALL" });
    assert.equal(all.create.filter((d) => d < now).length, 120, "08:01 … 10:00");
    const latest = planSlots({ ...base, from, now, catchup: "LATEST" });
    assert.deepEqual(latest.create.map(iso).slice(0, 2), ["2026-03-01T09:59:00.000Z", "2026-03-01T10:00:00.000Z"]);
    assert.equal(latest.skipped, 118);
    const skip = planSlots({ ...base, from, now, catchup: "SKIP" });
    assert.equal(iso(skip.create[0]), "2026-03-01T10:00:00.000Z", "10:00 is within the grace period");
    assert.equal(skip.skipped, 119);
  });

  it("a long outage with ALL is worked through in bounded passes; LATEST jumps over it without listing it", () => {
    const from = at("2025-03-01T00:00:00Z"); // a year of minutes: 525,600 slots
    const now = at("2026-03-01T00:00:10Z");
    const first = planSlots({ ...base, maxPerPass: 500, from, now, catchup: "ALL" });
    assert.equal(first.create.length, 500);
    assert.equal(iso(first.cursor), "2025-03-01T08:20:00.000Z");
    const latest = planSlots({ ...base, from, now, catchup: "LATEST" });
    assert.equal(iso(latest.create[0]), "2026-02-28T23:59:00.000Z");
    assert.equal(latest.skipped, 525_599 - 1);
  });
});
