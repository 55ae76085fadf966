import assert from "node:assert/strict";
import { test } from "node:test";
import type { Db, Provider } from "@ferry/prisma";
import { sqlOf } from "@ferry/prisma";
import type { RunEvent } from "@ferry/sdk/protocol";
import { FIXTURE, withWorkspaceDatabase } from "../test-database.ts";
import { applyLogs, applyRunEvents, RunTree } from "./run-events.ts";

const WS = FIXTURE.workspaceId;
const ROOT = "run-root";
const at = (ms: number) => new Date(Date.UTC(2026, 0, 1) + ms).toISOString();

/** A database of `provider` holding one workspace and one RUNNING root run. */
function withDatabase(provider: Provider, skip: (reason: string) => void, body: (db: Db) => Promise<void>) {
  return withWorkspaceDatabase(provider, skip, async ({ db }) => {
    await db.flowRun.create({
      data: {
        id: ROOT,
        workspaceId: WS,
        flowId: FIXTURE.flowId,
        name: "root",
        parametersJson: "{}",
        tagsJson: "[]",
        workPool: "default",
        stateType: "RUNNING",
        stateName: "Running",
        stateTimestamp: new Date(at(0)),
        attempt: 1,
        expectedStartTime: new Date(at(0)),
      },
    });
    await body(db);
  });
}

function created(i: number, upstream: string[] = []): RunEvent {
  return {
    kind: "task_run.created",
    id: `t-${i}`,
    flowRunId: ROOT,
    taskKey: upstream.length ? "reduce" : "noop",
    dynamicKey: upstream.length ? 0 : i,
    name: `noop-${i}`,
    tags: [],
    maxRetries: 0,
    upstream,
    timestamp: at(i),
  };
}

function state(i: number, type: "RUNNING" | "COMPLETED" | "FAILED", extra: Partial<RunEvent> = {}): RunEvent {
  return {
    kind: "task_run.state",
    eventId: `e-${i}-${type}`,
    taskRunId: `t-${i}`,
    attempt: 1,
    state: { type, name: type === "RUNNING" ? "Running" : type === "COMPLETED" ? "Completed" : "Failed" },
    timestamp: at(i + (type === "RUNNING" ? 1 : 2)),
    ...(type === "COMPLETED" ? { resultRef: `ref-${i}` } : {}),
    ...extra,
  } as RunEvent;
}

for (const provider of ["sqlite", "postgresql"] as const) {
  test(`${provider}: a big batch is written in bulk, and replaying it writes nothing twice`, async (t) => {
    await withDatabase(
      provider,
      (reason) => t.skip(reason),
      async (db) => {
        const root = await db.flowRun.findUniqueOrThrow({ where: { id: ROOT } });
        const n = 1500; // more than one statement's worth of rows
        const ids = Array.from({ length: n }, (_, i) => `t-${i}`);
        const batch: RunEvent[] = [
          ...ids.map((_, i) => created(i)),
          created(n, ids),
          ...ids.flatMap((_, i) => [state(i, "RUNNING"), state(i, "COMPLETED")]),
        ];
        for (let round = 0; round < 2; round++) await applyRunEvents(db, root, 1, batch);
        // A second id for a call already recorded is skipped, not an error.
        await applyRunEvents(db, root, 1, [{ ...created(5), id: "t-other" } as RunEvent]);

        assert.equal(await db.taskRun.count({ where: { flowRunId: ROOT } }), n + 1);
        assert.equal(await db.taskRun.count({ where: { flowRunId: ROOT, stateType: "COMPLETED" } }), n);
        assert.equal(await db.taskRunState.count(), 2 * n);
        assert.equal(await db.taskRunEdge.count({ where: { downstreamId: `t-${n}` } }), n);
        const one = await db.taskRun.findUniqueOrThrow({ where: { id: "t-7" } });
        assert.equal(one.resultRef, "ref-7");
        assert.equal(one.startTime?.toISOString(), at(8));
        assert.equal(one.endTime?.toISOString(), at(9));
        assert.equal(one.stateTimestamp.toISOString(), at(9));
        assert.equal(one.createdAt instanceof Date && !Number.isNaN(one.createdAt.getTime()), true);
      },
    );
  });

  test(`${provider}: an ended task run stays ended; states of unknown task runs are dropped`, async (t) => {
    await withDatabase(
      provider,
      (reason) => t.skip(reason),
      async (db) => {
        const root = await db.flowRun.findUniqueOrThrow({ where: { id: ROOT } });
        await applyRunEvents(db, root, 1, [created(1), state(1, "FAILED")]);
        await applyRunEvents(db, root, 1, [state(1, "RUNNING", { eventId: "late" }), state(99, "RUNNING")]);
        const run = await db.taskRun.findUniqueOrThrow({ where: { id: "t-1" } });
        assert.equal(run.stateType, "FAILED");
        assert.equal(run.startTime, null);
        assert.equal(await db.taskRunState.count({ where: { taskRunId: "t-99" } }), 0);
      },
    );
  });
}

/** Another root run of the workspace (another agent's), with one task run and one child flow run. */
async function otherRun(db: Db): Promise<void> {
  const base = {
    workspaceId: WS,
    flowId: FIXTURE.flowId,
    parametersJson: '{"secret":"theirs"}',
    tagsJson: "[]",
    workPool: "default",
    stateType: "RUNNING",
    stateName: "Running",
    stateTimestamp: new Date(at(0)),
    attempt: 1,
    expectedStartTime: new Date(at(0)),
  };
  await db.flowRun.create({ data: { ...base, id: "other-root", name: "other" } });
  await db.flowRun.create({ data: { ...base, id: "other-child", name: "other-child", parentFlowRunId: "other-root" } });
  await db.taskRun.create({
    data: {
      id: "other-task",
      workspaceId: WS,
      flowRunId: "other-root",
      taskKey: "k",
      dynamicKey: 0,
      name: "k-0",
      tagsJson: "[]",
      stateType: "RUNNING",
      stateName: "Running",
      stateTimestamp: new Date(at(0)),
    },
  });
}

function published(eventId: string, flowRunId: string, taskRunId?: string): RunEvent {
  return {
    kind: "event.published",
    eventId,
    flowRunId,
    ...(taskRunId ? { taskRunId } : {}),
    name: "done",
    payload: {},
    timestamp: at(50),
  };
}

for (const provider of ["sqlite", "postgresql"] as const) {
  test(`${provider}: events naming runs outside the reporting run's tree are dropped, the rest applied`, async (t) => {
    await withDatabase(
      provider,
      (reason) => t.skip(reason),
      async (db) => {
        await otherRun(db);
        const root = await db.flowRun.findUniqueOrThrow({ where: { id: ROOT } });
        const batch: RunEvent[] = [
          created(1),
          // A task run in another run, one with another run's upstream, one linked to another run's child.
          { ...created(2), flowRunId: "other-root" } as RunEvent,
          created(3, ["other-task", "t-1"]),
          { ...created(4), childFlowRunId: "other-child" } as RunEvent,
          // A child flow run under another run, and one whose task run is another run's.
          {
            kind: "flow_run.created",
            id: "evil-child",
            parentFlowRunId: "other-root",
            parentTaskRunId: "t-1",
            flowName: "f",
            parameters: {},
            timestamp: at(3),
          },
          {
            kind: "flow_run.created",
            id: "evil-child-2",
            parentFlowRunId: ROOT,
            parentTaskRunId: "other-task",
            flowName: "f",
            parameters: {},
            timestamp: at(3),
          },
          {
            kind: "flow_run.state",
            eventId: "cs",
            flowRunId: "other-child",
            state: { type: "FAILED", name: "Failed" },
            timestamp: at(4),
          },
          state(1, "COMPLETED"),
          { ...state(1, "FAILED"), eventId: "x-other", taskRunId: "other-task" } as RunEvent,
          published("p-ok", ROOT, "t-1"),
          published("p-run", "other-root"),
          published("p-child", "other-child"),
          published("p-task", ROOT, "other-task"),
        ];
        for (let round = 0; round < 2; round++) {
          const applied = await applyRunEvents(db, root, 1, batch);
          assert.deepEqual(
            applied.published.map((e) => e.eventId),
            ["p-ok"],
            `round ${round}: only the event of this run's tree is published`,
          );
          assert.deepEqual(applied.ended, ["t-1"]);
        }
        const other = await db.taskRun.findUniqueOrThrow({ where: { id: "other-task" } });
        assert.equal(other.stateType, "RUNNING", "another run's task run keeps its state");
        assert.equal(await db.taskRunState.count({ where: { taskRunId: "other-task" } }), 0);
        assert.equal(await db.taskRun.count({ where: { flowRunId: "other-root" } }), 1, "nothing created in another run");
        assert.equal((await db.flowRun.findUniqueOrThrow({ where: { id: "other-child" } })).stateType, "RUNNING");
        assert.equal(await db.flowRun.count({ where: { id: { in: ["evil-child", "evil-child-2"] } } }), 0);
        const edges = await db.taskRunEdge.findMany({ where: { downstreamId: "t-3" } });
        assert.deepEqual(
          edges.map((e) => e.upstreamId),
          ["t-1"],
          "only the upstream of this attempt is an edge",
        );
        assert.equal((await db.taskRun.findUniqueOrThrow({ where: { id: "t-4" } })).childFlowRunId, null);

        // A later attempt of the same run cannot touch the task runs of the first one.
        const next = await applyRunEvents(db, root, 2, [{ ...state(3, "FAILED"), eventId: "a2" } as RunEvent]);
        assert.deepEqual(next.ended, []);
        assert.equal((await db.taskRun.findUniqueOrThrow({ where: { id: "t-3" } })).stateType, "PENDING");
      },
    );
  });

  test(`${provider}: log lines naming another run's flow run or task run stay in the reporting run`, async (t) => {
    await withDatabase(
      provider,
      (reason) => t.skip(reason),
      async (db) => {
        await otherRun(db);
        const root = await db.flowRun.findUniqueOrThrow({ where: { id: ROOT } });
        await applyRunEvents(db, root, 1, [created(1)]);
        const line = (seq: number, extra: { flowRunId?: string; taskRunId?: string }) => ({
          seq,
          timestamp: at(seq),
          level: "info" as const,
          message: `line ${seq}`,
          ...extra,
        });
        const stored = await applyLogs(db, root, 1, [
          line(0, { flowRunId: "other-root" }),
          line(1, { flowRunId: "other-child", taskRunId: "other-task" }),
          line(2, { taskRunId: "t-1" }),
          line(3, { taskRunId: "not-yet-created" }),
        ]);
        assert.equal(stored, 4);
        assert.equal(await db.log.count({ where: { flowRunId: { in: ["other-root", "other-child"] } } }), 0);
        const lines = await db.log.findMany({ where: { flowRunId: ROOT }, orderBy: { seq: "asc" } });
        assert.deepEqual(
          lines.map((l) => l.taskRunId),
          [null, null, "t-1", "not-yet-created"],
        );
      },
    );
  });
}

for (const provider of ["sqlite", "postgresql"] as const) {
  test(`${provider}: the run tree follows parents to the root, a level at a time, and nothing else is in it`, async (t) => {
    await withDatabase(
      provider,
      (reason) => t.skip(reason),
      async (db) => {
        await otherRun(db);
        const child = async (id: string, parentFlowRunId: string) => {
          const base = await db.flowRun.findUniqueOrThrow({ where: { id: ROOT } });
          await db.flowRun.create({
            data: { ...base, id, name: id, parentFlowRunId, createdAt: undefined, updatedAt: undefined },
          });
        };
        await child("c1", ROOT);
        await child("c2", "c1");
        await child("c3", "c2");
        const root = await db.flowRun.findUniqueOrThrow({ where: { id: ROOT } });
        const tree = new RunTree(sqlOf(db), root);
        await tree.cover(["c3", "c1", "other-child", "other-root", "nothing", ROOT]);
        assert.deepEqual(
          ["c1", "c2", "c3", ROOT].map((id) => tree.has(id)),
          [true, true, true, true],
        );
        assert.deepEqual(
          ["other-child", "other-root", "nothing"].map((id) => tree.has(id)),
          [false, false, false],
        );
        // A child the batch creates joins the tree even if it was looked up (and not found) before.
        tree.add("nothing");
        assert.equal(tree.has("nothing"), true);
        // Log lines of a grandchild are stored under it.
        await applyLogs(db, root, 1, [{ seq: 0, timestamp: at(0), level: "info", message: "deep", flowRunId: "c3" }]);
        assert.equal(await db.log.count({ where: { flowRunId: "c3" } }), 1);
      },
    );
  });
}

test("sqlite: commits are durable (synchronous=FULL on the connection Prisma uses)", async (t) => {
  await withDatabase(
    "sqlite",
    (reason) => t.skip(reason),
    async (db) => {
      const [row] = await db.$queryRawUnsafe<{ synchronous: number | bigint }[]>("PRAGMA synchronous");
      assert.equal(Number(row?.synchronous), 2);
    },
  );
});
