import { z } from "zod";
import { DomainError } from "../errors.ts";
import { router, scoped } from "../trpc.ts";
import { IdInput, parseJson } from "./shared.ts";

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
  /** The data edges of a flow run's graph. */
  edges: scoped("read")
    .input(z.object({ flowRunId: z.string().min(1).max(100) }))
    .query(({ ctx, input }) =>
      ctx.db.taskRunEdge.findMany({
        where: { workspaceId: ctx.principal.workspaceId, flowRunId: input.flowRunId },
        select: { upstreamId: true, downstreamId: true },
      }),
    ),
  get: scoped("read")
    .input(IdInput)
    .query(async ({ ctx, input }) => {
      const run = await ctx.db.taskRun.findFirst({
        where: { id: input.id, workspaceId: ctx.principal.workspaceId },
        include: { states: { orderBy: { timestamp: "asc" } } },
      });
      if (!run) throw new DomainError("NOT_FOUND", `no task run ${input.id}`);
      const { tagsJson, ...rest } = run;
      return { ...rest, tags: parseJson<string[]>(tagsJson, []) };
    }),
});
