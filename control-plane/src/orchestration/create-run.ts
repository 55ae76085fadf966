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
  /** A run made by a schedule: its slot and the data interval it covers. */
  schedule?: { scheduleId: string; scheduledFor: Date; dataIntervalStart: Date | null; dataIntervalEnd: Date };
  /** A run made by a backfill, for one slot of its range. */
  backfill?: { backfillId: string; scheduledFor: Date; dataIntervalStart: Date | null; dataIntervalEnd: Date };
}

/**
 * Creates a SCHEDULED flow run of a deployment (with its first state) after checking its
 * parameters. Unique keys make it idempotent: the caller's idempotency key, or a schedule's
 * (schedule, slot); a create that loses such a race returns `created: false` with the winner.
 */
export async function createFlowRun(db: Db, params: ParamsValidator, input: NewRun): Promise<{ run: FlowRun; created: boolean }> {
  const { workspaceId, deployment } = input;
  const earlier = async () => {
    if (input.idempotencyKey) {
      return db.flowRun.findUnique({
        where: { workspaceId_idempotencyKey: { workspaceId, idempotencyKey: input.idempotencyKey } },
      });
    }
    if (input.schedule) {
      return db.flowRun.findUnique({
        where: {
          scheduleId_scheduledFor: { scheduleId: input.schedule.scheduleId, scheduledFor: input.schedule.scheduledFor },
        },
      });
    }
    if (input.backfill) {
      return db.flowRun.findUnique({
        where: {
          backfillId_scheduledFor: { backfillId: input.backfill.backfillId, scheduledFor: input.backfill.scheduledFor },
        },
      });
    }
    return null;
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
          stateType: "SCHEDULED",
          stateName: "Scheduled",
          stateTimestamp: now,
          maxRetries: deployment.retries,
          retryDelayMs: deployment.retryDelayMs,
          timeoutMs: deployment.timeoutMs,
          expectedStartTime: input.expectedStartTime ?? now,
          idempotencyKey: input.idempotencyKey ?? null,
          ...(input.schedule
            ? {
                scheduleId: input.schedule.scheduleId,
                scheduledFor: input.schedule.scheduledFor,
                dataIntervalStart: input.schedule.dataIntervalStart,
                dataIntervalEnd: input.schedule.dataIntervalEnd,
              }
            : {}),
          ...(input.backfill
            ? {
                backfillId: input.backfill.backfillId,
                scheduledFor: input.backfill.scheduledFor,
                dataIntervalStart: input.backfill.dataIntervalStart,
                dataIntervalEnd: input.backfill.dataIntervalEnd,
              }
            : {}),
        },
      }),
      db.flowRunState.create({
        data: {
          id: newId(),
          workspaceId,
          flowRunId: id,
          type: "SCHEDULED",
          name: "Scheduled",
          message: input.schedule
            ? `scheduled for ${input.schedule.scheduledFor.toISOString()}`
            : input.backfill
              ? `backfill of ${input.backfill.scheduledFor.toISOString()}`
              : null,
          timestamp: now,
          attempt: 0,
        },
      }),
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
