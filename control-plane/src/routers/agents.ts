import { router, scoped } from "../trpc.ts";
import { parseJson } from "./shared.ts";

export const agentsRouter = router({
  list: scoped("read").query(async ({ ctx }) => {
    const rows = await ctx.db.agent.findMany({
      where: { workspaceId: ctx.principal.workspaceId },
      orderBy: [{ status: "desc" }, { name: "asc" }],
      take: 1000,
    });
    return rows.map(({ poolsJson, labelsJson, tokenId: _tokenId, ...a }) => {
      const live = ctx.dispatcher.agent(a.id);
      return {
        ...a,
        pools: parseJson<string[]>(poolsJson, []),
        labels: parseJson<Record<string, string>>(labelsJson, {}),
        connected: !!live?.open,
        inUse: live?.held.size ?? 0,
      };
    });
  }),
});
