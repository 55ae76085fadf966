import { type Provider, sqlOf } from "@ferry/prisma";
import { JsonObject, StateType } from "@ferry/sdk/protocol";
import { z } from "zod";
import type { Context } from "../context.ts";
import { DomainError } from "../errors.ts";
import { loadRunGraph } from "../graph.ts";
import { createFlowRun } from "../orchestration/create-run.ts";
import { readDeployment } from "../orchestration/flow-run-sql.ts";
import { currentState, proposeFlowRunState, retryFlowRun } from "../orchestration/flow-runs.ts";
import { quotaExceeded } from "../quotas.ts";
import { redactParameters } from "../secret-params.ts";
import { containsFilter, exactPage, hasTag } from "../text-match.ts";
import { router, scoped } from "../trpc.ts";
import { IdInput, Limit, parseJson, requireOwnRow } from "./shared.ts";

export const CreateRunInput = z.object({
  deployment: z.string().min(1).max(200),
  parameters: JsonObject.default({}),
  /** The same key in the same workspace returns the run created first instead of a new one. */
  idempotencyKey: z.string().min(1).max(200).optional(),
  tags: z.array(z.string().min(1).max(100)).max(50).optional(),
});

async function createRun(ctx: Context & { principal: NonNullable<Context["principal"]> }, input: z.infer<typeof CreateRunInput>) {
  const workspaceId = ctx.principal.workspaceId;
  if (!ctx.runCreates.take(workspaceId)) {
    throw quotaExceeded(
      "runCreatesPerSecond",
      ctx.quotas.runCreatesPerSecond,
      `this workspace creates runs faster than ${ctx.quotas.runCreatesPerSecond}/s (bursts of ${ctx.quotas.runCreateBurst}): retry in a moment`,
    );
  }
  if (input.idempotencyKey) {
    const existing = await ctx.db.flowRun.findUnique({
      where: { workspaceId_idempotencyKey: { workspaceId, idempotencyKey: input.idempotencyKey } },
    });
    if (existing) {
      const of = existing.deploymentId
        ? await ctx.db.deployment.findUnique({ where: { id: existing.deploymentId }, select: { paramsSchemaJson: true } })
        : null;
      return { run: existing, created: false, paramsSchemaJson: of?.paramsSchemaJson };
    }
  }
  const deployment = await readDeployment(sqlOf(ctx.db), workspaceId, input.deployment);
  if (!deployment) throw new DomainError("NOT_FOUND", `no deployment named "${input.deployment}"`);
  // An idle agent of the pool takes the run in the same transaction that creates it.
  const reservation = await ctx.dispatcher.reserve(workspaceId, deployment);
  let outcome: Awaited<ReturnType<typeof createFlowRun>> | undefined;
  try {
    outcome = await createFlowRun(ctx.db, ctx.params, {
      workspaceId,
      deployment,
      parameters: input.parameters,
      tags: input.tags,
      idempotencyKey: input.idempotencyKey,
      ...(reservation ? { assign: reservation.assignment } : {}),
    });
  } finally {
    if (reservation) {
      if (outcome) ctx.dispatcher.settle(reservation, outcome, deployment);
      else ctx.dispatcher.release(reservation.agent.agentId, reservation.token);
    }
  }
  if (outcome.created && !reservation) ctx.dispatcher.kick();
  // The schema read above marks what the answer redacts (no second read of the deployment).
  return { ...outcome, paramsSchemaJson: deployment.paramsSchemaJson };
}

/** A run as the API shows it; `paramsSchemaJson` (its deployment's) marks the parameters shown redacted (secret-params.ts). */
function present<T extends { parametersJson: string; tagsJson: string }>(run: T, paramsSchemaJson: string | null | undefined) {
  const { parametersJson, tagsJson, ...rest } = run;
  return {
    ...rest,
    parameters: redactParameters(parseJson<Record<string, unknown>>(parametersJson, {}), paramsSchemaJson),
    tags: parseJson<string[]>(tagsJson, []),
  };
}

/** `present` for a run read with its deployment's name and schema; the schema itself is not part of the answer. */
function presentWithDeployment<D extends { paramsSchemaJson: string }, R extends { parametersJson: string; tagsJson: string }>(
  run: R & { deployment: D | null },
) {
  const { deployment, ...rest } = run;
  let shown: Omit<D, "paramsSchemaJson"> | null = null;
  if (deployment) {
    const { paramsSchemaJson: _schema, ...others } = deployment;
    shown = others;
  }
  return { ...present(rest, deployment?.paramsSchemaJson), deployment: shown };
}

/** Filters shared by the run list and its statistics. */
const RunFilter = z.object({
  deployment: z.string().max(200).optional(),
  flow: z.string().max(200).optional(),
  tag: z.string().max(100).optional(),
  /** Only runs started by a user or schedule (no child flow runs). */
  rootOnly: z.boolean().optional(),
  createdAfter: z.iso.datetime({ offset: true }).optional(),
  createdBefore: z.iso.datetime({ offset: true }).optional(),
});

/** States of a run that `get` returns: its newest ones, oldest first. */
const STATES_SHOWN = 1_000;

/** Most runs `stats` reads to count a tag's runs in code. */
const STATS_SCAN_LIMIT = 100_000;

function runWhere(provider: Provider, workspaceId: string, f: z.infer<typeof RunFilter>) {
  return {
    workspaceId,
    ...(f.deployment ? { deployment: { name: f.deployment } } : {}),
    ...(f.flow ? { flow: { name: f.flow } } : {}),
    // Tags are stored as a JSON array of strings: the database narrows to rows holding the
    // quoted element; `hasTag` decides exactly.
    ...(f.tag ? { tagsJson: containsFilter(provider, JSON.stringify(f.tag)) } : {}),
    ...(f.rootOnly ? { parentFlowRunId: null } : {}),
    ...(f.createdAfter || f.createdBefore
      ? {
          createdAt: {
            ...(f.createdAfter ? { gte: new Date(f.createdAfter) } : {}),
            ...(f.createdBefore ? { lte: new Date(f.createdBefore) } : {}),
          },
        }
      : {}),
  };
}

export const runsRouter = router({
  create: scoped("write")
    .input(CreateRunInput)
    .mutation(async ({ ctx, input }) => {
      const { run, created, paramsSchemaJson } = await createRun(ctx, input);
      return { ...present(run, paramsSchemaJson), created };
    }),

  list: scoped("read")
    .input(
      RunFilter.extend({
        state: z.array(StateType).max(9).optional(),
        parentFlowRunId: z.string().max(100).optional(),
        limit: Limit,
        /** Id of the last run of the previous page. */
        cursor: z.string().max(100).optional(),
      }).default({ limit: 50 }),
    )
    .query(async ({ ctx, input }) => {
      if (input.cursor) await requireOwnRow(ctx.db.flowRun, ctx.principal.workspaceId, input.cursor);
      const where = {
        ...runWhere(ctx.provider, ctx.principal.workspaceId, input),
        ...(input.state ? { stateType: { in: input.state } } : {}),
        ...(input.parentFlowRunId ? { parentFlowRunId: input.parentFlowRunId } : {}),
      };
      const page = await exactPage(
        (after: string | undefined, n) => {
          const cursor = after ?? input.cursor;
          return ctx.db.flowRun.findMany({
            where,
            orderBy: [{ createdAt: "desc" }, { id: "desc" }],
            take: n,
            ...(cursor ? { cursor: { id: cursor }, skip: 1 } : {}),
            include: { deployment: { select: { name: true, paramsSchemaJson: true } }, flow: { select: { name: true } } },
          });
        },
        (run) => run.id,
        (run) => !input.tag || hasTag(run.tagsJson, input.tag),
        input.limit,
      );
      return { items: page.rows.map(presentWithDeployment), nextCursor: page.more ? page.last : undefined };
    }),

  /**
   * Counts per state and runs over time (per state, in `buckets` equal slices of the time
   * range, default the last 24 hours) for the same filters as `list`, without the state filter.
   */
  stats: scoped("read")
    .input(RunFilter.extend({ buckets: z.number().int().min(1).max(96).default(24) }).default({ buckets: 24 }))
    .query(async ({ ctx, input }) => {
      const to = input.createdBefore ? new Date(input.createdBefore) : new Date();
      const from = input.createdAfter ? new Date(input.createdAfter) : new Date(to.getTime() - 86_400_000);
      if (from >= to) throw new DomainError("INVALID_PARAMETERS", "createdAfter must be before createdBefore");
      const base = runWhere(ctx.provider, ctx.principal.workspaceId, {
        ...input,
        createdAfter: undefined,
        createdBefore: undefined,
      });
      const step = (to.getTime() - from.getTime()) / input.buckets;
      const slices = Array.from({ length: input.buckets }, (_, i) => ({
        start: new Date(from.getTime() + i * step),
        end: new Date(i === input.buckets - 1 ? to.getTime() : from.getTime() + (i + 1) * step),
      }));
      const perState = (rows: { stateType: string; _count: { _all: number } }[]) =>
        Object.fromEntries(rows.map((r) => [r.stateType, r._count._all])) as Record<string, number>;
      const perStateOf = (rows: { stateType: string }[]) => {
        const out: Record<string, number> = {};
        for (const r of rows) out[r.stateType] = (out[r.stateType] ?? 0) + 1;
        return out;
      };
      if (input.tag) {
        // A tag is matched exactly in code (see text-match.ts): count the candidate rows here.
        const tag = input.tag;
        const rows = (
          await ctx.db.flowRun.findMany({
            where: { ...base, createdAt: { gte: from, lte: to } },
            select: { stateType: true, createdAt: true, tagsJson: true },
            take: STATS_SCAN_LIMIT,
          })
        ).filter((r) => hasTag(r.tagsJson, tag));
        return {
          from: from.toISOString(),
          to: to.toISOString(),
          counts: perStateOf(rows),
          buckets: slices.map((b, i) => ({
            start: b.start.toISOString(),
            counts: perStateOf(
              rows.filter(
                (r) => r.createdAt >= b.start && (i === slices.length - 1 ? r.createdAt <= b.end : r.createdAt < b.end),
              ),
            ),
          })),
        };
      }
      // One aggregate per slice, each on the (workspace, createdAt) index: cost follows the
      // number of slices, not of runs.
      const [total, ...series] = await Promise.all([
        ctx.db.flowRun.groupBy({
          by: ["stateType"],
          where: { ...base, createdAt: { gte: from, lte: to } },
          _count: { _all: true },
        }),
        ...slices.map((b, i) =>
          ctx.db.flowRun.groupBy({
            by: ["stateType"],
            // The last slice includes its end, as the totals do.
            where: { ...base, createdAt: i === slices.length - 1 ? { gte: b.start, lte: b.end } : { gte: b.start, lt: b.end } },
            _count: { _all: true },
          }),
        ),
      ]);
      return {
        from: from.toISOString(),
        to: to.toISOString(),
        counts: perState(total ?? []),
        buckets: slices.map((b, i) => ({ start: b.start.toISOString(), counts: perState(series[i] ?? []) })),
      };
    }),

  get: scoped("read")
    .input(IdInput)
    .query(async ({ ctx, input }) => {
      const run = await ctx.db.flowRun.findFirst({
        where: { id: input.id, workspaceId: ctx.principal.workspaceId },
        include: {
          deployment: { select: { name: true, entrypoint: true, paramsSchemaJson: true } },
          flow: { select: { name: true } },
          // The newest STATES_SHOWN (a run retried without end would otherwise answer with all of them).
          states: { orderBy: [{ timestamp: "desc" }, { attempt: "desc" }], take: STATES_SHOWN },
        },
      });
      if (!run) throw new DomainError("NOT_FOUND", `no flow run ${input.id}`);
      run.states.reverse();
      const counts = await ctx.db.taskRun.groupBy({ by: ["stateType"], where: { flowRunId: run.id }, _count: { _all: true } });
      const agent = run.agentId ? await ctx.db.agent.findUnique({ where: { id: run.agentId }, select: { name: true } }) : null;
      return {
        ...presentWithDeployment(run),
        agentName: agent?.name ?? null,
        taskRunCounts: Object.fromEntries(counts.map((c) => [c.stateType, c._count._all])),
      };
    }),

  /** The run's graph: task runs grouped by task unless expanded, with edges (see graph.ts). */
  graph: scoped("read")
    .input(z.object({ id: z.string().min(1).max(100), expand: z.array(z.string().max(200)).max(20).default([]) }))
    .query(async ({ ctx, input }) => {
      const run = await ctx.db.flowRun.findFirst({
        where: { id: input.id, workspaceId: ctx.principal.workspaceId },
        select: { id: true },
      });
      if (!run) throw new DomainError("NOT_FOUND", `no flow run ${input.id}`);
      return loadRunGraph(ctx.db, run.id, input.expand);
    }),

  /**
   * Runs a finished (failed, crashed or cancelled) run again as a new attempt of the same
   * run; task results it persisted are reused. Does not use up its automatic retries.
   */
  retry: scoped("write")
    .input(IdInput)
    .mutation(async ({ ctx, input }) => {
      const run = await ctx.db.flowRun.findFirst({ where: { id: input.id, workspaceId: ctx.principal.workspaceId } });
      if (!run) throw new DomainError("NOT_FOUND", `no flow run ${input.id}`);
      if (run.parentFlowRunId) throw new DomainError("INVALID_TRANSITION", "a child flow run is retried with its parent run");
      const outcome = await retryFlowRun(ctx.db, run);
      if (!outcome) {
        throw new DomainError(
          "INVALID_TRANSITION",
          `cannot retry run ${run.id}: it is ${run.stateType} (only failed, crashed or cancelled runs)`,
        );
      }
      ctx.dispatcher.kick();
      return { id: run.id, state: currentState(outcome) };
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
      if (!direct && run.agentId)
        ctx.dispatcher.cancelOnAgent(run.workspaceId, run.agentId, run.id, run.attempt, "cancelled by user");
      if (outcome.released) ctx.dispatcher.release(run.agentId, run.id);
      return { id: run.id, state: outcome.result.state };
    }),
});
