import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, test } from "node:test";
import { type OpenDatabase, openDatabase } from "@ferry/prisma";
import { newId } from "../ids.ts";
import { proposeFlowRunState } from "./flow-runs.ts";

// Orchestration against a real (SQLite) database: the rules, fencing, retries, idempotency.
let dir: string;
let database: OpenDatabase;
const ws = "ws-1";
let runId: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "ferry-orch-"));
  database = await openDatabase(`file:${join(dir, "t.db")}`);
  await database.db.workspace.create({ data: { id: ws, name: "w", slug: "w" } });
  await database.db.flow.create({ data: { id: "flow-1", workspaceId: ws, name: "f" } });
});

after(async () => {
  await database.close();
  rmSync(dir, { recursive: true, force: true });
});

beforeEach(async () => {
  runId = newId();
  const now = new Date();
  await database.db.flowRun.create({
    data: {
      id: runId,
      workspaceId: ws,
      flowId: "flow-1",
      name: "r",
      parametersJson: "{}",
      tagsJson: "[]",
      workPool: "default",
      stateType: "RUNNING",
      stateName: "Running",
      stateTimestamp: now,
      attempt: 1,
      maxRetries: 1,
      retryDelayMs: 60_000,
      agentId: "agent-1",
      leaseExpiresAt: new Date(now.getTime() + 15_000),
      expectedStartTime: now,
    },
  });
});

const fence = { agentId: "agent-1", attempt: 1 };

test("a legal agent proposal is accepted and recorded in the history", async () => {
  const out = await proposeFlowRunState(database.db, {
    workspaceId: ws,
    flowRunId: runId,
    state: { type: "COMPLETED", name: "Completed" },
    proposer: "agent",
    fence,
  });
  assert.equal(out.result.status, "ACCEPT");
  assert.equal(out.released, true);
  const run = await database.db.flowRun.findUniqueOrThrow({ where: { id: runId } });
  assert.deepEqual({ ...out.run, updatedAt: null }, { ...run, updatedAt: null });
  assert.equal(run.stateType, "COMPLETED");
  assert.ok(run.endTime);
  assert.equal(run.leaseExpiresAt, null);
  const history = await database.db.flowRunState.findMany({ where: { flowRunId: runId } });
  assert.deepEqual(
    history.map((h) => h.type),
    ["COMPLETED"],
  );
});

test("a report from another agent or an older attempt is rejected (fencing)", async () => {
  const other = await proposeFlowRunState(database.db, {
    workspaceId: ws,
    flowRunId: runId,
    state: { type: "COMPLETED", name: "Completed" },
    proposer: "agent",
    fence: { agentId: "agent-2", attempt: 1 },
  });
  assert.equal(other.result.status, "REJECT");
  assert.match(other.result.reason ?? "", /stale attempt/);
  const stale = await proposeFlowRunState(database.db, {
    workspaceId: ws,
    flowRunId: runId,
    state: { type: "FAILED", name: "Failed" },
    proposer: "agent",
    fence: { agentId: "agent-1", attempt: 0 },
  });
  assert.equal(stale.result.status, "REJECT");
  assert.equal((await database.db.flowRun.findUniqueOrThrow({ where: { id: runId } })).stateType, "RUNNING");
});

test("a failure with retries left is recorded, then the run is re-queued after its delay", async () => {
  const before = Date.now();
  const out = await proposeFlowRunState(database.db, {
    workspaceId: ws,
    flowRunId: runId,
    state: { type: "FAILED", name: "Failed", message: "boom" },
    proposer: "agent",
    fence,
  });
  assert.equal(out.result.status, "ACCEPT");
  assert.equal(out.requeued, true);
  const run = await database.db.flowRun.findUniqueOrThrow({ where: { id: runId } });
  // The outcome is the row as written (it is not read back): the same as the database's but for updatedAt.
  assert.deepEqual({ ...out.run, updatedAt: null }, { ...run, updatedAt: null });
  assert.equal(run.stateName, "AwaitingRetry");
  assert.equal(run.agentId, null);
  assert.ok(run.expectedStartTime.getTime() >= before + 60_000);
  const history = await database.db.flowRunState.findMany({ where: { flowRunId: runId }, orderBy: { timestamp: "asc" } });
  assert.deepEqual(
    history.map((h) => h.name),
    ["Failed", "AwaitingRetry"],
  );
});

test("terminal states are final; the same event replayed is applied once", async () => {
  const eventId = newId();
  const first = await proposeFlowRunState(database.db, {
    workspaceId: ws,
    flowRunId: runId,
    state: { type: "COMPLETED", name: "Completed" },
    proposer: "agent",
    fence,
    eventId,
  });
  const replay = await proposeFlowRunState(database.db, {
    workspaceId: ws,
    flowRunId: runId,
    state: { type: "COMPLETED", name: "Completed" },
    proposer: "agent",
    fence,
    eventId,
  });
  assert.equal(first.result.status, "ACCEPT");
  assert.equal(replay.result.status, "ACCEPT");
  assert.equal(await database.db.flowRunState.count({ where: { flowRunId: runId } }), 1);
  const late = await proposeFlowRunState(database.db, {
    workspaceId: ws,
    flowRunId: runId,
    state: { type: "CANCELLED", name: "Cancelled" },
    proposer: "user",
  });
  assert.equal(late.result.status, "REJECT");
  assert.match(late.result.reason ?? "", /already COMPLETED/);
});

test("a crash ends the task runs and child flow runs it left unfinished", async () => {
  const now = new Date();
  const childId = newId();
  await database.db.flowRun.create({
    data: {
      id: childId,
      workspaceId: ws,
      flowId: "flow-1",
      parentFlowRunId: runId,
      name: "child",
      parametersJson: "{}",
      tagsJson: "[]",
      workPool: "default",
      stateType: "RUNNING",
      stateName: "Running",
      stateTimestamp: now,
      attempt: 1,
      expectedStartTime: now,
    },
  });
  const task = (id: string, flowRunId: string, stateType: string) => ({
    id,
    workspaceId: ws,
    flowRunId,
    taskKey: id,
    dynamicKey: 0,
    name: id,
    tagsJson: "[]",
    stateType,
    stateName: stateType,
    stateTimestamp: now,
  });
  await database.db.taskRun.createMany({
    data: [task("t-done", runId, "COMPLETED"), task("t-running", runId, "RUNNING"), task("t-child", childId, "PENDING")],
  });
  await proposeFlowRunState(database.db, {
    workspaceId: ws,
    flowRunId: runId,
    state: { type: "CRASHED", name: "Crashed" },
    proposer: "system",
  });
  const tasks = await database.db.taskRun.findMany({
    where: { workspaceId: ws, id: { in: ["t-done", "t-running", "t-child"] } },
    orderBy: { id: "asc" },
  });
  assert.deepEqual(
    tasks.map((t) => [t.id, t.stateType]),
    [
      ["t-child", "CRASHED"],
      ["t-done", "COMPLETED"],
      ["t-running", "CRASHED"],
    ],
  );
  assert.equal((await database.db.flowRun.findUniqueOrThrow({ where: { id: childId } })).stateType, "CRASHED");
});
