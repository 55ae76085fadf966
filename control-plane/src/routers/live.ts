import { z } from "zod";
import { type Change, changesOf } from "../changes.ts";
import { DomainError, toTRPCError } from "../errors.ts";
import { router, scoped } from "../trpc.ts";

const MAX_ANCESTRY = 20;
const WorkspaceKind = z.enum(["runs", "agents", "deployments"]);

/**
 * Live views over server-sent events. A subscription says *what* changed (merged, at most
 * a few times a second); the page then re-reads it with the ordinary paginated queries.
 * The first event arrives at once, so a client that (re)connects reads everything fresh:
 * nothing is missed across a dropped connection.
 */
export const liveRouter = router({
  /** Changes in the workspace: runs created or changing state, agents, deployments. */
  workspace: scoped("read")
    .input(z.object({ kinds: z.array(WorkspaceKind).min(1).max(3) }))
    .subscription(async function* ({ ctx, input, signal }) {
      const workspaceId = ctx.principal.workspaceId;
      const wanted = new Set<string>(input.kinds);
      const kinds = new Set<z.infer<typeof WorkspaceKind>>();
      const matches = (c: Change) => {
        if (!wanted.has(c.kind) || !("workspaceId" in c) || c.workspaceId !== workspaceId) return false;
        kinds.add(c.kind as z.infer<typeof WorkspaceKind>);
        return true;
      };
      for await (const tick of changesOf(ctx.db).watch(matches, signal, 250)) {
        const changed = tick.first ? input.kinds : [...kinds];
        kinds.clear();
        yield { kinds: changed };
      }
    }),

  /** Changes of one run: its state, its task runs (the graph), its logs; child flow runs count as part of their root. */
  run: scoped("read")
    .input(z.object({ id: z.string().min(1).max(100) }))
    .subscription(async function* ({ ctx, input, signal }) {
      const workspaceId = ctx.principal.workspaceId;
      const run = await ctx.db.flowRun.findFirst({ where: { id: input.id, workspaceId }, select: { id: true } });
      // Thrown inside the generator, past the middleware that maps domain errors: map it here
      // (a DomainError would reach the client as INTERNAL_SERVER_ERROR).
      if (!run) throw toTRPCError(new DomainError("NOT_FOUND", `no flow run ${input.id}`));
      // Reports arrive per root run (a child's task runs and logs come with its root's batches).
      const lineage = new Set<string>([input.id]);
      let cursor: string | null = input.id;
      for (let i = 0; cursor && i < MAX_ANCESTRY; i++) {
        const row: { parentFlowRunId: string | null } | null = await ctx.db.flowRun.findUnique({
          where: { id: cursor },
          select: { parentFlowRunId: true },
        });
        cursor = row?.parentFlowRunId ?? null;
        if (cursor) lineage.add(cursor);
      }
      const matches = (c: Change) => c.kind === "run" && c.workspaceId === workspaceId && lineage.has(c.rootId);
      for await (const tick of changesOf(ctx.db).watch(matches, signal, 300)) yield { parts: tick.parts };
    }),
});
