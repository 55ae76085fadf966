import { type Db, sqlOf } from "@ferry/prisma";
import type { FlowRun } from "@ferry/prisma/sqlite";
import { isTerminal, type OrchestrationResult, type StateProposal, StateType } from "@ferry/sdk/protocol";
import { changesOf, runChanged } from "../changes.ts";
import { newId } from "../ids.ts";
import { candidateEvent } from "../notifications/notifier.ts";
import { applyTransition, readFlowRun, transitionRun } from "./flow-run-sql.ts";
import { decideTransition, type Proposer, shouldRetry } from "./rules.ts";

export interface ProposeInput {
  workspaceId: string;
  flowRunId: string;
  state: StateProposal;
  proposer: Proposer;
  /** For agent proposals: the attempt and agent that hold the run (fencing). */
  fence?: { agentId: string; attempt: number };
  /** Makes a replayed proposal a no-op that returns the current state. */
  eventId?: string;
  timestamp?: Date;
}

export interface ProposeOutcome {
  result: OrchestrationResult;
  run: FlowRun | null;
  /** The attempt ended: the agent's slot is free. */
  released: boolean;
  /** The run went back to SCHEDULED (a retry): dispatch should look again. */
  requeued: boolean;
}

const MAX_CONFLICT_RETRIES = 5;

export function currentState(run: FlowRun): StateProposal {
  return {
    type: StateType.parse(run.stateType),
    name: run.stateName,
    ...(run.stateMessage ? { message: run.stateMessage } : {}),
  };
}

/**
 * The state a held run ends in when its agent lost it (lease expired, agent came back
 * without it): a cancel in progress is complete, anything else crashed.
 */
export function lostRunState(stateType: string, crashMessage: string): StateProposal {
  return stateType === "CANCELLING"
    ? { type: "CANCELLED", name: "Cancelled", message: "cancelled: the agent stopped the run or lost it before confirming" }
    : { type: "CRASHED", name: "Crashed", message: crashMessage };
}

/** PostgreSQL text cannot hold NUL characters: they are replaced so a report is never refused. */
export function storable(text: string | undefined): string | null {
  return text === undefined ? null : text.replaceAll("\u0000", "\uFFFD");
}

/** Columns that follow from entering a state. */
function stateColumns(run: FlowRun, state: StateProposal, at: Date) {
  return {
    stateType: state.type,
    stateName: state.name,
    stateMessage: storable(state.message),
    stateTimestamp: at,
    ...(state.type === "RUNNING" && !run.startTime ? { startTime: at } : {}),
    ...(isTerminal(state.type) ? { endTime: at, leaseExpiresAt: null } : {}),
  };
}

/**
 * Applies a proposed flow-run state through the orchestration rules and records it in the
 * history. Uses optimistic concurrency (the update matches the state it decided on), so
 * concurrent proposals (a user's cancel racing an agent's report) are decided one at a time.
 */
export async function proposeFlowRunState(db: Db, input: ProposeInput): Promise<ProposeOutcome> {
  // Direct SQL (flow-run-sql.ts): every run's life passes here several times.
  const sql = sqlOf(db);
  if (input.eventId) {
    const seen = await sql.get(`SELECT "id" FROM "FlowRunState" WHERE "eventId" = ?`, [input.eventId]);
    if (seen) {
      const run = (await readFlowRun(sql, input.flowRunId, input.workspaceId)) ?? null;
      return {
        result: { status: "ACCEPT", state: run ? currentState(run) : input.state, reason: "already applied" },
        run,
        released: false,
        requeued: false,
      };
    }
  }
  for (let i = 0; i < MAX_CONFLICT_RETRIES; i++) {
    const run = await readFlowRun(sql, input.flowRunId, input.workspaceId);
    if (!run) {
      return {
        result: { status: "REJECT", state: input.state, reason: "unknown flow run" },
        run: null,
        released: false,
        requeued: false,
      };
    }
    const reject = (reason: string): ProposeOutcome => ({
      result: { status: "REJECT", state: currentState(run), reason },
      run,
      released: false,
      requeued: false,
    });
    if (input.fence && (run.agentId !== input.fence.agentId || run.attempt !== input.fence.attempt)) {
      return reject(
        `stale attempt: the run is at attempt ${run.attempt}${run.agentId === input.fence.agentId ? "" : " on another agent"}`,
      );
    }
    const from = StateType.parse(run.stateType);
    const decision = decideTransition(from, input.state.type, input.proposer);
    if (!decision.accept) return reject(decision.reason);

    const at = input.timestamp ?? new Date();
    const retry = shouldRetry(input.state.type, run.retryCount, run.maxRetries);
    const columns = stateColumns(run, input.state, at);
    const updatedAt = new Date();
    const expected = { stateType: run.stateType, attempt: run.attempt, stateTimestamp: run.stateTimestamp };
    const history = {
      id: newId(),
      workspaceId: run.workspaceId,
      flowRunId: run.id,
      type: input.state.type,
      name: input.state.name,
      message: storable(input.state.message),
      timestamp: at,
      attempt: run.attempt,
      eventId: input.eventId ?? null,
    };
    // The attempt is over: the concurrency slots its task runs held are free.
    const freeSlots = isTerminal(input.state.type);
    const transition = { flowRunId: run.id, expected, changes: { ...columns, updatedAt }, state: history, freeSlots };
    // The row as written, without reading it back.
    let outcome: FlowRun | null;
    if (!retry) {
      // A state that may alert is queued for the notifier in the change's own transaction (an
      // outbox): a crash right after the commit cannot lose the alert.
      const event = candidateEvent(input.state.type, input.state.name);
      const alert = event ? { event, deploymentId: run.deploymentId } : undefined;
      outcome = (await transitionRun(sql, { ...transition, ...(alert ? { alert } : {}) }))
        ? { ...run, ...columns, updatedAt }
        : null;
    } else {
      // A retry: the end of this attempt and the run's return to the queue, in one transaction.
      outcome = await sql.transaction(async (tx): Promise<FlowRun | null> => {
        if (!(await applyTransition(tx, transition))) return null;
        const retryAt = new Date(at.getTime() + run.retryDelayMs);
        const state: StateProposal = {
          type: "SCHEDULED",
          name: "AwaitingRetry",
          message: `retry ${run.retryCount + 1} of ${run.maxRetries} after: ${input.state.message ?? input.state.name}`.slice(
            0,
            8000,
          ),
        };
        const retryAtStamp = new Date(at.getTime() + 1);
        const requeued = {
          ...stateColumns(run, state, retryAtStamp),
          agentId: null,
          leaseExpiresAt: null,
          endTime: null,
          expectedStartTime: retryAt,
        };
        await applyTransition(tx, {
          flowRunId: run.id,
          expected: {},
          changes: { ...requeued, updatedAt },
          incrementRetryCount: true,
          state: {
            id: newId(),
            workspaceId: run.workspaceId,
            flowRunId: run.id,
            type: state.type,
            name: state.name,
            message: state.message ?? null,
            timestamp: retryAtStamp,
            attempt: run.attempt,
          },
        });
        return { ...run, ...columns, ...requeued, updatedAt, retryCount: run.retryCount + 1 };
      });
    }
    if (!outcome) continue; // someone else changed the run: decide again on the fresh row
    const endedOthers =
      isTerminal(input.state.type) && input.state.type !== "COMPLETED"
        ? await endUnfinishedDescendants(db, run.workspaceId, run.id, input.state, at)
        : false;
    // Pages follow root runs (a child's page follows its root too): announce under the root.
    runChanged(db, run.workspaceId, await rootOf(db, run), endedOthers ? ["state", "tasks"] : ["state"]);
    changesOf(db).publish({
      kind: "runState",
      workspaceId: run.workspaceId,
      flowRunId: run.id,
      deploymentId: run.deploymentId,
      stateType: outcome.stateType,
      stateName: outcome.stateName,
      attempt: outcome.attempt,
    });
    const wasHeld =
      run.stateType === "PENDING" || run.stateType === "RUNNING" || run.stateType === "CANCELLING" || run.stateType === "PAUSED";
    const nowHeld =
      outcome.stateType === "PENDING" ||
      outcome.stateType === "RUNNING" ||
      outcome.stateType === "CANCELLING" ||
      outcome.stateType === "PAUSED";
    return {
      result: { status: "ACCEPT", state: input.state },
      run: outcome,
      released: wasHeld && !nowHeld,
      requeued: outcome.stateType === "SCHEDULED",
    };
  }
  throw new Error(`flow run ${input.flowRunId}: too many concurrent state changes`);
}

/** The root run of a (child) flow run. */
async function rootOf(db: Db, run: FlowRun): Promise<string> {
  let id = run.id;
  let parent = run.parentFlowRunId;
  for (let depth = 0; parent && depth < MAX_CHILD_DEPTH; depth++) {
    id = parent;
    parent = (await db.flowRun.findUnique({ where: { id: parent }, select: { parentFlowRunId: true } }))?.parentFlowRunId ?? null;
  }
  return id;
}

const RETRYABLE = ["FAILED", "CRASHED", "CANCELLED"];

/**
 * A user's retry of a finished run: the same run goes back to SCHEDULED for a new attempt
 * (results its tasks persisted are reused). Guarded by the state it read, like every change;
 * null when the run is not failed, crashed or cancelled (or changed meanwhile).
 */
export async function retryFlowRun(db: Db, run: FlowRun, message = "retried by a user"): Promise<FlowRun | null> {
  if (!RETRYABLE.includes(run.stateType)) return null;
  const now = new Date();
  const outcome = await db.$transaction(async (tx) => {
    const updated = await tx.flowRun.updateMany({
      where: { id: run.id, stateType: run.stateType, attempt: run.attempt, stateTimestamp: run.stateTimestamp },
      data: {
        stateType: "SCHEDULED",
        stateName: "AwaitingRetry",
        stateMessage: message,
        stateTimestamp: now,
        agentId: null,
        leaseExpiresAt: null,
        endTime: null,
        expectedStartTime: now,
      },
    });
    if (updated.count === 0) return null;
    await tx.flowRunState.create({
      data: {
        id: newId(),
        workspaceId: run.workspaceId,
        flowRunId: run.id,
        type: "SCHEDULED",
        name: "AwaitingRetry",
        message,
        timestamp: now,
        attempt: run.attempt,
      },
    });
    return tx.flowRun.findUniqueOrThrow({ where: { id: run.id } });
  });
  if (outcome) runChanged(db, run.workspaceId, run.id);
  return outcome;
}

const UNFINISHED = ["SCHEDULED", "PENDING", "RUNNING", "CANCELLING", "PAUSED"];
const MAX_CHILD_DEPTH = 20;

/** A root flow run and all its child flow runs, breadth-first (children run in the root's process). */
export async function flowRunTree(db: Db, workspaceId: string, rootId: string): Promise<string[]> {
  const ids: string[] = [];
  let frontier = [rootId];
  for (let depth = 0; frontier.length && depth < MAX_CHILD_DEPTH; depth++) {
    ids.push(...frontier);
    const children = await db.flowRun.findMany({
      where: { workspaceId, parentFlowRunId: { in: frontier } },
      select: { id: true },
    });
    frontier = children.map((c) => c.id);
  }
  return ids;
}

/**
 * When an attempt ends without completing (crash, failure, cancel, timeout), the task runs
 * and child flow runs it left unfinished can never finish: they take the same ending, so
 * nothing stays RUNNING forever.
 */
async function endUnfinishedDescendants(
  db: Db,
  workspaceId: string,
  rootId: string,
  cause: StateProposal,
  at: Date,
): Promise<boolean> {
  const type = cause.type === "CANCELLED" ? "CANCELLED" : "CRASHED";
  const name = type === "CANCELLED" ? "Cancelled" : "Crashed";
  const message = `the flow run ended (${cause.name}) before this finished`;
  const runIds = await flowRunTree(db, workspaceId, rootId);
  const childRuns = await db.flowRun.findMany({
    where: { workspaceId, id: { in: runIds.filter((id) => id !== rootId) }, stateType: { in: UNFINISHED } },
    select: { id: true, attempt: true },
  });
  const tasks = await db.taskRun.findMany({
    where: { workspaceId, flowRunId: { in: runIds }, stateType: { in: UNFINISHED } },
    select: { id: true, attempt: true },
  });
  if (!childRuns.length && !tasks.length) return false;
  const columns = { stateType: type, stateName: name, stateMessage: message, stateTimestamp: at, endTime: at };
  await db.$transaction([
    db.flowRun.updateMany({
      where: { id: { in: childRuns.map((r) => r.id) }, stateType: { in: UNFINISHED } },
      data: { ...columns, leaseExpiresAt: null },
    }),
    db.flowRunState.createMany({
      data: childRuns.map((r) => ({
        id: newId(),
        workspaceId,
        flowRunId: r.id,
        type,
        name,
        message,
        timestamp: at,
        attempt: r.attempt,
      })),
    }),
    db.taskRun.updateMany({ where: { id: { in: tasks.map((t) => t.id) }, stateType: { in: UNFINISHED } }, data: columns }),
    db.taskRunState.createMany({
      data: tasks.map((t) => ({
        id: newId(),
        workspaceId,
        taskRunId: t.id,
        type,
        name,
        message,
        timestamp: at,
        attempt: t.attempt,
      })),
    }),
  ]);
  return true;
}
