import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { deployFixtures, PROVIDERS, postgresUnavailable, startAgent, useServer, waitUntil } from "./harness.ts";

for (const provider of PROVIDERS) {
  describe(`work pools (${provider})`, async () => {
    const skip = provider === "postgresql" ? await postgresUnavailable() : undefined;
    const suite = useServer(provider, skip, async (s) => {
      await Promise.all([
        startAgent(s.server, { name: "agent-a", pools: ["pool-a"], workDir: s.project, concurrency: 2 }),
        startAgent(s.server, { name: "agent-b", pools: ["pool-b"], workDir: s.project, concurrency: 2 }),
      ]);
      await deployFixtures(s, ["--pool", "pool-a"]);
      for (const pool of ["pool-b", "pool-c"]) {
        await s.server.api.deployments.upsert.mutate({
          name: `sleepy-${pool}`,
          flowName: "sleepy",
          entrypoint: "flows/train.ts",
          paramsSchema: { type: "object" },
          workPool: pool,
        });
      }
    });
    const project = () => suite.project;
    const server = () => suite.server;

    test("runs go only to an agent of their deployment's pool", { skip }, async () => {
      const runs = [];
      for (let i = 0; i < 3; i++) {
        runs.push(await server().api.runs.create.mutate({ deployment: "sleepy", parameters: { ms: 50 } }));
        runs.push(await server().api.runs.create.mutate({ deployment: "sleepy-pool-b", parameters: { ms: 50 } }));
      }
      for (const run of runs) {
        const done = await waitUntil(`run ${run.name} completes`, async () => {
          const r = await server().api.runs.get.query({ id: run.id });
          return r.stateType === "COMPLETED" ? r : undefined;
        });
        assert.equal(done.agentName, run.workPool === "pool-a" ? "agent-a" : "agent-b", `${run.name} in ${run.workPool}`);
      }
      const agents = await server().api.agents.list.query();
      assert.deepEqual(agents.map((a) => [a.name, a.pools, a.connected]).sort(), [
        ["agent-a", ["pool-a"], true],
        ["agent-b", ["pool-b"], true],
      ]);
    });

    test("a run whose pool has no agent waits, and starts as soon as one connects", { skip }, async () => {
      const run = await server().api.runs.create.mutate({ deployment: "sleepy-pool-c", parameters: { ms: 10 } });
      await new Promise((r) => setTimeout(r, 1_500));
      const waiting = await server().api.runs.get.query({ id: run.id });
      assert.equal(waiting.stateType, "SCHEDULED");
      assert.equal(waiting.agentId, null);
      const connectedAt = Date.now();
      await startAgent(server(), { name: "agent-c", pools: ["pool-c"], workDir: project() });
      const done = await waitUntil("the pool-c run completes", async () => {
        const r = await server().api.runs.get.query({ id: run.id });
        return r.stateType === "COMPLETED" ? r : undefined;
      });
      assert.equal(done.agentName, "agent-c");
      const pending = done.states.find((s) => s.type === "PENDING");
      assert.ok(
        pending && new Date(pending.timestamp).getTime() - connectedAt < 5_000,
        "dispatched right after the agent connected",
      );
    });

    test("an agent with capacity 2 runs at most 2 flows at once; the rest wait their turn", { skip }, async () => {
      const runs = await Promise.all(
        Array.from({ length: 5 }, () =>
          server().api.runs.create.mutate({ deployment: "sleepy-pool-b", parameters: { ms: 400 } }),
        ),
      );
      let peak = 0;
      await waitUntil(
        "all five complete",
        async () => {
          const states = await Promise.all(runs.map((r) => server().api.runs.get.query({ id: r.id })));
          peak = Math.max(peak, states.filter((s) => s.stateType === "RUNNING" || s.stateType === "PENDING").length);
          return states.every((s) => s.stateType === "COMPLETED");
        },
        60_000,
      );
      assert.ok(peak <= 2, `peak concurrency ${peak}`);
    });

    test("a draining agent finishes its run, takes no new work, and exits 0", { skip }, async () => {
      const agent = await startAgent(server(), { name: "agent-d", pools: ["pool-d"], workDir: project() });
      await server().api.deployments.upsert.mutate({
        name: "sleepy-pool-d",
        flowName: "sleepy",
        entrypoint: "flows/train.ts",
        paramsSchema: { type: "object" },
        workPool: "pool-d",
      });
      const first = await server().api.runs.create.mutate({ deployment: "sleepy-pool-d", parameters: { ms: 1_500 } });
      await waitUntil(
        "the first run is RUNNING",
        async () => (await server().api.runs.get.query({ id: first.id })).stateType === "RUNNING",
      );
      agent.child.kill("SIGTERM");
      await agent.waitFor(/draining/);
      await new Promise((r) => setTimeout(r, 200));
      const second = await server().api.runs.create.mutate({ deployment: "sleepy-pool-d", parameters: { ms: 10 } });
      const exit = await agent.exited;
      assert.equal(exit.code, 0, agent.output());
      assert.equal((await server().api.runs.get.query({ id: first.id })).stateType, "COMPLETED");
      const waiting = await server().api.runs.get.query({ id: second.id });
      assert.equal(waiting.stateType, "SCHEDULED");
      assert.deepEqual(
        waiting.states.map((s) => s.type),
        ["SCHEDULED"],
        "the new run was never bounced to the draining agent",
      );
    });
  });
}
