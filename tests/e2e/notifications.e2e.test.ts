/**
 * Alerting end to end: notification rules on run events, delivered to local HTTP receivers
 * that check Slack's, PagerDuty's (Events API v2) and the signed webhook's payloads, with a
 * retry after a 500 and a broken channel that delays only itself. Real processes.
 */
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { createServer, type Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { deployFixtures, PROVIDERS, postgresUnavailable, startAgent, useServer, waitUntil } from "./harness.ts";

interface Received {
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  json: Record<string, unknown>;
}

/** A local receiver: records every request; `fail(path, n)` answers 500 to the next n requests on a path. */
async function receiver() {
  const received: Received[] = [];
  const failures = new Map<string, number>();
  const server: HttpServer = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => {
      body += c.toString();
    });
    req.on("end", () => {
      const path = req.url ?? "/";
      let json: Record<string, unknown> = {};
      try {
        json = JSON.parse(body) as Record<string, unknown>;
      } catch {
        // recorded as is
      }
      received.push({ path, headers: req.headers, body, json });
      const left = failures.get(path) ?? 0;
      if (left > 0) {
        failures.set(path, left - 1);
        res.writeHead(500).end("receiver down");
        return;
      }
      res.writeHead(path === "/pd" ? 202 : 200, { "content-type": "application/json" }).end('{"status":"ok"}');
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    received,
    fail: (path: string, n: number) => failures.set(path, n),
    on: (path: string) => received.filter((r) => r.path === path),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

for (const provider of PROVIDERS) {
  const skip = provider === "postgresql" ? await postgresUnavailable() : undefined;
  describe(`notifications on ${provider}`, () => {
    let rx: Awaited<ReturnType<typeof receiver>>;
    before(async () => {
      rx = await receiver();
    });
    after(async () => {
      await rx?.close();
    });
    const suite = useServer(
      provider,
      skip,
      async (s) => {
        await startAgent(s.server, { name: "agent-alerts", workDir: s.project, concurrency: 4 });
        await deployFixtures(s);
        // The sleepy flow with a 1.5 s timeout: fails (TimedOut) or completes depending on `ms`.
        await s.server.api.deployments.upsert.mutate({
          name: "flaky-job",
          flowName: "sleepy",
          entrypoint: "flows/train.ts",
          paramsSchema: { type: "object", properties: { ms: { type: "integer", minimum: 0 } }, required: ["ms"] },
          timeoutMs: 1_500,
        });
      },
      // The receivers listen on 127.0.0.1: private egress is the operator's opt-in.
      { serverArgs: ["--web-url", "http://ferry.test", "--allow-private-egress"] },
    );
    const api = () => suite.server.api;

    test("failures page, recoveries resolve, and a signed webhook arrives after the receiver's 500", { skip }, async () => {
      const slack = await api().notifications.createChannel.mutate({ kind: "slack", name: "ops-slack", url: `${rx.url}/slack` });
      const pd = await api().notifications.createChannel.mutate({
        kind: "pagerduty",
        name: "pager",
        routingKey: "R0UTINGKEY",
        url: `${rx.url}/pd`,
      });
      const hook = await api().notifications.createChannel.mutate({ kind: "webhook", name: "audit", url: `${rx.url}/hook` });
      assert.match(String(hook.secret), /^fns_/);
      const listed = await api().notifications.channels.query();
      assert.ok(
        !JSON.stringify(listed).includes("R0UTINGKEY") && !JSON.stringify(listed).includes(String(hook.secret)),
        "secrets are never shown back",
      );
      for (const channel of [slack.name, pd.name, hook.name]) {
        await api().notifications.createRule.mutate({
          channel,
          deployment: "flaky-job",
          events: ["FAILED", "CRASHED", "RECOVERED"],
        });
      }
      rx.fail("/hook", 1);

      const failed = await api().runs.create.mutate({ deployment: "flaky-job", parameters: { ms: 5_000 } });
      await waitUntil(
        "the failure notified everywhere",
        async () => rx.on("/slack").length >= 1 && rx.on("/pd").length >= 1 && rx.on("/hook").length >= 2,
        30_000,
      );
      // Slack: text + blocks naming the deployment, with a link to the run.
      const s = rx.on("/slack")[0]?.json as { text: string; blocks: { elements?: { url: string }[] }[] };
      assert.match(s.text, /flaky-job failed/);
      assert.equal(s.blocks.at(-1)?.elements?.[0]?.url, `http://ferry.test/runs/${failed.id}`);
      // PagerDuty: a trigger with a stable dedup key.
      const trig = rx.on("/pd")[0]?.json as {
        event_action: string;
        routing_key: string;
        dedup_key: string;
        payload: { severity: string; summary: string };
      };
      assert.equal(trig.event_action, "trigger");
      assert.equal(trig.routing_key, "R0UTINGKEY");
      assert.equal(trig.payload.severity, "error");
      // Webhook: the first attempt got a 500, the retry went through; both correctly signed.
      for (const r of rx.on("/hook")) {
        const ts = String(r.headers["x-ferry-timestamp"]);
        const expected = `v1=${createHmac("sha256", String(hook.secret)).update(`${ts}.${r.body}`).digest("hex")}`;
        assert.equal(r.headers["x-ferry-signature"], expected);
      }
      assert.equal(
        rx.on("/hook")[0]?.headers["x-ferry-delivery"],
        rx.on("/hook")[1]?.headers["x-ferry-delivery"],
        "the same delivery, retried",
      );
      const history = await waitUntil("every delivery recorded as sent", async () => {
        const list = await api().notifications.deliveries.query({ flowRunId: failed.id });
        return list.length === 3 && list.every((d) => d.status === "SENT") ? list : undefined;
      });
      const audit = history.find((d) => d.channel === "audit");
      assert.equal(audit?.status, "SENT");
      assert.equal(audit?.attempts, 2);
      assert.ok(
        history.every((d) => d.status === "SENT" && d.event === "FAILED"),
        JSON.stringify(history),
      );

      // Back to COMPLETED: PagerDuty resolves the same incident, Slack hears of the recovery.
      await api().runs.create.mutate({ deployment: "flaky-job", parameters: { ms: 0 } });
      await waitUntil("the recovery notified", async () => rx.on("/pd").length >= 2 && rx.on("/slack").length >= 2, 30_000);
      const resolve = rx.on("/pd")[1]?.json as { event_action: string; dedup_key: string };
      assert.deepEqual(resolve, { routing_key: "R0UTINGKEY", event_action: "resolve", dedup_key: trig.dedup_key });
      assert.match(String(rx.on("/slack")[1]?.json.text), /recovered/);
      // A second success is not a recovery.
      const pdBefore = rx.on("/pd").length;
      const ok2 = await api().runs.create.mutate({ deployment: "flaky-job", parameters: { ms: 0 } });
      await waitUntil("it completed", async () => (await api().runs.get.query({ id: ok2.id })).stateType === "COMPLETED");
      await new Promise((r) => setTimeout(r, 1_000));
      assert.equal(rx.on("/pd").length, pdBefore);
    });

    test("long-running runs notify once; a broken channel retries without holding up the others", { skip }, async () => {
      const good = await api().notifications.createChannel.mutate({
        kind: "webhook",
        name: "good",
        url: `${rx.url}/good`,
        secret: "a-long-enough-secret",
      });
      const broken = await api().notifications.createChannel.mutate({
        kind: "webhook",
        name: "broken",
        url: "http://127.0.0.1:1/nothing",
        secret: "a-long-enough-secret",
      });
      for (const channel of [good.name, broken.name]) {
        await api().notifications.createRule.mutate({
          channel,
          deployment: "sleepy",
          events: ["LONG_RUNNING"],
          longRunningSeconds: 1,
        });
      }
      const run = await api().runs.create.mutate({ deployment: "sleepy", parameters: { ms: 9_000 } });
      await waitUntil("the long run notified", async () => rx.on("/good").length >= 1, 30_000);
      const body = rx.on("/good")[0]?.json as { event: string; run: { id: string }; runningSeconds: number };
      assert.equal(body.event, "LONG_RUNNING");
      assert.equal(body.run.id, run.id);
      assert.ok(body.runningSeconds >= 1);
      // The receiver has the request before the sender records its outcome: wait for the record.
      const b = await waitUntil("the broken channel's first attempt recorded", async () => {
        const deliveries = await api().notifications.deliveries.query({ flowRunId: run.id });
        const d = deliveries.find((x) => x.channel === "broken");
        return d && d.attempts >= 1 ? d : undefined;
      });
      assert.equal(b.status, "PENDING");
      // A closed port reads like any other failure to connect (no port scanner for tenants).
      assert.equal(b.lastError, "could not connect");
      await waitUntil(
        "the run completes",
        async () => (await api().runs.get.query({ id: run.id })).stateType === "COMPLETED",
        30_000,
      );
      assert.equal(rx.on("/good").length, 1, "once per run");
    });

    test("bad channels and rules are refused", { skip }, async () => {
      await assert.rejects(
        api().notifications.createChannel.mutate({ kind: "slack", name: "x", url: "ftp://nope" }),
        /http\(s\) URL/,
      );
      await assert.rejects(
        api().notifications.createChannel.mutate({ kind: "slack", name: "ops-slack", url: `${rx.url}/slack` }),
        /exists/,
      );
      await assert.rejects(
        api().notifications.createRule.mutate({ channel: "nope", events: ["FAILED"] }),
        /no notification channel/,
      );
      await assert.rejects(
        api().notifications.createRule.mutate({ channel: "good", events: ["LONG_RUNNING"] }),
        /longRunningSeconds/,
      );
    });
  });
}
