import { JsonObject } from "@ferry/sdk/protocol";
import { z } from "zod";
import { changesOf } from "../changes.ts";
import type { Context } from "../context.ts";
import { DomainError } from "../errors.ts";
import { newId } from "../ids.ts";
import { proposeFlowRunState } from "../orchestration/flow-runs.ts";
import { checkParametersSize, quotaExceeded } from "../quotas.ts";
import { specOf } from "../scheduler.ts";
import { checkSpec, countSlots, type ScheduleSpec, slotsBefore, slotsBetween } from "../scheduling/slots.ts";
import { router, scoped } from "../trpc.ts";
import { IdInput, parseJson } from "./shared.ts";

/** A backfill this big is refused (it would be a mistake more often than not). */
export const MAX_BACKFILL_SLOTS = 100_000;

export const BackfillInput = z
  .object({
    deployment: z.string().min(1).max(200),
    from: z.iso.datetime({ offset: true }),
    to: z.iso.datetime({ offset: true }),
    /** The slots: a cron expression or an interval; omitted: the deployment's schedule (`schedule` picks one of several). */
    cron: z.string().min(1).max(200).optional(),
    timezone: z.string().min(1).max(100).default("UTC"),
    intervalSeconds: z
      .number()
      .int()
      .min(1)
      .max(366 * 86_400)
      .optional(),
    schedule: z.string().max(100).optional(),
    parameters: JsonObject.optional(),
    maxActive: z.number().int().min(1).max(10_000).default(10),
    reprocess: z.enum(["none", "failed", "completed"]).default("none"),
    backwards: z.boolean().default(false),
    /** Only count and list the slots; create nothing. */
    dryRun: z.boolean().default(false),
  })
  .refine((b) => new Date(b.from) <= new Date(b.to), { message: "from must not be after to", path: ["to"] })
  .refine((b) => !(b.cron !== undefined && b.intervalSeconds !== undefined), {
    message: "give a cron expression or an interval, not both",
  });

type Status = "RUNNING" | "PAUSED" | "CANCELLED" | "COMPLETED";

async function resolveSpec(ctx: Context, deploymentId: string, input: z.infer<typeof BackfillInput>, from: Date) {
  if (input.cron !== undefined)
    return { spec: { kind: "cron", cron: input.cron, timezone: input.timezone } as ScheduleSpec, parameters: {} };
  if (input.intervalSeconds !== undefined) {
    return { spec: { kind: "interval", intervalSeconds: input.intervalSeconds, anchor: from } as ScheduleSpec, parameters: {} };
  }
  const schedules = await ctx.db.schedule.findMany({
    where: { deploymentId, ...(input.schedule ? { id: input.schedule } : { active: true }) },
  });
  if (schedules.length !== 1) {
    throw new DomainError(
      "INVALID_PARAMETERS",
      schedules.length
        ? `deployment "${input.deployment}" has ${schedules.length} active schedules: name one (schedule) or give cron/intervalSeconds`
        : input.schedule
          ? `no schedule ${input.schedule} on deployment "${input.deployment}"`
          : `deployment "${input.deployment}" has no active schedule: give cron or intervalSeconds`,
    );
  }
  const [s] = schedules;
  if (!s) throw new Error("unreachable");
  return { spec: specOf(s), parameters: parseJson<Record<string, unknown>>(s.parametersJson, {}) };
}

async function progress(ctx: Context, backfillIds: string[]) {
  const rows = await ctx.db.flowRun.groupBy({
    by: ["backfillId", "stateType"],
    where: { backfillId: { in: backfillIds } },
    _count: { _all: true },
  });
  const out = new Map<string, Record<string, number>>();
  for (const r of rows) {
    if (!r.backfillId) continue;
    const c = out.get(r.backfillId) ?? {};
    c[r.stateType] = r._count._all;
    out.set(r.backfillId, c);
  }
  return out;
}

function present<T extends { parametersJson: string }>(b: T, counts: Record<string, number> | undefined) {
  const { parametersJson, ...rest } = b;
  const runs = counts ?? {};
  const created = Object.values(runs).reduce((a, n) => a + n, 0);
  return { ...rest, parameters: parseJson<Record<string, unknown>>(parametersJson, {}), runs, created };
}

async function setStatus(ctx: Context & { principal: { workspaceId: string } }, id: string, from: Status[], to: Status) {
  const { count } = await ctx.db.backfill.updateMany({
    where: { id, workspaceId: ctx.principal.workspaceId, status: { in: from } },
    data: { status: to },
  });
  if (!count) {
    const b = await ctx.db.backfill.findFirst({ where: { id, workspaceId: ctx.principal.workspaceId } });
    if (!b) throw new DomainError("NOT_FOUND", `no backfill ${id}`);
    throw new DomainError("INVALID_TRANSITION", `backfill ${id} is ${b.status}`);
  }
  changesOf(ctx.db).publish({ kind: "deployments", workspaceId: ctx.principal.workspaceId });
}

export const backfillsRouter = router({
  /** Creates a backfill (or, with dryRun, says what it would do). */
  create: scoped("write")
    .input(BackfillInput)
    .mutation(async ({ ctx, input }) => {
      const workspaceId = ctx.principal.workspaceId;
      const deployment = await ctx.db.deployment.findUnique({
        where: { workspaceId_name: { workspaceId, name: input.deployment } },
      });
      if (!deployment) throw new DomainError("NOT_FOUND", `no deployment named "${input.deployment}"`);
      const from = new Date(input.from);
      const to = new Date(input.to);
      const { spec, parameters: scheduleParams } = await resolveSpec(ctx, deployment.id, input, from);
      try {
        checkSpec(spec);
      } catch (err) {
        throw new DomainError("INVALID_PARAMETERS", err instanceof Error ? err.message : String(err));
      }
      const total = countSlots(spec, from, to, MAX_BACKFILL_SLOTS);
      if (total > MAX_BACKFILL_SLOTS) {
        throw new DomainError("INVALID_PARAMETERS", `the range holds more than ${MAX_BACKFILL_SLOTS} slots: narrow it`);
      }
      const parameters = { ...scheduleParams, ...(input.parameters ?? {}) };
      const issues = ctx.params.check(workspaceId, deployment.paramsSchemaJson, {
        ...parseJson<Record<string, unknown>>(deployment.defaultParamsJson, {}),
        ...parameters,
      });
      if (issues.length) {
        throw new DomainError(
          "INVALID_PARAMETERS",
          `invalid parameters for "${deployment.name}":\n${issues.map((i) => `  - ${i}`).join("\n")}`,
          issues,
        );
      }
      const sample = input.backwards
        ? slotsBefore(spec, new Date(to.getTime() + 1), from, 5)
        : slotsBetween(spec, new Date(from.getTime() - 1), to, 5);
      if (input.dryRun) {
        const alreadyRun = await ctx.db.flowRun.count({
          where: { deploymentId: deployment.id, scheduledFor: { gte: from, lte: to } },
        });
        return { dryRun: true as const, total, firstSlots: sample.map((d) => d.toISOString()), alreadyRun, backfill: null };
      }
      checkParametersSize(ctx.quotas, parameters);
      // Paused ones count: resuming one must not take a workspace past its quota.
      const unfinished = await ctx.db.backfill.count({ where: { workspaceId, status: { in: ["RUNNING", "PAUSED"] } } });
      if (unfinished >= ctx.quotas.maxActiveBackfills) {
        throw quotaExceeded(
          "maxActiveBackfills",
          ctx.quotas.maxActiveBackfills,
          `this workspace has ${unfinished} unfinished backfills: wait for one to end or cancel one`,
        );
      }
      const row = await ctx.db.backfill.create({
        data: {
          id: newId(),
          workspaceId,
          deploymentId: deployment.id,
          kind: spec.kind,
          cron: spec.kind === "cron" ? spec.cron : null,
          timezone: spec.kind === "cron" ? spec.timezone : "UTC",
          intervalSeconds: spec.kind === "interval" ? spec.intervalSeconds : null,
          anchor: spec.kind === "interval" ? spec.anchor : null,
          rangeStart: from,
          rangeEnd: to,
          parametersJson: JSON.stringify(parameters),
          maxActive: input.maxActive,
          reprocess: input.reprocess,
          backwards: input.backwards,
          total,
        },
      });
      ctx.backfiller.kick();
      changesOf(ctx.db).publish({ kind: "deployments", workspaceId });
      return {
        dryRun: false as const,
        total,
        firstSlots: sample.map((d) => d.toISOString()),
        alreadyRun: 0,
        backfill: present(row, {}),
      };
    }),

  list: scoped("read")
    .input(
      z
        .object({ deployment: z.string().max(200).optional(), limit: z.number().int().min(1).max(200).default(50) })
        .default({ limit: 50 }),
    )
    .query(async ({ ctx, input }) => {
      const rows = await ctx.db.backfill.findMany({
        where: {
          workspaceId: ctx.principal.workspaceId,
          ...(input.deployment ? { deployment: { name: input.deployment } } : {}),
        },
        include: { deployment: { select: { name: true } } },
        orderBy: { createdAt: "desc" },
        take: input.limit,
      });
      const counts = await progress(
        ctx,
        rows.map((r) => r.id),
      );
      return rows.map(({ deployment, ...b }) => ({ ...present(b, counts.get(b.id)), deployment: deployment.name }));
    }),

  get: scoped("read")
    .input(IdInput)
    .query(async ({ ctx, input }) => {
      const b = await ctx.db.backfill.findFirst({
        where: { id: input.id, workspaceId: ctx.principal.workspaceId },
        include: { deployment: { select: { name: true } } },
      });
      if (!b) throw new DomainError("NOT_FOUND", `no backfill ${input.id}`);
      const { deployment, ...rest } = b;
      return { ...present(rest, (await progress(ctx, [b.id])).get(b.id)), deployment: deployment.name };
    }),

  pause: scoped("write")
    .input(IdInput)
    .mutation(async ({ ctx, input }) => {
      await setStatus(ctx, input.id, ["RUNNING"], "PAUSED");
      return { id: input.id, status: "PAUSED" as const };
    }),

  resume: scoped("write")
    .input(IdInput)
    .mutation(async ({ ctx, input }) => {
      await setStatus(ctx, input.id, ["PAUSED"], "RUNNING");
      ctx.backfiller.kick();
      return { id: input.id, status: "RUNNING" as const };
    }),

  /** Stops a backfill: no more runs; its runs not finished yet are cancelled. */
  cancel: scoped("write")
    .input(IdInput)
    .mutation(async ({ ctx, input }) => {
      await setStatus(ctx, input.id, ["RUNNING", "PAUSED"], "CANCELLED");
      const open = await ctx.db.flowRun.findMany({
        where: { backfillId: input.id, stateType: { in: ["SCHEDULED", "PENDING", "RUNNING", "PAUSED"] } },
        select: { id: true, workspaceId: true, stateType: true, agentId: true, attempt: true },
      });
      let cancelled = 0;
      for (const run of open) {
        const direct =
          run.stateType === "SCHEDULED" || run.stateType === "PAUSED" || (run.stateType === "PENDING" && !run.agentId);
        const outcome = await proposeFlowRunState(ctx.db, {
          workspaceId: run.workspaceId,
          flowRunId: run.id,
          state: direct
            ? { type: "CANCELLED", name: "Cancelled", message: "its backfill was cancelled" }
            : { type: "CANCELLING", name: "Cancelling", message: "its backfill was cancelled" },
          proposer: "user",
        });
        if (outcome.result.status === "ACCEPT") cancelled++;
        if (!direct && run.agentId)
          ctx.dispatcher.cancelOnAgent(run.workspaceId, run.agentId, run.id, run.attempt, "its backfill was cancelled");
        if (outcome.released) ctx.dispatcher.release(run.agentId, run.id);
      }
      return { id: input.id, status: "CANCELLED" as const, cancelledRuns: cancelled };
    }),
});
