import assert from "node:assert/strict";
import { test } from "node:test";
import type { Db, Provider } from "@ferry/prisma";
import type { RunEvent } from "@ferry/sdk/protocol";
import { FIXTURE, withWorkspaceDatabase } from "../test-database.ts";
import { applyRunEvents } from "./run-events.ts";

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
