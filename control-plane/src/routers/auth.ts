import { z } from "zod";
import { router, scoped } from "../trpc.ts";

export const authRouter = router({
  /** Who the caller is. */
  whoami: scoped("read").query(async ({ ctx }) => {
    const token = await ctx.db.apiToken.findUnique({ where: { id: ctx.principal.tokenId }, select: { name: true } });
    return { ...ctx.principal, tokenName: token?.name ?? null };
  }),
  /** Exchanges a token for a short-lived session credential (for the web app). */
  createSession: scoped("read")
    .input(
      z
        .object({
          ttlSeconds: z
            .number()
            .int()
            .min(60)
            .max(7 * 86_400)
            .default(12 * 3600),
        })
        .default({ ttlSeconds: 12 * 3600 }),
    )
    .mutation(({ ctx, input }) => ctx.auth.createSession(ctx.principal, input.ttlSeconds)),
});
