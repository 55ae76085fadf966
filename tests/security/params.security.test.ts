/**
 * A hostile tenant's parameter JSON Schema (issue 12, items 1 and 4): a catastrophic-backtracking
 * pattern must not freeze the other tenants, and one workspace's schema `$id` must be neither
 * readable (`$ref`) nor squattable by another. Real control plane, real database, two workspaces.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { PROVIDERS, postgresUnavailable } from "../e2e/harness.ts";
import { type Tenant, useTenants } from "./tenants.ts";

/** Backtracks through 2^39 paths in V8's RegExp on "a"×39 + "!". */
const EVIL = { type: "object", properties: { name: { type: "string", pattern: "^(a+)+$" } } };
const EVIL_INPUT = `${"a".repeat(39)}!`;
/** The longest a victim's call may take while the attacker's request is being handled. */
const VICTIM_MS = 200;

function deploy(tenant: Tenant, name: string, paramsSchema: Record<string, unknown>) {
  return tenant.api.deployments.upsert.mutate({ name, flowName: name, entrypoint: "flows/train.ts", paramsSchema });
}

/** The message of a rejected call, or undefined if it succeeded. */
async function refusal(call: Promise<unknown>): Promise<string | undefined> {
  try {
    await call;
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

/** Settles with "timeout" after ms, so a frozen server fails the test instead of hanging it. */
function orTimeout<T>(call: Promise<T>, ms: number): Promise<T | "timeout"> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), ms);
  });
  return Promise.race([call, late]).finally(() => clearTimeout(timer));
}

for (const provider of PROVIDERS) {
  const skip = provider === "postgresql" ? await postgresUnavailable() : undefined;
  describe(`hostile parameter schemas (${provider})`, { skip }, () => {
    const t = useTenants(provider, skip, async (t) => {
      await deploy(t.victim, "train", { type: "object", properties: { lr: { type: "number" } } });
      await deploy(t.attacker, "evil", EVIL);
    });

    test("a catastrophic-backtracking pattern gets the attacker a clear error, and the victim answers within 200 ms", async () => {
      // Warm both tenants' paths first (first calls compile queries and code), so what is measured
      // is the attack, not a first call's set-up; the valid run also shows the pattern still works.
      await t.victim.api.runs.list.query({ limit: 5 });
      await t.victim.api.deployments.list.query();
      const ok = await t.attacker.api.runs.create.mutate({ deployment: "evil", parameters: { name: "aaaa" } });
      assert.equal(ok.stateType, "SCHEDULED");
      const attack = refusal(t.attacker.api.runs.create.mutate({ deployment: "evil", parameters: { name: EVIL_INPUT } }));
      let settled = false;
      void attack.finally(() => {
        settled = true;
      });
      const victimMs: number[] = [];
      // Victim round trips while the attacker's request is in flight (and a few after, at least 6).
      while (!settled || victimMs.length < 6) {
        const start = performance.now();
        const call: Promise<unknown> =
          victimMs.length % 2 ? t.victim.api.deployments.list.query() : t.victim.api.runs.list.query({ limit: 5 });
        const answer = await orTimeout(call, 10_000);
        victimMs.push(performance.now() - start);
        assert.notEqual(answer, "timeout", "the victim's call was not answered within 10 s");
        if (victimMs.length > 200) break;
      }
      const worst = Math.max(...victimMs);
      process.stdout.write(
        `# victim round trips during the attack (${provider}): ${victimMs.map((ms) => ms.toFixed(1)).join(", ")} ms\n`,
      );
      assert.ok(worst < VICTIM_MS, `a victim call took ${worst.toFixed(0)} ms`);
      const message = await orTimeout(attack, 10_000);
      assert.notEqual(message, "timeout", "the attacker's request was not answered within 10 s");
      assert.match(message ?? "(no error)", /name: must match pattern "\^\(a\+\)\+\$"/);
    });

    test("the evil pattern as a patternProperties key or a propertyNames pattern is answered at once too", async () => {
      await deploy(t.attacker, "evil-keys", {
        type: "object",
        patternProperties: { "^(a+)+$": { type: "number" } },
        propertyNames: { pattern: "^(a+)+$" },
      });
      const start = performance.now();
      const message = await orTimeout(
        refusal(t.attacker.api.runs.create.mutate({ deployment: "evil-keys", parameters: { [EVIL_INPUT]: 1 } })),
        10_000,
      );
      assert.notEqual(message, "timeout");
      assert.ok(performance.now() - start < 2000, `took ${performance.now() - start} ms`);
      assert.match(message ?? "(no error)", /property name must be valid|must match pattern/);
    });

    test("another workspace's $id can be neither squatted nor read with a $ref", async () => {
      const id = "https://victim.example/schemas/params";
      // The attacker takes the victim's $id first and makes the control plane compile it.
      await deploy(t.attacker, "squat", { $id: id, type: "object", properties: { x: { type: "string" } } });
      await t.attacker.api.runs.create.mutate({ deployment: "squat", parameters: { x: "y" } });
      // The victim's schema with that $id still compiles, and its rules hold.
      await deploy(t.victim, "keyed", {
        $id: id,
        type: "object",
        properties: { apiKey: { type: "string", pattern: "^victim-internal-[0-9]+$" } },
      });
      const run = await t.victim.api.runs.create.mutate({ deployment: "keyed", parameters: { apiKey: "victim-internal-7" } });
      assert.equal(run.stateType, "SCHEDULED");
      const bad = await refusal(t.victim.api.runs.create.mutate({ deployment: "keyed", parameters: { apiKey: "nope" } }));
      assert.match(bad ?? "(no error)", /apiKey: must match pattern/);
      // The attacker cannot point at the victim's schema to read its rules from error messages.
      const deployRef = await refusal(deploy(t.attacker, "reader", { $ref: id }));
      assert.match(deployRef ?? "(no error)", /points outside the schema/);
      const nested = await refusal(
        deploy(t.attacker, "reader2", { type: "object", properties: { apiKey: { $ref: `${id}#/properties/apiKey` } } }),
      );
      assert.match(nested ?? "(no error)", /points outside the schema/);
      const runRef = await refusal(t.attacker.api.runs.create.mutate({ deployment: "reader", parameters: { apiKey: "nope" } }));
      assert.doesNotMatch(runRef ?? "", /victim-internal/);
    });

    test("oversized schemas and patterns are refused at deploy time, naming the cap", async () => {
      const properties = Object.fromEntries(Array.from({ length: 3000 }, (_, i) => [`p${i}`, { type: "string" }]));
      const big = await refusal(deploy(t.attacker, "big", { type: "object", properties }));
      assert.match(big ?? "(no error)", /the cap is 65536 bytes/);
      const long = await refusal(deploy(t.attacker, "long", { type: "string", pattern: "a".repeat(1001) }));
      assert.match(long ?? "(no error)", /the cap is 1000/);
      const broken = await refusal(deploy(t.attacker, "broken", { type: 12 }));
      assert.match(broken ?? "(no error)", /schema is invalid/);
      const listed = await t.attacker.api.deployments.list.query();
      assert.ok(!listed.some((d) => ["big", "long", "broken"].includes(d.name)), "refused deployments are not stored");
    });
  });
}
