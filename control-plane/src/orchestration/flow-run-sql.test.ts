import assert from "node:assert/strict";
import { test } from "node:test";
import { type Db, type Provider, sqlOf } from "@ferry/prisma";
import type { FlowRun } from "@ferry/prisma/sqlite";
import pg from "pg";
import { FIXTURE, withWorkspaceDatabase } from "../test-database.ts";
import { applyTransition, insertRunWithStates, readFlowRun, type Transition, transitionRun } from "./flow-run-sql.ts";

const WS = FIXTURE.workspaceId;
const at = new Date("2026-12-06T10:00:00.123Z");

function newRun(id: string): FlowRun {
  return {
    id,
    workspaceId: WS,
    flowId: FIXTURE.flowId,
    deploymentId: null,
    parentFlowRunId: null,
    parentTaskRunId: null,
    name: id,
    parametersJson: "{}",
    tagsJson: "[]",
    workPool: "default",
    stateType: "SCHEDULED",
    stateName: "Scheduled",
    stateMessage: null,
    stateTimestamp: at,
    attempt: 0,
    maxRetries: 2,
    retryCount: 0,
    retryDelayMs: 0,
    timeoutMs: null,
    agentId: null,
    leaseExpiresAt: null,
    expectedStartTime: at,
    startTime: null,
    endTime: null,
    idempotencyKey: null,
    scheduleId: null,
    backfillId: null,
    scheduledFor: null,
    dataIntervalStart: null,
    dataIntervalEnd: null,
    triggeredById: null,
    triggeringRunId: null,
    triggerChainJson: "[]",
    createdAt: at,
    updatedAt: at,
  };
}

const state = (flowRunId: string, id: string, type: string, attempt: number) => ({
  id,
  workspaceId: WS,
  flowRunId,
  type,
  name: type,
  message: null,
  timestamp: new Date(at.getTime() + 1),
  attempt,
});

const claim = (flowRunId: string, skipLocked = false): Transition => ({
  flowRunId,
  expected: { stateType: "SCHEDULED", attempt: 0 },
  changes: { stateType: "PENDING", stateName: "Pending", agentId: "agent-1", attempt: 1 },
  state: state(flowRunId, `${flowRunId}-pending`, "PENDING", 1),
  skipLocked,
});

function withDatabase(provider: Provider, skip: (reason: string) => void, body: (db: Db, url: string) => Promise<void>) {
  return withWorkspaceDatabase(provider, skip, (database) => body(database.db, database.url));
}

for (const provider of ["sqlite", "postgresql"] as const) {
  test(`${provider}: a run written with its states reads back as Prisma reads it`, async (t) => {
    await withDatabase(
      provider,
      (r) => t.skip(r),
      async (db) => {
        const run = newRun("run-1");
        await insertRunWithStates(sqlOf(db), run, [state("run-1", "s-1", "SCHEDULED", 0), state("run-1", "s-2", "PENDING", 0)]);
        assert.deepEqual(await db.flowRun.findUniqueOrThrow({ where: { id: "run-1" } }), run);
        assert.deepEqual(await readFlowRun(sqlOf(db), "run-1", WS), run);
        assert.equal(await readFlowRun(sqlOf(db), "run-1", "another-workspace"), undefined);
        assert.equal(await db.flowRunState.count({ where: { flowRunId: "run-1" } }), 2);
      },
    );
  });

  test(`${provider}: a transition applies once, with its history row and freed slots; a stale one changes nothing`, async (t) => {
    await withDatabase(
      provider,
      (r) => t.skip(r),
      async (db) => {
        const sql = sqlOf(db);
        await insertRunWithStates(sql, newRun("run-2"), [state("run-2", "s-1", "SCHEDULED", 0)]);
        await db.concurrencySlot.create({
          data: { id: "slot-1", workspaceId: WS, tag: "gpu", taskRunId: "task-1", flowRunId: "run-2", attempt: 1 },
        });
        assert.equal(await transitionRun(sql, claim("run-2")), true);
        // The same expectation again: the row moved on, so nothing is written.
        assert.equal(await transitionRun(sql, claim("run-2")), false);
        const ended: Transition = {
          flowRunId: "run-2",
          expected: { stateType: "PENDING", attempt: 1 },
          changes: { stateType: "CRASHED", stateName: "Crashed", endTime: at },
          state: state("run-2", "run-2-crashed", "CRASHED", 1),
          freeSlots: true,
        };
        assert.equal(await transitionRun(sql, ended), true);
        const run = await db.flowRun.findUniqueOrThrow({ where: { id: "run-2" } });
        assert.equal(run.stateType, "CRASHED");
        assert.equal(run.agentId, "agent-1");
        assert.equal(run.endTime?.toISOString(), at.toISOString());
        const history = await db.flowRunState.findMany({ where: { flowRunId: "run-2" }, orderBy: { id: "asc" } });
        assert.deepEqual(
          history.map((h) => h.type),
          ["CRASHED", "PENDING", "SCHEDULED"],
        );
        assert.equal(await db.concurrencySlot.count(), 0);
        // Inside a caller's transaction, with a retry used up.
        const requeued = await sql.transaction((tx) =>
          applyTransition(tx, {
            flowRunId: "run-2",
            expected: { stateType: "CRASHED" },
            changes: { stateType: "SCHEDULED", stateName: "AwaitingRetry", agentId: null },
            state: state("run-2", "run-2-retry", "SCHEDULED", 1),
            incrementRetryCount: true,
          }),
        );
        assert.equal(requeued, true);
        const again = await db.flowRun.findUniqueOrThrow({ where: { id: "run-2" } });
        assert.deepEqual([again.stateName, again.retryCount, again.agentId], ["AwaitingRetry", 1, null]);
      },
    );
  });

  test(`${provider}: a state that may alert is queued in the outbox with the change, only when a rule wants it`, async (t) => {
    await withDatabase(
      provider,
      (r) => t.skip(r),
      async (db) => {
        const sql = sqlOf(db);
        const failed = (flowRunId: string): Transition => ({
          flowRunId,
          expected: { stateType: "SCHEDULED" },
          changes: { stateType: "FAILED", stateName: "Failed", endTime: at },
          state: { ...state(flowRunId, `${flowRunId}-failed`, "FAILED", 0), name: "Failed" },
          alert: { event: "FAILED", deploymentId: null },
        });
        for (const id of ["run-a", "run-b", "run-c", "run-d"]) {
          await insertRunWithStates(sql, newRun(id), [state(id, `${id}-s`, "SCHEDULED", 0)]);
        }
        // No rule wants FAILED (one wants CRASHED, one is paused): the change writes no outbox row.
        await db.notificationChannel.create({
          data: { id: "ch-1", workspaceId: WS, name: "c", kind: "webhook", configJson: "{}" },
        });
        await db.notificationRule.create({
          data: { id: "rule-1", workspaceId: WS, name: "r1", channelId: "ch-1", eventsJson: '["CRASHED"]' },
        });
        await db.notificationRule.create({
          data: { id: "rule-2", workspaceId: WS, name: "r2", channelId: "ch-1", eventsJson: '["FAILED"]', active: false },
        });
        assert.equal(await transitionRun(sql, failed("run-a")), true);
        assert.equal(await db.notificationOutbox.count(), 0);
        await db.notificationRule.update({ where: { id: "rule-2" }, data: { active: true } });
        assert.equal(await transitionRun(sql, failed("run-b")), true);
        assert.equal(await sql.transaction((tx) => applyTransition(tx, failed("run-c"))), true);
        // A stale change writes nothing, outbox included.
        assert.equal(await transitionRun(sql, failed("run-b")), false);
        const rows = await db.notificationOutbox.findMany({ orderBy: { flowRunId: "asc" } });
        assert.deepEqual(
          rows.map((r) => [r.id, r.flowRunId, r.stateType, r.stateName, r.attempt, r.createdAt.toISOString()]),
          [
            ["run-b-failed", "run-b", "FAILED", "Failed", 0, new Date(at.getTime() + 1).toISOString()],
            ["run-c-failed", "run-c", "FAILED", "Failed", 0, new Date(at.getTime() + 1).toISOString()],
          ],
        );
        // Without `alert`, nothing is queued whatever the rules.
        const { alert: _alert, ...plain } = failed("run-d");
        assert.equal(await transitionRun(sql, plain), true);
        assert.equal(await db.notificationOutbox.count(), 2);
      },
    );
  });
}

test("postgresql: a claim skips a run another connection has locked instead of waiting for it", async (t) => {
  await withDatabase(
    "postgresql",
    (r) => t.skip(r),
    async (db, url) => {
      const sql = sqlOf(db);
      await insertRunWithStates(sql, newRun("run-3"), [state("run-3", "s-1", "SCHEDULED", 0)]);
      const other = new pg.Client({ connectionString: url });
      await other.connect();
      try {
        await other.query("BEGIN");
        await other.query(`SELECT "id" FROM "FlowRun" WHERE "id" = 'run-3' FOR UPDATE`);
        // Without SKIP LOCKED this would wait for the other transaction; with it, the claim is refused at once.
        assert.equal(await transitionRun(sql, claim("run-3", true)), false);
        await other.query("ROLLBACK");
        assert.equal(await transitionRun(sql, claim("run-3", true)), true);
        assert.equal((await db.flowRun.findUniqueOrThrow({ where: { id: "run-3" } })).stateType, "PENDING");
      } finally {
        await other.end();
      }
    },
  );
});
