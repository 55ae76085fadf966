import assert from "node:assert/strict";
import { appendFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import {
  deployFixtures,
  ferry,
  flowProcesses,
  PROVIDERS,
  type Proc,
  postgresUnavailable,
  REPO,
  type Suite,
  startAgent,
  useServer,
  waitUntil,
} from "./harness.ts";

/** What the fixture's flows log about the process a run ran in. */
interface Probe {
  pid: number;
  processStartedAt: number;
  bodyAt: number;
  moduleRuns: number;
  version: string;
  envRunId: string;
  contextRunId: string;
  instanceCalls?: number;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

const idleOf = (agent: string) => flowProcesses().filter((p) => p.agent === agent && p.idle);

test("ferry agent start refuses bad --warm-pool and --max-runs-per-process values", async () => {
  const bad = await ferry(
    ["agent", "start", "--api", "http://127.0.0.1:1", "--token", "fry_x", "--warm-pool", "-1", "--max-runs-per-process", "0"],
    { timeoutMs: 30_000 },
  );
  assert.notEqual(bad.code, 0);
  assert.match(bad.output, /--warm-pool/);
  assert.match(bad.output, /--max-runs-per-process/);
  const notNumber = await ferry(["agent", "start", "--api", "http://127.0.0.1:1", "--token", "fry_x", "--warm-pool", "lots"], {
    timeoutMs: 30_000,
  });
  assert.notEqual(notNumber.code, 0);
  assert.match(notNumber.output, /--warm-pool/);
});

for (const provider of PROVIDERS) {
  describe(`warm starts (${provider})`, async () => {
    const skip = provider === "postgresql" ? await postgresUnavailable() : undefined;
    const agents: Record<string, Proc> = {};
    const suite: Suite = useServer(
      provider,
      skip,
      async (s) => {
        await deployFixtures(s, ["--pool", "warm1"], "flows/warm.ts");
        for (const [pool, suffix] of [
          ["warm2", "-2"],
          ["warm3", "-3"],
        ] as const) {
          for (const flowName of ["warm-probe", "warm-probe-class"]) {
            await s.server.api.deployments.upsert.mutate({
              name: `${flowName}${suffix}`,
              flowName,
              entrypoint: "flows/warm.ts",
              paramsSchema: { type: "object" },
              workPool: pool,
            });
          }
        }
        // warm-1: a fresh process per run; warm-2: a process may serve two runs.
        agents.one = await startAgent(s.server, {
          name: "warm-1",
          pools: ["warm1"],
          workDir: s.project,
          extra: ["--warm-pool", "2"],
        });
        agents.two = await startAgent(s.server, {
          name: "warm-2",
          pools: ["warm2"],
          workDir: s.project,
          extra: ["--warm-pool", "2", "--max-runs-per-process", "2"],
        });
      },
      { fixtures: join(REPO, "tests/e2e/fixtures-warm") },
    );
    const api = () => suite.server.api;

    const runProbe = async (deployment: string, parameters: Record<string, unknown> = {}, expect = "COMPLETED") => {
      const createdAt = Date.now();
      const run = await api().runs.create.mutate({ deployment, parameters });
      const done = await waitUntil(`run ${run.name} ends`, async () => {
        const r = await api().runs.get.query({ id: run.id });
        return ["COMPLETED", "FAILED", "CRASHED", "CANCELLED"].includes(r.stateType) ? r : undefined;
      });
      assert.equal(done.stateType, expect, done.stateMessage ?? "");
      const line = await waitUntil("the probe line", async () =>
        (await api().logs.list.query({ flowRunId: run.id })).items.find((l) => l.message.startsWith("probe ")),
      );
      const probe = JSON.parse(line.message.slice("probe ".length)) as Probe;
      assert.equal(probe.envRunId, run.id, "the run sees its own id in FERRY_FLOW_RUN_ID");
      assert.equal(probe.contextRunId, run.id, "and in its run context");
      return { run, probe, createdAt };
    };
    /** Runs once (seeding the pool for the entrypoint) and waits until `n` prepared processes wait. */
    const warmUp = async (agent: string, deployment: string, n: number) => {
      if (idleOf(agent).length < n) await runProbe(deployment);
      return waitUntil(`${n} warm processes of ${agent} are idle`, async () => {
        const idle = idleOf(agent);
        return idle.length >= n ? idle : undefined;
      });
    };

    test("a run starts in a process that was started and loaded before the run was created", { skip }, async () => {
      const idle = await warmUp("warm-1", "warm-probe", 2);
      const { probe, createdAt } = await runProbe("warm-probe");
      assert.ok(
        idle.some((p) => p.pid === probe.pid),
        `pid ${probe.pid} was one of the idle ${idle.map((p) => p.pid)}`,
      );
      assert.ok(probe.processStartedAt < createdAt, "the process existed before the run");
      assert.equal(probe.moduleRuns, 1);
      assert.equal(probe.version, "v1");
      assert.match(agents.one?.output() ?? "", /"warm":true[^\n]*starting flow run/);
    });

    test("with one run per process (the default), consecutive runs never share a process", { skip }, async () => {
      const pids: number[] = [];
      for (let i = 0; i < 3; i++) {
        await warmUp("warm-1", "warm-probe", 1);
        const { probe } = await runProbe("warm-probe");
        assert.equal(probe.moduleRuns, 1, "module state starts fresh");
        pids.push(probe.pid);
        await waitUntil(`process ${probe.pid} has exited`, async () => !alive(probe.pid));
      }
      assert.equal(new Set(pids).size, 3, `pids ${pids}`);
    });

    test("with --max-runs-per-process 2, a process serves two completed runs; user module state persists, SDK state does not", {
      skip,
    }, async () => {
      const idle = await warmUp("warm-2", "warm-probe-class-2", 1);
      const first = await runProbe("warm-probe-class-2");
      assert.ok(idle.some((p) => p.pid === first.probe.pid));
      assert.equal(first.probe.moduleRuns, 1);
      const second = await runProbe("warm-probe-class-2");
      assert.equal(second.probe.pid, first.probe.pid, "the second run reused the process");
      assert.equal(second.probe.moduleRuns, 2, "a module-level variable of user code persists (why reuse is opt-in)");
      assert.equal(second.probe.instanceCalls, 1, "the @flow class is instantiated afresh for every run");
      assert.notEqual(second.run.id, first.run.id);
      await waitUntil("the process ends after its second run", async () => !alive(first.probe.pid));
      const third = await runProbe("warm-probe-class-2");
      assert.notEqual(third.probe.pid, first.probe.pid);
      assert.equal(third.probe.moduleRuns, 1);
    });

    test("a run that fails never hands its process to another run", { skip }, async () => {
      await warmUp("warm-2", "warm-probe-2", 1);
      const failed = await runProbe("warm-probe-2", { fail: true }, "FAILED");
      await waitUntil("the failed run's process exits", async () => !alive(failed.probe.pid));
      const next = await runProbe("warm-probe-2");
      assert.notEqual(next.probe.pid, failed.probe.pid);
    });

    test("changed code on disk is never run by an old process: an import or the entrypoint itself", { skip }, async () => {
      const before = await warmUp("warm-1", "warm-probe", 2);
      writeFileSync(join(suite.project, "flows/version.ts"), 'export const CODE_VERSION = "v2";\n');
      const afterImport = await runProbe("warm-probe");
      assert.equal(afterImport.probe.version, "v2");
      assert.ok(!before.some((p) => p.pid === afterImport.probe.pid), "not a process that loaded v1");
      await waitUntil("the stale processes are ended", async () => before.every((p) => !alive(p.pid)));

      const fresh = await warmUp("warm-1", "warm-probe", 2);
      const touchedAt = Date.now();
      appendFileSync(join(suite.project, "flows/warm.ts"), "\n// deployed again\n");
      const afterTouch = await runProbe("warm-probe");
      assert.equal(afterTouch.probe.version, "v2");
      assert.ok(!fresh.some((p) => p.pid === afterTouch.probe.pid), "not a process that loaded the old entrypoint");
      assert.ok(afterTouch.probe.processStartedAt >= touchedAt - 1_000, "a process started after the change");
    });

    test("a warm process killed while idle: the next run still completes (cold), and the pool refills", { skip }, async () => {
      const idle = await warmUp("warm-1", "warm-probe", 2);
      for (const p of idle) process.kill(p.pid, "SIGKILL");
      const { probe } = await runProbe("warm-probe");
      assert.ok(!idle.some((p) => p.pid === probe.pid));
      await agents.one?.waitFor(/warm process died while idle/);
      await waitUntil("the pool refills", async () => idleOf("warm-1").length >= 2);
    });

    test("agent stopped with SIGTERM or killed with SIGKILL: none of its flow processes is left", { skip }, async () => {
      for (const signal of ["SIGTERM", "SIGKILL"] as const) {
        const name = `warm-3-${signal}`;
        const agent = await startAgent(suite.server, {
          name,
          pools: ["warm3"],
          workDir: suite.project,
          extra: ["--warm-pool", "2", "--drain-timeout", "500ms"],
        });
        await warmUp(name, "warm-probe-3", 2);
        // One run in progress as well as the idle ones.
        const run = await api().runs.create.mutate({ deployment: "warm-probe-3", parameters: { sleepMs: 60_000 } });
        await waitUntil(
          "the long run is RUNNING",
          async () => (await api().runs.get.query({ id: run.id })).stateType === "RUNNING",
        );
        // The pool refills the process the run took in the background.
        await waitUntil(
          "the run's process and two idle ones",
          async () => flowProcesses().filter((p) => p.agent === name).length >= 3,
        );
        await agent.stop(signal);
        await waitUntil(
          `no flow process of ${name} is left after ${signal}`,
          async () => flowProcesses().every((p) => p.agent !== name),
          15_000,
        );
        if (signal === "SIGTERM") assert.equal((await agent.exited).code, 0, agent.output());
        await api()
          .runs.cancel.mutate({ id: run.id })
          .catch(() => undefined);
      }
    });
  });
}
