import { LIMITS } from "@ferry/sdk/protocol";
import { z } from "zod";
import { HELD_STATES } from "../dispatcher.ts";
import { DomainError } from "../errors.ts";
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
    // `id` is the agent's own id (what `ferry agent release` takes); the control plane's key stays inside.
    return rows.map(({ id: key, externalId, poolsJson, labelsJson, tokenId: _tokenId, ...a }) => {
      const live = ctx.dispatcher.agent(key);
      const remote = a.status === "ONLINE" && !!a.lastHeartbeatAt && now - a.lastHeartbeatAt.getTime() < REMOTE_HEARTBEAT_MS;
      return {
        id: externalId,
        ...a,
        pools: parseJson<string[]>(poolsJson, []),
        labels: parseJson<Record<string, string>>(labelsJson, {}),
        connected: live ? live.open : remote,
        inUse: live?.held.size ?? inUse.get(key) ?? 0,
      };
    });
  }),
  /**
   * Frees an agent id from the token that registered it, so that another agent token of the
   * workspace can say hello with it (e.g. the agent moved to a new machine with a new token).
   */
  release: scoped("admin")
    .input(z.object({ agentId: z.string().min(1).max(LIMITS.maxIdChars) }))
    .mutation(async ({ ctx, input }) => {
      if (!(await ctx.hub.release(ctx.principal.workspaceId, input.agentId))) {
        throw new DomainError("NOT_FOUND", `no agent ${input.agentId} in this workspace`);
      }
      return { agentId: input.agentId, released: true };
    }),
});
