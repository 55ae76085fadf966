import type { Db } from "@ferry/prisma";
import { StateType } from "@ferry/sdk/protocol";
import { z } from "zod";
import { DomainError } from "../errors.ts";
import { router, scoped } from "../trpc.ts";
import { IdInput, parseJson, requireOwnRow } from "./shared.ts";

const FlowRunPage = z.object({
  flowRunId: z.string().min(1).max(100),
  limit: z.number().int().min(1).max(5000).default(1000),
  /** Id of the last task run of the previous page. */
  cursor: z.string().max(100).optional(),
});

export const taskRunsRouter = router({
  list: scoped("read")
    .input(FlowRunPage)
    .query(async ({ ctx, input }) => {
      if (input.cursor) await requireOwnRow(ctx.db.taskRun, ctx.principal.workspaceId, input.cursor);
      const rows = await ctx.db.taskRun.findMany({
        where: { workspaceId: ctx.principal.workspaceId, flowRunId: input.flowRunId },
        orderBy: [{ createdAt: "asc" }, { id: "asc" }],
        take: input.limit + 1,
        ...(input.cursor ? { cursor: { id: input.cursor }, skip: 1 } : {}),
      });
      const page = rows.slice(0, input.limit);
      return {
        items: page.map(({ tagsJson, ...t }) => ({ ...t, tags: parseJson<string[]>(tagsJson, []) })),
        nextCursor: rows.length > input.limit ? page.at(-1)?.id : undefined,
      };
    }),
  /**
   * Task runs of a flow run's latest attempt in creation order, by offset (the timeline and
   * group tables scroll to any row of a 10,000-task run), with the total for the scrollbar.
   */
  page: scoped("read")
    .input(
      z.object({
        flowRunId: z.string().min(1).max(100),
        taskKey: z.string().max(200).optional(),
        state: z.array(StateType).max(9).optional(),
        offset: z.number().int().min(0).max(10_000_000).default(0),
        limit: z.number().int().min(1).max(1000).default(200),
      }),
    )
    .query(async ({ ctx, input }) => {
      const workspaceId = ctx.principal.workspaceId;
      const latest = await ctx.db.taskRun.aggregate({
        where: { workspaceId, flowRunId: input.flowRunId },
        _max: { flowRunAttempt: true },
        _min: { createdAt: true },
      });
      const attempt = latest._max.flowRunAttempt;
      if (attempt === null) return { items: [], total: 0, attempt: null };
      const where = {
        workspaceId,
        flowRunId: input.flowRunId,
        flowRunAttempt: attempt,
        ...(input.taskKey ? { taskKey: input.taskKey } : {}),
        ...(input.state ? { stateType: { in: input.state } } : {}),
      };
      const [total, items] = await Promise.all([
        ctx.db.taskRun.count({ where }),
        ctx.db.taskRun.findMany({
          where,
          orderBy: [{ createdAt: "asc" }, { dynamicKey: "asc" }, { id: "asc" }],
          skip: input.offset,
          take: input.limit,
          select: {
            id: true,
            name: true,
            taskKey: true,
            dynamicKey: true,
            stateType: true,
            stateName: true,
            attempt: true,
            childFlowRunId: true,
            createdAt: true,
            startTime: true,
            endTime: true,
          },
        }),
      ]);
      return { items, total, attempt };
    }),
  /**
   * The data edges of a flow run's graph, a page at a time in key order. `after` is the last
   * edge of the previous page, compared by value (not looked up), so it cannot name another
   * workspace's rows.
   */
  edges: scoped("read")
    .input(
      z.object({
        flowRunId: z.string().min(1).max(100),
        limit: z.number().int().min(1).max(10_000).default(5_000),
        after: z.object({ upstreamId: z.string().max(100), downstreamId: z.string().max(100) }).optional(),
      }),
    )
    .query(async ({ ctx, input }) => {
      const after = input.after;
      const rows = await ctx.db.taskRunEdge.findMany({
        where: {
          workspaceId: ctx.principal.workspaceId,
          flowRunId: input.flowRunId,
          ...(after
            ? {
                OR: [
                  { upstreamId: { gt: after.upstreamId } },
                  { upstreamId: after.upstreamId, downstreamId: { gt: after.downstreamId } },
                ],
              }
            : {}),
        },
        orderBy: [{ upstreamId: "asc" }, { downstreamId: "asc" }],
        take: input.limit + 1,
        select: { upstreamId: true, downstreamId: true },
      });
      const items = rows.slice(0, input.limit);
      return { items, next: rows.length > input.limit ? items.at(-1) : undefined };
    }),
  get: scoped("read")
    .input(IdInput)
    .query(async ({ ctx, input }) => {
      const run = await ctx.db.taskRun.findFirst({
        where: { id: input.id, workspaceId: ctx.principal.workspaceId },
        include: { states: { orderBy: { timestamp: "asc" }, take: 500 } },
      });
      if (!run) throw new DomainError("NOT_FOUND", `no task run ${input.id}`);
      const { tagsJson, ...rest } = run;
      return { ...rest, tags: parseJson<string[]>(tagsJson, []), ...(await lineage(ctx.db, run.id)) };
    }),
});

const LINEAGE_DEPTH = 3;
const LINEAGE_WIDTH = 50;

/**
 * Where a task run's inputs came from: its upstream task runs, theirs, up to three levels
 * (at most 50 per level), and the task runs that consumed its result.
 */
async function lineage(db: Db, taskRunId: string) {
  const select = { id: true, name: true, taskKey: true, stateType: true, stateName: true } as const;
  const upstream: {
    depth: number;
    via: string;
    task: { id: string; name: string; taskKey: string; stateType: string; stateName: string };
  }[] = [];
  const seen = new Set([taskRunId]);
  let frontier = [taskRunId];
  for (let depth = 1; depth <= LINEAGE_DEPTH && frontier.length; depth++) {
    const edges = await db.taskRunEdge.findMany({ where: { downstreamId: { in: frontier } }, take: LINEAGE_WIDTH });
    const fresh = edges.filter((e) => !seen.has(e.upstreamId));
    const tasks = await db.taskRun.findMany({ where: { id: { in: fresh.map((e) => e.upstreamId) } }, select });
    const byId = new Map(tasks.map((t) => [t.id, t]));
    frontier = [];
    for (const e of fresh) {
      const task = byId.get(e.upstreamId);
      if (!task || seen.has(task.id)) continue;
      seen.add(task.id);
      frontier.push(task.id);
      upstream.push({ depth, via: e.downstreamId, task });
    }
  }
  const down = await db.taskRunEdge.findMany({ where: { upstreamId: taskRunId }, take: LINEAGE_WIDTH });
  const downstream = await db.taskRun.findMany({ where: { id: { in: down.map((e) => e.downstreamId) } }, select });
  return { upstream, downstream };
}
