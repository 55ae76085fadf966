/**
 * Per-workspace quotas on a shared control plane: each refuses with an error that names the
 * quota, counts per workspace (one tenant at its limit does not stop another), and keeps what
 * was already accepted. The server runs with low quotas so the tests reach them quickly.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { deployFixtures, ferry, PROVIDERS, postgresUnavailable } from "../e2e/harness.ts";
import { useTenants } from "./tenants.ts";

const QUOTAS = [
  "--quota",
  "runCreatesPerSecond=1",
  "--quota",
  "runCreateBurst=5",
  "--quota",
  "maxSchedules=2",
  "--quota",
  "maxActiveBackfills=1",
  "--quota",
  "maxBatchSize=10",
];

for (const provider of PROVIDERS) {
  const skip = provider === "postgresql" ? await postgresUnavailable() : undefined;
  describe(`per-workspace quotas (${provider})`, { skip }, () => {
    const t = useTenants(
      provider,
      skip,
      async (t) => {
        await deployFixtures(t);
        const deployed = await ferry(["deploy", "flows/train.ts"], { cwd: t.project, env: t.attacker.env });
        assert.equal(deployed.code, 0, deployed.output);
      },
      { serverArgs: QUOTAS },
    );

    test("oversized parameters are refused, naming the quota", async () => {
      await assert.rejects(
        t.attacker.api.runs.create.mutate({ deployment: "sleepy", parameters: { ms: 1, blob: "x".repeat(70 * 1024) } }),
        /quota maxParametersBytes = 65536/,
      );
    });

    test("run creation is rate-limited per workspace: the attacker's burst does not slow the victim", async () => {
      const outcomes = await Promise.allSettled(
        Array.from({ length: 8 }, () => t.attacker.api.runs.create.mutate({ deployment: "sleepy", parameters: { ms: 1 } })),
      );
      const refused = outcomes.filter((o) => o.status === "rejected");
      assert.ok(refused.length >= 2, `expected some of 8 creates over a burst of 5 refused, got ${refused.length}`);
      for (const r of refused) assert.match(String((r as PromiseRejectedResult).reason), /quota runCreatesPerSecond = 1/);
      // Nothing accepted was lost: each accepted create is a stored run.
      const accepted = outcomes.filter((o) => o.status === "fulfilled").length;
      const stored = await t.attacker.api.runs.list.query({ deployment: "sleepy", limit: 50 });
      assert.equal(stored.items.length, accepted);
      // The victim's bucket is its own.
      const mine = await t.victim.api.runs.create.mutate({ deployment: "sleepy", parameters: { ms: 1 } });
      assert.ok(mine.id);
    });

    test("schedules: a minimum interval and a count per workspace", async () => {
      await assert.rejects(
        t.attacker.api.schedules.create.mutate({ deployment: "sleepy", schedule: { intervalSeconds: 1, parameters: { ms: 1 } } }),
        /starts runs 1 s apart \(quota minScheduleIntervalSeconds = 60/,
      );
      await assert.rejects(
        t.attacker.api.schedules.create.mutate({
          deployment: "sleepy",
          schedule: { cron: "* * * * * *", parameters: { ms: 1 } },
        }),
        /quota minScheduleIntervalSeconds/,
      );
      for (let i = 0; i < 2; i++) {
        await t.attacker.api.schedules.create.mutate({
          deployment: "sleepy",
          schedule: { intervalSeconds: 3600, parameters: { ms: i }, active: false },
        });
      }
      await assert.rejects(
        t.attacker.api.schedules.create.mutate({
          deployment: "sleepy",
          schedule: { intervalSeconds: 3600, parameters: { ms: 9 } },
        }),
        /this workspace has 2 schedules \(quota maxSchedules = 2/,
      );
      assert.equal((await t.attacker.api.schedules.list.query({})).length, 2, "the accepted schedules are kept");
      // Another workspace still has room.
      await t.victim.api.schedules.create.mutate({
        deployment: "sleepy",
        schedule: { intervalSeconds: 3600, parameters: { ms: 1 }, active: false },
      });
    });

    test("unfinished backfills are bounded per workspace", async () => {
      const range = { from: "2026-01-01T00:00:00Z", to: "2026-01-01T05:00:00Z", intervalSeconds: 3600 };
      await t.attacker.api.backfills.create.mutate({ deployment: "sleepy", ...range, parameters: { ms: 1 } });
      await assert.rejects(
        t.attacker.api.backfills.create.mutate({ deployment: "sleepy", ...range, parameters: { ms: 2 } }),
        /quota maxActiveBackfills = 1/,
      );
    });

    test("a batched API request holds at most maxBatchSize calls", async () => {
      const paths = Array.from({ length: 30 }, () => "runs.stats").join(",");
      const input = JSON.stringify(Object.fromEntries(Array.from({ length: 30 }, (_, i) => [i, {}])));
      const res = await fetch(`${t.server.url}/trpc/${paths}?batch=1&input=${encodeURIComponent(input)}`, {
        headers: { authorization: `Bearer ${t.attacker.token}` },
      });
      assert.equal(res.status, 400);
      assert.match(await res.text(), /batch/i);
      const ok = await fetch(
        `${t.server.url}/trpc/runs.stats,runs.stats?batch=1&input=${encodeURIComponent(JSON.stringify({ 0: {}, 1: {} }))}`,
        { headers: { authorization: `Bearer ${t.attacker.token}` } },
      );
      assert.equal(ok.status, 200);
    });

    test("an unknown or malformed --quota stops the server with a clear message", async () => {
      const started = await ferry([
        "server",
        "start",
        "--port",
        "0",
        "--database-url",
        t.server.databaseUrl,
        "--quota",
        "maxRuns=1",
      ]);
      assert.notEqual(started.code, 0);
      assert.match(started.output, /unknown quota "maxRuns" \(known: /);
    });
  });
}
