import { HELD_STATES } from "../dispatcher.ts";
import { router, scoped } from "../trpc.ts";
import { parseJson } from "./shared.ts";

/** An agent connected to another replica counts as connected while its heartbeats are this recent. */
const REMOTE_HEARTBEAT_MS = 30_000;

export const agentsRouter = router({
  list: scoped("read").query(async ({ ctx }) => {
    const workspaceId = ctx.principal.workspaceId;
    const [rows, held] = await Promise.all([
      ctx.db.agent.findMany({ where: { workspaceId }, orderBy: [{ status: "desc" }, { name: "asc" }], take: 1000 }),
      // Runs held per agent, from the database: the agent may be connected to another replica.
      ctx.db.flowRun.groupBy({
        by: ["agentId"],
        where: { workspaceId, stateType: { in: HELD_STATES }, parentFlowRunId: null, agentId: { not: null } },
        _count: { _all: true },
      }),
    ]);
    const inUse = new Map(held.map((g) => [g.agentId, g._count._all]));
    const now = Date.now();
    return rows.map(({ poolsJson, labelsJson, tokenId: _tokenId, ...a }) => {
      const live = ctx.dispatcher.agent(a.id);
      const remote = a.status === "ONLINE" && !!a.lastHeartbeatAt && now - a.lastHeartbeatAt.getTime() < REMOTE_HEARTBEAT_MS;
      return {
        ...a,
        pools: parseJson<string[]>(poolsJson, []),
        labels: parseJson<Record<string, string>>(labelsJson, {}),
        connected: live ? live.open : remote,
        inUse: live?.held.size ?? inUse.get(a.id) ?? 0,
      };
    });
  }),
});
