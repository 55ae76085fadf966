/**
 * The adversarial multi-tenant fixture: one control plane (real process, real database) shared
 * by two workspaces, "victim" (the default workspace the server bootstraps) and "attacker"
 * (made with `ferry workspace create`, as an operator would), each with its own admin client.
 * Security suites build on `useTenants` the way end-to-end suites build on `useServer`.
 */
import { createFerryClient, type FerryClient } from "@ferry/control-plane/client";
import { ferry, type Provider, type Suite, useServer } from "../e2e/harness.ts";

export interface Tenant {
  /** An admin token of the workspace. */
  token: string;
  api: FerryClient;
  /** FERRY_API_URL and FERRY_API_TOKEN for `ferry` commands run as this tenant. */
  env: Record<string, string>;
}

export interface Tenants extends Suite {
  victim: Tenant;
  attacker: Tenant;
}

/** Creates another workspace on a running suite's database and returns its admin tenant. */
export async function createTenant(suite: Suite, slug: string): Promise<Tenant> {
  const made = await ferry(["workspace", "create", slug, "--database-url", suite.server.databaseUrl, "--json"]);
  if (made.code !== 0) throw new Error(`ferry workspace create failed:\n${made.output}`);
  const { admin } = JSON.parse(made.output) as { admin: { secret: string } };
  return tenantOf(suite.server.url, admin.secret);
}

export function tenantOf(url: string, token: string): Tenant {
  return { token, api: createFerryClient(url, token), env: { FERRY_API_URL: url, FERRY_API_TOKEN: token } };
}

/**
 * Registers before/after hooks: a control plane on a fresh `provider` database with the two
 * tenants, then `setup`. Options go to `useServer` (fixtures, extra `ferry server start` flags).
 */
export function useTenants(
  provider: Provider,
  skip: string | undefined,
  setup?: (t: Tenants) => Promise<void>,
  options: { fixtures?: string; serverArgs?: string[] } = {},
): Tenants {
  const tenants = {} as Tenants;
  useServer(
    provider,
    skip,
    async (s) => {
      Object.assign(tenants, s);
      tenants.victim = tenantOf(s.server.url, s.server.adminToken);
      tenants.attacker = await createTenant(s, "attacker");
      await setup?.(tenants);
    },
    options,
  );
  return tenants;
}
