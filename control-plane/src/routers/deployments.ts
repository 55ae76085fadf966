import type { Deployment } from "@ferry/prisma/sqlite";
import { JsonObject } from "@ferry/sdk/protocol";
import { z } from "zod";
import { changesOf } from "../changes.ts";
import type { Context } from "../context.ts";
import { DomainError } from "../errors.ts";
import { newId } from "../ids.ts";
import { router, scoped } from "../trpc.ts";
import { checkScheduleCount, ScheduleInput, scheduleColumns } from "./schedules.ts";
import { Limit, parseJson } from "./shared.ts";

const Name = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9_.:-]+$/, "use letters, digits, and _ . : -");

export const DeploymentInput = z.object({
  name: Name,
  flowName: z.string().min(1).max(200),
  description: z.string().max(2000).optional(),
  /** Path of the flow's module relative to the agent's working directory. */
  entrypoint: z
    .string()
    .min(1)
    .max(1000)
    .refine(
      (p) => !p.startsWith("/") && !p.split(/[\\/]/).includes(".."),
      "must be a relative path inside the agent's directory",
    ),
  paramsSchema: JsonObject,
  defaultParams: JsonObject.default({}),
  workPool: Name.default("default"),
  tags: z.array(z.string().min(1).max(100)).max(50).default([]),
  retries: z.number().int().min(0).max(100).default(0),
  retryDelayMs: z.number().int().min(0).max(86_400_000).default(0),
  timeoutMs: z
    .number()
    .int()
    .positive()
    .max(7 * 86_400_000)
    .optional(),
  /** Most runs of this deployment running at once. */
  concurrencyLimit: z.number().int().min(1).max(100_000).optional(),
  /** Over the limit, a new run waits (ENQUEUE) or is cancelled (CANCEL_NEW). */
  collisionStrategy: z.enum(["ENQUEUE", "CANCEL_NEW"]).default("ENQUEUE"),
  /**
   * Schedules declared with the flow (what `ferry deploy` sends): the deployment's deploy-made
   * schedules become exactly these; unchanged ones keep their place in time. Omitted: untouched.
   * Schedules added with the API or `ferry schedule add` are never changed by a deploy.
   */
  schedules: z.array(ScheduleInput).max(20).optional(),
});
export type DeploymentInput = z.infer<typeof DeploymentInput>;

function present<T extends { paramsSchemaJson: string; defaultParamsJson: string; tagsJson: string }>(d: T) {
  const { paramsSchemaJson, defaultParamsJson, tagsJson, ...rest } = d;
  return {
    ...rest,
    paramsSchema: parseJson<Record<string, unknown>>(paramsSchemaJson, {}),
    defaultParams: parseJson<Record<string, unknown>>(defaultParamsJson, {}),
    tags: parseJson<string[]>(tagsJson, []),
  };
}

/** What makes two schedules the same (so a redeploy keeps an unchanged schedule's cursor). */
function scheduleIdentity(s: {
  kind: string;
  cron: string | null;
  timezone: string;
  intervalSeconds: number | null;
  anchor: Date | null;
  parametersJson: string;
  catchup: string;
  graceSeconds: number;
  active: boolean;
}): string {
  return JSON.stringify([
    s.kind,
    s.cron,
    s.timezone,
    s.intervalSeconds,
    s.anchor?.getTime() ?? null,
    s.parametersJson,
    s.catchup,
    s.graceSeconds,
    s.active,
  ]);
}

async function syncDeploySchedules(ctx: Context, deployment: Deployment, schedules: ScheduleInput[]): Promise<void> {
  const now = new Date();
  const wanted = schedules.map((s) => scheduleColumns(ctx, deployment, s, now));
  const existing = await ctx.db.schedule.findMany({ where: { deploymentId: deployment.id, source: "deploy" } });
  const keep = new Set<string>();
  const have = new Map(existing.map((e) => [scheduleIdentity(e), e]));
  const create = [];
  for (const w of wanted) {
    const match = have.get(scheduleIdentity(w));
    if (match && !keep.has(match.id)) keep.add(match.id);
    else create.push(w);
  }
  const gone = existing.filter((e) => !keep.has(e.id));
  if (create.length > gone.length) {
    const held = await ctx.db.schedule.count({ where: { workspaceId: deployment.workspaceId } });
    checkScheduleCount(ctx, held - gone.length, create.length);
  }
  for (const g of gone) {
    // Inactive first: a scheduler pass running now then withdraws the runs it makes (see Scheduler).
    await ctx.db.schedule.update({ where: { id: g.id }, data: { active: false } });
    await ctx.db.flowRun.deleteMany({ where: { scheduleId: g.id, stateType: "SCHEDULED", agentId: null, attempt: 0 } });
    await ctx.db.schedule.delete({ where: { id: g.id } });
  }
  for (const c of create) {
    await ctx.db.schedule.create({
      data: { id: newId(), workspaceId: deployment.workspaceId, deploymentId: deployment.id, source: "deploy", ...c },
    });
  }
  if (gone.length || create.length) ctx.scheduler.kick();
}

export const deploymentsRouter = router({
  /** Creates or updates a deployment by name (what `ferry deploy` calls). */
  upsert: scoped("write")
    .input(DeploymentInput)
    .mutation(async ({ ctx, input }) => {
      const workspaceId = ctx.principal.workspaceId;
      const paramsSchemaJson = JSON.stringify(input.paramsSchema);
      // Refused here, with the cap or the reason named, rather than on every run of the deployment.
      const problem = ctx.params.schemaProblem(workspaceId, paramsSchemaJson);
      if (problem) throw new DomainError("INVALID_PARAMETERS", problem, [problem]);
      const flow = await ctx.db.flow.upsert({
        where: { workspaceId_name: { workspaceId, name: input.flowName } },
        create: { id: newId(), workspaceId, name: input.flowName },
        update: {},
      });
      const data = {
        flowId: flow.id,
        flowName: input.flowName,
        description: input.description ?? null,
        entrypoint: input.entrypoint,
        paramsSchemaJson,
        defaultParamsJson: JSON.stringify(input.defaultParams),
        workPool: input.workPool,
        tagsJson: JSON.stringify(input.tags),
        retries: input.retries,
        retryDelayMs: input.retryDelayMs,
        timeoutMs: input.timeoutMs ?? null,
        concurrencyLimit: input.concurrencyLimit ?? null,
        collisionStrategy: input.collisionStrategy,
      };
      const deployment = await ctx.db.deployment.upsert({
        where: { workspaceId_name: { workspaceId, name: input.name } },
        create: { id: newId(), workspaceId, name: input.name, ...data },
        update: data,
      });
      if (input.schedules) await syncDeploySchedules(ctx, deployment, input.schedules);
      changesOf(ctx.db).publish({ kind: "deployments", workspaceId });
      return present(deployment);
    }),
  list: scoped("read")
    .input(z.object({ limit: Limit }).default({ limit: 50 }))
    .query(async ({ ctx, input }) => {
      const rows = await ctx.db.deployment.findMany({
        where: { workspaceId: ctx.principal.workspaceId },
        orderBy: { name: "asc" },
        take: input.limit,
      });
      return rows.map(present);
    }),
  get: scoped("read")
    .input(z.object({ name: z.string().min(1).max(200) }))
    .query(async ({ ctx, input }) => {
      const d = await ctx.db.deployment.findUnique({
        where: { workspaceId_name: { workspaceId: ctx.principal.workspaceId, name: input.name } },
      });
      if (!d) throw new DomainError("NOT_FOUND", `no deployment named "${input.name}"`);
      return present(d);
    }),
  delete: scoped("write")
    .input(z.object({ name: z.string().min(1).max(200) }))
    .mutation(async ({ ctx, input }) => {
      const deleted = await ctx.db.deployment.deleteMany({ where: { workspaceId: ctx.principal.workspaceId, name: input.name } });
      if (deleted.count === 0) throw new DomainError("NOT_FOUND", `no deployment named "${input.name}"`);
      changesOf(ctx.db).publish({ kind: "deployments", workspaceId: ctx.principal.workspaceId });
      return { deleted: input.name };
    }),
});
