import { randomBytes, timingSafeEqual } from "node:crypto";
import { type Db, sqlOf } from "@ferry/prisma";
import type { FlowRun, Trigger } from "@ferry/prisma/sqlite";
import type { EventPublished } from "@ferry/sdk/protocol";
import { hashSecret } from "./auth/tokens.ts";
import { changesOf } from "./changes.ts";
import { DomainError } from "./errors.ts";
import { parseObject, parseStrings } from "./json.ts";
import type { Logger } from "./logger.ts";
import { createFlowRun } from "./orchestration/create-run.ts";
import type { ParamsValidator } from "./params.ts";

/** Webhook secrets start with this (easy to recognise in a leak scan). */
export const HOOK_SECRET_PREFIX = "fwh_";

export function newHookSecret(): { secret: string; hash: string } {
  const secret = `${HOOK_SECRET_PREFIX}${randomBytes(24).toString("base64url")}`;
  return { secret, hash: hashSecret(secret) };
}

/** Constant-time check of a presented webhook secret against the stored hash. */
export function hookSecretMatches(presented: string, hash: string | null): boolean {
  if (!hash || presented.length > 200) return false;
  const a = Buffer.from(hashSecret(presented), "hex");
  const b = Buffer.from(hash, "hex");
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Reads `a.b.c` out of an event (objects and array indexes); undefined when absent. */
export function pick(source: unknown, path: string): unknown {
  let cur: unknown = source;
  for (const part of path.split(".")) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

/** A trigger's parameters for one event: the fixed ones, then those mapped from the event. */
export function triggerParameters(
  trigger: Pick<Trigger, "parametersJson" | "mappingJson">,
  event: unknown,
): Record<string, unknown> {
  const fixed = parseObject(trigger.parametersJson);
  const mapping = parseObject(trigger.mappingJson);
  const out: Record<string, unknown> = { ...fixed };
  for (const [param, path] of Object.entries(mapping)) {
    if (typeof path !== "string") continue;
    const value = pick(event, path);
    if (value !== undefined) out[param] = value;
  }
  return out;
}

function runEvent(run: FlowRun, deploymentName: string | null) {
  return {
    run: {
      id: run.id,
      name: run.name,
      deployment: deploymentName,
      state: run.stateType,
      stateName: run.stateName,
      message: run.stateMessage,
      attempt: run.attempt,
      parameters: parseObject(run.parametersJson),
      scheduledFor: run.scheduledFor?.toISOString() ?? null,
      startTime: run.startTime?.toISOString() ?? null,
      endTime: run.endTime?.toISOString() ?? null,
    },
  };
}

const SWEEP_WINDOW_MS = 15 * 60_000;

/** The event key of a run entering a state in one attempt: a trigger fires once per key. */
function runKey(flowRunId: string, stateType: string, attempt: number): string {
  return `run:${flowRunId}:${stateType}:${attempt}`;
}

/** The idempotency key of the run a trigger starts for one event. */
function triggerKey(trigger: Pick<Trigger, "id">, key: string): string {
  return `trigger:${trigger.id}:${key}`.slice(0, 200);
}

/**
 * Starts runs on events. Run-state triggers fire when a run of their source deployment
 * enters one of their states; each firing is keyed (trigger, run, state, attempt), so a
 * replay or a second control plane never starts a second run. Events arrive from the change
 * feed at once; a sweep over recently changed runs catches what a restart dropped.
 */
export class TriggerEngine {
  private unsubscribe: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly db: Db,
    private readonly params: ParamsValidator,
    private readonly onCreated: () => void,
    private readonly log: Logger,
    private readonly sweepMs = 30_000,
  ) {}

  /**
   * Listens for run states on this replica (each replica fires for the runs it changed; the
   * keys make a second firing harmless). The sweep runs on the leading replica: `startSweep`.
   */
  start(): void {
    this.unsubscribe = changesOf(this.db).subscribe((c, origin) => {
      if (origin !== "local" || c.kind !== "runState" || !c.deploymentId) return;
      const change = { ...c, deploymentId: c.deploymentId };
      this.queue = this.queue
        .then(() => this.onRunState(change))
        .catch((err: unknown) => this.log.warn({ err }, "trigger failed"));
    });
  }

  /** Starts the periodic sweep for events lost in a restart (one replica runs it). */
  startSweep(): void {
    clearInterval(this.timer);
    this.timer = setInterval(() => {
      this.queue = this.queue
        .then(async () => {
          await this.sweep();
        })
        .catch((err: unknown) => this.log.warn({ err }, "trigger sweep failed"));
    }, this.sweepMs);
    this.timer.unref();
  }

  stopSweep(): void {
    clearInterval(this.timer);
  }

  stop(): void {
    this.unsubscribe?.();
    this.stopSweep();
  }

  /**
   * A run entered a state. Every state change of every run passes here, so the triggers are
   * looked up first (by source deployment) and the run is read only when one matches.
   */
  private async onRunState(c: {
    workspaceId: string;
    flowRunId: string;
    deploymentId: string;
    stateType: string;
    stateName: string;
    attempt: number;
  }) {
    // Direct SQL: this runs for every state of every run (see prisma/src/sql.ts).
    const triggers = (
      await sqlOf(this.db).all<Trigger>(
        `SELECT * FROM "Trigger" WHERE "sourceDeploymentId" = ? AND "workspaceId" = ? AND "kind" = 'run_state' AND "active" = ?`,
        [c.deploymentId, c.workspaceId, true],
      )
    ).filter((t) => parseStrings(t.statesJson).includes(c.stateType));
    if (!triggers.length) return;
    const run = await this.db.flowRun.findUnique({
      where: { id: c.flowRunId },
      include: { deployment: { select: { name: true } } },
    });
    if (!run) return;
    const event = runEvent(
      { ...run, stateType: c.stateType, stateName: c.stateName, attempt: c.attempt },
      run.deployment?.name ?? null,
    );
    for (const t of triggers) await this.fire(t, event, runKey(c.flowRunId, c.stateType, c.attempt));
  }

  /**
   * Runs that entered a trigger's states recently but did not fire it (an event lost in a
   * restart). The keys already used are read in one query, so a quiet sweep writes nothing.
   */
  async sweep(): Promise<number> {
    const triggers = await this.db.trigger.findMany({ where: { kind: "run_state", active: true } });
    if (!triggers.length) return 0;
    const since = new Date(Date.now() - SWEEP_WINDOW_MS);
    let fired = 0;
    for (const t of triggers) {
      const runs = await this.db.flowRun.findMany({
        where: {
          deploymentId: t.sourceDeploymentId,
          stateType: { in: parseStrings(t.statesJson) },
          stateTimestamp: { gte: since },
        },
        include: { deployment: { select: { name: true } } },
        take: 500,
      });
      const keyOf = (r: { id: string; stateType: string; attempt: number }) =>
        triggerKey(t, runKey(r.id, r.stateType, r.attempt));
      const used = await this.db.flowRun.findMany({
        where: { workspaceId: t.workspaceId, idempotencyKey: { in: runs.map(keyOf) } },
        select: { idempotencyKey: true },
      });
      const done = new Set(used.map((u) => u.idempotencyKey));
      for (const run of runs) {
        if (done.has(keyOf(run))) continue;
        const outcome = await this.fire(
          t,
          runEvent(run, run.deployment?.name ?? null),
          runKey(run.id, run.stateType, run.attempt),
        );
        if (outcome?.created) fired++;
      }
    }
    return fired;
  }

  /**
   * Starts the trigger's deployment for an event; `key` makes it once per event: a second
   * call with the same key returns the first run, `created: false`. Null: the deployment is gone.
   */
  async fire(trigger: Trigger, event: unknown, key: string): Promise<{ run: FlowRun; created: boolean } | null> {
    const deployment = await this.db.deployment.findUnique({ where: { id: trigger.deploymentId } });
    if (!deployment) return null;
    try {
      const outcome = await createFlowRun(this.db, this.params, {
        workspaceId: trigger.workspaceId,
        deployment,
        parameters: triggerParameters(trigger, event),
        idempotencyKey: triggerKey(trigger, key),
      });
      if (outcome.created) {
        await this.db.trigger.update({ where: { id: trigger.id }, data: { lastFiredAt: new Date() } });
        this.log.info({ triggerId: trigger.id, runId: outcome.run.id }, "trigger fired");
        this.onCreated();
      }
      return outcome;
    } catch (err) {
      if (err instanceof DomainError && err.code === "INVALID_PARAMETERS") {
        this.log.warn(
          { triggerId: trigger.id, issues: err.issues },
          "trigger fired with parameters its deployment refuses: no run",
        );
      }
      throw err;
    }
  }

  /**
   * Events a flow published (emitEvent), applied from an agent's report: each fires the
   * workspace's active event triggers of that name, once per event id (the agent replays a
   * report it has no acknowledgement for, and the acknowledgement waits for this).
   */
  async onPublished(workspaceId: string, events: readonly EventPublished[]): Promise<void> {
    if (!events.length) return;
    const names = [...new Set(events.map((e) => e.name))];
    const triggers = await this.db.trigger.findMany({
      where: { workspaceId, kind: "event", active: true, eventName: { in: names } },
    });
    if (!triggers.length) return;
    for (const e of events) {
      const run = await this.db.flowRun.findUnique({
        where: { id: e.flowRunId },
        include: { deployment: { select: { name: true } } },
      });
      const event = {
        event: { name: e.name, payload: e.payload, at: e.timestamp, taskRunId: e.taskRunId ?? null },
        ...(run ? runEvent(run, run.deployment?.name ?? null) : {}),
      };
      for (const t of triggers.filter((t) => t.eventName === e.name)) {
        try {
          await this.fire(t, event, `event:${e.eventId}`);
        } catch (err) {
          // A trigger whose parameters do not fit must not make the agent's report fail forever.
          this.log.warn({ err, triggerId: t.id, event: e.name }, "event trigger did not start a run");
        }
      }
    }
  }

  /** An inbound webhook: checks the secret, starts the deployment with the payload mapped into parameters. */
  async webhook(id: string, secret: string, payload: unknown, idempotencyKey: string | undefined) {
    const trigger = await this.db.trigger.findUnique({ where: { id } });
    if (trigger?.kind !== "webhook" || !hookSecretMatches(secret, trigger.secretHash)) return { status: "unknown" as const };
    if (!trigger.active) return { status: "paused" as const };
    const key = idempotencyKey ? `hook:${idempotencyKey}` : `hook:${randomBytes(12).toString("base64url")}`;
    const outcome = await this.fire(trigger, { payload }, key);
    return { status: "ok" as const, run: outcome?.run ?? null, created: outcome?.created ?? false };
  }
}
