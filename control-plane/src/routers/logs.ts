import { LogLevel } from "@ferry/sdk/protocol";
import { z } from "zod";
import { flowRunTree } from "../orchestration/flow-runs.ts";
import { router, scoped } from "../trpc.ts";

export const logsRouter = router({
  /** Log lines of a flow run and all its child flow runs, in order; page with `afterId`. */
  list: scoped("read")
    .input(
      z.object({
        flowRunId: z.string().min(1).max(100),
        afterId: z.number().int().nonnegative().optional(),
        /** Lines before this id, newest first (scrolling back); without afterId/beforeId: the first lines. */
        beforeId: z.number().int().nonnegative().optional(),
        /** The newest lines (the end of the log), returned in order. */
        tail: z.boolean().optional(),
        /** Only lines containing this text. */
        search: z.string().max(200).optional(),
        limit: z.number().int().min(1).max(5000).default(1000),
        level: z.array(LogLevel).optional(),
        taskRunId: z.string().max(100).optional(),
      }),
    )
    .query(async ({ ctx, input }) => {
      const workspaceId = ctx.principal.workspaceId;
      const runIds = await flowRunTree(ctx.db, workspaceId, input.flowRunId);
      const items = await ctx.db.log.findMany({
        where: {
          workspaceId,
          flowRunId: { in: runIds },
          ...(input.afterId !== undefined || input.beforeId !== undefined
            ? {
                id: {
                  ...(input.afterId !== undefined ? { gt: input.afterId } : {}),
                  ...(input.beforeId !== undefined ? { lt: input.beforeId } : {}),
                },
              }
            : {}),
          ...(input.level ? { level: { in: input.level } } : {}),
          ...(input.taskRunId ? { taskRunId: input.taskRunId } : {}),
          ...(input.search ? { message: { contains: input.search } } : {}),
        },
        // Scrolling back or reading the end: newest first, then put in order.
        orderBy: { id: input.beforeId !== undefined || input.tail ? "desc" : "asc" },
        take: input.limit,
      });
      if (input.beforeId !== undefined || input.tail) items.reverse();
      return { items, lastId: items.at(-1)?.id ?? input.afterId ?? null, firstId: items[0]?.id ?? null };
    }),
});
