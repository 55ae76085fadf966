import { randomBytes, timingSafeEqual } from "node:crypto";
import type { Db } from "@ferry/prisma";
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

  start(): void {
    this.unsubscribe = changesOf(this.db).subscribe((c) => {
      if (c.kind !== "runState" || !c.deploymentId) return;
      const { flowRunId } = c;
      this.queue = this.queue.then(() => this.onRun(flowRunId)).catch((err: unknown) => this.log.warn({ err }, "trigger failed"));
    });
    this.timer = setInterval(() => {
      this.queue = this.queue
        .then(async () => {
          await this.sweep();
        })
        .catch((err: unknown) => this.log.warn({ err }, "trigger sweep failed"));
    }, this.sweepMs);
    this.timer.unref();
  }

  stop(): void {
    this.unsubscribe?.();
    clearInterval(this.timer);
  }

  /** Waits for the triggers queued so far (tests, shutdown). */
  idle(): Promise<void> {
    return this.queue;
  }

  private async onRun(flowRunId: string): Promise<void> {
    const run = await this.db.flowRun.findUnique({
      where: { id: flowRunId },
      include: { deployment: { select: { name: true } } },
    });
    if (!run?.deploymentId) return;
    const triggers = await this.db.trigger.findMany({
      where: { kind: "run_state", active: true, workspaceId: run.workspaceId, sourceDeploymentId: run.deploymentId },
    });
    for (const t of triggers) {
      const states = parseStrings(t.statesJson);
      if (!states.includes(run.stateType)) continue;
      await this.fire(t, runEvent(run, run.deployment?.name ?? null), `run:${run.id}:${run.stateType}:${run.attempt}`);
    }
  }

  /** Runs that changed state recently and match a run-state trigger but have not fired it (lost events). */
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
      for (const run of runs) {
        if (await this.fire(t, runEvent(run, run.deployment?.name ?? null), `run:${run.id}:${run.stateType}:${run.attempt}`))
          fired++;
      }
    }
    return fired;
  }

  /** Starts the trigger's deployment for an event; `key` makes it once per event. Returns the run when one was created. */
  async fire(trigger: Trigger, event: unknown, key: string): Promise<FlowRun | null> {
    const deployment = await this.db.deployment.findUnique({ where: { id: trigger.deploymentId } });
    if (!deployment) return null;
    try {
      const { run, created } = await createFlowRun(this.db, this.params, {
        workspaceId: trigger.workspaceId,
        deployment,
        parameters: triggerParameters(trigger, event),
        idempotencyKey: `trigger:${trigger.id}:${key}`.slice(0, 200),
      });
      if (created) {
        await this.db.trigger.update({ where: { id: trigger.id }, data: { lastFiredAt: new Date() } });
        this.log.info({ triggerId: trigger.id, runId: run.id }, "trigger fired");
        this.onCreated();
        return run;
      }
      return null;
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
    const existing = await this.db.flowRun.findUnique({
      where: {
        workspaceId_idempotencyKey: {
          workspaceId: trigger.workspaceId,
          idempotencyKey: `trigger:${trigger.id}:${key}`.slice(0, 200),
        },
      },
    });
    if (existing) return { status: "ok" as const, run: existing, created: false };
    const run = await this.fire(trigger, { payload }, key);
    return { status: "ok" as const, run, created: !!run };
  }
}
