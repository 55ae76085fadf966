import type { AppRouter } from "@ferry/control-plane";
import { createTRPCClient, httpLink, TRPCClientError } from "@trpc/client";

/** Where the control plane's API is; `ferry dev` sets it for the web app it starts. */
export const API_URL = (process.env.NEXT_PUBLIC_FERRY_API_URL || "http://127.0.0.1:4200").replace(/\/+$/, "");

const TOKEN_KEY = "ferry.token";

export function createApi(token: string) {
  return createTRPCClient<AppRouter>({
    links: [
      httpLink({
        url: `${API_URL}/trpc`,
        headers: () => ({ authorization: `Bearer ${token}` }),
      }),
    ],
  });
}

export type FerryApi = ReturnType<typeof createApi>;

// The API has no transformer: what the procedures return arrives as JSON (dates are ISO strings).
export type RunList = Awaited<ReturnType<FerryApi["runs"]["list"]["query"]>>;
export type RunSummary = RunList["items"][number];
export type RunDetail = Awaited<ReturnType<FerryApi["runs"]["get"]["query"]>>;
export type TaskRunList = Awaited<ReturnType<FerryApi["taskRuns"]["list"]["query"]>>;
export type TaskRun = TaskRunList["items"][number];
export type Edge = Awaited<ReturnType<FerryApi["taskRuns"]["edges"]["query"]>>[number];
export type LogPage = Awaited<ReturnType<FerryApi["logs"]["list"]["query"]>>;
export type LogRow = LogPage["items"][number];
export type Deployment = Awaited<ReturnType<FerryApi["deployments"]["list"]["query"]>>[number];
export type AgentRow = Awaited<ReturnType<FerryApi["agents"]["list"]["query"]>>[number];
export type WhoAmI = Awaited<ReturnType<FerryApi["auth"]["whoami"]["query"]>>;

/** The token lives in this tab's sessionStorage only: closing the tab signs out. */
export function readToken(): string | null {
  if (typeof window === "undefined") return null;
  return window.sessionStorage.getItem(TOKEN_KEY);
}

export function saveToken(token: string): void {
  window.sessionStorage.setItem(TOKEN_KEY, token);
}

export function clearToken(): void {
  window.sessionStorage.removeItem(TOKEN_KEY);
}

/** The credential was refused (missing, invalid, expired or revoked): the user has to sign in again. */
export function isAuthError(err: unknown): boolean {
  return err instanceof TRPCClientError && (err.data as { code?: string } | undefined)?.code === "UNAUTHORIZED";
}

export function errorText(err: unknown): string {
  if (err instanceof TRPCClientError) return err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}
