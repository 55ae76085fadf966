import { z } from "zod";
import { Scope } from "../auth/tokens.ts";
import { DomainError } from "../errors.ts";
import { router, scoped } from "../trpc.ts";
import { createToken } from "../workspace.ts";
import { IdInput, requireOwnRow } from "./shared.ts";

export const tokensRouter = router({
  /** Creates a token; the secret is in the answer and never again. */
  create: scoped("admin")
    .input(
      z.object({
        name: z.string().min(1).max(100),
        scopes: z.array(Scope).min(1).max(4),
        /** Lifetime in seconds; omitted: no expiry. */
        expiresInSeconds: z
          .number()
          .int()
          .positive()
          .max(10 * 365 * 86_400)
          .optional(),
      }),
    )
    .mutation(({ ctx, input }) => createToken(ctx.db, ctx.principal.workspaceId, input)),
  /** The workspace's tokens, newest first, a page at a time (revoked ones stay listed). */
  list: scoped("admin")
    .input(
      z
        .object({ limit: z.number().int().min(1).max(500).default(100), cursor: z.string().max(100).optional() })
        .default({ limit: 100 }),
    )
    .query(async ({ ctx, input }) => {
      const workspaceId = ctx.principal.workspaceId;
      if (input.cursor) await requireOwnRow(ctx.db.apiToken, workspaceId, input.cursor);
      const rows = await ctx.db.apiToken.findMany({
        where: { workspaceId },
        orderBy: [{ createdAt: "desc" }, { id: "desc" }],
        take: input.limit + 1,
        ...(input.cursor ? { cursor: { id: input.cursor }, skip: 1 } : {}),
        select: {
          id: true,
          name: true,
          prefix: true,
          scopes: true,
          createdAt: true,
          expiresAt: true,
          revokedAt: true,
          lastUsedAt: true,
        },
      });
      const items = rows.slice(0, input.limit);
      return { items, nextCursor: rows.length > input.limit ? items.at(-1)?.id : undefined };
    }),
  /** Revokes a token: its API calls and web sessions stop working, its agent sockets are closed. */
  revoke: scoped("admin")
    .input(IdInput)
    .mutation(async ({ ctx, input }) => {
      const updated = await ctx.db.apiToken.updateMany({
        where: { id: input.id, workspaceId: ctx.principal.workspaceId, revokedAt: null },
        data: { revokedAt: new Date() },
      });
      if (updated.count === 0) {
        const exists = await ctx.db.apiToken.findFirst({ where: { id: input.id, workspaceId: ctx.principal.workspaceId } });
        if (!exists) throw new DomainError("NOT_FOUND", `no token ${input.id}`);
      }
      ctx.hub.closeToken(ctx.principal.workspaceId, input.id);
      return { id: input.id, revoked: true };
    }),
});
