import { type Db, sqlOf } from "@ferry/prisma";
import type { Deployment, FlowRun } from "@ferry/prisma/sqlite";
import { runChanged } from "../changes.ts";
import { DomainError } from "../errors.ts";
import { newId, shortId } from "../ids.ts";
import { parseJson } from "../json.ts";
import type { ParamsValidator } from "../params.ts";
import { insertRunWithStates } from "./flow-run-sql.ts";

export interface NewRun {
  workspaceId: string;
  deployment: Deployment;
  /** Merged over the deployment's defaults, then checked against its parameter schema. */
  parameters: Record<string, unknown>;
  tags?: string[] | undefined;
  idempotencyKey?: string | undefined;
  /** When the run is due (default: now). */
  expectedStartTime?: Date;
  /** A run made for a slot of a schedule or of a backfill: the slot and the data interval it covers. */
  slot?: Slot;
  /**
   * The dispatcher's fast path: an idle agent was free to take the run, so it is written
   * PENDING, attempt 1, held by that agent, in the same transaction as its creation (its
   * history shows Scheduled then Pending): the run is pushed with no further write.
   */
  assign?: Assignment;
  /** A run a trigger starts: its lineage (triggers.ts refuses chains too deep and cycles). */
  lineage?: Lineage;
}

/** Which trigger started a run, from which run (null for a webhook), and the whole chain of triggers. */
export interface Lineage {
  triggerId: string;
  fromRunId: string | null;
  /** Trigger ids, first first, ending with `triggerId`; its length is the run's depth. */
  chain: readonly string[];
}

export interface Assignment {
  agentId: string;
  agentName: string;
  leaseExpiresAt: Date;
}

export type Slot = { scheduledFor: Date; dataIntervalStart: Date | null; dataIntervalEnd: Date } & (
  | { scheduleId: string }
  | { backfillId: string }
);

/**
 * Creates a SCHEDULED flow run of a deployment (with its first state) after checking its
 * parameters. Unique keys make it idempotent: the caller's idempotency key, or the slot of a
 * schedule or backfill; an existing run (or the winner of a race) comes back with `created: false`.
 */
export async function createFlowRun(db: Db, params: ParamsValidator, input: NewRun): Promise<{ run: FlowRun; created: boolean }> {
  const { workspaceId, deployment } = input;
  const earlier = async () => {
    if (input.idempotencyKey) {
      return db.flowRun.findUnique({
        where: { workspaceId_idempotencyKey: { workspaceId, idempotencyKey: input.idempotencyKey } },
      });
    }
    const slot = input.slot;
    if (!slot) return null;
    return db.flowRun.findUnique({
      where:
        "scheduleId" in slot
          ? { scheduleId_scheduledFor: { scheduleId: slot.scheduleId, scheduledFor: slot.scheduledFor } }
          : { backfillId_scheduledFor: { backfillId: slot.backfillId, scheduledFor: slot.scheduledFor } },
    });
  };
  const existing = await earlier();
  if (existing) return { run: existing, created: false };
  const parameters = { ...parseJson<Record<string, unknown>>(deployment.defaultParamsJson, {}), ...input.parameters };
  params.checkSize(parameters);
  const issues = params.check(workspaceId, deployment.paramsSchemaJson, parameters);
  if (issues.length) {
    throw new DomainError(
      "INVALID_PARAMETERS",
      `invalid parameters for deployment "${deployment.name}":\n${issues.map((i) => `  - ${i}`).join("\n")}`,
      issues,
    );
  }
  const now = new Date();
  const id = newId();
  const slot = input.slot;
  const run: FlowRun = {
    id,
    workspaceId,
    flowId: deployment.flowId,
    deploymentId: deployment.id,
    parentFlowRunId: null,
    parentTaskRunId: null,
    name: `${deployment.flowName}-${shortId()}`,
    parametersJson: JSON.stringify(parameters),
    tagsJson: JSON.stringify(input.tags ?? parseJson<string[]>(deployment.tagsJson, [])),
    workPool: deployment.workPool,
    stateType: input.assign ? "PENDING" : "SCHEDULED",
    stateName: input.assign ? "Pending" : "Scheduled",
    stateMessage: null,
    stateTimestamp: now,
    attempt: input.assign ? 1 : 0,
    maxRetries: deployment.retries,
    retryCount: 0,
    retryDelayMs: deployment.retryDelayMs,
    timeoutMs: deployment.timeoutMs,
    agentId: input.assign?.agentId ?? null,
    leaseExpiresAt: input.assign?.leaseExpiresAt ?? null,
    expectedStartTime: input.expectedStartTime ?? now,
    startTime: null,
    endTime: null,
    idempotencyKey: input.idempotencyKey ?? null,
    scheduleId: slot && "scheduleId" in slot ? slot.scheduleId : null,
    backfillId: slot && "backfillId" in slot ? slot.backfillId : null,
    scheduledFor: slot?.scheduledFor ?? null,
    dataIntervalStart: slot?.dataIntervalStart ?? null,
    dataIntervalEnd: slot?.dataIntervalEnd ?? null,
    triggeredById: input.lineage?.triggerId ?? null,
    triggeringRunId: input.lineage?.fromRunId ?? null,
    triggerChainJson: JSON.stringify(input.lineage?.chain ?? []),
    createdAt: now,
    updatedAt: now,
  };
  try {
    // Direct SQL (flow-run-sql.ts): this is on the path from an API call to an agent.
    await insertRunWithStates(sqlOf(db), run, [
      {
        id: newId(),
        workspaceId,
        flowRunId: id,
        type: "SCHEDULED",
        name: "Scheduled",
        message: input.slot
          ? `${"scheduleId" in input.slot ? "scheduled for" : "backfill of"} ${input.slot.scheduledFor.toISOString()}`
          : null,
        timestamp: now,
        attempt: 0,
      },
      ...(input.assign
        ? [
            {
              id: newId(),
              workspaceId,
              flowRunId: id,
              type: "PENDING",
              name: "Pending",
              message: `assigned to agent ${input.assign.agentName}`,
              timestamp: now,
              attempt: 1,
            },
          ]
        : []),
    ]);
    runChanged(db, workspaceId, id);
    return { run, created: true };
  } catch (err) {
    // Two creates with the same key raced: the loser returns the winner's run.
    const winner = await earlier();
    if (winner) return { run: winner, created: false };
    throw err;
  }
}
