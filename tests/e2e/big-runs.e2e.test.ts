import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, test } from "node:test";
import {
  deployFixtures,
  PROVIDERS,
  type Proc,
  postgresUnavailable,
  REPO,
  startAgent,
  TcpProxy,
  useServer,
  waitUntil,
} from "./harness.ts";

// FERRY_E2E_BIG_RUN_TASKS=<n> runs a smaller map while developing; CI runs 100,000.
const N = Number(process.env.FERRY_E2E_BIG_RUN_TASKS ?? 100_000);
const GROUPS = Math.ceil(N / 1000);

for (const provider of PROVIDERS) {
  describe(`big dynamic runs (${provider})`, async () => {
    const skip = provider === "postgresql" ? await postgresUnavailable() : undefined;
    let proxy: TcpProxy;
    let agent: Proc;
    const suite = useServer(
      provider,
      skip,
      async (s) => {
        // The agent reaches the control plane through a proxy the test cuts mid-run.
        proxy = new TcpProxy(s.server.port);
        const apiUrl = await proxy.start();
        agent = await startAgent(s.server, { name: "big", workDir: s.project, concurrency: 1, apiUrl });
        await deployFixtures(s, [], "flows/scale.ts");
      },
      { fixtures: join(REPO, "tests/e2e/fixtures-scale") },
    );

    test(`${N} mapped tasks and a tree reduce: all persisted once, edges queryable, across an agent reconnect`, {
      skip,
      timeout: 600_000,
    }, async () => {
      const api = suite.server.api;
      const run = await api.runs.create.mutate({ deployment: "scale", parameters: { n: N } });
      const persisted = async () => (await api.taskRuns.page.query({ flowRunId: run.id, taskKey: "item", limit: 1 })).total;
      // Cut the agent's connection once a part of the map is stored: whatever was in flight is
      // replayed from its journal after it reconnects, and must be stored exactly once.
      await waitUntil("a tenth of the map is stored", async () => (await persisted()) >= N / 10, 300_000);
      proxy.cut(1_000);
      const done = await waitUntil(
        "the run completes",
        async () => {
          const r = await api.runs.get.query({ id: run.id });
          if (r.stateType === "FAILED" || r.stateType === "CRASHED")
            throw new Error(`run ended ${r.stateType}: ${r.stateMessage}`);
          return r.stateType === "COMPLETED" ? r : undefined;
        },
        600_000,
      );
      await proxy.close();
      assert.ok((agent.output().match(/connected to the control plane/g) ?? []).length >= 2, "the agent reconnected mid-run");

      const count = async (taskKey: string, state?: "COMPLETED") =>
        (await api.taskRuns.page.query({ flowRunId: run.id, taskKey, ...(state ? { state: [state] } : {}), limit: 1 })).total;
      assert.equal(await count("item"), N, "exactly N mapped task runs");
      assert.equal(await count("item", "COMPLETED"), N);
      assert.equal(await count("group-sum", "COMPLETED"), GROUPS);
      assert.equal(await count("total", "COMPLETED"), 1);
      const all = await api.taskRuns.page.query({ flowRunId: run.id, limit: 1 });
      assert.equal(all.total, N + GROUPS + 1, "no task run stored twice");
      assert.ok(done.endTime, "the run ended");

      const graph = await api.runs.graph.query({ id: run.id });
      assert.equal(graph.total, N + GROUPS + 1);
      assert.equal(graph.counts.COMPLETED, N + GROUPS + 1);
      // A task with many runs is drawn as one group node, a single task run as its own node.
      const node = (taskKey: string) => graph.nodes.find((n) => n.taskKey === taskKey)?.id;
      const edge = (from: string, to: string) => graph.edges.find((e) => e.source === node(from) && e.target === node(to))?.count;
      assert.equal(edge("item", "group-sum"), N, "every mapped result feeds one group sum");
      assert.equal(edge("group-sum", "total"), GROUPS);

      // The result: the sum of 0..N-1, computed from every mapped result (the flow logs it).
      const logs = await api.logs.list.query({ flowRunId: run.id });
      const line = logs.items.find((l) => l.message.startsWith("total="));
      assert.equal(line?.message, `total=${(N * (N - 1)) / 2}`);
    });
  });
}
