/**
 * `npm run test:chaos`: faults injected into real processes (kill -9 of agents, flow
 * processes and the control plane; network partitions through a TCP proxy; cancels),
 * each repeated with randomized timing, on SQLite and PostgreSQL. After every scenario the
 * suite checks that nothing is left running, nothing is duplicated, no slot leaked and no
 * flow process is orphaned. Figures are printed at the end.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { isTerminal, StateType } from "@ferry/sdk/protocol";
import {
  deployFixtures,
  flowProcesses,
  PROVIDERS,
  type Proc,
  postgresUnavailable,
  REPO,
  restartServer,
  startAgent,
  TcpProxy,
  useServer,
  waitUntil,
} from "../e2e/harness.ts";

const REPEATS = Number(process.env.CHAOS_REPEATS ?? 2);
const HEARTBEAT_MS = 1_000;
const LEASE_MS = 6_000;
const rand = (min: number, max: number) => Math.round(min + Math.random() * (max - min));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const figures: Record<string, number[]> = {};
const record = (name: string, value: number) => {
  figures[name] ??= [];
  figures[name].push(value);
};
after(() => {
  const summary = Object.fromEntries(
    Object.entries(figures).map(([k, v]) => [
      k,
      { n: v.length, min: Math.min(...v), median: [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)], max: Math.max(...v) },
    ]),
  );
  process.stdout.write(`chaos figures: ${JSON.stringify(summary)}\n`);
});

for (const provider of PROVIDERS) {
  describe(`chaos (${provider})`, async () => {
    const skip = provider === "postgresql" ? await postgresUnavailable() : undefined;
    const suite = useServer(provider, skip, (s) => deployFixtures(s, [], "flows/chaos.ts"), {
      fixtures: join(REPO, "tests/chaos/fixtures"),
      serverArgs: ["--heartbeat", `${HEARTBEAT_MS}ms`, "--lease", `${LEASE_MS}ms`],
    });
    const api = () => suite.server.api;
    let agentSeq = 0;
    const agents: Proc[] = [];
    const agent = async (options: { apiUrl?: string; name?: string } = {}) => {
      const proc = await startAgent(suite.server, {
        name: options.name ?? `chaos-${provider}-${++agentSeq}`,
        workDir: suite.project,
        extra: ["--reconnect-max", "1s", "--drain-timeout", "1s"],
        ...(options.apiUrl ? { apiUrl: options.apiUrl } : {}),
      });
      agents.push(proc);
      return proc;
    };
    const stopAgents = async () => {
      await Promise.all(agents.splice(0).map((a) => a.stop("SIGKILL")));
    };
    const run = async (deployment: string, parameters: Record<string, unknown>) =>
      api().runs.create.mutate({ deployment, parameters });
    const get = (id: string) => api().runs.get.query({ id });
    const until = async (id: string, what: string, ok: (r: Awaited<ReturnType<typeof get>>) => boolean, timeoutMs = 60_000) =>
      waitUntil(
        `${what} (run ${id})`,
        async () => {
          const r = await get(id);
          return ok(r) ? r : undefined;
        },
        timeoutMs,
      );
    const pidOf = async (id: string, attempt: number) => {
      const line = await waitUntil("the flow process's pid", async () =>
        (await api().logs.list.query({ flowRunId: id })).items.find((l) => l.attempt === attempt && l.message.startsWith("pid=")),
      );
      return Number(line.message.slice(4));
    };

    /** The invariants every scenario must leave behind. */
    const assertClean = async (id: string, expectedLines?: { attempt: number; count: number }) => {
      const root = await get(id);
      assert.ok(isTerminal(StateType.parse(root.stateType)), `run ${id} left ${root.stateType}`);
      const children = await api().runs.list.query({ parentFlowRunId: id });
      for (const c of children.items)
        assert.ok(isTerminal(StateType.parse(c.stateType)), `child run ${c.id} left ${c.stateType}`);
      const { items: tasks } = await api().taskRuns.list.query({ flowRunId: id });
      for (const t of tasks) assert.ok(isTerminal(StateType.parse(t.stateType)), `task run ${t.name} left ${t.stateType}`);
      // No state applied twice: each (attempt, state) at most once, SCHEDULED aside (re-queues).
      const seen = new Set<string>();
      for (const s of root.states) {
        if (s.type === "SCHEDULED") continue;
        const key = `${s.attempt}:${s.type}`;
        assert.ok(!seen.has(key), `state ${key} recorded twice: ${root.states.map((x) => `${x.attempt}:${x.type}`).join(" ")}`);
        seen.add(key);
      }
      const { items: logs } = await api().logs.list.query({ flowRunId: id, limit: 5000 });
      assert.equal(new Set(logs.map((l) => `${l.flowRunId}:${l.attempt}:${l.seq}`)).size, logs.length, "a log line stored twice");
      if (expectedLines) {
        for (let i = 0; i < expectedLines.count; i++) {
          const n: number = logs.filter((l) => l.attempt === expectedLines.attempt && l.message === `step ${i}`).length;
          assert.equal(n, 1, `"step ${i}" of attempt ${expectedLines.attempt} appears ${n} times`);
        }
      }
      await waitUntil("no flow process of the run is left", async () => !flowProcesses().some((p) => p.flowRunId === id), 15_000);
      await waitUntil("no slot is left held", async () => (await api().agents.list.query()).every((a) => a.inUse === 0), 15_000);
    };

    for (let rep = 1; rep <= REPEATS; rep++) {
      test(`kill -9 of the agent mid-run: CRASHED within the lease, retried and COMPLETED on another agent (#${rep})`, {
        skip,
      }, async () => {
        const [a, b] = [await agent(), await agent()];
        const r = await run("steady", { steps: 8, stepMs: 250 });
        const running = await until(r.id, "RUNNING", (x) => x.stateType === "RUNNING");
        const victim = running.agentName === a.child.spawnargs[a.child.spawnargs.indexOf("--name") + 1] ? a : b;
        await sleep(rand(100, 1200));
        const killedAt = Date.now();
        victim.child.kill("SIGKILL");
        // Its flow processes, running or waiting in its warm pool, notice the closed IPC channel and exit.
        const victimName = victim.child.spawnargs[victim.child.spawnargs.indexOf("--name") + 1];
        await waitUntil("no flow process of the killed agent is left", async () =>
          flowProcesses().every((p) => p.agent !== victimName),
        );
        const crashed = await until(r.id, "CRASHED", (x) => x.states.some((s) => s.type === "CRASHED"), LEASE_MS * 3);
        const crashState = crashed.states.find((s) => s.type === "CRASHED");
        assert.match(crashState?.message ?? "", /lease expired/);
        record("deadAgentDetectionMs", new Date(crashState?.timestamp ?? 0).getTime() - killedAt);
        const done = await until(r.id, "COMPLETED", (x) => x.stateType === "COMPLETED");
        assert.equal(done.attempt, 2);
        assert.notEqual(done.agentName, running.agentName);
        await assertClean(r.id, { attempt: 2, count: 8 });
        await stopAgents();
      });

      test(`kill -9 of the flow process: reported at once, retried and COMPLETED (#${rep})`, { skip }, async () => {
        await agent();
        const r = await run("steady", { steps: 6, stepMs: 250 });
        const pid = await pidOf(r.id, 1);
        await sleep(rand(50, 800));
        const killedAt = Date.now();
        process.kill(pid, "SIGKILL");
        const crashed = await until(r.id, "CRASHED", (x) => x.states.some((s) => s.type === "CRASHED"), 10_000);
        const crashState = crashed.states.find((s) => s.type === "CRASHED");
        assert.match(crashState?.message ?? "", /killed by SIGKILL/);
        record("flowProcessCrashDetectionMs", new Date(crashState?.timestamp ?? 0).getTime() - killedAt);
        const done = await until(r.id, "COMPLETED", (x) => x.stateType === "COMPLETED");
        assert.equal(done.attempt, 2);
        await assertClean(r.id, { attempt: 2, count: 6 });
        await stopAgents();
      });

      test(`kill -9 of the control plane mid-run and restart: COMPLETED, every log line once (#${rep})`, { skip }, async () => {
        const a = await agent();
        const r = await run("steady", { steps: 10, stepMs: 250 });
        await until(r.id, "RUNNING", (x) => x.stateType === "RUNNING");
        await sleep(rand(200, 1200));
        suite.server.proc.child.kill("SIGKILL");
        await suite.server.proc.exited;
        await sleep(rand(200, 1500));
        await restartServer(suite.server);
        const done = await until(r.id, "COMPLETED", (x) => x.stateType === "COMPLETED");
        const history = done.states.map((s) => `${s.attempt}:${s.name}${s.message ? ` (${s.message})` : ""}`).join(" → ");
        assert.equal(done.attempt, 1, `${history}\nagent output:\n${a.output().slice(-4000)}`);
        assert.ok(!done.states.some((s) => s.type === "CRASHED"), `the run must survive the restart without a crash: ${history}`);
        await assertClean(r.id, { attempt: 1, count: 10 });
        await stopAgents();
      });

      test(`a partition shorter than the lease: COMPLETED, nothing lost or duplicated (#${rep})`, { skip }, async () => {
        const proxy = new TcpProxy(suite.server.port);
        const a = await agent({ apiUrl: await proxy.start() });
        const r = await run("steady", { steps: 10, stepMs: 250 });
        await until(r.id, "RUNNING", (x) => x.stateType === "RUNNING");
        await sleep(rand(100, 800));
        proxy.cut(rand(HEARTBEAT_MS + 500, LEASE_MS / 2));
        const done = await until(r.id, "COMPLETED", (x) => x.stateType === "COMPLETED");
        assert.equal(done.attempt, 1);
        assert.ok(!done.states.some((s) => s.type === "CRASHED"));
        await assertClean(r.id, { attempt: 1, count: 10 });
        const replayed = [...a.output().matchAll(/"unacknowledged":(\d+)/g)].map((m) => Number(m[1]));
        record(
          "reportsReplayedAfterPartition",
          replayed.reduce((x, y) => x + y, 0),
        );
        await stopAgents();
        await proxy.close();
      });

      test(`a partition longer than the lease: attempt 1 CRASHED and fenced, attempt 2 COMPLETED (#${rep})`, {
        skip,
      }, async () => {
        const proxy = new TcpProxy(suite.server.port);
        await agent({ apiUrl: await proxy.start() });
        const r = await run("steady", { steps: 24, stepMs: 250 });
        await until(r.id, "RUNNING", (x) => x.stateType === "RUNNING");
        const other = await agent();
        await sleep(rand(100, 600));
        proxy.cut(LEASE_MS + rand(2_000, 4_000));
        const done = await until(r.id, "COMPLETED", (x) => x.stateType === "COMPLETED", 90_000);
        assert.equal(done.attempt, 2);
        assert.equal(done.agentName, other.child.spawnargs[other.child.spawnargs.indexOf("--name") + 1]);
        const attempt1 = done.states.filter((s) => s.attempt === 1).map((s) => s.type);
        assert.ok(attempt1.includes("CRASHED"), attempt1.join(","));
        assert.ok(
          !attempt1.includes("COMPLETED") && !attempt1.includes("CANCELLED"),
          `attempt 1 wrote after being fenced: ${attempt1.join(",")}`,
        );
        // The old attempt is stopped once its agent is back.
        await waitUntil(
          "the partitioned agent's old process is gone",
          async () => !flowProcesses().some((p) => p.flowRunId === r.id),
          30_000,
        );
        await assertClean(r.id, { attempt: 2, count: 24 });
        await stopAgents();
        await proxy.close();
      });

      test(`cancel a running flow with a child flow: all CANCELLED, slot freed, process gone (#${rep})`, { skip }, async () => {
        await agent();
        const r = await run("parent-with-child", {});
        const childRun = await waitUntil("the child flow run is RUNNING", async () => {
          const { items } = await api().runs.list.query({ parentFlowRunId: r.id });
          return items.find((c) => c.stateType === "RUNNING");
        });
        await sleep(rand(50, 500));
        const cancelledAt = Date.now();
        await api().runs.cancel.mutate({ id: r.id });
        const done = await until(r.id, "CANCELLED", (x) => x.stateType === "CANCELLED", 20_000);
        record("timeToCancelMs", new Date(done.states.at(-1)?.timestamp ?? 0).getTime() - cancelledAt);
        assert.equal((await get(childRun.id)).stateType, "CANCELLED");
        await assertClean(r.id);
        await stopAgents();
      });
    }
  });
}
