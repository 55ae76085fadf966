import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { describe, it } from "node:test";
import { type Alert, outgoing, pagerDutyEvent, retryDelaySeconds, signWebhook, slackMessage, summary } from "./payloads.ts";

const alert: Alert = {
  event: "FAILED",
  workspaceId: "ws",
  deployment: "nightly-etl",
  flow: "etl",
  run: {
    id: "run-1",
    name: "etl-abc123",
    state: "FAILED",
    stateName: "Failed",
    message: "Error: boom\n    at x (f.ts:1:1)",
    attempt: 2,
  },
  url: "http://ferry.example/runs/run-1",
  at: new Date("2026-11-26T10:00:00Z"),
  dedupKey: "ferry:dep-1",
};

describe("notification payloads", () => {
  it("summaries say what happened to what", () => {
    assert.equal(summary(alert), "Ferry: nightly-etl failed: run etl-abc123");
    assert.equal(
      summary({ ...alert, event: "LONG_RUNNING", runningSeconds: 3600 }),
      "Ferry: nightly-etl is running long (60 min): run etl-abc123",
    );
  });

  it("Slack: text fallback plus Block Kit sections, the error in a code block, a button to the run", () => {
    const m = slackMessage(alert) as {
      text: string;
      blocks: { type: string; text?: { text: string }; elements?: { url: string }[] }[];
    };
    assert.equal(m.text, summary(alert));
    assert.equal(m.blocks[0]?.type, "section");
    assert.ok(m.blocks.some((b) => b.text?.text.startsWith("```Error: boom")));
    assert.equal(m.blocks.at(-1)?.elements?.[0]?.url, alert.url);
  });

  it("PagerDuty Events v2: trigger with severity and a stable dedup key; recovery resolves the same key", () => {
    const t = pagerDutyEvent(alert, "R0UTING") as {
      event_action: string;
      dedup_key: string;
      routing_key: string;
      payload: Record<string, unknown>;
    };
    assert.equal(t.event_action, "trigger");
    assert.equal(t.routing_key, "R0UTING");
    assert.equal(t.dedup_key, "ferry:dep-1");
    assert.equal(t.payload.severity, "error");
    assert.equal(t.payload.source, "nightly-etl");
    assert.equal(t.payload.timestamp, "2026-11-26T10:00:00.000Z");
    assert.equal(
      (pagerDutyEvent({ ...alert, event: "CRASHED" }, "k") as { payload: { severity: string } }).payload.severity,
      "critical",
    );
    assert.deepEqual(pagerDutyEvent({ ...alert, event: "RECOVERED" }, "R0UTING"), {
      routing_key: "R0UTING",
      event_action: "resolve",
      dedup_key: "ferry:dep-1",
    });
  });

  it("generic webhook: HMAC-SHA256 over timestamp.body, with delivery id and timestamp headers", () => {
    const out = outgoing(
      { kind: "webhook", url: "http://x/hook", secret: "s3cret" },
      alert,
      "del-1",
      new Date("2026-11-26T10:00:05Z"),
    );
    assert.equal(out.headers["x-ferry-delivery"], "del-1");
    assert.equal(out.headers["x-ferry-timestamp"], "1795687205");
    const expected = createHmac("sha256", "s3cret").update(`1795687205.${out.body}`).digest("hex");
    assert.equal(out.headers["x-ferry-signature"], `v1=${expected}`);
    assert.equal(signWebhook("other", "1795687205", out.body) === out.headers["x-ferry-signature"], false);
    assert.equal((JSON.parse(out.body) as { event: string }).event, "FAILED");
  });

  it("retries back off exponentially up to ten minutes", () => {
    assert.deepEqual([1, 2, 3, 4].map(retryDelaySeconds), [2, 4, 8, 16]);
    assert.equal(retryDelaySeconds(30), 600);
  });
});
