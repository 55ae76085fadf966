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
          ...(input.afterId !== undefined ? { id: { gt: input.afterId } } : {}),
          ...(input.level ? { level: { in: input.level } } : {}),
          ...(input.taskRunId ? { taskRunId: input.taskRunId } : {}),
        },
        orderBy: { id: "asc" },
        take: input.limit,
      });
      return { items, lastId: items.at(-1)?.id ?? input.afterId ?? null };
    }),
});
