import { createHmac } from "node:crypto";

/** What a notification is about. */
export type AlertEvent = "FAILED" | "CRASHED" | "LATE" | "LONG_RUNNING" | "RECOVERED";
export const ALERT_EVENTS: readonly AlertEvent[] = ["FAILED", "CRASHED", "LATE", "LONG_RUNNING", "RECOVERED"];

export interface Alert {
  event: AlertEvent;
  workspaceId: string;
  deployment: string | null;
  flow: string;
  run: { id: string; name: string; state: string; stateName: string; message: string | null; attempt: number };
  /** Where a person looks: the run's page in the web app, when its URL is known. */
  url: string | null;
  at: Date;
  /** Same key for an incident's trigger and its resolve (PagerDuty dedup_key). */
  dedupKey: string;
  /** For LONG_RUNNING: how long it has run. */
  runningSeconds?: number;
}

export type Channel =
  | { kind: "slack"; url: string }
  | { kind: "pagerduty"; routingKey: string; url: string }
  | { kind: "webhook"; url: string; secret: string };

export const PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue";

const TITLE: Record<AlertEvent, string> = {
  FAILED: "failed",
  CRASHED: "crashed",
  LATE: "is late",
  LONG_RUNNING: "is running long",
  RECOVERED: "recovered",
};

export function summary(a: Alert): string {
  const what = a.deployment ?? a.flow;
  const extra = a.event === "LONG_RUNNING" && a.runningSeconds ? ` (${Math.round(a.runningSeconds / 60)} min)` : "";
  return `Ferry: ${what} ${TITLE[a.event]}${extra}: run ${a.run.name}`;
}

/** A request to send: where, what body, which headers. */
export interface Outgoing {
  url: string;
  body: string;
  headers: Record<string, string>;
}

/** Slack incoming webhook: `text` (the fallback) and Block Kit blocks. */
export function slackMessage(a: Alert): Record<string, unknown> {
  const emoji =
    a.event === "RECOVERED"
      ? ":white_check_mark:"
      : a.event === "LATE" || a.event === "LONG_RUNNING"
        ? ":hourglass:"
        : ":red_circle:";
  const fields = [
    `*Deployment*\n${a.deployment ?? "—"}`,
    `*State*\n${a.run.stateName}`,
    `*Attempt*\n${a.run.attempt}`,
    `*When*\n<!date^${Math.floor(a.at.getTime() / 1000)}^{date_short_pretty} {time_secs}|${a.at.toISOString()}>`,
  ];
  return {
    text: summary(a),
    blocks: [
      { type: "section", text: { type: "mrkdwn", text: `${emoji} *${summary(a)}*` } },
      { type: "section", fields: fields.map((text) => ({ type: "mrkdwn", text })) },
      ...(a.run.message
        ? [{ type: "section", text: { type: "mrkdwn", text: `\`\`\`${a.run.message.slice(0, 2500)}\`\`\`` } }]
        : []),
      ...(a.url
        ? [{ type: "actions", elements: [{ type: "button", text: { type: "plain_text", text: "Open run" }, url: a.url }] }]
        : []),
    ],
  };
}

/** PagerDuty Events API v2: trigger on a failure, resolve (same dedup key) on recovery. */
export function pagerDutyEvent(a: Alert, routingKey: string): Record<string, unknown> {
  if (a.event === "RECOVERED") return { routing_key: routingKey, event_action: "resolve", dedup_key: a.dedupKey };
  return {
    routing_key: routingKey,
    event_action: "trigger",
    dedup_key: a.dedupKey,
    payload: {
      summary: summary(a).slice(0, 1024),
      source: a.deployment ?? a.flow,
      severity: a.event === "CRASHED" ? "critical" : a.event === "FAILED" ? "error" : "warning",
      timestamp: a.at.toISOString(),
      component: a.flow,
      group: a.deployment ?? undefined,
      class: a.event,
      custom_details: {
        run_id: a.run.id,
        run_name: a.run.name,
        state: a.run.stateName,
        attempt: a.run.attempt,
        message: a.run.message,
      },
    },
    ...(a.url ? { links: [{ href: a.url, text: "Open run in Ferry" }] } : {}),
  };
}

/** The generic webhook's JSON body. */
export function webhookBody(a: Alert): Record<string, unknown> {
  return {
    event: a.event,
    summary: summary(a),
    deployment: a.deployment,
    flow: a.flow,
    run: a.run,
    url: a.url,
    at: a.at.toISOString(),
    dedupKey: a.dedupKey,
    ...(a.runningSeconds !== undefined ? { runningSeconds: a.runningSeconds } : {}),
  };
}

/**
 * HMAC-SHA256 signature of a generic webhook: over `<timestamp>.<body>`, so a receiver can
 * refuse replays of old deliveries; sent as `X-Ferry-Signature: v1=<hex>`.
 */
export function signWebhook(secret: string, timestamp: string, body: string): string {
  return `v1=${createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex")}`;
}

export function outgoing(channel: Channel, a: Alert, deliveryId: string, now = new Date()): Outgoing {
  switch (channel.kind) {
    case "slack":
      return { url: channel.url, body: JSON.stringify(slackMessage(a)), headers: { "content-type": "application/json" } };
    case "pagerduty":
      return {
        url: channel.url,
        body: JSON.stringify(pagerDutyEvent(a, channel.routingKey)),
        headers: { "content-type": "application/json" },
      };
    case "webhook": {
      const body = JSON.stringify(webhookBody(a));
      const timestamp = String(Math.floor(now.getTime() / 1000));
      return {
        url: channel.url,
        body,
        headers: {
          "content-type": "application/json",
          "x-ferry-delivery": deliveryId,
          "x-ferry-timestamp": timestamp,
          "x-ferry-signature": signWebhook(channel.secret, timestamp, body),
        },
      };
    }
  }
}

/** Seconds before the next attempt of a delivery: 2, 4, 8 … at most 10 minutes. */
export function retryDelaySeconds(attempts: number): number {
  return Math.min(600, 2 ** Math.max(1, attempts));
}
