/**
 * Alerts survive a crash and a shutdown (issue 12, item 7): child flow runs fail under many
 * rules, and the control plane is killed with SIGKILL as soon as the first failures are written,
 * while the rest are still arriving; after a restart on the same database, every run that
 * failed has each of its deliveries exactly once. Then a SIGTERM right after failures: the
 * process drains before it exits, so the database holds every delivery of every failure it
 * wrote, with nothing left queued. The failures are real: one flow process whose child flow
 * runs all throw.
 *
 * The channel points at a name that never resolves (`.invalid`, RFC 6761): what is checked is
 * that each delivery exists, once, whatever happens when it is sent.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, test } from "node:test";
import { type Db, openDatabase } from "@ferry/prisma";
import { deployFixtures, PROVIDERS, postgresUnavailable, REPO, restartServer, startAgent, waitUntil } from "../e2e/harness.ts";
import { type Tenants, useTenants } from "./tenants.ts";

/** Many rules make each failure's deliveries take longer to write than the failure itself. */
const RULES = 40;
/** Child runs that fail around the SIGKILL. */
const FAILURES = 30;
/** Child runs that fail around the SIGTERM. */
const DRAINED = 20;
/** The signal goes as soon as this many failures are written (the rest are still arriving). */
const FIRST = 3;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function failedChildren(t: Tenants, parentFlowRunId: string): Promise<string[]> {
  const { items } = await t.victim.api.runs.list.query({ parentFlowRunId, state: ["FAILED"], limit: 200 });
  return items.map((r) => r.id);
}

/**
 * Waits for the first failures, polling the database itself: the busy control plane would
 * answer an API call only once it has caught up, too late to catch it in the middle.
 */
async function firstFailures(db: Db, parentFlowRunId: string): Promise<void> {
  const deadline = Date.now() + 120_000;
  while ((await db.flowRun.count({ where: { parentFlowRunId, stateType: "FAILED" } })) < FIRST) {
    if (Date.now() > deadline) throw new Error("the child runs did not fail");
    await sleep(5);
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

    test(`SIGKILL while ${FAILURES} runs fail under ${RULES} rules: after a restart, every delivery exactly once`, async () => {
      const watcher = await openDatabase(t.server.databaseUrl);
      const parent = await t.victim.api.runs.create.mutate({ deployment: "fail-many", parameters: { n: FAILURES } });
      await firstFailures(watcher.db, parent.id);
      t.server.proc.child.kill("SIGKILL");
      await t.server.proc.exited;
      await watcher.close();
      await restartServer(t.server);
      // The agent reconnects and reports the rest; the run ends one way or another.
      await waitUntil(
        "the parent run ends",
        async () =>
          // A connection kept alive to the killed process may fail once: asked again.
          ["COMPLETED", "FAILED", "CRASHED"].includes(
            (await t.victim.api.runs.get.query({ id: parent.id }).catch(() => ({ stateType: "?" }))).stateType,
          ),
        90_000,
      );
      const failed = await failedChildren(t, parent.id);
      assert.ok(failed.length >= FIRST);
      // Each run's deliveries (at most RULES, one page).
      const deliveries = async () =>
        (
          await Promise.all(failed.map((flowRunId) => t.victim.api.notifications.deliveries.query({ flowRunId, limit: 500 })))
        ).flat();
      // Without the outbox, the alerts of failures written just before the kill are lost for good.
      const deadline = Date.now() + 60_000;
      while ((await deliveries()).length < failed.length * RULES && Date.now() < deadline) await sleep(500);
      // Nothing more turns up afterwards (a double would).
      await sleep(1_000);
      assertOncePerRuleAndRun(await deliveries(), failed, ruleIds);
    });

    test(`SIGTERM while ${DRAINED} runs fail: the control plane drains before it exits`, async () => {
      await waitUntil("the agent is back", async () => (await t.victim.api.agents.list.query()).some((a) => a.connected));
      const watcher = await openDatabase(t.server.databaseUrl);
      const parent = await t.victim.api.runs.create.mutate({ deployment: "fail-many", parameters: { n: DRAINED } });
      await firstFailures(watcher.db, parent.id);
      await t.server.proc.stop("SIGTERM");
      await watcher.close();
      const exit = await t.server.proc.exited;
      assert.deepEqual(exit, { code: 0, signal: null }, "a clean exit within the harness's 10 s");
      // Read straight from the database: no control plane is running to finish the job.
      const { db, close } = await openDatabase(t.server.databaseUrl);
      try {
        const failed = (
          await db.flowRun.findMany({ where: { parentFlowRunId: parent.id, stateType: "FAILED" }, select: { id: true } })
        ).map((r) => r.id);
        assert.ok(failed.length >= FIRST);
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
