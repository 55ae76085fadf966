/**
 * Backfills end to end: `ferry backfill` over a past range, at most N runs at once, the
 * reprocess rules, backwards, dry runs, pause and cancel, bad input. Real processes.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { deployFixtures, ferry, PROVIDERS, postgresUnavailable, startAgent, useServer, waitUntil } from "./harness.ts";

const DAY = "2026-01-01";

for (const provider of PROVIDERS) {
  const skip = provider === "postgresql" ? await postgresUnavailable() : undefined;
  describe(`backfills on ${provider}`, () => {
    const suite = useServer(provider, skip, async (s) => {
      await startAgent(s.server, { name: "agent-backfill", workDir: s.project, concurrency: 8 });
      await deployFixtures(s);
    });
    const cli = (args: string[]) => ferry(args, { cwd: suite.project, env: suite.server.env });
    const api = () => suite.server.api;
    const runsOf = async (backfillId: string) => {
      const all = await api().runs.list.query({ deployment: "sleepy", limit: 500 });
      return all.items.filter((r) => r.backfillId === backfillId);
    };

    test("ferry backfill runs every slot of the range once, never more than --max-active at a time", { skip }, async () => {
      const out = await cli([
        "backfill",
        "sleepy",
        "--from",
        DAY,
        "--to",
        `${DAY}T11:00:00Z`,
        "--cron",
        "0 * * * *",
        "--param",
        "ms=300",
        "--max-active",
        "3",
        "--json",
      ]);
      assert.equal(out.code, 0, out.output);
      const end = JSON.parse(out.output.slice(out.output.indexOf("{"))) as {
        id: string;
        status: string;
        total: number;
        runs: Record<string, number>;
      };
      assert.equal(end.status, "COMPLETED");
      assert.equal(end.total, 12);
      assert.deepEqual(end.runs, { COMPLETED: 12 });
      const runs = await runsOf(end.id);
      const slots = runs.map((r) => r.scheduledFor).sort();
      assert.deepEqual(
        slots,
        Array.from({ length: 12 }, (_, h) => `${DAY}T${String(h).padStart(2, "0")}:00:00.000Z`),
      );
      for (const r of runs) {
        const start = new Date(String(r.dataIntervalStart)).getTime();
        assert.equal(new Date(String(r.dataIntervalEnd)).getTime() - start, 3_600_000, "a one-hour data interval");
      }
      // At no instant were more than three of its runs between start and end.
      const edges = runs.flatMap((r) => [
        { t: new Date(String(r.startTime)).getTime(), d: 1 },
        { t: new Date(String(r.endTime)).getTime(), d: -1 },
      ]);
      edges.sort((a, b) => a.t - b.t || a.d - b.d);
      let open = 0;
      let most = 0;
      for (const e of edges) {
        open += e.d;
        most = Math.max(most, open);
      }
      assert.ok(most <= 3, `at most 3 at once, saw ${most}`);
    });

    test("reprocess: none skips slots that ran, completed runs them again; a dry run creates nothing", { skip }, async () => {
      const range = ["--from", DAY, "--to", `${DAY}T11:00:00Z`, "--cron", "0 * * * *", "--param", "ms=0"];
      const dry = await cli(["backfill", "sleepy", ...range, "--dry-run"]);
      assert.equal(dry.code, 0, dry.output);
      assert.match(dry.output, /dry run: 12 slots/);
      assert.match(dry.output, /12 already have a run/);
      const before = (await api().backfills.list.query({ deployment: "sleepy" })).length;

      const none = await cli(["backfill", "sleepy", ...range, "--json"]);
      const n = JSON.parse(none.output.slice(none.output.indexOf("{"))) as {
        id: string;
        status: string;
        skipped: number;
        created: number;
      };
      assert.equal(n.status, "COMPLETED");
      assert.equal(n.skipped, 12);
      assert.equal(n.created, 0);

      const again = await cli(["backfill", "sleepy", ...range, "--reprocess", "completed", "--max-active", "6", "--json"]);
      const a = JSON.parse(again.output.slice(again.output.indexOf("{"))) as { status: string; runs: Record<string, number> };
      assert.equal(a.status, "COMPLETED");
      assert.deepEqual(a.runs, { COMPLETED: 12 });
      assert.equal((await api().backfills.list.query({ deployment: "sleepy" })).length, before + 2, "the dry run made none");
    });

    test("backwards starts from the newest slot", { skip }, async () => {
      const out = await cli([
        "backfill",
        "sleepy",
        "--from",
        "2026-02-01",
        "--to",
        "2026-02-05",
        "--every",
        "1d",
        "--param",
        "ms=0",
        "--max-active",
        "1",
        "--backwards",
        "--json",
      ]);
      const b = JSON.parse(out.output.slice(out.output.indexOf("{"))) as { id: string; status: string };
      assert.equal(b.status, "COMPLETED", out.output);
      const runs = (await runsOf(b.id)).sort((x, y) => String(x.createdAt).localeCompare(String(y.createdAt)));
      assert.deepEqual(
        runs.map((r) => String(r.scheduledFor).slice(0, 10)),
        ["2026-02-05", "2026-02-04", "2026-02-03", "2026-02-02", "2026-02-01"],
      );
    });

    test("pause stops new runs; cancel ends the backfill and its unfinished runs", { skip }, async () => {
      const created = await api().backfills.create.mutate({
        deployment: "sleepy",
        from: "2026-03-01T00:00:00Z",
        to: "2026-03-01T23:00:00Z",
        cron: "0 * * * *",
        parameters: { ms: 20_000 },
        maxActive: 2,
      });
      const id = String(created.backfill?.id);
      await waitUntil("two runs running", async () => ((await api().backfills.get.query({ id })).runs.RUNNING ?? 0) === 2);
      await api().backfills.pause.mutate({ id });
      const paused = await api().backfills.get.query({ id });
      assert.equal(paused.status, "PAUSED");
      assert.equal(paused.created, 2);
      const cancelled = await api().backfills.cancel.mutate({ id });
      assert.equal(cancelled.status, "CANCELLED");
      await waitUntil("its runs cancelled", async () => {
        const b = await api().backfills.get.query({ id });
        return (b.runs.CANCELLED ?? 0) === 2 && b.created === 2;
      });
      await assert.rejects(api().backfills.resume.mutate({ id }), /is CANCELLED/);
    });

    test("bad input is refused with a clear message and creates nothing", { skip }, async () => {
      const before = (await api().backfills.list.query({})).length;
      const reversed = await cli(["backfill", "sleepy", "--from", "2026-02-02", "--to", "2026-02-01", "--every", "1h"]);
      assert.notEqual(reversed.code, 0);
      assert.match(reversed.output, /from must not be after to/);
      const noSlots = await cli(["backfill", "sleepy", "--from", "2026-02-01", "--to", "2026-02-02"]);
      assert.notEqual(noSlots.code, 0);
      assert.match(noSlots.output, /no active schedule/);
      const huge = await cli(["backfill", "sleepy", "--from", "2020-01-01", "--to", "2026-01-01", "--every", "1m"]);
      assert.notEqual(huge.code, 0);
      assert.match(huge.output, /more than 100000 slots/);
      const badTime = await cli(["backfill", "sleepy", "--from", "yesterday", "--to", "2026-01-01", "--every", "1h"]);
      assert.notEqual(badTime.code, 0);
      assert.match(badTime.output, /not a time/);
      const badCron = await cli(["backfill", "sleepy", "--from", DAY, "--to", DAY, "--cron", "61 * * * *"]);
      assert.notEqual(badCron.code, 0);
      assert.match(badCron.output, /invalid cron expression/);
      assert.equal((await api().backfills.list.query({})).length, before);
    });
  });
}
