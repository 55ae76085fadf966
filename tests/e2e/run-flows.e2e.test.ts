import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { deployFixtures, ferry, PROVIDERS, postgresUnavailable, startAgent, useServer, waitUntil } from "./harness.ts";

for (const provider of PROVIDERS) {
  describe(`flows end to end on ${provider}`, async () => {
    const skip = provider === "postgresql" ? await postgresUnavailable() : undefined;
    const suite = useServer(provider, skip, async (s) => {
      await startAgent(s.server, { name: "agent-default", workDir: s.project });
      await deployFixtures(s);
    });
    const project = () => suite.project;
    const server = () => suite.server;

    test("ferry deploy registers every exported flow with its parameter schema", { skip }, async () => {
      const deployments = await server().api.deployments.list.query();
      const names = deployments.map((d) => d.name).sort();
      assert.deepEqual(names, [
        "child",
        "failing",
        "fanout",
        "gpu-fanout",
        "limited",
        "limited-cancel-new",
        "resumable",
        "sleepy",
        "train",
      ]);
      const train = deployments.find((d) => d.name === "train");
      assert.equal(train?.entrypoint, "flows/train.ts");
      assert.equal(train?.workPool, "default");
      const schema = train?.paramsSchema as { properties?: Record<string, unknown>; required?: string[] };
      assert.deepEqual(schema.required, ["grid"]);
      assert.ok(schema.properties?.grid);
    });

    test("a decorated flow runs on the agent: fan-out, edges, retry, logs", { skip }, async () => {
      const result = await ferry(["run", "train", "--param", "grid=[0.1,0.01,0.001]", "--wait"], {
        cwd: project(),
        env: server().env,
      });
      assert.equal(result.code, 0, result.output);
      assert.match(result.output, /is Completed \(COMPLETED\)/);
      assert.match(result.output, /best lr 0\.01/);

      const page = await server().api.runs.list.query({ deployment: "train", limit: 1 });
      const run = page.items[0];
      assert.ok(run);
      assert.equal(run.stateType, "COMPLETED");
      const detail = await server().api.runs.get.query({ id: run.id });
      assert.deepEqual(
        detail.states.map((s) => s.type),
        ["SCHEDULED", "PENDING", "RUNNING", "COMPLETED"],
      );
      assert.equal(detail.agentName, "agent-default");

      const { items: taskRuns } = await server().api.taskRuns.list.query({ flowRunId: run.id });
      const trains = taskRuns.filter((t) => t.taskKey === "trainOne");
      assert.equal(trains.length, 3);
      assert.deepEqual(trains.map((t) => t.dynamicKey).sort(), [0, 1, 2]);
      const pick = taskRuns.find((t) => t.taskKey === "pickBest");
      const flakyRun = taskRuns.find((t) => t.taskKey === "flaky");
      assert.ok(pick && flakyRun);
      assert.equal(taskRuns.length, 5);
      assert.ok(taskRuns.every((t) => t.stateType === "COMPLETED"));

      const edges = (await server().api.taskRuns.edges.query({ flowRunId: run.id })).items;
      const intoPick = edges.filter((e) => e.downstreamId === pick.id).map((e) => e.upstreamId);
      assert.deepEqual(intoPick.sort(), trains.map((t) => t.id).sort());
      assert.deepEqual(
        edges.filter((e) => e.downstreamId === flakyRun.id).map((e) => e.upstreamId),
        [pick.id],
      );

      // The flaky task failed once and succeeded on its retry.
      const flakyDetail = await server().api.taskRuns.get.query({ id: flakyRun.id });
      assert.equal(flakyDetail.attempt, 2);
      assert.deepEqual(
        flakyDetail.states.map((s) => s.name),
        ["Pending", "Running", "AwaitingRetry", "Retrying", "Completed"],
      );
      assert.match(flakyDetail.states[2]?.message ?? "", /transient failure/);

      const { items: logs } = await server().api.logs.list.query({ flowRunId: run.id });
      const messages = logs.map((l) => l.message);
      assert.ok(messages.includes("training lr=0.1"), messages.join("\n"));
      assert.ok(messages.includes("best lr 0.01"), messages.join("\n"));
      const trainLog = logs.find((l) => l.message === "training lr=0.1");
      assert.ok(trainLog?.taskRunId && trains.some((t) => t.id === trainLog.taskRunId));
      // Each (attempt, seq) is stored once.
      assert.equal(new Set(logs.map((l) => `${l.attempt}:${l.seq}`)).size, logs.length);
    });

    test("task.map fans out one task run per item, with a child flow run", { skip }, async () => {
      const result = await ferry(["run", "fanout", "--param", "n=25", "--wait", "--json"], { cwd: project(), env: server().env });
      assert.equal(result.code, 0, result.output);
      const page = await server().api.runs.list.query({ deployment: "fanout", limit: 1 });
      const run = page.items[0];
      assert.ok(run);
      const { items: taskRuns } = await server().api.taskRuns.list.query({ flowRunId: run.id });
      const squares = taskRuns.filter((t) => t.taskKey === "square");
      assert.equal(squares.length, 25);
      const wrapper = taskRuns.find((t) => t.taskKey === "flow:child");
      assert.ok(wrapper?.childFlowRunId);
      assert.equal(taskRuns.length, 26);
      const edges = (await server().api.taskRuns.edges.query({ flowRunId: run.id })).items;
      assert.equal(edges.filter((e) => e.downstreamId === wrapper.id).length, 25);

      const children = await server().api.runs.list.query({ parentFlowRunId: run.id });
      assert.equal(children.items.length, 1);
      const childRun = children.items[0];
      assert.equal(childRun?.id, wrapper.childFlowRunId);
      assert.equal(childRun?.stateType, "COMPLETED");
      const { items: childTasks } = await server().api.taskRuns.list.query({ flowRunId: wrapper.childFlowRunId });
      assert.deepEqual(
        childTasks.map((t) => t.taskKey),
        ["total"],
      );
      const { items: logs } = await server().api.logs.list.query({ flowRunId: run.id });
      assert.ok(logs.some((l) => l.message === "child flow got 25 items" && l.flowRunId === childRun?.id));
      assert.ok(logs.some((l) => l.message === "sum of squares below 25 is 4900"));
      // --json streams one JSON object per line.
      const lines = result.output
        .trim()
        .split("\n")
        .filter((l) => l.startsWith("{"));
      assert.ok(lines.some((l) => JSON.parse(l).kind === "state" && JSON.parse(l).type === "COMPLETED"));
    });

    test("a retried flow run reuses the results of its first attempt (Cached); the control plane keeps only a reference", {
      skip,
    }, async () => {
      const result = await ferry(["run", "resumable", "--wait"], { cwd: project(), env: server().env });
      assert.equal(result.code, 0, result.output);
      const run = (await server().api.runs.list.query({ deployment: "resumable", limit: 1 })).items[0];
      assert.equal(run?.attempt, 2);
      const { items: tasks } = await server().api.taskRuns.list.query({ flowRunId: run?.id ?? "" });
      assert.deepEqual(
        tasks.map((t) => [t.attempt, t.stateName]),
        [
          [1, "Completed"],
          [1, "Cached"],
        ],
      );
      const [first, cached] = tasks;
      assert.match(first?.resultRef ?? "", /^file:[0-9a-f]{64}\.json$/);
      assert.equal(cached?.resultRef, first?.resultRef);
      assert.ok(existsSync(join(project(), ".ferry", "results", (first?.resultRef ?? "").slice(5))));
      const { items: logs } = await server().api.logs.list.query({ flowRunId: run?.id ?? "" });
      assert.equal(logs.filter((l) => l.message === "computing 7").length, 1);
    });

    test("a failing flow ends FAILED and ferry run exits non-zero", { skip }, async () => {
      const result = await ferry(["run", "failing", "--wait"], { cwd: project(), env: server().env });
      assert.equal(result.code, 1, result.output);
      assert.match(result.output, /this flow always fails/);
    });

    test("runs list, runs get and logs show history; --json is machine-readable", { skip }, async () => {
      const list = await ferry(["runs", "list", "--json"], { cwd: project(), env: server().env });
      assert.equal(list.code, 0, list.output);
      const parsed = JSON.parse(list.output) as { items: { id: string; stateType: string }[] };
      assert.ok(parsed.items.length >= 3);
      const id = parsed.items.find((r) => r.stateType === "COMPLETED")?.id;
      assert.ok(id);
      const get = await ferry(["runs", "get", id], { cwd: project(), env: server().env });
      assert.match(get.output, /state: Completed/);
      const logs = await ferry(["logs", id, "--json"], { cwd: project(), env: server().env });
      assert.ok((JSON.parse(logs.output) as unknown[]).length > 0);
      const table = await ferry(["runs", "list"], { cwd: project(), env: server().env });
      assert.match(table.output, /^ID\s+NAME\s+DEPLOYMENT\s+STATE/m);
    });

    test("ferry runs cancel stops a running flow", { skip }, async () => {
      const run = await server().api.runs.create.mutate({ deployment: "sleepy", parameters: { ms: 60_000 } });
      await waitUntil(
        "the run is RUNNING",
        async () => (await server().api.runs.get.query({ id: run.id })).stateType === "RUNNING",
      );
      const cancel = await ferry(["runs", "cancel", run.id], { cwd: project(), env: server().env });
      assert.equal(cancel.code, 0, cancel.output);
      const done = await waitUntil("the run is CANCELLED", async () => {
        const r = await server().api.runs.get.query({ id: run.id });
        return r.stateType === "CANCELLED" ? r : undefined;
      });
      assert.deepEqual(
        done.states.map((s) => s.type),
        ["SCHEDULED", "PENDING", "RUNNING", "CANCELLING", "CANCELLED"],
      );
    });
  });
}
