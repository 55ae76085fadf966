import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { PROVIDERS, postgresUnavailable } from "../e2e/harness.ts";
import { useTenants } from "./tenants.ts";

// The fixture itself: two workspaces on one control plane see nothing of each other.
for (const provider of PROVIDERS) {
  const skip = provider === "postgresql" ? await postgresUnavailable() : undefined;
  describe(`two tenants on one control plane (${provider})`, { skip }, () => {
    const t = useTenants(provider, skip);
    test("each tenant's tokens see only their own workspace", async () => {
      const mine = (await t.victim.api.tokens.list.query()).items;
      const theirs = (await t.attacker.api.tokens.list.query()).items;
      assert.ok(mine.length >= 1 && theirs.length >= 1);
      const ids = new Set(mine.map((k) => k.id));
      assert.ok(
        theirs.every((k) => !ids.has(k.id)),
        "no token is listed in both workspaces",
      );
    });
  });
}
