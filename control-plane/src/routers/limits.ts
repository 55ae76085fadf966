import { z } from "zod";
import { DomainError } from "../errors.ts";
import { newId } from "../ids.ts";
import { router, scoped } from "../trpc.ts";

const Name = z.string().min(1).max(200);

/** Work-pool settings: a pool's concurrency limit caps the runs its agents hold at once. */
export const workPoolsRouter = router({
  list: scoped("read").query(({ ctx }) =>
    ctx.db.workPool.findMany({ where: { workspaceId: ctx.principal.workspaceId }, orderBy: { name: "asc" } }),
  ),
  set: scoped("write")
    .input(z.object({ name: Name, concurrencyLimit: z.number().int().min(1).max(100_000).nullable() }))
    .mutation(async ({ ctx, input }) => {
      const workspaceId = ctx.principal.workspaceId;
      const pool = await ctx.db.workPool.upsert({
        where: { workspaceId_name: { workspaceId, name: input.name } },
        create: { id: newId(), workspaceId, name: input.name, concurrencyLimit: input.concurrencyLimit },
        update: { concurrencyLimit: input.concurrencyLimit },
      });
      ctx.dispatcher.kick(); // a raised limit may let queued runs start
      return pool;
    }),
});

/** Limits per task tag across all runs of the workspace (e.g. at most 2 `gpu` tasks at once). */
export const tagLimitsRouter = router({
  list: scoped("read").query(async ({ ctx }) => {
    const workspaceId = ctx.principal.workspaceId;
    const [limits, used] = await Promise.all([
      ctx.db.tagLimit.findMany({ where: { workspaceId }, orderBy: { tag: "asc" } }),
      ctx.db.concurrencySlot.groupBy({ by: ["tag"], where: { workspaceId }, _count: { _all: true } }),
    ]);
    const inUse = new Map(used.map((u) => [u.tag, u._count._all]));
    return limits.map((l) => ({ ...l, inUse: inUse.get(l.tag) ?? 0 }));
  }),
  set: scoped("write")
    .input(z.object({ tag: Name, maxConcurrent: z.number().int().min(0).max(100_000) }))
    .mutation(async ({ ctx, input }) => {
      const workspaceId = ctx.principal.workspaceId;
      const limit = await ctx.db.tagLimit.upsert({
        where: { workspaceId_tag: { workspaceId, tag: input.tag } },
        create: { id: newId(), workspaceId, tag: input.tag, maxConcurrent: input.maxConcurrent },
        update: { maxConcurrent: input.maxConcurrent },
      });
      await ctx.slots.released(workspaceId); // a raised limit may let waiting task runs start
      return limit;
    }),
  delete: scoped("write")
    .input(z.object({ tag: Name }))
    .mutation(async ({ ctx, input }) => {
      const workspaceId = ctx.principal.workspaceId;
      const { count } = await ctx.db.tagLimit.deleteMany({ where: { workspaceId, tag: input.tag } });
      if (!count) throw new DomainError("NOT_FOUND", `no limit for tag "${input.tag}"`);
      await ctx.db.concurrencySlot.deleteMany({ where: { workspaceId, tag: input.tag } });
      await ctx.slots.released(workspaceId);
      return { deleted: input.tag };
    }),
});
