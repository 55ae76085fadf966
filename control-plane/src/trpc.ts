import { initTRPC, TRPCError } from "@trpc/server";
import { type Scope, scopeAllows } from "./auth/tokens.ts";
import type { Context } from "./context.ts";
import { DomainError, toTRPCError } from "./errors.ts";

const t = initTRPC.context<Context>().create({
  // Live views (subscriptions over server-sent events): a comment line every 10 s keeps
  // proxies from closing an idle stream; the client reconnects after 25 s of silence.
  sse: { ping: { enabled: true, intervalMs: 10_000 }, client: { reconnectAfterInactivityMs: 25_000 } },
  // Answers never carry server stack traces (tRPC adds them unless NODE_ENV is production).
  isDev: false,
  errorFormatter({ shape, error }) {
    const cause = error.cause;
    const { stack: _stack, ...data } = shape.data as typeof shape.data & { stack?: string };
    return { ...shape, data: { ...data, issues: cause instanceof DomainError ? cause.issues : undefined } };
  },
});

export const router = t.router;

/** Maps domain errors thrown by handlers to tRPC errors in one place. */
const domainErrors = t.middleware(async ({ next }) => {
  const result = await next();
  if (!result.ok && result.error.cause instanceof DomainError) throw toTRPCError(result.error.cause);
  return result;
});

/** Counts every call by procedure and outcome (`ok` or the tRPC error code the caller got). */
const counted = t.middleware(async ({ ctx, path, next }) => {
  const result = await next();
  ctx.metrics.apiRequests.inc({ procedure: path, outcome: result.ok ? "ok" : result.error.code });
  return result;
});

export const publicProcedure = t.procedure.use(counted).use(domainErrors);

/** A procedure that needs a valid credential with `scope` (or a broader one). */
export function scoped(scope: Scope) {
  return publicProcedure.use(({ ctx, next }) => {
    if (!ctx.principal) throw new TRPCError({ code: "UNAUTHORIZED", message: ctx.authError ?? "authentication required" });
    if (!scopeAllows(ctx.principal.scopes, scope)) {
      throw new TRPCError({ code: "FORBIDDEN", message: `this action needs a token with the ${scope} scope` });
    }
    return next({ ctx: { ...ctx, principal: ctx.principal } });
  });
}
