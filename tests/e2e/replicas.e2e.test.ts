/**
 * Several control-plane replicas on one PostgreSQL database, as separate `ferry server start`
 * processes: a run created through one replica reaches an agent connected to the other; a
 * cancel and a token revocation made through one reach agents on the other; exactly one
 * replica leads the background loops; killing a replica (kill -9) moves its agents to the
 * other (agents list both URLs) and its leadership too, losing and doubling nothing.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { FerryClient } from "@ferry/control-plane/client";
import {
  createDatabase,
  createToken,
  ferry,
  makeProject,
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
  waitUntil,
} from "./harness.ts";

const ARGS = ["--heartbeat", "500ms", "--lease", "3s"];

interface Replica {
  proc: Proc;
  url: string;
  api: FerryClient;
}

let first: Server;

/** A replica's /healthz as an operator sees it (the installation's figures need a token of the default workspace). */
async function health(url: string): Promise<{ leader: boolean; replicaId: string; agents: number } | undefined> {
  try {
    const res = await fetch(new URL("/healthz", url), { headers: { authorization: `Bearer ${first.adminToken}` } });
    return (await res.json()) as { leader: boolean; replicaId: string; agents: number };
  } catch {
    return undefined; // a killed replica
  }
}

describe("control-plane replicas on one PostgreSQL database", async () => {
  const skip = await postgresUnavailable();
  let project = "";
  let database: TestDatabase | undefined;
  let a: Replica;
  let b: Replica;

  before(async () => {
    if (skip) return;
    project = makeProject();
    database = await createDatabase("postgresql", project);
    first = await startServer(database.url, ARGS);
    a = { proc: first.proc, url: first.url, api: first.api };
    b = await startReplica(first);
    const deployed = await ferry(["deploy", "flows/train.ts"], { cwd: project, env: first.env });
    assert.equal(deployed.code, 0, deployed.output);
  });
  after(async () => {
    await stopAll();
    if (skip) return;
    await database?.drop();
    removeDir(project);
  });

  test("exactly one replica leads the background loops", { skip }, async () => {
    const leaders = await waitUntil("a leader is elected", async () => {
      const states = await Promise.all([health(a.url), health(b.url)]);
      const count = states.filter((s) => s?.leader).length;
      return count >= 1 && states;
    });
    assert.deepEqual(
      leaders.map((s) => s?.leader),
      [true, false],
      "the first replica to start leads; the other waits for the lock",
    );
    assert.notEqual(leaders[0]?.replicaId, leaders[1]?.replicaId);
  });

  test("a run created through A runs on an agent connected to B; a cancel through A reaches it", { skip }, async () => {
    const agent = await startAgent(first, { name: "on-b", workDir: project, apiUrl: b.url, pools: ["default"] });
    const agents = await a.api.agents.list.query();
    const listed = agents.find((x) => x.name === "on-b");
    assert.equal(listed?.connected, true, "replica A shows the agent connected to B as connected");

    const run = await a.api.runs.create.mutate({ deployment: "fanout", parameters: { n: 12 } });
    const done = await waitUntil(
      "the run completes",
      async () => {
        const r = await a.api.runs.get.query({ id: run.id });
        return ["COMPLETED", "FAILED", "CRASHED"].includes(r.stateType) && r;
      },
      60_000,
    );
    assert.equal(done.stateType, "COMPLETED", done.stateMessage ?? "");
    assert.equal(done.attempt, 1);
    const tasks = await b.api.taskRuns.list.query({ flowRunId: run.id, limit: 100 });
    assert.equal(tasks.items.filter((t) => t.taskKey.startsWith("square")).length, 12);

    // Cancel through A: the run.cancel goes out through B, which holds the agent's socket.
    const sleepy = await a.api.runs.create.mutate({ deployment: "sleepy", parameters: { ms: 120_000 } });
    await waitUntil(
      "the long run is running",
      async () => (await b.api.runs.get.query({ id: sleepy.id })).stateType === "RUNNING",
    );
    await a.api.runs.cancel.mutate({ id: sleepy.id });
    const cancelled = await waitUntil(
      "the long run is cancelled",
      async () => {
        const r = await a.api.runs.get.query({ id: sleepy.id });
        return r.stateType === "CANCELLED" && r;
      },
      30_000,
    );
    assert.equal(cancelled.attempt, 1);
    await agent.stop();
  });

  test("a token revoked through A closes its agent's socket on B", { skip }, async () => {
    const token = await createToken(first, ["agent"], "to-revoke");
    const agent = await startAgent(first, { name: "revoked", workDir: project, apiUrl: b.url, token: token.secret });
    await a.api.tokens.revoke.mutate({ id: token.id });
    const exited = await Promise.race([agent.exited, new Promise<null>((r) => setTimeout(() => r(null), 15_000))]);
    assert.ok(exited, "the agent was not disconnected");
    assert.notEqual(exited.code, 0);
    assert.match(agent.output(), /4008|revoked/);
  });

  test("kill -9 of the leading replica: its agents and its background loops move to the other", { skip }, async () => {
    const dir = makeProject(join(REPO, "tests/chaos/fixtures"));
    try {
      for (const pool of ["both", "only-a"]) {
        await b.api.deployments.upsert.mutate({
          name: `steady-${pool}`,
          flowName: "steady",
          entrypoint: "flows/chaos.ts",
          paramsSchema: { type: "object" },
          workPool: pool,
          retries: 1,
        });
      }
      // Failover agent: A first, then B. Stranded agent: only A, so its run is lost with A.
      const mover = await startAgent(first, { name: "mover", workDir: dir, apiUrl: `${a.url},${b.url}`, pools: ["both"] });
      const stranded = await startAgent(first, { name: "stranded", workDir: dir, apiUrl: a.url, pools: ["only-a"] });
      const steps = 30;
      const moving = await b.api.runs.create.mutate({ deployment: "steady-both", parameters: { steps, stepMs: 200 } });
      const lost = await b.api.runs.create.mutate({ deployment: "steady-only-a", parameters: { steps: 1000, stepMs: 200 } });
      await waitUntil("both runs are running", async () => {
        const states = await Promise.all([moving, lost].map((r) => b.api.runs.get.query({ id: r.id })));
        return states.every((s) => s.stateType === "RUNNING");
      });
      await new Promise((r) => setTimeout(r, 1_500));
      assert.equal((await health(a.url))?.leader, true);

      a.proc.child.kill("SIGKILL");
      await a.proc.exited;

      // B takes the lead as soon as A's session ends.
      await waitUntil("B leads", async () => (await health(b.url))?.leader === true, 15_000);
      // The mover reconnects to B and finishes its run in the same attempt: nothing lost.
      await mover.waitFor(/connected to the control plane[\s\S]*connected to the control plane/, 15_000);
      const done = await waitUntil(
        "the moving run completes",
        async () => {
          const r = await b.api.runs.get.query({ id: moving.id });
          return ["COMPLETED", "FAILED", "CRASHED", "CANCELLED"].includes(r.stateType) && r;
        },
        60_000,
      );
      assert.equal(done.stateType, "COMPLETED", done.stateMessage ?? "");
      assert.equal(done.attempt, 1, "the run moved with its agent, it was not retried");
      const logs = await b.api.logs.list.query({ flowRunId: moving.id, limit: 1000 });
      for (let i = 0; i < steps; i++) {
        const lines = logs.items.filter((l) => l.message === `step ${i}`);
        assert.equal(lines.length, 1, `"step ${i}" logged ${lines.length} times`);
      }
      const keys = done.states.map((s) => `${s.attempt}:${s.type}`);
      assert.equal(new Set(keys).size, keys.length, `a state recorded twice: ${keys.join(", ")}`);

      // The stranded agent cannot reach B: B's lease reaper (it leads now) ends its run.
      const crashed = await waitUntil(
        "the stranded run is declared lost by B",
        async () => {
          const history = (await b.api.runs.get.query({ id: lost.id })).states;
          return history.some((s) => s.type === "CRASHED") && history;
        },
        30_000,
      );
      assert.ok(crashed.some((s) => /lease expired/.test(s.message ?? "")));
      await stranded.stop();
      await mover.stop();
    } finally {
      removeDir(dir);
    }
  });
});
