import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { OpenDatabase } from "@ferry/prisma";
import { newId } from "./ids.ts";
import { logger } from "./logger.ts";
import { ParamsValidator } from "./params.ts";
import { Scheduler } from "./scheduler.ts";
import { fixtureDatabase } from "./test-database.ts";

// The scheduler against a real (SQLite) database, on a fake clock: horizon, catch-up, Late.
let database: OpenDatabase;
const ws = "ws-1";
let clock = new Date("2026-03-01T10:00:00Z");
const advance = (ms: number) => {
  clock = new Date(clock.getTime() + ms);
};

let fixture: Awaited<ReturnType<typeof fixtureDatabase>>;

before(async () => {
  fixture = await fixtureDatabase("ferry-sched-", {
    name: "etl",
    paramsSchemaJson: JSON.stringify({
      type: "object",
      properties: { table: { type: "string" } },
      required: ["table"],
    }),
  });
  database = fixture.database;
});

after(async () => {
  await fixture.close();
});

function scheduler(options: { maxAhead?: number; horizonMs?: number } = {}) {
  return new Scheduler(database.db, new ParamsValidator(), () => {}, logger.child({ component: "test" }), {
    now: () => clock,
    horizonMs: options.horizonMs ?? 10 * 60_000,
    maxAhead: options.maxAhead ?? 5,
  });
}

async function addSchedule(fields: {
  catchup: string;
  graceSeconds?: number;
  cron?: string;
  timezone?: string;
  parameters?: object;
}) {
  const id = newId();
  await database.db.schedule.create({
    data: {
      id,
      workspaceId: ws,
      deploymentId: "dep-1",
      kind: fields.cron ? "cron" : "interval",
      cron: fields.cron ?? null,
      timezone: fields.timezone ?? "UTC",
      intervalSeconds: fields.cron ? null : 60,
      anchor: fields.cron ? null : new Date("2026-01-01T00:00:00Z"),
      parametersJson: JSON.stringify(fields.parameters ?? { table: "events" }),
      catchup: fields.catchup,
      graceSeconds: fields.graceSeconds ?? 30,
      createdAt: clock,
    },
  });
  return id;
}

const runsOf = (scheduleId: string) => database.db.flowRun.findMany({ where: { scheduleId }, orderBy: { scheduledFor: "asc" } });

/** The agents were away: every due run was left where it was. */
async function outage(ms: number) {
  advance(ms);
}

describe("scheduler on a fake clock", () => {
  it("creates the upcoming runs once, with their slot and data interval, however many passes run", async () => {
    const id = await addSchedule({ catchup: "LATEST" });
    const s = scheduler();
    const first = await s.pass();
    await s.pass();
    await scheduler().pass(); // a second control plane
    const runs = runsOf(id);
    const list = await runs;
    // The slot at its creation (10:00, due now) and five ahead.
    assert.equal(first.created, 6);
    assert.deepEqual(
      list.map((r) => r.scheduledFor?.toISOString()),
      ["10:00", "10:01", "10:02", "10:03", "10:04", "10:05"].map((t) => `2026-03-01T${t}:00.000Z`),
    );
    const r0 = list[1];
    assert.ok(r0);
    assert.equal(r0.expectedStartTime.toISOString(), "2026-03-01T10:01:00.000Z");
    assert.equal(r0.dataIntervalStart?.toISOString(), "2026-03-01T10:00:00.000Z");
    assert.equal(r0.dataIntervalEnd?.toISOString(), "2026-03-01T10:01:00.000Z");
    assert.equal(r0.parametersJson, JSON.stringify({ table: "events" }));
    assert.equal(r0.stateType, "SCHEDULED");
    await database.db.schedule.update({ where: { id }, data: { active: false } });
  });

  it("marks a run not started within the grace period Late; LATEST keeps only the newest late run", async () => {
    const id = await addSchedule({ catchup: "LATEST" });
    const s = scheduler();
    await s.pass();
    await outage(10 * 60_000); // ten minutes without an agent: ten slots passed
    const result = await s.pass();
    const runs = await runsOf(id);
    const late = runs.filter((r) => r.stateName === "Late");
    const skipped = runs.filter((r) => r.stateName === "Skipped");
    assert.equal(late.length, 1, "one late run is kept");
    // Made 10:00–10:05 before; 10:06–10:08 skipped by LATEST; 10:09 made, late too, and kept.
    assert.equal(late[0]?.scheduledFor?.toISOString(), "2026-03-01T10:09:00.000Z", "the newest missed slot");
    assert.ok(skipped.length >= 4 && skipped.every((r) => r.stateType === "CANCELLED"));
    assert.ok(result.late >= 5);
    // Nothing between the cursor and now was created twice, and upcoming runs are there.
    assert.equal(new Set(runs.map((r) => r.scheduledFor?.getTime())).size, runs.length);
    assert.ok(runs.some((r) => (r.scheduledFor?.getTime() ?? 0) > clock.getTime()));
    await database.db.schedule.update({ where: { id }, data: { active: false } });
  });

  it("after a control-plane outage: ALL makes every missed slot, LATEST one, SKIP none", async () => {
    const ids = {
      ALL: await addSchedule({ catchup: "ALL", graceSeconds: 3600 }),
      LATEST: await addSchedule({ catchup: "LATEST", graceSeconds: 30 }),
      SKIP: await addSchedule({ catchup: "SKIP", graceSeconds: 30 }),
    };
    const s = scheduler({ maxAhead: 1 });
    await s.pass();
    const cursorBefore = clock;
    advance(30 * 60_000); // the control plane was down for 30 minutes: no passes
    await s.pass();
    const made = async (id: string) =>
      (await runsOf(id)).filter((r) => (r.scheduledFor?.getTime() ?? 0) <= clock.getTime() - 30_000).length;
    // ALL: a grace of an hour keeps them all on time: every slot of the 30 minutes exists.
    assert.ok((await made(ids.ALL)) >= 30, `ALL made ${await made(ids.ALL)}`);
    assert.equal(
      (await runsOf(ids.LATEST)).filter(
        (r) =>
          r.scheduledFor &&
          r.scheduledFor > cursorBefore &&
          r.scheduledFor.getTime() < clock.getTime() - 30_000 &&
          r.stateType === "SCHEDULED",
      ).length,
      1,
    );
    assert.equal(
      (await runsOf(ids.SKIP)).filter(
        (r) => r.scheduledFor && r.scheduledFor.getTime() < clock.getTime() - 30_000 && r.stateType === "SCHEDULED",
      ).length,
      0,
    );
    for (const id of Object.values(ids)) await database.db.schedule.update({ where: { id }, data: { active: false } });
  });

  it("cron in a time zone across the spring-forward night: one run per day", async () => {
    clock = new Date("2026-03-27T12:00:00Z");
    const id = await addSchedule({ catchup: "ALL", cron: "30 2 * * *", timezone: "Europe/Berlin", graceSeconds: 3600 });
    const s = scheduler({ maxAhead: 10, horizonMs: 5 * 86_400_000 });
    await s.pass();
    const days = (await runsOf(id)).map((r) => r.scheduledFor?.toISOString());
    assert.deepEqual(days.slice(0, 4), [
      "2026-03-28T01:30:00.000Z",
      "2026-03-29T01:00:00.000Z", // 02:30 does not exist that night: fires at the jump (03:00 CEST)
      "2026-03-30T00:30:00.000Z",
      "2026-03-31T00:30:00.000Z",
    ]);
    await database.db.schedule.update({ where: { id }, data: { active: false } });
  });

  it("a schedule whose parameters its deployment refuses makes no runs and does not stop the others", async () => {
    clock = new Date("2026-04-01T10:00:00Z");
    const bad = await addSchedule({ catchup: "LATEST", parameters: {} }); // `table` is required
    const good = await addSchedule({ catchup: "LATEST" });
    await scheduler().pass();
    assert.equal((await runsOf(bad)).length, 0);
    assert.ok((await runsOf(good)).length > 0);
  });
});
