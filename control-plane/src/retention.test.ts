import assert from "node:assert/strict";
import { after, before, beforeEach, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { Db } from "@ferry/prisma";
import type { StateType } from "@ferry/sdk/protocol";
import { newId } from "./ids.ts";
import { logger } from "./logger.ts";
import { RetentionJob, type RetentionOptions } from "./retention.ts";
import { emptyDatabase, type TestDatabase } from "./test-database.ts";

// Retention against real databases: SQLite on a temporary file, and PostgreSQL on a fresh
// database (FERRY_TEST_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/postgres),
// skipped with the reason when no server answers unless FERRY_REQUIRE_POSTGRES=1.

const DAY = 86_400_000;
const NOW = new Date("2026-12-01T12:00:00.000Z");
const MAX_AGE = 30 * DAY;
const OLD = new Date(NOW.getTime() - 40 * DAY);
const RECENT = new Date(NOW.getTime() - DAY);
const quiet = logger.child({ component: "retention" }, { level: "silent" });

interface RunSpec {
  workspaceId: string;
  state: StateType;
  endTime?: Date | null;
  /** Creation and start time (default: a day before the end, or OLD). */
  at?: Date;
  parentFlowRunId?: string;
  taskRuns?: number;
  statesPerTaskRun?: number;
  flowRunStates?: number;
  logs?: number;
}

const TERMINAL = new Set(["COMPLETED", "FAILED", "CRASHED", "CANCELLED"]);

/** A flow run with task runs (chained by edges), state histories and logs; returns its id. */
async function makeRun(db: Db, spec: RunSpec): Promise<string> {
  const id = newId();
  const endTime = spec.endTime === undefined ? (TERMINAL.has(spec.state) ? OLD : null) : spec.endTime;
  const at = spec.at ?? new Date((endTime ?? OLD).getTime() - DAY);
  const workspaceId = spec.workspaceId;
  await db.flowRun.create({
    data: {
      id,
      workspaceId,
      flowId: `flow-${workspaceId}`,
      parentFlowRunId: spec.parentFlowRunId ?? null,
      name: `run-${id.slice(0, 6)}`,
      parametersJson: "{}",
      tagsJson: "[]",
      workPool: "default",
      stateType: spec.state,
      stateName: spec.state,
      stateTimestamp: endTime ?? at,
      attempt: 1,
      expectedStartTime: at,
      startTime: spec.state === "SCHEDULED" ? null : at,
      endTime,
      createdAt: at,
    },
  });
  await db.flowRunState.createMany({
    data: Array.from({ length: spec.flowRunStates ?? 2 }, (_, i) => ({
      id: newId(),
      workspaceId,
      flowRunId: id,
      type: i === 0 ? "PENDING" : spec.state,
      name: i === 0 ? "Pending" : spec.state,
      timestamp: new Date(at.getTime() + i),
      attempt: 1,
    })),
  });
  const taskRunIds: string[] = [];
  for (let t = 0; t < (spec.taskRuns ?? 2); t++) {
    const taskRunId = newId();
    taskRunIds.push(taskRunId);
    await db.taskRun.create({
      data: {
        id: taskRunId,
        workspaceId,
        flowRunId: id,
        taskKey: "step",
        dynamicKey: t,
        name: `step-${t}`,
        tagsJson: "[]",
        stateType: "COMPLETED",
        stateName: "Completed",
        stateTimestamp: at,
        attempt: 1,
      },
    });
    await db.taskRunState.createMany({
      data: Array.from({ length: spec.statesPerTaskRun ?? 2 }, (_, i) => ({
        id: newId(),
        workspaceId,
        taskRunId,
        type: i === 0 ? "RUNNING" : "COMPLETED",
        name: i === 0 ? "Running" : "Completed",
        timestamp: new Date(at.getTime() + i),
        attempt: 1,
      })),
    });
  }
  if (taskRunIds.length > 1) {
    await db.taskRunEdge.createMany({
      data: taskRunIds.slice(1).map((downstreamId, i) => ({
        workspaceId,
        flowRunId: id,
        upstreamId: taskRunIds[i] ?? "",
        downstreamId,
      })),
    });
  }
  await db.log.createMany({
    data: Array.from({ length: spec.logs ?? 3 }, (_, seq) => ({
      workspaceId,
      flowRunId: id,
      taskRunId: taskRunIds[0] ?? null,
      attempt: 1,
      seq,
      level: "info",
      message: `line ${seq}`,
      timestamp: at,
    })),
  });
  return id;
}

interface Rows {
  flowRuns: number;
  taskRuns: number;
  taskRunStates: number;
  flowRunStates: number;
  edges: number;
  logs: number;
}

/** Every row that belongs to these flow runs. */
async function rowsOf(db: Db, flowRunIds: string[]): Promise<Rows> {
  const inRuns = { flowRunId: { in: flowRunIds } };
  return {
    flowRuns: await db.flowRun.count({ where: { id: { in: flowRunIds } } }),
    taskRuns: await db.taskRun.count({ where: inRuns }),
    taskRunStates: await db.taskRunState.count({ where: { taskRun: inRuns } }),
    flowRunStates: await db.flowRunState.count({ where: inRuns }),
    edges: await db.taskRunEdge.count({ where: inRuns }),
    logs: await db.log.count({ where: inRuns }),
  };
}

const NONE: Rows = { flowRuns: 0, taskRuns: 0, taskRunStates: 0, flowRunStates: 0, edges: 0, logs: 0 };

/** The rows makeRun creates for a run with default counts. */
function defaultRows(runs: number): Rows {
  return { flowRuns: runs, taskRuns: 2 * runs, taskRunStates: 4 * runs, flowRunStates: 2 * runs, edges: runs, logs: 3 * runs };
}

async function allRows(db: Db): Promise<Rows> {
  return {
    flowRuns: await db.flowRun.count(),
    taskRuns: await db.taskRun.count(),
    taskRunStates: await db.taskRunState.count(),
    flowRunStates: await db.flowRunState.count(),
    edges: await db.taskRunEdge.count(),
    logs: await db.log.count(),
  };
}

/**
 * The database seen through a Prisma extension that records how many rows each delete
 * statement removed, to check that no statement goes beyond the batch size.
 */
function recordingDeletes(db: Db): { db: Db; deletes: { model: string; count: number }[] } {
  const deletes: { model: string; count: number }[] = [];
  const extended = db.$extends({
    query: {
      $allModels: {
        async deleteMany({ model, args, query }) {
          const result = await query(args);
          deletes.push({ model, count: result.count });
          return result;
        },
        async delete({ model, args, query }) {
          deletes.push({ model, count: 1 });
          return query(args);
        },
      },
    },
  });
  return { db: extended as unknown as Db, deletes };
}

const PROVIDERS = ["sqlite", "postgresql"] as const;

for (const provider of PROVIDERS) {
  describe(`retention on ${provider}`, () => {
    let harness: TestDatabase | undefined;
    let unavailable: string | undefined;
    const A = "ws-a";
    const B = "ws-b";

    before(async () => {
      const made = await emptyDatabase(provider);
      if (typeof made === "string") unavailable = made;
      else harness = made;
    });

    after(async () => {
      await harness?.close();
    });

    beforeEach(async () => {
      if (!harness) return;
      const { db } = harness.database;
      await db.workspace.deleteMany();
      for (const ws of [A, B]) {
        await db.workspace.create({ data: { id: ws, name: ws, slug: ws } });
        await db.flow.create({ data: { id: `flow-${ws}`, workspaceId: ws, name: "pipeline" } });
      }
    });

    /** The database, or undefined after skipping the test when PostgreSQL is not there. */
    function dbFor(t: { skip(message: string): void }): Db | undefined {
      if (harness) return harness.database.db;
      t.skip(unavailable ?? "database not available");
      return undefined;
    }

    const job = (db: Db, options: RetentionOptions = {}) => new RetentionJob(db, quiet, { maxAgeMs: MAX_AGE, ...options });

    test("old finished runs go with their task runs, edges, states, logs and child flow runs", async (t) => {
      const db = dbFor(t);
      if (!db) return;
      const root = await makeRun(db, { workspaceId: A, state: "COMPLETED" });
      const child = await makeRun(db, { workspaceId: A, state: "COMPLETED", parentFlowRunId: root });
      const grandchild = await makeRun(db, { workspaceId: A, state: "FAILED", parentFlowRunId: child });
      const failed = await makeRun(db, { workspaceId: A, state: "FAILED" });
      const crashed = await makeRun(db, { workspaceId: A, state: "CRASHED" });
      const cancelled = await makeRun(db, { workspaceId: A, state: "CANCELLED", taskRuns: 0, logs: 0 });
      const doomed = [root, child, grandchild, failed, crashed, cancelled];

      const result = await job(db).runOnce(NOW);

      assert.deepEqual(await rowsOf(db, doomed), NONE);
      assert.deepEqual(result, { flowRuns: 6, taskRuns: 10, logs: 15, states: 20 + 12 });
      assert.deepEqual(await allRows(db), NONE);
    });

    test("recent runs and unfinished runs of any age are kept with all their rows", async (t) => {
      const db = dbFor(t);
      if (!db) return;
      const kept = [
        await makeRun(db, { workspaceId: A, state: "COMPLETED", endTime: RECENT }),
        // Just inside the window: ended exactly at the cutoff.
        await makeRun(db, { workspaceId: A, state: "FAILED", endTime: new Date(NOW.getTime() - MAX_AGE) }),
        await makeRun(db, { workspaceId: A, state: "RUNNING", at: new Date(NOW.getTime() - 90 * DAY) }),
        await makeRun(db, { workspaceId: A, state: "SCHEDULED", at: new Date(NOW.getTime() - 90 * DAY) }),
        await makeRun(db, { workspaceId: A, state: "PENDING", at: new Date(NOW.getTime() - 90 * DAY) }),
        // Not terminal, even with a stale old end time (e.g. re-queued for a retry): never deleted.
        await makeRun(db, { workspaceId: A, state: "SCHEDULED", endTime: OLD }),
        await makeRun(db, { workspaceId: A, state: "RUNNING", endTime: OLD }),
      ];
      // An old finished root whose child flow run is still running: the whole tree stays.
      const busyRoot = await makeRun(db, { workspaceId: A, state: "COMPLETED" });
      kept.push(busyRoot, await makeRun(db, { workspaceId: A, state: "RUNNING", parentFlowRunId: busyRoot }));
      // ... and one whose child ended after the cutoff.
      const lateRoot = await makeRun(db, { workspaceId: A, state: "CRASHED" });
      kept.push(lateRoot, await makeRun(db, { workspaceId: A, state: "COMPLETED", endTime: RECENT, parentFlowRunId: lateRoot }));
      // An old finished child of an unfinished root is not a root: it goes with its root, later.
      const runningRoot = await makeRun(db, { workspaceId: A, state: "RUNNING" });
      kept.push(runningRoot, await makeRun(db, { workspaceId: A, state: "COMPLETED", parentFlowRunId: runningRoot }));
      const doomed = await makeRun(db, { workspaceId: A, state: "COMPLETED", endTime: new Date(OLD.getTime() + DAY) });

      const result = await job(db, { batchSize: 2 }).runOnce(NOW);

      assert.deepEqual(result, { flowRuns: 1, taskRuns: 2, logs: 3, states: 6 });
      assert.deepEqual(await rowsOf(db, [doomed]), NONE);
      assert.deepEqual(await rowsOf(db, kept), defaultRows(kept.length));
      assert.deepEqual(await job(db, { batchSize: 2 }).runOnce(NOW), { flowRuns: 0, taskRuns: 0, logs: 0, states: 0 });
    });

    test("deletes in bounded batches until nothing old is left, and reports the counts", async (t) => {
      const db = dbFor(t);
      if (!db) return;
      const old: string[] = [];
      for (let i = 0; i < 10; i++) {
        old.push(await makeRun(db, { workspaceId: i % 2 ? A : B, state: "COMPLETED", endTime: new Date(OLD.getTime() + i) }));
      }
      // More logs, task runs and states than a batch holds, in a root and in its child.
      const big = await makeRun(db, {
        workspaceId: A,
        state: "FAILED",
        logs: 11,
        taskRuns: 7,
        statesPerTaskRun: 4,
        flowRunStates: 5,
      });
      const bigChild = await makeRun(db, { workspaceId: A, state: "FAILED", logs: 8, parentFlowRunId: big });
      const recent = await makeRun(db, { workspaceId: A, state: "COMPLETED", endTime: RECENT });
      const recorded = recordingDeletes(db);

      const result = await job(recorded.db, { batchSize: 3 }).runOnce(NOW);

      assert.deepEqual(result, {
        flowRuns: 12,
        taskRuns: 10 * 2 + 7 + 2,
        logs: 10 * 3 + 11 + 8,
        states: 10 * (4 + 2) + (7 * 4 + 5) + (4 + 2),
      });
      assert.deepEqual(await rowsOf(db, [...old, big, bigChild]), NONE);
      assert.deepEqual(await rowsOf(db, [recent]), defaultRows(1));
      assert.ok(recorded.deletes.length > 20, `expected many small deletes, got ${recorded.deletes.length}`);
      const biggest = Math.max(...recorded.deletes.map((d) => d.count));
      assert.ok(biggest <= 3, `a delete removed ${biggest} rows (batch size 3)`);
      assert.ok(!recorded.deletes.some((d) => d.model === "Workspace" || d.model === "Flow"));
    });

    test("one run stops after its batch budget; the next runs finish the job", async (t) => {
      const db = dbFor(t);
      if (!db) return;
      for (let i = 0; i < 10; i++) await makeRun(db, { workspaceId: A, state: "COMPLETED", logs: 5 });
      const recorded = recordingDeletes(db);
      const retention = job(recorded.db, { batchSize: 3, maxBatchesPerRun: 6 });

      const totals = { flowRuns: 0, taskRuns: 0, logs: 0, states: 0 };
      let runs = 0;
      while ((await db.flowRun.count()) > 0) {
        assert.ok(++runs <= 100, "the job makes no progress");
        const before = recorded.deletes.length;
        const result = await retention.runOnce(NOW);
        // One batch of the six goes to the scan for roots.
        assert.ok(recorded.deletes.length - before <= 5, `run ${runs} made ${recorded.deletes.length - before} deletes`);
        assert.ok(result.flowRuns + result.taskRuns + result.logs + result.states > 0, `run ${runs} deleted nothing`);
        for (const key of ["flowRuns", "taskRuns", "logs", "states"] as const) totals[key] += result[key];
      }
      assert.ok(runs > 5, `expected the work to take several runs, took ${runs}`);
      assert.deepEqual(totals, { flowRuns: 10, taskRuns: 20, logs: 50, states: 60 });
      assert.deepEqual(await allRows(db), NONE);
    });

    test("old roots kept for their unfinished children do not hold back the rest", async (t) => {
      const db = dbFor(t);
      if (!db) return;
      const kept: string[] = [];
      for (let i = 0; i < 7; i++) {
        const root = await makeRun(db, {
          workspaceId: i % 2 ? A : B,
          state: "CRASHED",
          endTime: new Date(OLD.getTime() - DAY + i),
        });
        kept.push(root, await makeRun(db, { workspaceId: i % 2 ? A : B, state: "PAUSED", parentFlowRunId: root }));
      }
      const doomed = [
        await makeRun(db, { workspaceId: A, state: "COMPLETED", taskRuns: 0, logs: 0, flowRunStates: 0 }),
        await makeRun(db, { workspaceId: B, state: "COMPLETED", taskRuns: 0, logs: 0, flowRunStates: 0 }),
      ];
      const retention = job(db, { batchSize: 2, maxBatchesPerRun: 2 });
      for (let i = 0; i < 10 && (await rowsOf(db, doomed)).flowRuns > 0; i++) await retention.runOnce(NOW);
      assert.deepEqual(await rowsOf(db, doomed), NONE);
      assert.deepEqual(await rowsOf(db, kept), defaultRows(kept.length));
    });

    test("stop() interrupts a run in progress at its next batch", async (t) => {
      const db = dbFor(t);
      if (!db) return;
      for (let i = 0; i < 6; i++) await makeRun(db, { workspaceId: A, state: "COMPLETED", logs: 20 });
      const retention = job(db, { batchSize: 1, maxBatchesPerRun: 10_000 });
      const running = retention.runOnce(NOW);
      await sleep(5);
      await retention.stop();
      const partial = await running;
      assert.ok(partial.flowRuns < 6, `deleted ${partial.flowRuns} runs after stop()`);
      assert.ok((await db.flowRun.count()) > 0);
      const stoppedCount = await db.log.count();
      await sleep(50);
      assert.equal(await db.log.count(), stoppedCount, "nothing is deleted after stop() resolved");
    });

    test("every workspace is covered, and each keeps its own recent data", async (t) => {
      const db = dbFor(t);
      if (!db) return;
      const oldA = await makeRun(db, { workspaceId: A, state: "COMPLETED" });
      const oldB = await makeRun(db, { workspaceId: B, state: "CANCELLED" });
      const keptB = [
        await makeRun(db, { workspaceId: B, state: "COMPLETED", endTime: RECENT }),
        await makeRun(db, { workspaceId: B, state: "RUNNING" }),
        // A run of workspace B naming A's old run as its parent is not part of A's tree.
        await makeRun(db, { workspaceId: B, state: "COMPLETED", parentFlowRunId: oldA }),
      ];
      const keptA = [await makeRun(db, { workspaceId: A, state: "FAILED", endTime: RECENT })];

      const result = await job(db).runOnce(NOW);

      assert.deepEqual(result, { flowRuns: 2, taskRuns: 4, logs: 6, states: 12 });
      assert.deepEqual(await rowsOf(db, [oldA, oldB]), NONE);
      assert.deepEqual(await rowsOf(db, keptB), defaultRows(keptB.length));
      assert.deepEqual(await rowsOf(db, keptA), defaultRows(keptA.length));
      for (const ws of [A, B]) assert.ok(await db.workspace.findUnique({ where: { id: ws } }));
      assert.equal(await db.flow.count(), 2);
    });

    test("maxAgeMs 0 disables the job", async (t) => {
      const db = dbFor(t);
      if (!db) return;
      const ids = [
        await makeRun(db, { workspaceId: A, state: "COMPLETED", endTime: new Date(NOW.getTime() - 3650 * DAY) }),
        await makeRun(db, { workspaceId: B, state: "FAILED" }),
      ];
      const disabled = new RetentionJob(db, quiet, { maxAgeMs: 0, periodMs: 10, initialDelayMs: 0 });
      assert.equal(disabled.enabled, false);
      assert.deepEqual(await disabled.runOnce(NOW), { flowRuns: 0, taskRuns: 0, logs: 0, states: 0 });
      disabled.start();
      await sleep(50);
      await disabled.stop();
      assert.deepEqual(await rowsOf(db, ids), defaultRows(2));
      assert.equal(new RetentionJob(db, quiet).maxAgeMs, 30 * DAY, "30 days by default");
      assert.throws(() => new RetentionJob(db, quiet, { maxAgeMs: -1 }), RangeError);
      assert.throws(() => new RetentionJob(db, quiet, { batchSize: 0 }), RangeError);
    });

    test("start() runs the job in the background until stop()", async (t) => {
      const db = dbFor(t);
      if (!db) return;
      // Relative to the real clock, since the timer passes no `now`.
      const endTime = new Date(Date.now() - 2 * MAX_AGE);
      const old = [await makeRun(db, { workspaceId: A, state: "COMPLETED", endTime })];
      const recent = await makeRun(db, { workspaceId: B, state: "COMPLETED", endTime: new Date() });
      const retention = job(db, { periodMs: 20, initialDelayMs: 0, batchSize: 2 });
      retention.start();
      try {
        const deadline = Date.now() + 10_000;
        while ((await db.flowRun.count({ where: { id: { in: old } } })) > 0) {
          assert.ok(Date.now() < deadline, "the background job did not delete the old run");
          await sleep(20);
        }
        old.push(await makeRun(db, { workspaceId: B, state: "FAILED", endTime }));
        while ((await db.flowRun.count({ where: { id: { in: old } } })) > 0) {
          assert.ok(Date.now() < deadline, "the background job did not run again");
          await sleep(20);
        }
      } finally {
        await retention.stop();
      }
      assert.deepEqual(await rowsOf(db, old), NONE);
      assert.deepEqual(await rowsOf(db, [recent]), defaultRows(1));
      // Stopped: nothing more happens.
      const afterStop = await makeRun(db, { workspaceId: A, state: "COMPLETED", endTime });
      await sleep(100);
      assert.equal(await db.flowRun.count({ where: { id: afterStop } }), 1);
    });
  });
}
