import { createTRPCClient, httpLink, TRPCClientError } from "@trpc/client";
import type { AppRouter } from "./router.ts";

export type FerryClient = ReturnType<typeof createFerryClient>;

/**
 * A typed client of the control plane's API.
 *
 * @example
 * const api = createFerryClient("http://127.0.0.1:4200", process.env.FERRY_API_TOKEN!);
 * const run = await api.runs.create.mutate({ deployment: "train", parameters: { grid: [0.1] } });
 */
export function createFerryClient(apiUrl: string, token: string) {
  return createTRPCClient<AppRouter>({
    links: [
      httpLink({
        url: `${apiUrl.replace(/\/+$/, "")}/trpc`,
        headers: () => ({ authorization: `Bearer ${token}` }),
      }),
    ],
  });
}

/** The validation issues the API attached to an error (e.g. bad run parameters), if any. */
export function errorIssues(err: unknown): string[] {
  if (err instanceof TRPCClientError) {
    const data = err.data as { issues?: unknown } | undefined;
    if (Array.isArray(data?.issues)) return data.issues.map(String);
  }
  return [];
}

export { TRPCClientError };
