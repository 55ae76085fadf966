import { type Db, sqlOf } from "@ferry/prisma";
import type { NotificationChannel, NotificationDelivery, NotificationRule } from "@ferry/prisma/sqlite";
import { changesOf } from "../changes.ts";
import { type EgressPolicy, PUBLIC_EGRESS, send as sendOut } from "../egress.ts";
import { newId } from "../ids.ts";
import { parseStrings } from "../json.ts";
import type { Logger } from "../logger.ts";
import type { DeliveryOutcome } from "../metrics.ts";
import { openChannelConfig, type SecretKeyring } from "../secrets.ts";
import { SerialPass } from "../serial.ts";
import {
  ALERT_EVENTS,
  type Alert,
  type AlertEvent,
  type Channel,
  outgoing,
  PAGERDUTY_EVENTS_URL,
  retryDelaySeconds,
} from "./payloads.ts";

/** Attempts before a delivery is given up (FAILED). */
export const MAX_DELIVERY_ATTEMPTS = 8;
/** Outbox rows turned into deliveries per query. */
const OUTBOX_BATCH = 200;
const SEND_TIMEOUT_MS = 10_000;
const PARALLEL_SENDS = 4;

/** The events a rule listens to. */
function alertEvents(eventsJson: string): AlertEvent[] {
  return parseStrings(eventsJson).filter((e): e is AlertEvent => (ALERT_EVENTS as readonly string[]).includes(e));
}

/**
 * What a channel row sends to, its settings decrypted with the operator's keys (the row holds
 * them sealed; see secrets.ts); null when they are incomplete or cannot be decrypted.
 */
export async function channelOf(
  row: Pick<NotificationChannel, "id" | "kind" | "configJson">,
  secrets?: SecretKeyring,
): Promise<Channel | null> {
  let config: Record<string, unknown>;
  try {
    config = await openChannelConfig(secrets, row);
  } catch {
    return null;
  }
  const str = (k: string) => (typeof config[k] === "string" ? (config[k] as string) : "");
  // A configuration missing what the channel needs is not valid (never sent half-configured).
  switch (row.kind) {
    case "slack":
      return str("url") ? { kind: "slack", url: str("url") } : null;
    case "pagerduty":
      return str("routingKey")
        ? { kind: "pagerduty", routingKey: str("routingKey"), url: str("url") || PAGERDUTY_EVENTS_URL }
        : null;
    case "webhook":
      return str("url") && str("secret") ? { kind: "webhook", url: str("url"), secret: str("secret") } : null;
    default:
      return null;
  }
}

/**
 * Notifications: rules turn run events (FAILED, CRASHED, Late, running longer than X, back to
 * COMPLETED after a failure) into deliveries, stored first and sent by a worker of their own
 * with retries and backoff. Deliveries are keyed (rule, event key), so an event seen twice
 * (a replay, two control planes) notifies once. Sending never runs on the scheduler's or the
 * dispatcher's path, and a channel that is down only delays its own deliveries.
 *
 * A run state that may alert reaches the rules through NotificationOutbox, a row written in the
 * state change's own transaction (flow-run-sql.ts): the change feed only wakes the pass that
 * reads it, so a crash between the commit and the deliveries loses nothing (the next start
 * finishes the job), and `drain` lets a shutdown finish it first.
 */
export class Notifier {
  private unsubscribe: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private queue: Promise<void> = Promise.resolve();
  private readonly sends: SerialPass;
  private readonly rules: SerialPass;

  constructor(
    private readonly db: Db,
    private readonly log: Logger,
    private readonly options: {
      webUrl?: string;
      tickMs?: number;
      now?: () => Date;
      /** Told how each delivery attempt ended (metrics). */
      onDelivery?: (outcome: DeliveryOutcome) => void;
      /** Where deliveries may go (default: public addresses only). */
      egress?: EgressPolicy;
      /** Decrypts channel settings (stored sealed). */
      secrets?: SecretKeyring;
    } = {},
  ) {
    this.sends = new SerialPass(
      () => this.sendDue(),
      (err) => this.log.error({ err }, "notification delivery pass failed"),
    );
    this.rules = new SerialPass(
      () => this.applyOutbox(),
      (err) => this.log.warn({ err }, "notification rules pass failed"),
    );
  }

  private now(): Date {
    return this.options.now?.() ?? new Date();
  }

  /** The egress policy channels are sent (and checked when saved) under. */
  get egress(): EgressPolicy {
    return this.options.egress ?? PUBLIC_EGRESS;
  }

  private delivering = false;
  private unsubscribeWake: (() => void) | undefined;

  /** Rules and delivery together (one process). */
  start(): void {
    this.startRules();
    this.startDelivery();
  }

  stop(): void {
    this.stopRules();
    this.stopDelivery();
  }

  /**
   * Turns the outbox into deliveries when this replica writes a state that may alert, and once
   * at start for what a previous process left (every replica does; the (rule, event) key makes
   * a second delivery harmless).
   */
  startRules(): void {
    this.rules.resume();
    this.unsubscribe = changesOf(this.db).subscribe((c, origin) => {
      if (origin !== "local" || c.kind !== "runState") return;
      // Most states (PENDING, RUNNING, a scheduled retry…) alert no one: decided before any query.
      if (candidateEvent(c.stateType, c.stateName)) this.rules.kick();
    });
    this.rules.kick();
  }

  stopRules(): void {
    this.unsubscribe?.();
    this.rules.stop();
  }

  /**
   * Shutdown: turns what the outbox holds into deliveries, for at most `timeoutMs` (what is
   * left then stays in the outbox for the next start). Call after `stopRules`, once no new
   * reports are taken. Reports already being applied still commit states: the drain goes on
   * until no state that may alert has been written for `quietMs`.
   */
  async drain(timeoutMs = 5_000, quietMs = 250): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let lastChange = Date.now();
    const unsubscribe = changesOf(this.db).subscribe((c, origin) => {
      if (origin === "local" && c.kind === "runState" && candidateEvent(c.stateType, c.stateName)) lastChange = Date.now();
    });
    try {
      for (;;) {
        const passStart = Date.now();
        const left = await this.applyOutbox(deadline);
        // Quiet since before this pass began: every state written is in the outbox it read.
        if (!left && lastChange < passStart && Date.now() - lastChange >= quietMs) return;
        if (left || Date.now() >= deadline) {
          this.log.warn({ left }, "shutdown: alerts left in the outbox for the next start");
          return;
        }
        await new Promise((r) => setTimeout(r, Math.min(50, quietMs)));
      }
    } catch (err) {
      this.log.warn({ err }, "shutdown: could not drain the alert outbox");
    } finally {
      unsubscribe();
    }
  }

  /**
   * Turns outbox rows into deliveries, oldest first, and deletes them. A row that fails is
   * logged with its id and kept for the next pass; it never stops the others. Returns 0, or when
   * `deadline` (a time in ms) cut the pass short, how many rows of the batch in hand were left.
   */
  private async applyOutbox(deadline = Number.POSITIVE_INFINITY): Promise<number> {
    const failed = new Set<string>();
    for (;;) {
      const rows = await this.db.notificationOutbox.findMany({
        where: failed.size ? { id: { notIn: [...failed] } } : {},
        orderBy: { createdAt: "asc" },
        take: OUTBOX_BATCH,
      });
      const done: string[] = [];
      for (const [i, row] of rows.entries()) {
        if (Date.now() > deadline) {
          await this.db.notificationOutbox.deleteMany({ where: { id: { in: done } } });
          return rows.length - i;
        }
        const candidate = candidateEvent(row.stateType, row.stateName);
        try {
          if (candidate) await this.onRun(row, candidate);
          done.push(row.id);
        } catch (err) {
          failed.add(row.id);
          this.log.warn({ err, outboxId: row.id, flowRunId: row.flowRunId }, "notification rule failed; will retry");
        }
      }
      if (done.length) await this.db.notificationOutbox.deleteMany({ where: { id: { in: done } } });
      if (rows.length < OUTBOX_BATCH) return 0;
    }
  }

  /** Sends deliveries and checks for long-running runs (one replica does: the leader). */
  startDelivery(): void {
    this.delivering = true;
    this.sends.resume();
    this.unsubscribeWake = changesOf(this.db).subscribe((c) => {
      if (c.kind === "wake" && c.worker === "notifier") this.sends.kick();
    });
    clearInterval(this.timer);
    this.timer = setInterval(() => {
      this.queue = this.queue
        .then(() => this.longRunning())
        .catch((err: unknown) => this.log.warn({ err }, "long-running check failed"));
      // A safety net: outbox rows whose pass failed, or that another replica's crash left.
      this.rules.kick();
      this.kick();
    }, this.options.tickMs ?? 5_000);
    this.timer.unref();
    this.kick();
  }

  stopDelivery(): void {
    this.delivering = false;
    this.sends.stop();
    this.unsubscribeWake?.();
    clearInterval(this.timer);
  }

  /** Waits for the long-running checks queued so far (tests); rules run from the outbox (`drain`). */
  idle(): Promise<void> {
    return this.queue;
  }

  /**
   * A run entered a state that may alert: the rules that want it are read first (usually there
   * are none), then the run, and for COMPLETED whether it recovers from a failure.
   */
  private async onRun(
    c: {
      workspaceId: string;
      flowRunId: string;
      deploymentId: string | null;
      stateType: string;
      stateName: string;
      attempt: number;
    },
    candidate: AlertEvent,
  ): Promise<void> {
    const rules = await this.rulesFor(c.workspaceId, c.deploymentId, candidate);
    if (!rules.length) return;
    const found = await this.db.flowRun.findUnique({
      where: { id: c.flowRunId },
      include: { deployment: { select: { name: true } }, flow: { select: { name: true } } },
    });
    if (!found) return;
    // The state the change announced, even if the run has moved on since (a retry, say).
    const run = { ...found, stateType: c.stateType, stateName: c.stateName, attempt: c.attempt };
    if (candidate === "RECOVERED") {
      // Back to COMPLETED: the deployment's previous finished run failed or crashed.
      const previous = await this.db.flowRun.findFirst({
        where: {
          deploymentId: run.deploymentId,
          id: { not: run.id },
          stateType: { in: ["COMPLETED", "FAILED", "CRASHED"] },
          endTime: { lte: run.endTime ?? this.now() },
        },
        orderBy: { endTime: "desc" },
        select: { stateType: true },
      });
      if (!previous || previous.stateType === "COMPLETED") return;
    }
    await this.queueDeliveries(run, rules, candidate, `${candidate}:${run.id}:${run.attempt}`);
  }

  /** The active rules of a workspace that apply to a deployment (or to all) and want an event. */
  private async rulesFor(workspaceId: string, deploymentId: string | null, event: AlertEvent, onlyRule?: string) {
    // Direct SQL: every run that ends passes here (see prisma/src/sql.ts).
    const rules = await sqlOf(this.db).all<NotificationRule>(
      `SELECT * FROM "NotificationRule" WHERE "workspaceId" = ? AND "active" = ?
         AND ("deploymentId" IS NULL OR "deploymentId" = ?)${onlyRule ? ` AND "id" = ?` : ""}`,
      [workspaceId, true, deploymentId, ...(onlyRule ? [onlyRule] : [])],
    );
    return rules.filter((rule) => alertEvents(rule.eventsJson).includes(event));
  }

  /** Runs of a rule's deployments RUNNING longer than its threshold: one notification per run. */
  private async longRunning(): Promise<void> {
    const rules = await this.db.notificationRule.findMany({ where: { active: true, longRunningSeconds: { not: null } } });
    for (const rule of rules) {
      if (!alertEvents(rule.eventsJson).includes("LONG_RUNNING") || !rule.longRunningSeconds) continue;
      const since = new Date(this.now().getTime() - rule.longRunningSeconds * 1000);
      const runs = await this.db.flowRun.findMany({
        where: {
          workspaceId: rule.workspaceId,
          stateType: "RUNNING",
          startTime: { lt: since },
          ...(rule.deploymentId ? { deploymentId: rule.deploymentId } : {}),
        },
        include: { deployment: { select: { name: true } }, flow: { select: { name: true } } },
        take: 200,
      });
      for (const run of runs) {
        const matching = await this.rulesFor(run.workspaceId, run.deploymentId, "LONG_RUNNING", rule.id);
        await this.queueDeliveries(run, matching, "LONG_RUNNING", `LONG_RUNNING:${run.id}:${run.attempt}`);
      }
    }
  }

  /** Stores one delivery per rule for an event (a rule that already has this event's key is skipped). */
  private async queueDeliveries(
    run: {
      id: string;
      workspaceId: string;
      deploymentId: string | null;
      name: string;
      stateType: string;
      stateName: string;
      stateMessage: string | null;
      attempt: number;
      startTime: Date | null;
      deployment: { name: string } | null;
      flow: { name: string };
    },
    rules: readonly { id: string; channelId: string }[],
    event: AlertEvent,
    key: string,
  ): Promise<void> {
    if (!rules.length) return;
    const now = this.now();
    const alert: Alert = {
      event,
      workspaceId: run.workspaceId,
      deployment: run.deployment?.name ?? null,
      flow: run.flow.name,
      run: {
        id: run.id,
        name: run.name,
        state: run.stateType,
        stateName: run.stateName,
        message: run.stateMessage,
        attempt: run.attempt,
      },
      url: this.options.webUrl ? `${this.options.webUrl.replace(/\/+$/, "")}/runs/${run.id}` : null,
      at: now,
      // One incident per deployment (PagerDuty): a failure opens it, the recovery resolves it.
      dedupKey: `ferry:${run.deploymentId ?? run.id}`,
      ...(event === "LONG_RUNNING" && run.startTime
        ? { runningSeconds: Math.round((now.getTime() - run.startTime.getTime()) / 1000) }
        : {}),
    };
    const alertJson = JSON.stringify({ ...alert, at: alert.at.toISOString() });
    const row = (rule: { id: string; channelId: string }) => ({
      id: newId(),
      workspaceId: run.workspaceId,
      ruleId: rule.id,
      channelId: rule.channelId,
      flowRunId: run.id,
      event,
      eventKey: key,
      alertJson,
      nextAttemptAt: now,
    });
    // One read and one insert per event, not one per rule: a recovery after a crash or a drain
    // at shutdown writes every rule's delivery in bounded time. (rule, key) is unique: rules
    // that already have this event are left out.
    const have = new Set(
      (
        await this.db.notificationDelivery.findMany({
          where: { eventKey: key, ruleId: { in: rules.map((r) => r.id) } },
          select: { ruleId: true },
        })
      ).map((d) => d.ruleId),
    );
    const missing = rules.filter((r) => !have.has(r.id));
    let queued = 0;
    try {
      if (missing.length) queued = (await this.db.notificationDelivery.createMany({ data: missing.map(row) })).count;
    } catch (err) {
      if ((err as { code?: string }).code !== "P2002") throw err;
      // Another replica queued some of them meanwhile: one at a time, skipping those.
      for (const rule of missing) {
        try {
          await this.db.notificationDelivery.create({ data: row(rule) });
          queued++;
        } catch (err) {
          if ((err as { code?: string }).code !== "P2002") throw err;
        }
      }
    }
    if (queued) this.kick();
  }

  /** Sends due deliveries (merged with a pass in progress). */
  kick(): void {
    if (this.delivering) this.sends.kick();
    else changesOf(this.db).publish({ kind: "wake", worker: "notifier" });
  }

  /** Sends a sample notification through a channel at once (no retries): does the channel work? */
  async test(row: NotificationChannel): Promise<{ ok: boolean; status: number | null; error: string | null }> {
    const channel = await channelOf(row, this.options.secrets);
    if (!channel) return { ok: false, status: null, error: DELIVERY_REASONS.invalid };
    const alert: Alert = {
      event: "FAILED",
      workspaceId: row.workspaceId,
      deployment: "example",
      flow: "example",
      run: {
        id: "test",
        name: "test-notification",
        state: "FAILED",
        stateName: "Failed",
        message: "a test notification from Ferry",
        attempt: 1,
      },
      url: null,
      at: this.now(),
      dedupKey: `ferry:test:${row.id}`,
    };
    // The tenant sees the status and a fixed reason only (egress.ts); the detail is for the operator's log.
    const { ok, status, error, detail } = await sendOut(this.egress, outgoing(channel, alert, `test-${newId()}`, this.now()), {
      timeoutMs: SEND_TIMEOUT_MS,
    });
    if (detail) this.log.info({ channelId: row.id, error, detail }, "test notification failed");
    return { ok, status, error };
  }

  async sendDue(): Promise<number> {
    const due = await this.db.notificationDelivery.findMany({
      where: { status: "PENDING", nextAttemptAt: { lte: this.now() } },
      include: { channel: true },
      orderBy: { nextAttemptAt: "asc" },
      take: 50,
    });
    let sent = 0;
    for (let i = 0; i < due.length; i += PARALLEL_SENDS) {
      const results = await Promise.all(due.slice(i, i + PARALLEL_SENDS).map((d) => this.send(d)));
      sent += results.filter(Boolean).length;
    }
    return sent;
  }

  private async send(d: NotificationDelivery & { channel: NotificationChannel }): Promise<boolean> {
    const channel = await channelOf(d.channel, this.options.secrets);
    const attempts = d.attempts + 1;
    let ok = false;
    let error: string | null = null;
    let responseStatus: number | null = null;
    let detail: string | undefined;
    if (!channel || !d.channel.active) {
      error = channel ? DELIVERY_REASONS.disabled : DELIVERY_REASONS.invalid;
    } else {
      try {
        const alert = JSON.parse(d.alertJson) as Alert & { at: string };
        const req = outgoing(channel, { ...alert, at: new Date(alert.at) }, d.id, this.now());
        // lastError is shown in the tenant's delivery history: only the status and a fixed reason go there.
        const result = await sendOut(this.egress, req, { timeoutMs: SEND_TIMEOUT_MS });
        ({ ok, error } = result);
        responseStatus = result.status;
        detail = result.detail;
      } catch (err) {
        error = DELIVERY_REASONS.unprepared;
        detail = err instanceof Error ? err.message : String(err);
      }
    }
    const giveUp = !ok && attempts >= MAX_DELIVERY_ATTEMPTS;
    await this.db.notificationDelivery.update({
      where: { id: d.id },
      data: {
        attempts,
        responseStatus,
        lastError: ok ? null : (error?.slice(0, 2000) ?? null),
        status: ok ? "SENT" : giveUp ? "FAILED" : "PENDING",
        ...(ok ? { sentAt: this.now() } : {}),
        nextAttemptAt: ok || giveUp ? d.nextAttemptAt : new Date(this.now().getTime() + retryDelaySeconds(attempts) * 1000),
      },
    });
    this.options.onDelivery?.(ok ? "sent" : giveUp ? "failed" : "retry");
    if (!ok)
      this.log.warn(
        { deliveryId: d.id, channel: d.channel.name, attempts, error, detail },
        giveUp ? "notification given up" : "notification failed; will retry",
      );
    changesOf(this.db).publish({ kind: "deployments", workspaceId: d.workspaceId });
    return ok;
  }
}

/**
 * The errors the notifier stores itself, besides the egress reasons (egress.ts): fixed texts, so
 * the delivery history can show them as they are and reduce anything else.
 */
export const DELIVERY_REASONS = {
  disabled: "the channel is disabled",
  invalid: "the channel's configuration is not valid",
  unprepared: "the delivery could not be prepared",
} as const;

/** The alert a run state may raise, before looking at rules or history (COMPLETED may be a recovery). */
export function candidateEvent(stateType: string, stateName: string): AlertEvent | null {
  if (stateType === "FAILED") return "FAILED";
  if (stateType === "CRASHED") return "CRASHED";
  if (stateType === "SCHEDULED" && stateName === "Late") return "LATE";
  if (stateType === "COMPLETED") return "RECOVERED";
  return null;
}
