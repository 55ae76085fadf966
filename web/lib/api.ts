import type { AppRouter } from "@ferry/control-plane";
import { createTRPCClient, httpBatchLink, httpSubscriptionLink, splitLink, TRPCClientError } from "@trpc/client";

/**
 * The control plane's tRPC API, called straight from the browser: the session is an
 * httpOnly cookie of the control plane's origin (`credentials: "include"`), queries are
 * batched, live views are subscriptions over server-sent events.
 */
export function createApi(apiUrl: string) {
  const url = `${apiUrl.replace(/\/+$/, "")}/trpc`;
  return createTRPCClient<AppRouter>({
    links: [
      splitLink({
        condition: (op) => op.type === "subscription",
        true: httpSubscriptionLink({ url, eventSourceOptions: () => ({ withCredentials: true }) }),
        false: httpBatchLink({
          url,
          maxItems: 8,
          fetch: (input, init) => fetch(input, { ...init, credentials: "include" }),
        }),
      }),
    ],
  });
}

export type FerryApi = ReturnType<typeof createApi>;

// The API has no transformer: what the procedures return arrives as JSON (dates are ISO strings).
type Out<T extends (...args: never[]) => Promise<unknown>> = Awaited<ReturnType<T>>;
export type RunList = Out<FerryApi["runs"]["list"]["query"]>;
export type RunSummary = RunList["items"][number];
export type RunDetail = Out<FerryApi["runs"]["get"]["query"]>;
export type RunStats = Out<FerryApi["runs"]["stats"]["query"]>;
export type RunGraph = Out<FerryApi["runs"]["graph"]["query"]>;
export type GraphNode = RunGraph["nodes"][number];
export type TaskRunPage = Out<FerryApi["taskRuns"]["page"]["query"]>;
export type TaskRunRow = TaskRunPage["items"][number];
export type TaskRunDetail = Out<FerryApi["taskRuns"]["get"]["query"]>;
export type LogPage = Out<FerryApi["logs"]["list"]["query"]>;
export type LogRow = LogPage["items"][number];
export type Deployment = Out<FerryApi["deployments"]["list"]["query"]>[number];
export type FlowRow = Out<FerryApi["flows"]["list"]["query"]>[number];
export type AgentRow = Out<FerryApi["agents"]["list"]["query"]>[number];
export type TokenRow = Out<FerryApi["tokens"]["list"]["query"]>["items"][number];
export type WhoAmI = Out<FerryApi["auth"]["whoami"]["query"]>;

/** The credential was refused (missing, invalid, expired or revoked): the user has to sign in again. */
export function isAuthError(err: unknown): boolean {
  return err instanceof TRPCClientError && (err.data as { code?: string } | undefined)?.code === "UNAUTHORIZED";
}

export function errorText(err: unknown): string {
  if (err instanceof TRPCClientError) {
    if (err.message === "Failed to fetch" || err.message.includes("fetch failed")) return "Cannot reach the control plane.";
    return err.message;
  }
  if (err instanceof Error) return err.message;
  return String(err);
}
