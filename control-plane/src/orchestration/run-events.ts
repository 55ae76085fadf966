import { allIn, type Db, type SqlQueries, sqlOf } from "@ferry/prisma";
import type { FlowRun } from "@ferry/prisma/sqlite";
import {
  type ChildFlowRunCreated,
  type EventPublished,
  isTerminal,
  type LogLine,
  type RunEvent,
  type TaskRunCreated,
  type TaskRunStateChanged,
} from "@ferry/sdk/protocol";
import { runChanged } from "../changes.ts";
import { newId } from "../ids.ts";
import { insertEdges, insertLogs, insertTaskRunStates, insertTaskRuns, updateTaskRunStates } from "./bulk-sql.ts";
import { proposeFlowRunState, storable } from "./flow-runs.ts";

/** What event ingestion needs of the dispatched (root) run. */
export type RootRun = Pick<FlowRun, "id" | "workspaceId" | "workPool">;

/** What a batch of run events changed that the hub acts on after storing it. */
export interface AppliedEvents {
  /** Published events whose flow run (and task run) belong to the root's tree: the ones triggers may see. */
  published: EventPublished[];
  /** Task runs of this attempt that a state of the batch ended: their tag slots can be freed. */
  ended: string[];
}

/** Deepest nesting of child flow runs followed (as the cancellation of descendants does). */
const MAX_TREE_DEPTH = 20;

/**
 * The flow runs a report of one root run may name: the root and its child flow runs
 * (recursively). A named run is in the tree if its chain of parents leads to the root. The
 * chains of all runs a batch names are followed together, one primary-key lookup per level of
 * nesting: a flat flow pays nothing, a batch of a run with thousands of child flow runs pays a
 * few small lookups (never the whole tree).
 */
export class RunTree {
  /** Runs known to be in the tree: the root, runs found by following parents, children created by the batch. */
  private readonly inside: Set<string>;
  /** Runs known not to be in it (another tree, another workspace, no such run). */
  private readonly outside = new Set<string>();

  constructor(
    private readonly q: SqlQueries,
    private readonly root: RootRun,
  ) {
    this.inside = new Set([root.id]);
  }

  /** Makes `has` answer for these ids. */
  async cover(ids: Iterable<string>): Promise<void> {
    const parentOf = new Map<string, string | null>();
    const named = [...new Set(ids)].filter((id) => !this.inside.has(id) && !this.outside.has(id));
    let level = named;
    for (let depth = 0; level.length && depth < MAX_TREE_DEPTH; depth++) {
      // By id alone, the workspace compared here (see taskRunsOfAttempt).
      const rows = await allIn<{ id: string; workspaceId: string; parentFlowRunId: string | null }>(
        this.q,
        (list) => `SELECT "id", "workspaceId", "parentFlowRunId" FROM "FlowRun" WHERE "id" IN (${list})`,
        level,
      );
      const found = new Map(rows.map((r) => [r.id, r]));
      const next = new Set<string>();
      for (const id of level) {
        const row = found.get(id);
        const parent = row && row.workspaceId === this.root.workspaceId ? row.parentFlowRunId : null;
        parentOf.set(id, parent);
        if (parent !== null && !this.inside.has(parent) && !this.outside.has(parent) && !parentOf.has(parent)) next.add(parent);
      }
      level = [...next];
    }
    for (const id of named) {
      // Follow the chain to a run whose place is known; a chain that ends or is too deep is outside.
      const chain: string[] = [];
      let at: string | null | undefined = id;
      while (at !== null && at !== undefined && !this.inside.has(at) && !this.outside.has(at) && !chain.includes(at)) {
        chain.push(at);
        at = parentOf.get(at);
      }
      const verdict = at !== null && at !== undefined && this.inside.has(at) ? this.inside : this.outside;
      for (const run of chain) verdict.add(run);
    }
  }

  /** Whether `id` is the root or one of its child flow runs (`cover` must have been called with it). */
  has(id: string): boolean {
    return this.inside.has(id);
  }

  /** A child flow run the batch created under a run of the tree. */
  add(id: string): void {
    this.inside.add(id);
    this.outside.delete(id);
  }
}

/**
 * Which of `ids` are stored task runs, and which of those belong to the root's attempt (a flow
 * run of its tree, the same root attempt). One lookup by primary key for the whole batch; parents
 * are followed (see RunTree) only for task runs of a flow run other than the root.
 */
export async function taskRunsOfAttempt(
  q: SqlQueries,
  tree: RunTree,
  attempt: number,
  ids: Iterable<string>,
): Promise<{ ours: Set<string>; stored: Set<string> }> {
  const unique = [...new Set(ids)];
  if (!unique.length) return { ours: new Set(), stored: new Set() };
  // By id alone: with `"workspaceId" = ?` SQLite may pick the workspace index and scan every
  // task run of the workspace. Another workspace's task run never has a flow run of this tree.
  const rows = await allIn<{ id: string; flowRunId: string; flowRunAttempt: number }>(
    q,
    (list) => `SELECT "id", "flowRunId", "flowRunAttempt" FROM "TaskRun" WHERE "id" IN (${list})`,
    unique,
  );
  await tree.cover(rows.map((r) => r.flowRunId));
  return {
    ours: new Set(rows.flatMap((r) => (Number(r.flowRunAttempt) === attempt && tree.has(r.flowRunId) ? [r.id] : []))),
    stored: new Set(rows.map((r) => r.id)),
  };
}

/**
 * Applies a batch of runtime events of one dispatched (root) run. Idempotent: task runs
 * are keyed by id, task-run states by event id, child flow-run states by event id, so a
 * batch replayed after a reconnect changes nothing. Creations are applied before states,
 * which is safe because a producer always emits an entity's creation before its states.
 *
 * Every id an event names is checked against the run tree the agent holds (the root, its
 * child flow runs, their task runs of this root attempt); an event that names anything else
 * is dropped, the rest of the batch is applied. Dropping (rather than refusing the batch)
 * keeps exactly-once: the same events are dropped again on a replay, and the agent's valid
 * events are not lost with them.
 */
export async function applyRunEvents(
  db: Db,
  root: RootRun,
  attempt: number,
  events: readonly RunEvent[],
): Promise<AppliedEvents> {
  const workspaceId = root.workspaceId;
  const childCreates = events.filter((e): e is ChildFlowRunCreated => e.kind === "flow_run.created");
  const taskCreates = events.filter((e): e is TaskRunCreated => e.kind === "task_run.created");
  const childStates = events.filter((e) => e.kind === "flow_run.state");
  const taskStates = events.filter((e): e is TaskRunStateChanged => e.kind === "task_run.state");
  const published = events.filter((e): e is EventPublished => e.kind === "event.published");

  // Flow runs this batch may touch: the root and its descendants (an agent holding one run
  // must not be able to write into another).
  const sql = sqlOf(db);
  const tree = new RunTree(sql, root);
  await tree.cover(
    events.map((e) =>
      e.kind === "task_run.created" || e.kind === "flow_run.state" || e.kind === "event.published"
        ? e.flowRunId
        : e.kind === "flow_run.created"
          ? e.parentFlowRunId
          : root.id,
    ),
  );
  // Task runs named by the batch, other than by their own creation: one lookup for all of them.
  const named = await taskRunsOfAttempt(sql, tree, attempt, [
    ...taskStates.map((e) => e.taskRunId),
    ...taskCreates.flatMap((e) => e.upstream),
    ...childCreates.map((e) => e.parentTaskRunId),
    ...published.flatMap((e) => (e.taskRunId ? [e.taskRunId] : [])),
  ]);

  if (childCreates.length) {
    const existing = await db.flowRun.findMany({ where: { id: { in: childCreates.map((e) => e.id) } }, select: { id: true } });
    const have = new Set(existing.map((r) => r.id));
    // A child's task run is usually created by the same batch (just before it), else by an earlier one.
    const createdHere = new Map(taskCreates.map((e) => [e.id, e.flowRunId]));
    const ownTask = (id: string) => {
      const flowRunId = createdHere.get(id);
      return named.ours.has(id) || (!named.stored.has(id) && flowRunId !== undefined && tree.has(flowRunId));
    };
    for (const e of childCreates) {
      if (have.has(e.id) || !tree.has(e.parentFlowRunId) || !ownTask(e.parentTaskRunId)) continue;
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
      tree.add(e.id);
    }
  }

  // A task run standing for a child flow run may name it before the child's creation arrives
  // (a later batch): only a link to a flow run that exists outside the tree is dropped.
  const linked = taskCreates.flatMap((e) => (e.childFlowRunId && !tree.has(e.childFlowRunId) ? [e.childFlowRunId] : []));
  const foreignChildren = new Set(
    linked.length ? (await db.flowRun.findMany({ where: { id: { in: linked } }, select: { id: true } })).map((r) => r.id) : [],
  );

  // Task runs, their edges and states: one transaction of direct SQL (see bulk-sql.ts).
  const now = new Date();
  let inserted = new Set<string>();
  let ended: string[] = [];
  if (taskCreates.length || taskStates.length) {
    await sql.transaction(async (tx) => {
      if (taskCreates.length)
        inserted = await insertTaskRunsOf(tx, root, attempt, taskCreates, tree, named.ours, foreignChildren, now);
      // A task run is this attempt's if it was stored so before the batch or inserted by it
      // (a replay finds the batch's own task runs stored, so it keeps the same states).
      const valid = taskStates.filter((e) => named.ours.has(e.taskRunId) || inserted.has(e.taskRunId));
      if (valid.length) await applyTaskStates(tx, workspaceId, valid, now);
      ended = valid.flatMap((e) => (isTerminal(e.state.type) ? [e.taskRunId] : []));
    });
  }

  for (const e of childStates) {
    if (!tree.has(e.flowRunId) || e.flowRunId === root.id) continue;
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
  return {
    published: published.filter(
      (e) => tree.has(e.flowRunId) && (!e.taskRunId || named.ours.has(e.taskRunId) || inserted.has(e.taskRunId)),
    ),
    ended,
  };
}

async function insertTaskRunsOf(
  tx: SqlQueries,
  root: RootRun,
  attempt: number,
  taskCreates: readonly TaskRunCreated[],
  tree: RunTree,
  ours: ReadonlySet<string>,
  foreignChildren: ReadonlySet<string>,
  now: Date,
): Promise<Set<string>> {
  const workspaceId = root.workspaceId;
  const rows = taskCreates
    .filter((e) => tree.has(e.flowRunId))
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
      childFlowRunId: e.childFlowRunId && !foreignChildren.has(e.childFlowRunId) ? e.childFlowRunId : null,
    }));
  // A task run already stored (by id, or a second id for a call already recorded) is skipped
  // by the insert itself, and only the task runs inserted now get their edges: a replayed
  // batch writes nothing. An upstream id must be a task run of this attempt (lineage shows it).
  const inserted = await insertTaskRuns(tx, rows, now);
  const edges = taskCreates.flatMap((e) =>
    inserted.has(e.id)
      ? [...new Set(e.upstream)].flatMap((upstreamId) =>
          ours.has(upstreamId) || inserted.has(upstreamId)
            ? [
                {
                  workspaceId,
                  flowRunId: e.flowRunId,
                  upstreamId,
                  downstreamId: e.id,
                },
              ]
            : [],
        )
      : [],
  );
  await insertEdges(tx, edges);
  return inserted;
}

async function applyTaskStates(
  tx: SqlQueries,
  workspaceId: string,
  events: readonly TaskRunStateChanged[],
  now: Date,
): Promise<void> {
  // The caller passes only states of task runs of the attempt (see taskRunsOfAttempt).
  // Only states inserted now (their event id is new) move a task run: a replay changes nothing.
  const inserted = await insertTaskRunStates(
    tx,
    events.map((e) => ({
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
  for (const e of events) {
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
  // A line may be stored under a child flow run of the tree and name a task run of the
  // attempt; a line naming another run goes under the root, and a task run stored outside the
  // attempt is not named. A task run not stored (yet: its creation may be retried after this
  // batch) is kept: no one else's run has that id. One lookup per batch, the tree only if needed.
  const tree = new RunTree(sql, root);
  await tree.cover(lines.flatMap((l) => (l.flowRunId ? [l.flowRunId] : [])));
  const tasks = await taskRunsOfAttempt(
    sql,
    tree,
    attempt,
    lines.flatMap((l) => (l.taskRunId ? [l.taskRunId] : [])),
  );
  const rows = lines.map((l) => ({
    workspaceId: root.workspaceId,
    flowRunId: l.flowRunId && tree.has(l.flowRunId) ? l.flowRunId : root.id,
    taskRunId: l.taskRunId && (tasks.ours.has(l.taskRunId) || !tasks.stored.has(l.taskRunId)) ? l.taskRunId : null,
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
