import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  deployFixtures,
  ferry,
  flowProcesses,
  PROVIDERS,
  postgresUnavailable,
  startAgent,
  useServer,
  waitUntil,
} from "./harness.ts";

/** The most intervals overlapping at any instant. */
function peakOverlap(intervals: { start: string | null; end: string | null }[]): number {
  const points = intervals.flatMap((i) => [
    { t: new Date(i.start ?? 0).getTime(), d: 1 },
    { t: new Date(i.end ?? 0).getTime(), d: -1 },
  ]);
  points.sort((a, b) => a.t - b.t || a.d - b.d);
  let now = 0;
  let peak = 0;
  for (const p of points) {
    now += p.d;
    peak = Math.max(peak, now);
  }
  return peak;
}

for (const provider of PROVIDERS) {
  describe(`concurrency limits and idempotency (${provider})`, async () => {
    const skip = provider === "postgresql" ? await postgresUnavailable() : undefined;
    const suite = useServer(provider, skip, async (s) => {
      await startAgent(s.server, { name: "limits-agent", workDir: s.project, concurrency: 6 });
      await deployFixtures(s);
    });
    const api = () => suite.server.api;
    const finish = async (ids: string[]) =>
      Promise.all(
        ids.map((id) =>
          waitUntil(
            `run ${id} ends`,
            async () => {
              const r = await api().runs.get.query({ id });
              return ["COMPLETED", "FAILED", "CRASHED", "CANCELLED"].includes(r.stateType) ? r : undefined;
            },
            60_000,
          ),
        ),
      );

    test("a tag limit caps task runs with that tag across all runs, and frees its slots", { skip }, async () => {
      const set = await ferry(["limit", "set", "gpu", "2"], { cwd: suite.project, env: suite.server.env });
      assert.equal(set.code, 0, set.output);
      const negative = await ferry(["limit", "set", "gpu", "-1"], { cwd: suite.project, env: suite.server.env });
      assert.notEqual(negative.code, 0);
      const zeroPool = await ferry(["pool", "set", "default", "--concurrency-limit", "0"], {
        cwd: suite.project,
        env: suite.server.env,
      });
      assert.notEqual(zeroPool.code, 0);
      assert.match(zeroPool.output, /--concurrency-limit/);
      const runs = await Promise.all(
        [1, 2].map(() => api().runs.create.mutate({ deployment: "gpu-fanout", parameters: { n: 3 } })),
      );
      const done = await finish(runs.map((r) => r.id));
      assert.ok(done.every((r) => r.stateType === "COMPLETED"));
      const tasks = (await Promise.all(runs.map((r) => api().taskRuns.list.query({ flowRunId: r.id })))).flatMap((p) => p.items);
      assert.equal(tasks.length, 6);
      assert.equal(peakOverlap(tasks.map((t) => ({ start: t.startTime, end: t.endTime }))), 2);
      const waited = await api().taskRuns.get.query({ id: tasks[tasks.length - 1]?.id ?? "" });
      assert.ok(waited.states.some((s) => /waiting for a concurrency slot: gpu/.test(s.message ?? "")));
      const [gpu] = await api().tagLimits.list.query();
      assert.equal(gpu?.inUse, 0);
    });

    test("a crashed run never leaks its tag slots", { skip }, async () => {
      await api().tagLimits.set.mutate({ tag: "gpu", maxConcurrent: 1 });
      const run = await api().runs.create.mutate({ deployment: "gpu-fanout", parameters: { n: 2 } });
      const line = await waitUntil("a gpu task is running", async () =>
        (await api().logs.list.query({ flowRunId: run.id })).items.find((l) => l.message.startsWith("gpu-work")),
      );
      assert.equal((await api().tagLimits.list.query())[0]?.inUse, 1);
      process.kill(Number(line.message.split("pid=")[1]), "SIGKILL");
      const [ended] = await finish([run.id]);
      assert.equal(ended?.stateType, "CRASHED");
      assert.equal((await api().tagLimits.list.query())[0]?.inUse, 0);
      // The freed slot serves the next run.
      const next = await api().runs.create.mutate({ deployment: "gpu-fanout", parameters: { n: 1 } });
      assert.equal((await finish([next.id]))[0]?.stateType, "COMPLETED");
      await api().tagLimits.delete.mutate({ tag: "gpu" });
    });

    test("a work-pool limit caps the runs its agents hold at once", { skip }, async () => {
      const set = await ferry(["pool", "set", "default", "--concurrency-limit", "2"], {
        cwd: suite.project,
        env: suite.server.env,
      });
      assert.equal(set.code, 0, set.output);
      const runs = await Promise.all(
        Array.from({ length: 5 }, () => api().runs.create.mutate({ deployment: "sleepy", parameters: { ms: 300 } })),
      );
      const done = await finish(runs.map((r) => r.id));
      assert.ok(done.every((r) => r.stateType === "COMPLETED"));
      assert.ok(
        peakOverlap(
          done.map((r) => ({ start: r.states.find((s) => s.type === "PENDING")?.timestamp ?? null, end: r.endTime })),
        ) <= 2,
      );
      await api().workPools.set.mutate({ name: "default", concurrencyLimit: null });
    });

    test("a deployment limit enqueues, or cancels the new run, per its collision strategy", { skip }, async () => {
      const queued = await Promise.all(
        Array.from({ length: 3 }, () => api().runs.create.mutate({ deployment: "limited", parameters: { ms: 300 } })),
      );
      const done = await finish(queued.map((r) => r.id));
      assert.ok(done.every((r) => r.stateType === "COMPLETED"));
      assert.equal(peakOverlap(done.map((r) => ({ start: r.startTime, end: r.endTime }))), 1);

      const first = await api().runs.create.mutate({ deployment: "limited-cancel-new", parameters: { ms: 1_000 } });
      await waitUntil(
        "the first run is RUNNING",
        async () => (await api().runs.get.query({ id: first.id })).stateType === "RUNNING",
      );
      const second = await api().runs.create.mutate({ deployment: "limited-cancel-new", parameters: { ms: 10 } });
      const [a, b] = await finish([first.id, second.id]);
      assert.equal(a?.stateType, "COMPLETED");
      assert.equal(b?.stateType, "CANCELLED");
      assert.match(b?.stateMessage ?? "", /concurrency limit of 1 reached/);
    });

    test("a flow timeout ends the run TimedOut, kills its process and frees the slot", { skip }, async () => {
      await api().deployments.upsert.mutate({
        name: "sleepy-timeout",
        flowName: "sleepy",
        entrypoint: "flows/train.ts",
        paramsSchema: { type: "object" },
        timeoutMs: 700,
      });
      const run = await api().runs.create.mutate({ deployment: "sleepy-timeout", parameters: { ms: 60_000 } });
      const [done] = await finish([run.id]);
      assert.equal(done?.stateType, "FAILED");
      assert.equal(done?.stateName, "TimedOut");
      assert.match(done?.stateMessage ?? "", /exceeded its timeout of 700 ms/);
      await waitUntil("the slot is free", async () => (await api().agents.list.query()).every((a) => a.inUse === 0));
      await waitUntil("the process is gone", async () => !flowProcesses().some((p) => p.flowRunId === run.id));
    });

    test("an idempotency key returns the run it created first", { skip }, async () => {
      const args = ["run", "sleepy", "--param", "ms=1", "--idempotency-key", "nightly-2026-11-26", "--json"];
      const one = await ferry(args, { cwd: suite.project, env: suite.server.env });
      const two = await ferry(args, { cwd: suite.project, env: suite.server.env });
      const [r1, r2] = [JSON.parse(one.output), JSON.parse(two.output)] as { id: string; created: boolean }[];
      assert.equal(r1?.id, r2?.id);
      assert.deepEqual([r1?.created, r2?.created], [true, false]);
      const racing = await Promise.all(
        Array.from({ length: 5 }, () =>
          api().runs.create.mutate({ deployment: "sleepy", parameters: { ms: 1 }, idempotencyKey: "race" }),
        ),
      );
      assert.equal(new Set(racing.map((r) => r.id)).size, 1);
      assert.equal(racing.filter((r) => r.created).length, 1);
    });
  });
}
