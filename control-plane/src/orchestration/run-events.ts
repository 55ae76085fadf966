import { allIn, type Db, type SqlQueries, sqlOf } from "@ferry/prisma";
import type { FlowRun } from "@ferry/prisma/sqlite";
import { isTerminal, type LogLine, type RunEvent, type TaskRunCreated, type TaskRunStateChanged } from "@ferry/sdk/protocol";
import { runChanged } from "../changes.ts";
import { newId } from "../ids.ts";
import { insertEdges, insertLogs, insertTaskRunStates, insertTaskRuns, updateTaskRunStates } from "./bulk-sql.ts";
import { flowRunTree, proposeFlowRunState, storable } from "./flow-runs.ts";

/** What event ingestion needs of the dispatched (root) run. */
export type RootRun = Pick<FlowRun, "id" | "workspaceId" | "workPool">;

/**
 * Applies a batch of runtime events of one dispatched (root) run. Idempotent: task runs
 * are keyed by id, task-run states by event id, child flow-run states by event id, so a
 * batch replayed after a reconnect changes nothing. Creations are applied before states,
 * which is safe because a producer always emits an entity's creation before its states.
 */
export async function applyRunEvents(db: Db, root: RootRun, attempt: number, events: readonly RunEvent[]): Promise<void> {
  const workspaceId = root.workspaceId;
  const childCreates = events.filter((e) => e.kind === "flow_run.created");
  const taskCreates = events.filter((e): e is TaskRunCreated => e.kind === "task_run.created");
  const childStates = events.filter((e) => e.kind === "flow_run.state");
  const taskStates = events.filter((e): e is TaskRunStateChanged => e.kind === "task_run.state");

  // Flow runs this batch may touch: the root and its descendants (an agent holding one run
  // must not be able to write into another).
  const touchesOthers = events.some(
    (e) =>
      (e.kind === "task_run.created" || e.kind === "flow_run.state"
        ? e.flowRunId
        : e.kind === "flow_run.created"
          ? e.parentFlowRunId
          : root.id) !== root.id,
  );
  const knownRuns = new Set<string>(touchesOthers ? await flowRunTree(db, workspaceId, root.id) : [root.id]);

  if (childCreates.length) {
    const existing = await db.flowRun.findMany({ where: { id: { in: childCreates.map((e) => e.id) } }, select: { id: true } });
    const have = new Set(existing.map((r) => r.id));
    for (const e of childCreates) {
      if (have.has(e.id) || !knownRuns.has(e.parentFlowRunId)) continue;
      const flow = await db.flow.upsert({
        where: { workspaceId_name: { workspaceId, name: e.flowName } },
        create: { id: newId(), workspaceId, name: e.flowName },
        update: {},
      });
      const at = new Date(e.timestamp);
      await db.$transaction([
        db.flowRun.create({
          data: {
            id: e.id,
            workspaceId,
            flowId: flow.id,
            parentFlowRunId: e.parentFlowRunId,
            parentTaskRunId: e.parentTaskRunId,
            name: `${e.flowName}-${e.id.slice(0, 6)}`,
            parametersJson: JSON.stringify(e.parameters),
            tagsJson: "[]",
            workPool: root.workPool,
            stateType: "PENDING",
            stateName: "Pending",
            stateTimestamp: at,
            attempt: 1,
            expectedStartTime: at,
          },
        }),
        db.flowRunState.create({
          data: { id: newId(), workspaceId, flowRunId: e.id, type: "PENDING", name: "Pending", timestamp: at, attempt: 1 },
        }),
      ]);
      knownRuns.add(e.id);
    }
  }

  // Task runs, their edges and states: one transaction of direct SQL (see bulk-sql.ts).
  const now = new Date();
  if (taskCreates.length || taskStates.length) {
    const sql = sqlOf(db);
    await sql.transaction(async (tx) => {
      if (taskCreates.length) await insertTaskRunsOf(tx, root, attempt, taskCreates, knownRuns, now);
      if (taskStates.length) await applyTaskStates(tx, workspaceId, taskStates, now);
    });
  }

  for (const e of childStates) {
    if (!knownRuns.has(e.flowRunId) || e.flowRunId === root.id) continue;
    await proposeFlowRunState(db, {
      workspaceId,
      flowRunId: e.flowRunId,
      state: e.state,
      // Child flow runs live in the root's process: the agent reports them, under the agent's rules.
      proposer: "agent",
      eventId: e.eventId,
      timestamp: new Date(e.timestamp),
    });
  }

  if (events.length)
    runChanged(db, workspaceId, root.id, childCreates.length || childStates.length ? ["tasks", "state"] : ["tasks"]);
}

async function insertTaskRunsOf(
  tx: SqlQueries,
  root: RootRun,
  attempt: number,
  taskCreates: readonly TaskRunCreated[],
  knownRuns: ReadonlySet<string>,
  now: Date,
): Promise<void> {
  const workspaceId = root.workspaceId;
  const rows = taskCreates
    .filter((e) => knownRuns.has(e.flowRunId))
    .map((e) => ({
      id: e.id,
      workspaceId,
      flowRunId: e.flowRunId,
      flowRunAttempt: attempt,
      taskKey: e.taskKey,
      dynamicKey: e.dynamicKey,
      name: e.name,
      tagsJson: JSON.stringify(e.tags),
      stateTimestamp: new Date(e.timestamp),
      maxRetries: e.maxRetries,
      childFlowRunId: e.childFlowRunId ?? null,
    }));
  // A task run already stored (by id, or a second id for a call already recorded) is skipped
  // by the insert itself, and only the task runs inserted now get their edges: a replayed
  // batch writes nothing.
  const inserted = await insertTaskRuns(tx, rows, now);
  const edges = taskCreates.flatMap((e) =>
    inserted.has(e.id)
      ? [...new Set(e.upstream)].map((upstreamId) => ({
          workspaceId,
          flowRunId: e.flowRunId,
          upstreamId,
          downstreamId: e.id,
        }))
      : [],
  );
  await insertEdges(tx, edges);
}

async function applyTaskStates(
  tx: SqlQueries,
  workspaceId: string,
  events: readonly TaskRunStateChanged[],
  now: Date,
): Promise<void> {
  // Only task runs of this workspace (a state for an unknown task run is dropped). Looked up by
  // id alone and the workspace compared here: with `"workspaceId" = ?` in the query SQLite may
  // pick the workspace index and scan every task run of the workspace, once per batch.
  const known = await idsOf(tx, "TaskRun", workspaceId, [...new Set(events.map((e) => e.taskRunId))]);
  const valid = events.filter((e) => known.has(e.taskRunId));
  if (!valid.length) return;
  // Only states inserted now (their event id is new) move a task run: a replay changes nothing.
  const inserted = await insertTaskRunStates(
    tx,
    valid.map((e) => ({
      id: e.eventId,
      workspaceId,
      taskRunId: e.taskRunId,
      type: e.state.type,
      name: e.state.name,
      message: storable(e.state.message) ?? null,
      timestamp: new Date(e.timestamp),
      attempt: e.attempt,
    })),
  );
  // The last new state of each task run becomes its current state.
  const latest = new Map<string, TaskRunStateChanged>();
  const firstRunning = new Map<string, Date>();
  for (const e of valid) {
    if (!inserted.has(e.eventId)) continue;
    latest.set(e.taskRunId, e);
    if (e.state.type === "RUNNING" && !firstRunning.has(e.taskRunId)) firstRunning.set(e.taskRunId, new Date(e.timestamp));
  }
  const updates = [...latest.values()].map((e) => {
    const at = new Date(e.timestamp);
    return {
      id: e.taskRunId,
      stateType: e.state.type,
      stateName: e.state.name,
      stateMessage: storable(e.state.message) ?? null,
      stateTimestamp: at,
      attempt: e.attempt,
      resultRef: e.resultRef ?? null,
      cacheKey: e.cacheKey ?? null,
      startTime: firstRunning.get(e.taskRunId) ?? null,
      endTime: isTerminal(e.state.type) ? at : null,
    };
  });
  await updateTaskRunStates(tx, updates, now);
}

/**
 * Stores log lines of a root run's attempt. The agent numbers lines per root attempt, also
 * those of child flow runs (stored under the child's id), so (attempt, seq) identifies a
 * line across the root and its children and a replayed line is skipped (by the unique key).
 */
export async function applyLogs(db: Db, root: RootRun, attempt: number, lines: readonly LogLine[]): Promise<number> {
  const sql = sqlOf(db);
  const childIds = [...new Set(lines.map((l) => l.flowRunId).filter((id): id is string => !!id && id !== root.id))];
  const children = await idsOf(sql, "FlowRun", root.workspaceId, childIds);
  const rows = lines.map((l) => ({
    workspaceId: root.workspaceId,
    flowRunId: l.flowRunId && children.has(l.flowRunId) ? l.flowRunId : root.id,
    taskRunId: l.taskRunId ?? null,
    attempt,
    seq: l.seq,
    level: l.level,
    message: storable(l.message) ?? "",
    timestamp: new Date(l.timestamp),
  }));
  const stored = rows.length ? await sql.transaction((tx) => insertLogs(tx, rows)) : 0;
  if (stored) runChanged(db, root.workspaceId, root.id, ["logs"]);
  return stored;
}

/** Which of `ids` are rows of `table` in the workspace (looked up by primary key). */
async function idsOf(
  q: SqlQueries,
  table: "TaskRun" | "FlowRun",
  workspaceId: string,
  ids: readonly string[],
): Promise<Set<string>> {
  const rows = await allIn<{ id: string; workspaceId: string }>(
    q,
    (list) => `SELECT "id", "workspaceId" FROM "${table}" WHERE "id" IN (${list})`,
    ids,
  );
  return new Set(rows.flatMap((r) => (r.workspaceId === workspaceId ? [r.id] : [])));
}
