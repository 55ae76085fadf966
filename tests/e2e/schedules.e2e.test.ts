/**
 * Schedules end to end: `ferry schedule` round trips on both databases with an agent running
 * the scheduled runs (slot and data interval in the run context), schedules declared in a
 * flow's options synced by `ferry deploy`, and two control planes on one PostgreSQL database
 * scheduling one run per slot, with no gap, across a kill -9 of one of them.
 */
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { FerryClient } from "@ferry/control-plane/client";
import {
  createDatabase,
  deployFixtures,
  ferry,
  makeProject,
  PROVIDERS,
  type Proc,
  postgresUnavailable,
  REPO,
  removeDir,
  type Server,
  startAgent,
  startReplica,
  startServer,
  stopAll,
  type TestDatabase,
  useServer,
  waitUntil,
} from "./harness.ts";

const FIXTURES = join(REPO, "tests/e2e/fixtures-schedules");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ms = (d: Date | string | null | undefined) => (d == null ? Number.NaN : new Date(d).getTime());

/** Every run a schedule made (paging through the deployment's runs). */
async function runsOf(api: FerryClient, deployment: string, scheduleId: string) {
  type Run = Awaited<ReturnType<FerryClient["runs"]["list"]["query"]>>["items"][number];
  const out: Run[] = [];
  let cursor: string | undefined;
  for (;;) {
    const page = await api.runs.list.query({ deployment, limit: 100, ...(cursor ? { cursor } : {}) });
    out.push(...page.items.filter((r) => r.scheduleId === scheduleId));
    if (!page.nextCursor) return out;
    cursor = page.nextCursor;
  }
}

for (const provider of PROVIDERS) {
  describe(`ferry schedule on ${provider}`, async () => {
    const skip = provider === "postgresql" ? await postgresUnavailable() : undefined;
    const suite = useServer(
      provider,
      skip,
      async (s) => {
        await startAgent(s.server, { name: `sched-${provider}`, workDir: s.project });
        await deployFixtures(s, [], "flows/stamped.ts");
      },
      {
        fixtures: FIXTURES,
        // Second-long schedules keep the suite short; the quota's default minimum is a minute.
        serverArgs: ["--scheduler-interval", "200ms", "--scheduler-horizon", "3s", "--quota", "minScheduleIntervalSeconds=1"],
      },
    );
    const api = () => suite.server.api;
    const cli = (args: string[]) => ferry(args, { cwd: suite.project, env: suite.server.env });
    let id = "";

    test("schedule add prints the id; schedule ls --json lists it with slots 2 s apart", { skip }, async () => {
      const added = await cli([
        "schedule",
        "add",
        "stamped",
        "--cron",
        "*/2 * * * * *",
        "--timezone",
        "Europe/Paris",
        "--catchup",
        "all",
      ]);
      assert.equal(added.code, 0, added.output);
      id = added.output.match(/schedule (\S+) for stamped: cron \*\/2 \* \* \* \* \* \(Europe\/Paris\)/)?.[1] ?? "";
      assert.ok(id, added.output);

      const ls = await cli(["schedule", "ls", "--json"]);
      assert.equal(ls.code, 0, ls.output);
      const list = JSON.parse(ls.output) as {
        id: string;
        source: string;
        active: boolean;
        catchup: string;
        nextSlots: string[];
      }[];
      const mine = list.find((s) => s.id === id);
      assert.ok(mine, ls.output);
      assert.equal(mine.source, "user");
      assert.equal(mine.active, true);
      assert.equal(mine.catchup, "ALL");
      assert.equal(mine.nextSlots.length, 5);
      const slots = mine.nextSlots.map(ms);
      for (const s of slots) assert.equal(s % 2000, 0, `${new Date(s).toISOString()} is not on an even second`);
      for (let i = 1; i < slots.length; i++) assert.equal((slots[i] ?? 0) - (slots[i - 1] ?? 0), 2000, mine.nextSlots.join(", "));
      // The table view shows it too.
      const table = await cli(["schedule", "ls", "--deployment", "stamped"]);
      assert.match(table.output, new RegExp(`^${id}\\s+stamped\\s+cron`, "m"));
    });

    test("the agent runs the scheduled runs, each with its slot and data interval", { skip }, async () => {
      assert.ok(id);
      const done = await waitUntil(
        "two scheduled runs COMPLETED",
        async () => {
          const runs = (await runsOf(api(), "stamped", id)).filter((r) => r.stateType === "COMPLETED");
          return runs.length >= 2 ? runs : undefined;
        },
        20_000,
      );
      const slots = done.map((r) => ms(r.scheduledFor));
      assert.equal(new Set(slots).size, slots.length, "two runs for one slot");
      for (const run of done) {
        const slot = ms(run.scheduledFor);
        const iso = new Date(slot).toISOString();
        assert.equal(slot % 2000, 0, `slot ${iso} is not on an even second`);
        assert.equal(ms(run.dataIntervalEnd), slot);
        assert.equal(ms(run.dataIntervalStart), slot - 2000);
        assert.equal(ms(run.expectedStartTime), slot);
        const { items: logs } = await api().logs.list.query({ flowRunId: run.id });
        const expected = `scheduledFor=${iso} start=${new Date(slot - 2000).toISOString()} end=${iso}`;
        assert.ok(
          logs.some((l) => l.message === expected),
          `run ${run.id}: no "${expected}" in\n${logs.map((l) => l.message).join("\n")}`,
        );
      }
    });

    test("schedule pause: no new runs, no SCHEDULED run left; resume: runs again", { skip }, async () => {
      assert.ok(id);
      const paused = await cli(["schedule", "pause", id]);
      assert.equal(paused.code, 0, paused.output);
      assert.match(paused.output, new RegExp(`schedule ${id}: paused`));
      const atPause = await runsOf(api(), "stamped", id);
      assert.deepEqual(
        atPause.filter((r) => r.stateType === "SCHEDULED").map((r) => `${r.scheduledFor} ${r.stateName}`),
        [],
      );
      await sleep(3_000);
      const later = await runsOf(api(), "stamped", id);
      assert.deepEqual(
        later.map((r) => r.id).sort(),
        atPause.map((r) => r.id).sort(),
        "runs appeared while the schedule was paused",
      );
      assert.ok(!later.some((r) => r.stateType === "SCHEDULED"));
      const ls = JSON.parse((await cli(["schedule", "ls", "--json"])).output) as { id: string; active: boolean }[];
      assert.equal(ls.find((s) => s.id === id)?.active, false);

      const resumedAt = Date.now();
      const resumed = await cli(["schedule", "resume", id]);
      assert.equal(resumed.code, 0, resumed.output);
      const fresh = await waitUntil(
        "a run of the resumed schedule COMPLETED",
        async () =>
          (await runsOf(api(), "stamped", id)).find((r) => ms(r.scheduledFor) >= resumedAt - 1000 && r.stateType === "COMPLETED"),
        15_000,
      );
      // Resuming does not make up for the slots of the pause.
      const all = await runsOf(api(), "stamped", id);
      const known = new Set(atPause.map((r) => r.id));
      assert.ok(
        all.filter((r) => !known.has(r.id)).every((r) => ms(r.scheduledFor) >= resumedAt - 1000),
        "slots of the pause were made up for",
      );
      assert.equal(ms(fresh.scheduledFor) % 2000, 0);
    });

    test("schedule rm: gone from ls, its runs not started removed", { skip }, async () => {
      assert.ok(id);
      const rm = await cli(["schedule", "rm", id]);
      assert.equal(rm.code, 0, rm.output);
      const ls = JSON.parse((await cli(["schedule", "ls", "--json"])).output) as { id: string }[];
      assert.ok(!ls.some((s) => s.id === id));
      const left = (await api().runs.list.query({ deployment: "stamped", limit: 500 })).items;
      assert.ok(!left.some((r) => r.stateType === "SCHEDULED" && r.scheduleId === null && r.scheduledFor !== null));
      await sleep(1_000);
      const again = (await api().runs.list.query({ deployment: "stamped", limit: 500 })).items;
      assert.equal(again.filter((r) => r.stateType === "SCHEDULED" && r.scheduleId === null).length, 0);
    });

    test("a pause or rm that lands during a scheduler pass leaves no run waiting", { skip }, async () => {
      // resume and create start a pass at once that makes the horizon's runs (3 here, one a
      // second): the pause or delete lands while it is under way.
      const waiting = async (filter: (r: { scheduleId: string | null; scheduledFor: unknown }) => boolean) =>
        (await api().runs.list.query({ deployment: "stamped", state: ["SCHEDULED"], limit: 500 })).items.filter(filter);
      const paused = await api().schedules.create.mutate({
        deployment: "stamped",
        schedule: { intervalSeconds: 1, catchup: "ALL", graceSeconds: 3600, active: false },
      });
      for (let i = 0; i < 6; i++) {
        await api().schedules.resume.mutate({ id: paused.id });
        await sleep(i * 5);
        await api().schedules.pause.mutate({ id: paused.id });
        await sleep(400);
        const left = await waiting((r) => r.scheduleId === paused.id);
        assert.deepEqual(
          left.map((r) => r.scheduledFor),
          [],
          `pause #${i} left runs waiting`,
        );
      }
      await api().schedules.delete.mutate({ id: paused.id });
      for (let i = 0; i < 6; i++) {
        const s = await api().schedules.create.mutate({
          deployment: "stamped",
          schedule: { intervalSeconds: 1, catchup: "ALL", graceSeconds: 3600 },
        });
        await sleep(i * 5);
        await api().schedules.delete.mutate({ id: s.id });
        await sleep(400);
        // A run made for a deleted schedule keeps its slot but loses its schedule.
        const left = await waiting((r) => r.scheduleId === null && r.scheduledFor !== null);
        assert.deepEqual(
          left.map((r) => r.scheduledFor),
          [],
          `rm #${i} left runs waiting`,
        );
      }
    });

    test("bad input: clear errors, nothing created", { skip }, async () => {
      const before = await api().schedules.list.query();
      const bad: [string[], RegExp][] = [
        [["stamped", "--cron", "not a cron"], /invalid cron expression "not a cron"/],
        [["stamped", "--cron", "0 * * * *", "--timezone", "Mars/Olympus_Mons"], /unknown time zone "Mars\/Olympus_Mons"/],
        [["stamped", "--cron", "0 * * * *", "--every", "15m"], /give either --cron or --every/],
        [["plain", "--every", "15m"], /invalid parameters for a schedule of "plain"/],
        [["plain", "--every", "15m", "--param", "n=abc"], /invalid parameters for a schedule of "plain"/],
        [["stamped", "--every", "15m", "--catchup", "sometimes"], /catchup/],
        [["nope", "--every", "15m"], /no deployment named "nope"/],
      ];
      const results = await Promise.all(bad.map(([args]) => cli(["schedule", "add", ...args])));
      for (const [i, [args, message]] of bad.entries()) {
        const r = results[i] ?? { code: 0, output: "" };
        assert.notEqual(r.code, 0, `ferry schedule add ${args.join(" ")} succeeded:\n${r.output}`);
        assert.match(r.output, message, `ferry schedule add ${args.join(" ")}`);
        assert.doesNotMatch(r.output, /at .*\.ts:\d+/, "a stack trace instead of a message");
      }
      const after = await api().schedules.list.query();
      assert.deepEqual(
        after.map((s) => s.id),
        before.map((s) => s.id),
      );
      // The valid form of the same parameters works.
      const ok = await cli(["schedule", "add", "plain", "--every", "15m", "--param", "n=3", "--paused"]);
      assert.equal(ok.code, 0, ok.output);
      assert.match(ok.output, /for plain: every 15m from .*\(paused\)/);
    });
  });
}

describe("ferry deploy syncs the schedules declared in flow options (sqlite)", () => {
  const suite = useServer("sqlite", undefined, undefined, { fixtures: FIXTURES });
  const cli = (args: string[]) => ferry(args, { cwd: suite.project, env: suite.server.env });
  const schedules = (deployment: string) => suite.server.api.schedules.list.query({ deployment });

  test("deploy creates, keeps, and removes only deploy-made schedules", async () => {
    await deployFixtures(suite, [], "flows/stamped.ts");
    const first = await schedules("stamped");
    assert.equal(first.length, 1);
    const made = first[0];
    assert.ok(made);
    assert.equal(made.source, "deploy");
    assert.equal(made.kind, "interval");
    assert.equal(made.intervalSeconds, 3600);
    assert.equal(made.catchup, "SKIP");
    assert.equal(made.active, true);
    assert.deepEqual(await schedules("plain"), []);

    await deployFixtures(suite, [], "flows/stamped.ts");
    assert.deepEqual(
      (await schedules("stamped")).map((s) => s.id),
      [made.id],
      "a redeploy duplicated or replaced the schedule",
    );

    const added = await cli(["schedule", "add", "stamped", "--every", "15m"]);
    assert.equal(added.code, 0, added.output);
    const userId = added.output.match(/schedule (\S+) for stamped/)?.[1];
    assert.ok(userId, added.output);
    await deployFixtures(suite, [], "flows/stamped.ts");
    const both = await schedules("stamped");
    assert.deepEqual(
      both.map((s) => [s.id, s.source]).sort(),
      [
        [made.id, "deploy"],
        [userId, "user"],
      ].sort(),
    );

    // The same module without the schedule: the deploy-made one goes, the user's stays.
    const file = join(suite.project, "flows/stamped.ts");
    const source = readFileSync(file, "utf8");
    const changed = source.replace(/, schedules: \[\{ every: "1h", catchup: "SKIP" \}\]/, "");
    assert.notEqual(changed, source, "the fixture's schedules option was not found");
    writeFileSync(file, changed);
    await deployFixtures(suite, [], "flows/stamped.ts");
    const left = await schedules("stamped");
    assert.deepEqual(
      left.map((s) => [s.id, s.source]),
      [[userId, "user"]],
    );
    // The removed schedule's runs that had not started went with it.
    const runs = (await suite.server.api.runs.list.query({ deployment: "stamped", limit: 500 })).items;
    assert.deepEqual(
      runs.filter((r) => r.stateType === "SCHEDULED" && r.scheduleId !== userId).map((r) => r.id),
      [],
    );
  });
});

describe("two control planes on one PostgreSQL database", async () => {
  const skip = await postgresUnavailable();
  const ARGS = ["--scheduler-interval", "200ms", "--scheduler-horizon", "2s", "--quota", "minScheduleIntervalSeconds=1"];
  let project = "";
  let database: TestDatabase | undefined;
  let first: Server;
  let second: { proc: Proc; url: string; api: FerryClient };

  before(async () => {
    if (skip) return;
    project = makeProject(FIXTURES);
    database = await createDatabase("postgresql", project);
    first = await startServer(database.url, ARGS);
    second = await startReplica(first);
    const deployed = await ferry(["deploy", "flows/stamped.ts"], { cwd: project, env: first.env });
    assert.equal(deployed.code, 0, deployed.output);
  });
  after(async () => {
    await stopAll();
    if (skip) return;
    await database?.drop();
    removeDir(project);
  });

  test("one run per slot, no gap, across a kill -9 of one of them", { skip }, async () => {
    assert.doesNotMatch(second.proc.output(), /shown once/, "the second control plane bootstrapped another admin token");
    const anchor = new Date(Math.floor(Date.now() / 1000) * 1000);
    const schedule = await first.api.schedules.create.mutate({
      deployment: "stamped",
      schedule: { intervalSeconds: 1, anchor: anchor.toISOString(), catchup: "ALL", graceSeconds: 3600 },
    });
    await sleep(6_000);
    const killedAt = Date.now();
    first.proc.child.kill("SIGKILL");
    await first.proc.exited;
    await sleep(6_000);

    const runs = await runsOf(second.api, "stamped", schedule.id);
    const paused = await second.api.schedules.pause.mutate({ id: schedule.id });
    const slots = runs.map((r) => ms(r.scheduledFor)).sort((a, b) => a - b);
    const show = () => slots.map((s) => new Date(s).toISOString()).join(", ");
    assert.ok(slots.length >= 10, `only ${slots.length} runs: ${show()}`);
    assert.equal(new Set(slots).size, slots.length, `a slot has two runs: ${show()}`);
    for (const s of slots) assert.equal(s % 1000, 0, `slot ${new Date(s).toISOString()} is not on a whole second`);
    const firstSlot = slots[0] ?? 0;
    const lastSlot = slots.at(-1) ?? 0;
    assert.equal(slots.length, (lastSlot - firstSlot) / 1000 + 1, `a gap between the slots: ${show()}`);
    assert.ok(firstSlot >= anchor.getTime() && firstSlot <= anchor.getTime() + 2000, `first slot ${show()}`);
    assert.ok(lastSlot > killedAt + 3000, `the survivor stopped scheduling: last slot ${new Date(lastSlot).toISOString()}`);
    // No agent: every run still waits, on time (a large grace: none Late), each with its data interval.
    for (const r of runs) {
      assert.equal(`${r.stateType}/${r.stateName}`, "SCHEDULED/Scheduled");
      assert.equal(ms(r.dataIntervalStart), ms(r.scheduledFor) - 1000);
      assert.equal(ms(r.dataIntervalEnd), ms(r.scheduledFor));
    }
    // Pausing removed them all (none had started), and nothing new comes.
    assert.ok(paused.removedRuns >= runs.length, `pause removed ${paused.removedRuns} of ${runs.length} runs`);
    await sleep(1_000);
    assert.deepEqual(await runsOf(second.api, "stamped", schedule.id), []);
  });
});
