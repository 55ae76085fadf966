import { z } from "zod";
import { DomainError } from "../errors.ts";
import { router, scoped } from "../trpc.ts";
import { Limit } from "./shared.ts";

export const flowsRouter = router({
  list: scoped("read")
    .input(z.object({ limit: Limit }).default({ limit: 50 }))
    .query(({ ctx, input }) =>
      ctx.db.flow.findMany({
        where: { workspaceId: ctx.principal.workspaceId },
        orderBy: { name: "asc" },
        take: input.limit,
        include: { _count: { select: { deployments: true, runs: true } } },
      }),
    ),
  get: scoped("read")
    .input(z.object({ name: z.string().min(1).max(200) }))
    .query(async ({ ctx, input }) => {
      const flow = await ctx.db.flow.findUnique({
        where: { workspaceId_name: { workspaceId: ctx.principal.workspaceId, name: input.name } },
        include: { deployments: true },
      });
      if (!flow) throw new DomainError("NOT_FOUND", `no flow named "${input.name}"`);
      return flow;
    }),
});
