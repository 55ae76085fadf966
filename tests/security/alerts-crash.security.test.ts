/**
 * Alerts survive a crash and a shutdown (issue 12, item 7): many runs fail under many rules,
 * then the control plane is killed with SIGKILL right away; after a restart on the same
 * database every expected delivery is there exactly once. Then a SIGTERM right after failures:
 * the process drains before it exits, so the database holds every delivery with nothing left
 * queued. The failures are real: one flow process whose child flow runs all throw.
 *
 * The channel points at a name that never resolves (`.invalid`, RFC 6761): what is checked is
 * that each delivery exists, once, whatever happens when it is sent.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, test } from "node:test";
import { openDatabase } from "@ferry/prisma";
import { deployFixtures, PROVIDERS, postgresUnavailable, REPO, restartServer, startAgent, waitUntil } from "../e2e/harness.ts";
import { type Tenants, useTenants } from "./tenants.ts";

const RULES = 10;
/** Failures before the SIGKILL: FAILURES × RULES deliveries (at most 500, the API's page). */
const FAILURES = 50;
/** Failures before the SIGTERM. */
const DRAINED = 20;

async function failedChildren(t: Tenants, parentFlowRunId: string, n: number): Promise<string[]> {
  // Polled tightly: the kill must come right after the failures are written.
  const deadline = Date.now() + 120_000;
  for (;;) {
    const { items } = await t.victim.api.runs.list.query({ parentFlowRunId, state: ["FAILED"], limit: 200 });
    if (items.length >= n) return items.map((r) => r.id);
    if (Date.now() > deadline) throw new Error(`only ${items.length} of ${n} child runs failed`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Every (rule, run) pair once: the deliveries' rule and run ids, with no pair twice. */
function assertOncePerRuleAndRun(
  deliveries: { ruleId: string; flowRunId: string | null }[],
  runIds: string[],
  ruleIds: string[],
) {
  const pairs = deliveries.map((d) => `${d.ruleId}/${d.flowRunId}`);
  assert.equal(new Set(pairs).size, pairs.length, "no delivery twice");
  const expected = runIds.flatMap((run) => ruleIds.map((rule) => `${rule}/${run}`)).sort();
  assert.deepEqual([...pairs].sort(), expected, "one delivery per rule and failed run");
}

for (const provider of PROVIDERS) {
  const skip = provider === "postgresql" ? await postgresUnavailable() : undefined;
  describe(`alerts survive a crash and a shutdown (${provider})`, { skip }, () => {
    const ruleIds: string[] = [];
    const t = useTenants(
      provider,
      skip,
      async (s) => {
        await startAgent(s.server, { name: "agent-alerts", workDir: s.project, concurrency: 2 });
        await deployFixtures(s, [], "flows/doomed.ts");
        await s.victim.api.notifications.createChannel.mutate({
          kind: "webhook",
          name: "oncall",
          url: "https://alerts.ferry.invalid/hook",
        });
        for (let i = 0; i < RULES; i++) {
          const rule = await s.victim.api.notifications.createRule.mutate({
            name: `rule-${i}`,
            channel: "oncall",
            events: ["FAILED"],
          });
          ruleIds.push(rule.id);
        }
      },
      { fixtures: join(REPO, "tests/security/fixtures-alerts") },
    );

    test(`SIGKILL right after ${FAILURES} failures × ${RULES} rules: after a restart, every delivery exactly once`, async () => {
      const parent = await t.victim.api.runs.create.mutate({ deployment: "fail-many", parameters: { n: FAILURES } });
      const failed = await failedChildren(t, parent.id, FAILURES);
      t.server.proc.child.kill("SIGKILL");
      await t.server.proc.exited;
      await restartServer(t.server);
      const expected = FAILURES * RULES;
      const deliveries = () =>
        t.victim.api.notifications.deliveries.query({ limit: 500 }).then((rows) => rows.filter((d) => d.event === "FAILED"));
      await waitUntil("every delivery is written", async () => (await deliveries()).length >= expected, 60_000);
      // Nothing more turns up afterwards (a double would).
      await new Promise((r) => setTimeout(r, 1_000));
      assertOncePerRuleAndRun(await deliveries(), failed, ruleIds);
    });

    test(`SIGTERM right after ${DRAINED} failures: the control plane drains before it exits`, async () => {
      await waitUntil("the agent is back", async () => (await t.victim.api.agents.list.query()).some((a) => a.connected));
      const parent = await t.victim.api.runs.create.mutate({ deployment: "fail-many", parameters: { n: DRAINED } });
      const failed = await failedChildren(t, parent.id, DRAINED);
      await t.server.proc.stop("SIGTERM");
      const exit = await t.server.proc.exited;
      assert.deepEqual(exit, { code: 0, signal: null }, "a clean exit within the harness's 10 s");
      // Read straight from the database: no control plane is running to finish the job.
      const { db, close } = await openDatabase(t.server.databaseUrl);
      try {
        const rows = await db.notificationDelivery.findMany({
          where: { flowRunId: { in: failed } },
          select: { ruleId: true, flowRunId: true },
        });
        assertOncePerRuleAndRun(rows, failed, ruleIds);
        assert.equal(await db.notificationOutbox.count(), 0, "nothing left queued");
      } finally {
        await close();
      }
    });
  });
}
