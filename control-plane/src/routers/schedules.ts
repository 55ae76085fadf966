import { JsonObject } from "@ferry/sdk/protocol";
import { z } from "zod";
import { changesOf } from "../changes.ts";
import type { Context } from "../context.ts";
import { DomainError } from "../errors.ts";
import { newId } from "../ids.ts";
import { checkParametersSize, quotaExceeded } from "../quotas.ts";
import { specOf } from "../scheduler.ts";
import { checkSpec, nextSlot, type ScheduleSpec } from "../scheduling/slots.ts";
import { router, scoped } from "../trpc.ts";
import { IdInput, parseJson } from "./shared.ts";

const Catchup = z.enum(["ALL", "LATEST", "SKIP"]);

/** A schedule as given by a user or declared in a flow's options. */
export const ScheduleInput = z
  .object({
    /** A cron expression (5 fields, or 6 with seconds first), read in `timezone`. */
    cron: z.string().min(1).max(200).optional(),
    timezone: z.string().min(1).max(100).default("UTC"),
    /** Or a fixed interval, in seconds, counted from `anchor` (default: when the schedule is created). */
    intervalSeconds: z
      .number()
      .int()
      .min(1)
      .max(366 * 86_400)
      .optional(),
    anchor: z.iso.datetime({ offset: true }).optional(),
    parameters: JsonObject.default({}),
    /** Slots missed while nothing ran: run ALL, only the LATEST, or SKIP them. */
    catchup: Catchup.default("LATEST"),
    /** A run not started this long after its slot is Late. */
    graceSeconds: z.number().int().min(1).max(86_400).default(60),
    active: z.boolean().default(true),
  })
  .refine((s) => (s.cron === undefined) !== (s.intervalSeconds === undefined), {
    message: "give either a cron expression or an interval",
  });
export type ScheduleInput = z.infer<typeof ScheduleInput>;

export function scheduleSpecOf(input: ScheduleInput, now: Date): ScheduleSpec {
  return input.cron !== undefined
    ? { kind: "cron", cron: input.cron, timezone: input.timezone }
    : { kind: "interval", intervalSeconds: input.intervalSeconds ?? 3600, anchor: input.anchor ? new Date(input.anchor) : now };
}

/** Checks a schedule against its deployment (expression, time zone, parameters); returns the row's columns. */
export function scheduleColumns(
  ctx: Pick<Context, "params" | "quotas">,
  deployment: { workspaceId: string; name: string; paramsSchemaJson: string; defaultParamsJson: string },
  input: ScheduleInput,
  now: Date,
) {
  const spec = scheduleSpecOf(input, now);
  try {
    checkSpec(spec);
  } catch (err) {
    throw new DomainError("INVALID_PARAMETERS", err instanceof Error ? err.message : String(err));
  }
  const gap = shortestGapSeconds(spec, now);
  if (gap < ctx.quotas.minScheduleIntervalSeconds) {
    throw quotaExceeded(
      "minScheduleIntervalSeconds",
      ctx.quotas.minScheduleIntervalSeconds,
      `this schedule starts runs ${gap} s apart`,
    );
  }
  checkParametersSize(ctx.quotas, input.parameters);
  const parameters = { ...parseJson<Record<string, unknown>>(deployment.defaultParamsJson, {}), ...input.parameters };
  const issues = ctx.params.check(deployment.workspaceId, deployment.paramsSchemaJson, parameters);
  if (issues.length) {
    throw new DomainError(
      "INVALID_PARAMETERS",
      `invalid parameters for a schedule of "${deployment.name}":\n${issues.map((i) => `  - ${i}`).join("\n")}`,
      issues,
    );
  }
  return {
    kind: spec.kind,
    cron: spec.kind === "cron" ? spec.cron : null,
    timezone: spec.kind === "cron" ? spec.timezone : "UTC",
    intervalSeconds: spec.kind === "interval" ? spec.intervalSeconds : null,
    // No explicit anchor: the interval counts from the schedule's creation (see specOf).
    anchor: spec.kind === "interval" && input.anchor ? spec.anchor : null,
    parametersJson: JSON.stringify(input.parameters),
    catchup: input.catchup,
    graceSeconds: input.graceSeconds,
    active: input.active,
  };
}

/** Slots of a schedule looked at for its shortest gap (a cron's gaps vary: "0,1 * * * * *"). */
const GAP_SAMPLE = 20;

/** The shortest time between two of the schedule's next slots (seconds; Infinity for fewer than two). */
function shortestGapSeconds(spec: ScheduleSpec, now: Date): number {
  if (spec.kind === "interval") return spec.intervalSeconds;
  let shortest = Number.POSITIVE_INFINITY;
  let previous = nextSlot(spec, now);
  for (let i = 0; previous && i < GAP_SAMPLE; i++) {
    const slot = nextSlot(spec, previous);
    if (!slot) break;
    shortest = Math.min(shortest, (slot.getTime() - previous.getTime()) / 1000);
    previous = slot;
  }
  return shortest;
}

/** Fails when a workspace holding `existing` schedules would go past its quota by adding `adding`. */
export function checkScheduleCount(ctx: Pick<Context, "quotas">, existing: number, adding: number): void {
  if (existing + adding > ctx.quotas.maxSchedules) {
    throw quotaExceeded("maxSchedules", ctx.quotas.maxSchedules, `this workspace has ${existing} schedules`);
  }
}

/** Runs a schedule made that have not started yet (kept: runs that started or ended). */
async function dropUpcomingRuns(ctx: Context, scheduleId: string, workspaceId: string): Promise<number> {
  const { count } = await ctx.db.flowRun.deleteMany({
    where: { scheduleId, workspaceId, stateType: "SCHEDULED", agentId: null, attempt: 0 },
  });
  if (count) changesOf(ctx.db).publish({ kind: "runs", workspaceId });
  return count;
}

function present<
  T extends {
    kind: string;
    cron: string | null;
    timezone: string;
    intervalSeconds: number | null;
    anchor: Date | null;
    parametersJson: string;
    createdAt: Date;
  },
>(s: T) {
  const { parametersJson, ...rest } = s;
  const spec = specOf({ ...s, anchor: s.anchor });
  const next: string[] = [];
  let cursor = new Date();
  for (let i = 0; i < 5; i++) {
    const slot = nextSlot(spec, cursor);
    if (!slot) break;
    next.push(slot.toISOString());
    cursor = slot;
  }
  return { ...rest, parameters: parseJson<Record<string, unknown>>(parametersJson, {}), nextSlots: next };
}

export const schedulesRouter = router({
  create: scoped("write")
    .input(z.object({ deployment: z.string().min(1).max(200), schedule: ScheduleInput }))
    .mutation(async ({ ctx, input }) => {
      const workspaceId = ctx.principal.workspaceId;
      const deployment = await ctx.db.deployment.findUnique({
        where: { workspaceId_name: { workspaceId, name: input.deployment } },
      });
      if (!deployment) throw new DomainError("NOT_FOUND", `no deployment named "${input.deployment}"`);
      const now = new Date();
      const columns = scheduleColumns(ctx, deployment, input.schedule, now);
      checkScheduleCount(ctx, await ctx.db.schedule.count({ where: { workspaceId } }), 1);
      const row = await ctx.db.schedule.create({
        data: { id: newId(), workspaceId, deploymentId: deployment.id, ...columns },
      });
      ctx.scheduler.kick();
      changesOf(ctx.db).publish({ kind: "deployments", workspaceId });
      return { ...present(row), deployment: deployment.name };
    }),

  list: scoped("read")
    .input(z.object({ deployment: z.string().max(200).optional() }).default({}))
    .query(async ({ ctx, input }) => {
      const rows = await ctx.db.schedule.findMany({
        where: {
          workspaceId: ctx.principal.workspaceId,
          ...(input.deployment ? { deployment: { name: input.deployment } } : {}),
        },
        include: { deployment: { select: { name: true } } },
        orderBy: [{ createdAt: "asc" }],
        take: 1000,
      });
      return rows.map(({ deployment, ...s }) => ({ ...present(s), deployment: deployment.name }));
    }),

  /** Stops a schedule: no new runs, and its runs that have not started are removed. */
  pause: scoped("write")
    .input(IdInput)
    .mutation(async ({ ctx, input }) => {
      const workspaceId = ctx.principal.workspaceId;
      const { count } = await ctx.db.schedule.updateMany({ where: { id: input.id, workspaceId }, data: { active: false } });
      if (!count) throw new DomainError("NOT_FOUND", `no schedule ${input.id}`);
      const removed = await dropUpcomingRuns(ctx, input.id, workspaceId);
      changesOf(ctx.db).publish({ kind: "deployments", workspaceId });
      return { id: input.id, active: false, removedRuns: removed };
    }),

  /** Starts a paused schedule again from now (the slots of the pause are not made up for). */
  resume: scoped("write")
    .input(IdInput)
    .mutation(async ({ ctx, input }) => {
      const workspaceId = ctx.principal.workspaceId;
      const { count } = await ctx.db.schedule.updateMany({
        where: { id: input.id, workspaceId, active: false },
        data: { active: true, lastSlotAt: new Date() },
      });
      if (!count) {
        const exists = await ctx.db.schedule.findFirst({ where: { id: input.id, workspaceId } });
        if (!exists) throw new DomainError("NOT_FOUND", `no schedule ${input.id}`);
      }
      ctx.scheduler.kick();
      changesOf(ctx.db).publish({ kind: "deployments", workspaceId });
      return { id: input.id, active: true };
    }),

  delete: scoped("write")
    .input(IdInput)
    .mutation(async ({ ctx, input }) => {
      const workspaceId = ctx.principal.workspaceId;
      const schedule = await ctx.db.schedule.findFirst({ where: { id: input.id, workspaceId } });
      if (!schedule) throw new DomainError("NOT_FOUND", `no schedule ${input.id}`);
      // Stopped first: a scheduler pass under way then withdraws the runs it makes after the drop.
      await ctx.db.schedule.updateMany({ where: { id: input.id, workspaceId }, data: { active: false } });
      const removed = await dropUpcomingRuns(ctx, input.id, workspaceId);
      await ctx.db.schedule.delete({ where: { id: input.id } });
      changesOf(ctx.db).publish({ kind: "deployments", workspaceId });
      return { deleted: input.id, removedRuns: removed };
    }),
});
