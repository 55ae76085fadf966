import { TRPCError } from "@trpc/server";
import { generateCookie } from "hono/cookie";
import { z } from "zod";
import type { Context } from "../context.ts";
import { publicProcedure, router, scoped } from "../trpc.ts";

/** The httpOnly cookie that carries a web session. */
export const SESSION_COOKIE = "ferry_session";
const WEB_SESSION_TTL_SECONDS = 12 * 3600;

function cookie(ctx: Context, value: string, maxAgeSeconds: number): string {
  return generateCookie(SESSION_COOKIE, value, {
    httpOnly: true,
    path: "/",
    sameSite: ctx.sessionCookie.sameSite,
    secure: ctx.sessionCookie.secure || ctx.sessionCookie.sameSite === "None",
    maxAge: maxAgeSeconds,
  });
}

/** Cookie changes only from origins the control plane trusts (no login CSRF from other sites). */
function requireTrustedOrigin(ctx: Context): void {
  if (!ctx.trustedOrigin) throw new TRPCError({ code: "FORBIDDEN", message: "this origin may not sign in here" });
}

export const authRouter = router({
  /** Who the caller is. */
  whoami: scoped("read").query(async ({ ctx }) => {
    const token = await ctx.db.apiToken.findUnique({ where: { id: ctx.principal.tokenId }, select: { name: true } });
    return { ...ctx.principal, tokenName: token?.name ?? null };
  }),
  /** Exchanges a token for a short-lived session credential (a bearer credential, e.g. for scripts). */
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
    .mutation(({ ctx, input }) => {
      // Only a token mints sessions: a session minted from a web session would outlive that
      // session's sign-out (it dies only with the token).
      if (ctx.principal.via !== "token") {
        throw new TRPCError({ code: "FORBIDDEN", message: "a session cannot create another session: use an API token" });
      }
      return ctx.auth.createSession(ctx.principal, input.ttlSeconds);
    }),
  /**
   * The web app's sign-in: checks the API token and answers with an httpOnly session cookie
   * (the token itself is never kept by the browser). Any scope but `agent` may sign in.
   */
  signIn: publicProcedure
    .input(z.object({ token: z.string().trim().min(1, "enter an API token").max(200, "not a Ferry API token") }))
    .mutation(async ({ ctx, input }) => {
      requireTrustedOrigin(ctx);
      const result = await ctx.auth.fromCredential(input.token);
      if (!result.ok || result.principal.via !== "token") {
        throw new TRPCError({ code: "UNAUTHORIZED", message: result.ok ? "sign in with an API token" : result.reason });
      }
      const { principal } = result;
      if (!principal.scopes.some((s) => s !== "agent")) {
        throw new TRPCError({
          code: "FORBIDDEN",
          message: "an agent token cannot sign in to the web app: use a read, write or admin token",
        });
      }
      const { session, expiresAt } = await ctx.auth.createSession(principal, WEB_SESSION_TTL_SECONDS);
      const maxAge = Math.max(1, Math.floor((expiresAt.getTime() - Date.now()) / 1000));
      ctx.resHeaders.append("set-cookie", cookie(ctx, session, maxAge));
      const token = await ctx.db.apiToken.findUnique({ where: { id: principal.tokenId }, select: { name: true } });
      return { workspaceId: principal.workspaceId, scopes: principal.scopes, tokenName: token?.name ?? null, expiresAt };
    }),
  /** Ends the web session on the server and clears its cookie. */
  signOut: publicProcedure.mutation(async ({ ctx }) => {
    requireTrustedOrigin(ctx);
    if (ctx.principal?.sessionId) await ctx.auth.endSession(ctx.principal.sessionId);
    ctx.resHeaders.append("set-cookie", cookie(ctx, "", 0));
    return { signedOut: true };
  }),
});
