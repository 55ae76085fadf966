/**
 * Per-workspace quotas on a shared control plane: each refuses with an error that names the
 * quota, counts per workspace (one tenant at its limit does not stop another), and keeps what
 * was already accepted. The server runs with low quotas so the tests reach them quickly.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { AGENT_WS_PATH, CloseCode } from "@ferry/sdk/protocol";
import { deployFixtures, ferry, PROVIDERS, postgresUnavailable, waitUntil } from "../e2e/harness.ts";
import { FuzzSocket } from "../fuzz/agent-socket.ts";
import { RawAgent } from "./raw-agent.ts";
import { useTenants } from "./tenants.ts";

const QUOTAS = [
  "--quota",
  "runCreatesPerSecond=1",
  "--quota",
  "runCreateBurst=5",
  "--quota",
  "maxSchedules=2",
  "--quota",
  "maxActiveBackfills=1",
  "--quota",
  "maxBatchSize=10",
  "--quota",
  "maxNotificationChannels=1",
  "--quota",
  "maxAgentCapacity=50",
  "--quota",
  "maxAgentsPerToken=2",
  "--quota",
  "maxSocketsPerToken=3",
];

/** Says hello as `agentId` and waits for the answer: welcomed, or closed with a code and reason. */
async function hello(serverUrl: string, token: string, agentId: string, capacity = 4) {
  const agent = await RawAgent.open(`${serverUrl.replace(/^http/, "ws")}${AGENT_WS_PATH}`, token, agentId, [], {
    pools: ["quota"],
    capacity,
  });
  await waitUntil(`the answer to ${agentId}'s hello`, async () => agent.welcomed || agent.closed, 10_000);
  return {
    agent,
    outcome: agent.closed
      ? { kind: "close" as const, code: agent.closed.code, reason: agent.closed.reason }
      : { kind: "welcome" as const },
  };
}

for (const provider of PROVIDERS) {
  const skip = provider === "postgresql" ? await postgresUnavailable() : undefined;
  describe(`per-workspace quotas (${provider})`, { skip }, () => {
    const t = useTenants(
      provider,
      skip,
      async (t) => {
        await deployFixtures(t);
        const deployed = await ferry(["deploy", "flows/train.ts"], { cwd: t.project, env: t.attacker.env });
        assert.equal(deployed.code, 0, deployed.output);
      },
      { serverArgs: QUOTAS },
    );

    test("oversized parameters are refused, naming the quota", async () => {
      await assert.rejects(
        t.attacker.api.runs.create.mutate({ deployment: "sleepy", parameters: { ms: 1, blob: "x".repeat(70 * 1024) } }),
        /quota maxParametersBytes = 65536/,
      );
    });

    test("run creation is rate-limited per workspace: the attacker's burst does not slow the victim", async () => {
      const outcomes = await Promise.allSettled(
        Array.from({ length: 8 }, () => t.attacker.api.runs.create.mutate({ deployment: "sleepy", parameters: { ms: 1 } })),
      );
      const refused = outcomes.filter((o) => o.status === "rejected");
      assert.ok(refused.length >= 2, `expected some of 8 creates over a burst of 5 refused, got ${refused.length}`);
      for (const r of refused) assert.match(String((r as PromiseRejectedResult).reason), /quota runCreatesPerSecond = 1/);
      // Nothing accepted was lost: each accepted create is a stored run.
      const accepted = outcomes.filter((o) => o.status === "fulfilled").length;
      const stored = await t.attacker.api.runs.list.query({ deployment: "sleepy", limit: 50 });
      assert.equal(stored.items.length, accepted);
      // The victim's bucket is its own.
      const mine = await t.victim.api.runs.create.mutate({ deployment: "sleepy", parameters: { ms: 1 } });
      assert.ok(mine.id);
    });

    test("schedules: a minimum interval and a count per workspace", async () => {
      await assert.rejects(
        t.attacker.api.schedules.create.mutate({ deployment: "sleepy", schedule: { intervalSeconds: 1, parameters: { ms: 1 } } }),
        /starts runs 1 s apart \(quota minScheduleIntervalSeconds = 60/,
      );
      await assert.rejects(
        t.attacker.api.schedules.create.mutate({
          deployment: "sleepy",
          schedule: { cron: "* * * * * *", parameters: { ms: 1 } },
        }),
        /quota minScheduleIntervalSeconds/,
      );
      for (let i = 0; i < 2; i++) {
        await t.attacker.api.schedules.create.mutate({
          deployment: "sleepy",
          schedule: { intervalSeconds: 3600, parameters: { ms: i }, active: false },
        });
      }
      await assert.rejects(
        t.attacker.api.schedules.create.mutate({
          deployment: "sleepy",
          schedule: { intervalSeconds: 3600, parameters: { ms: 9 } },
        }),
        /this workspace has 2 schedules \(quota maxSchedules = 2/,
      );
      assert.equal((await t.attacker.api.schedules.list.query({})).length, 2, "the accepted schedules are kept");
      // Another workspace still has room.
      await t.victim.api.schedules.create.mutate({
        deployment: "sleepy",
        schedule: { intervalSeconds: 3600, parameters: { ms: 1 }, active: false },
      });
    });

    test("unfinished backfills are bounded per workspace", async () => {
      const range = { from: "2026-01-01T00:00:00Z", to: "2026-01-01T05:00:00Z", intervalSeconds: 3600 };
      await t.attacker.api.backfills.create.mutate({ deployment: "sleepy", ...range, parameters: { ms: 1 } });
      await assert.rejects(
        t.attacker.api.backfills.create.mutate({ deployment: "sleepy", ...range, parameters: { ms: 2 } }),
        /quota maxActiveBackfills = 1/,
      );
    });

    test("a batched API request holds at most maxBatchSize calls", async () => {
      const paths = Array.from({ length: 30 }, () => "runs.stats").join(",");
      const input = JSON.stringify(Object.fromEntries(Array.from({ length: 30 }, (_, i) => [i, {}])));
      const res = await fetch(`${t.server.url}/trpc/${paths}?batch=1&input=${encodeURIComponent(input)}`, {
        headers: { authorization: `Bearer ${t.attacker.token}` },
      });
      assert.equal(res.status, 400);
      assert.match(await res.text(), /batch/i);
      const ok = await fetch(
        `${t.server.url}/trpc/runs.stats,runs.stats?batch=1&input=${encodeURIComponent(JSON.stringify({ 0: {}, 1: {} }))}`,
        { headers: { authorization: `Bearer ${t.attacker.token}` } },
      );
      assert.equal(ok.status, 200);
    });

    test("agents: capacity, agents per token and open connections per token are bounded", async () => {
      const token = (await t.attacker.api.tokens.create.mutate({ name: "agents", scopes: ["agent"] })).secret;
      const big = await hello(t.server.url, token, "big", 51);
      assert.deepEqual(big.outcome, {
        kind: "close",
        code: CloseCode.forbidden,
        reason: "capacity 51 is over the quota maxAgentCapacity = 50: lower --concurrency",
      });
      const first = await hello(t.server.url, token, "a1");
      const second = await hello(t.server.url, token, "a2");
      assert.deepEqual([first.outcome.kind, second.outcome.kind], ["welcome", "welcome"]);
      const third = await hello(t.server.url, token, "a3");
      assert.equal(third.outcome.kind, "close");
      assert.match(third.outcome.kind === "close" ? third.outcome.reason : "", /quota maxAgentsPerToken/);
      // A known agent reconnects (its id is counted already); another token has its own allowance.
      second.agent.close();
      assert.equal((await hello(t.server.url, token, "a2")).outcome.kind, "welcome");
      const other = (await t.attacker.api.tokens.create.mutate({ name: "agents-2", scopes: ["agent"] })).secret;
      assert.equal((await hello(t.server.url, other, "b1")).outcome.kind, "welcome");
      // Two of the token's connections are open (a1 and a2's second): the third socket is the last allowed.
      const extra = await FuzzSocket.open(`${t.server.url.replace(/^http/, "ws")}${AGENT_WS_PATH}`, {
        authorization: `Bearer ${token}`,
      });
      assert.ok(extra.ok);
      const over = await hello(t.server.url, token, "a1");
      assert.equal(over.outcome.kind, "close");
      assert.match(over.outcome.kind === "close" ? over.outcome.reason : "", /quota maxSocketsPerToken/);
    });

    test("lists are bounded: notification channels by a quota, tokens a page at a time", async () => {
      await t.attacker.api.notifications.createChannel.mutate({ kind: "slack", name: "one", url: "https://hooks.example.com/a" });
      await assert.rejects(
        t.attacker.api.notifications.createChannel.mutate({ kind: "slack", name: "two", url: "https://hooks.example.com/b" }),
        /this workspace has 1 channels \(quota maxNotificationChannels = 1/,
      );
      assert.equal((await t.attacker.api.notifications.channels.query()).length, 1);
      const seen = new Set<string>();
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await t.attacker.api.tokens.list.query({ limit: 1, ...(cursor ? { cursor } : {}) });
        assert.ok(page.items.length <= 1);
        for (const k of page.items) seen.add(k.id);
        cursor = page.nextCursor;
        pages++;
      } while (cursor && pages < 50);
      assert.ok(seen.size >= 3 && pages === seen.size, `${seen.size} tokens over ${pages} pages`);
      const victims = await t.victim.api.tokens.list.query({ limit: 1 });
      await assert.rejects(
        t.attacker.api.tokens.list.query({ limit: 1, cursor: victims.items[0]?.id ?? "" }),
        /cursor names no row/,
      );
    });

    test("an unknown or malformed --quota stops the server with a clear message", async () => {
      const started = await ferry([
        "server",
        "start",
        "--port",
        "0",
        "--database-url",
        t.server.databaseUrl,
        "--quota",
        "maxRuns=1",
      ]);
      assert.notEqual(started.code, 0);
      assert.match(started.output, /unknown quota "maxRuns" \(known: /);
    });
  });
}
