import type { Db } from "@ferry/prisma";
import type { Deployment, FlowRun } from "@ferry/prisma/sqlite";
import { runChanged } from "../changes.ts";
import { DomainError } from "../errors.ts";
import { newId, shortId } from "../ids.ts";
import { parseJson } from "../json.ts";
import type { ParamsValidator } from "../params.ts";

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
  const issues = params.check(deployment.paramsSchemaJson, parameters);
  if (issues.length) {
    throw new DomainError(
      "INVALID_PARAMETERS",
      `invalid parameters for deployment "${deployment.name}":\n${issues.map((i) => `  - ${i}`).join("\n")}`,
      issues,
    );
  }
  const now = new Date();
  const id = newId();
  try {
    const [run] = await db.$transaction([
      db.flowRun.create({
        data: {
          id,
          workspaceId,
          flowId: deployment.flowId,
          deploymentId: deployment.id,
          name: `${deployment.flowName}-${shortId()}`,
          parametersJson: JSON.stringify(parameters),
          tagsJson: JSON.stringify(input.tags ?? parseJson<string[]>(deployment.tagsJson, [])),
          workPool: deployment.workPool,
          ...(input.assign
            ? {
                stateType: "PENDING",
                stateName: "Pending",
                agentId: input.assign.agentId,
                attempt: 1,
                leaseExpiresAt: input.assign.leaseExpiresAt,
              }
            : { stateType: "SCHEDULED", stateName: "Scheduled" }),
          stateTimestamp: now,
          maxRetries: deployment.retries,
          retryDelayMs: deployment.retryDelayMs,
          timeoutMs: deployment.timeoutMs,
          expectedStartTime: input.expectedStartTime ?? now,
          idempotencyKey: input.idempotencyKey ?? null,
          ...(input.slot ?? {}),
        },
      }),
      db.flowRunState.create({
        data: {
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
      }),
      ...(input.assign
        ? [
            db.flowRunState.create({
              data: {
                id: newId(),
                workspaceId,
                flowRunId: id,
                type: "PENDING",
                name: "Pending",
                message: `assigned to agent ${input.assign.agentName}`,
                timestamp: now,
                attempt: 1,
              },
            }),
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
