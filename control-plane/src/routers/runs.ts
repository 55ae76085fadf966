import { JsonObject, PROTOCOL_VERSION, StateType } from "@ferry/sdk/protocol";
import { z } from "zod";
import type { Context } from "../context.ts";
import { DomainError } from "../errors.ts";
import { newId, shortId } from "../ids.ts";
import { proposeFlowRunState } from "../orchestration/flow-runs.ts";
import { router, scoped } from "../trpc.ts";
import { IdInput, Limit, parseJson } from "./shared.ts";

export const CreateRunInput = z.object({
  deployment: z.string().min(1).max(200),
  parameters: JsonObject.default({}),
  /** The same key in the same workspace returns the run created first instead of a new one. */
  idempotencyKey: z.string().min(1).max(200).optional(),
  tags: z.array(z.string().min(1).max(100)).max(50).optional(),
});

async function createRun(ctx: Context & { principal: NonNullable<Context["principal"]> }, input: z.infer<typeof CreateRunInput>) {
  const workspaceId = ctx.principal.workspaceId;
  const earlier = () =>
    input.idempotencyKey
      ? ctx.db.flowRun.findUnique({
          where: { workspaceId_idempotencyKey: { workspaceId, idempotencyKey: input.idempotencyKey } },
        })
      : null;
  const existing = await earlier();
  if (existing) return { run: existing, created: false };
  const deployment = await ctx.db.deployment.findUnique({ where: { workspaceId_name: { workspaceId, name: input.deployment } } });
  if (!deployment) throw new DomainError("NOT_FOUND", `no deployment named "${input.deployment}"`);
  const parameters = { ...parseJson<Record<string, unknown>>(deployment.defaultParamsJson, {}), ...input.parameters };
  const issues = ctx.params.check(deployment.paramsSchemaJson, parameters);
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
    const [run] = await ctx.db.$transaction([
      ctx.db.flowRun.create({
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
          expectedStartTime: now,
          idempotencyKey: input.idempotencyKey ?? null,
        },
      }),
      ctx.db.flowRunState.create({
        data: { id: newId(), workspaceId, flowRunId: id, type: "SCHEDULED", name: "Scheduled", timestamp: now, attempt: 0 },
      }),
    ]);
    ctx.dispatcher.kick();
    return { run, created: true };
  } catch (err) {
    // Two creates with the same idempotency key raced: the loser returns the winner's run.
    const winner = await earlier();
    if (winner) return { run: winner, created: false };
    throw err;
  }
}

function present<T extends { parametersJson: string; tagsJson: string }>(run: T) {
  const { parametersJson, tagsJson, ...rest } = run;
  return { ...rest, parameters: parseJson<Record<string, unknown>>(parametersJson, {}), tags: parseJson<string[]>(tagsJson, []) };
}

export const runsRouter = router({
  create: scoped("write")
    .input(CreateRunInput)
    .mutation(async ({ ctx, input }) => {
      const { run, created } = await createRun(ctx, input);
      return { ...present(run), created };
    }),

  list: scoped("read")
    .input(
      z
        .object({
          state: z.array(StateType).max(9).optional(),
          deployment: z.string().max(200).optional(),
          flow: z.string().max(200).optional(),
          parentFlowRunId: z.string().max(100).optional(),
          limit: Limit,
          /** Id of the last run of the previous page. */
          cursor: z.string().max(100).optional(),
        })
        .default({ limit: 50 }),
    )
    .query(async ({ ctx, input }) => {
      const rows = await ctx.db.flowRun.findMany({
        where: {
          workspaceId: ctx.principal.workspaceId,
          ...(input.state ? { stateType: { in: input.state } } : {}),
          ...(input.deployment ? { deployment: { name: input.deployment } } : {}),
          ...(input.flow ? { flow: { name: input.flow } } : {}),
          ...(input.parentFlowRunId ? { parentFlowRunId: input.parentFlowRunId } : {}),
        },
        orderBy: [{ createdAt: "desc" }, { id: "desc" }],
        take: input.limit + 1,
        ...(input.cursor ? { cursor: { id: input.cursor }, skip: 1 } : {}),
        include: { deployment: { select: { name: true } }, flow: { select: { name: true } } },
      });
      const page = rows.slice(0, input.limit);
      return { items: page.map(present), nextCursor: rows.length > input.limit ? page.at(-1)?.id : undefined };
    }),

  get: scoped("read")
    .input(IdInput)
    .query(async ({ ctx, input }) => {
      const run = await ctx.db.flowRun.findFirst({
        where: { id: input.id, workspaceId: ctx.principal.workspaceId },
        include: {
          deployment: { select: { name: true, entrypoint: true } },
          flow: { select: { name: true } },
          states: { orderBy: [{ timestamp: "asc" }] },
        },
      });
      if (!run) throw new DomainError("NOT_FOUND", `no flow run ${input.id}`);
      const counts = await ctx.db.taskRun.groupBy({ by: ["stateType"], where: { flowRunId: run.id }, _count: { _all: true } });
      const agent = run.agentId ? await ctx.db.agent.findUnique({ where: { id: run.agentId }, select: { name: true } }) : null;
      return {
        ...present(run),
        agentName: agent?.name ?? null,
        taskRunCounts: Object.fromEntries(counts.map((c) => [c.stateType, c._count._all])),
      };
    }),

  cancel: scoped("write")
    .input(IdInput)
    .mutation(async ({ ctx, input }) => {
      const run = await ctx.db.flowRun.findFirst({ where: { id: input.id, workspaceId: ctx.principal.workspaceId } });
      if (!run) throw new DomainError("NOT_FOUND", `no flow run ${input.id}`);
      const direct = run.stateType === "SCHEDULED" || run.stateType === "PAUSED" || (run.stateType === "PENDING" && !run.agentId);
      const outcome = await proposeFlowRunState(ctx.db, {
        workspaceId: run.workspaceId,
        flowRunId: run.id,
        state: direct
          ? { type: "CANCELLED", name: "Cancelled", message: "cancelled by user" }
          : { type: "CANCELLING", name: "Cancelling", message: "cancelled by user" },
        proposer: "user",
      });
      if (outcome.result.status === "REJECT") {
        throw new DomainError("INVALID_TRANSITION", `cannot cancel run ${run.id}: ${outcome.result.reason ?? "rejected"}`);
      }
      if (!direct && run.agentId) {
        ctx.dispatcher.agent(run.agentId)?.send({
          type: "run.cancel",
          v: PROTOCOL_VERSION,
          flowRunId: run.id,
          attempt: run.attempt,
          reason: "cancelled by user",
        });
      }
      if (outcome.released) ctx.dispatcher.release(run.agentId, run.id);
      return { id: run.id, state: outcome.result.state };
    }),
});
