import { randomBytes, timingSafeEqual } from "node:crypto";
import { type Db, sqlOf } from "@ferry/prisma";
import type { FlowRun, Trigger } from "@ferry/prisma/sqlite";
import type { EventPublished } from "@ferry/sdk/protocol";
import { hashSecret } from "./auth/tokens.ts";
import { changesOf } from "./changes.ts";
import { DomainError } from "./errors.ts";
import { parseObject, parseStrings } from "./json.ts";
import type { Logger } from "./logger.ts";
import { createFlowRun, type Lineage } from "./orchestration/create-run.ts";
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
/** Child flow runs above a run (they run in their root's process and carry no lineage of their own). */
const MAX_CHILD_DEPTH = 20;
const RATE_WINDOW_MS = 60_000;

/**
 * What bounds chains of triggered runs (a trigger that starts a run whose event fires a
 * trigger…). A run a trigger starts records the chain of triggers that led to it; a firing is
 * refused when the chain would get longer than `maxDepth`, when its trigger is already in the
 * chain (a cycle: ping→pong→ping, or an event trigger that starts its own publisher), or when
 * the trigger has fired `perMinute` times in the current minute (a fixed window kept on the
 * trigger's row, so every replica counts against the same limit).
 */
export interface TriggerLimits {
  /** Longest chain: a webhook's run or a run started by an untriggered run is at depth 1. */
  maxDepth: number;
  /** Firings of one trigger per minute. */
  perMinute: number;
}

/**
 * Ten links is more than any pipeline we know of chains on purpose; 60 firings a minute lets a
 * trigger follow a busy source (one run a second) while a runaway costs at most that.
 */
export const DEFAULT_TRIGGER_LIMITS: TriggerLimits = { maxDepth: 10, perMinute: 60 };

/** Where a firing comes from: the run whose state or event fired it (none for a webhook) and that run's chain. */
interface Source {
  runId: string | null;
  chain: readonly string[];
}

/** The outcome of a firing: a run (new or, for a key already used, the first one), or a refusal. */
export type Firing = { run: FlowRun; created: boolean } | { refused: string };

/** Why a firing from `source` must not happen (chain too deep, a cycle), or null. */
export function lineageRefusal(trigger: Pick<Trigger, "id" | "name">, source: Source, maxDepth: number): string | null {
  const from = source.runId ? `run ${source.runId}` : "a webhook call";
  if (source.chain.includes(trigger.id)) {
    return `a cycle: trigger "${trigger.name}" already started a run in the chain that led to ${from} (${source.chain.length} trigger(s) deep)`;
  }
  if (source.chain.length + 1 > maxDepth) {
    return `chain too deep: ${from} is ${source.chain.length} trigger(s) deep and the limit is ${maxDepth} (ferry server start --trigger-max-depth)`;
  }
  return null;
}

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

  private readonly sweepMs: number;
  private readonly limits: TriggerLimits;

  constructor(
    private readonly db: Db,
    private readonly params: ParamsValidator,
    private readonly onCreated: () => void,
    private readonly log: Logger,
    options: { sweepMs?: number; limits?: Partial<TriggerLimits> } = {},
  ) {
    this.sweepMs = options.sweepMs ?? 30_000;
    this.limits = { ...DEFAULT_TRIGGER_LIMITS, ...options.limits };
  }

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
    const run = await this.db.flowRun.findFirst({
      where: { id: c.flowRunId, workspaceId: c.workspaceId },
      include: { deployment: { select: { name: true } } },
    });
    if (!run) return;
    const event = runEvent(
      { ...run, stateType: c.stateType, stateName: c.stateName, attempt: c.attempt },
      run.deployment?.name ?? null,
    );
    const source = await this.sourceOf(run);
    for (const t of triggers) await this.fire(t, event, runKey(c.flowRunId, c.stateType, c.attempt), source);
  }

  /**
   * The lineage a run passes on: its own chain, or its root's for a child flow run (children
   * run in their root's process, so an event a child publishes belongs to the root's chain).
   */
  private async sourceOf(run: Pick<FlowRun, "id" | "workspaceId" | "parentFlowRunId" | "triggerChainJson">): Promise<Source> {
    let root = run;
    for (let depth = 0; root.parentFlowRunId && depth < MAX_CHILD_DEPTH; depth++) {
      const parent = await this.db.flowRun.findFirst({
        where: { id: root.parentFlowRunId, workspaceId: run.workspaceId },
        select: { id: true, workspaceId: true, parentFlowRunId: true, triggerChainJson: true },
      });
      if (!parent) break;
      root = parent;
    }
    return { runId: run.id, chain: parseStrings(root.triggerChainJson) };
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
          workspaceId: t.workspaceId,
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
        const source = { runId: run.id, chain: parseStrings(run.triggerChainJson) };
        // Refused when its state was announced (and recorded then): not again every sweep.
        if (lineageRefusal(t, source, this.limits.maxDepth)) continue;
        const outcome = await this.fire(
          t,
          runEvent(run, run.deployment?.name ?? null),
          runKey(run.id, run.stateType, run.attempt),
          source,
        );
        if (outcome && "created" in outcome && outcome.created) fired++;
      }
    }
    return fired;
  }

  /**
   * Starts the trigger's deployment for an event from `source`; `key` makes it once per event:
   * a second call with the same key returns the first run, `created: false`. A chain too deep,
   * a cycle or the rate limit refuses it, with the reason recorded on the trigger (`lastRefusal`)
   * and logged. Null: the deployment is gone.
   */
  async fire(trigger: Trigger, event: unknown, key: string, source: Source): Promise<Firing | null> {
    const deployment = await this.db.deployment.findFirst({
      where: { id: trigger.deploymentId, workspaceId: trigger.workspaceId },
    });
    if (!deployment) return null;
    const idempotencyKey = triggerKey(trigger, key);
    // A replayed event returns its run before any limit is looked at (a replay is no new firing).
    const earlier = await this.db.flowRun.findUnique({
      where: { workspaceId_idempotencyKey: { workspaceId: trigger.workspaceId, idempotencyKey } },
    });
    if (earlier) return { run: earlier, created: false };
    const refusal =
      lineageRefusal(trigger, source, this.limits.maxDepth) ??
      ((await this.takeFiring(trigger))
        ? null
        : `rate limit: trigger "${trigger.name}" already fired ${this.limits.perMinute} times this minute (ferry server start --trigger-rate)`);
    if (refusal) {
      await this.refuse(trigger, refusal, source);
      return { refused: refusal };
    }
    const lineage: Lineage = { triggerId: trigger.id, fromRunId: source.runId, chain: [...source.chain, trigger.id] };
    try {
      const outcome = await createFlowRun(this.db, this.params, {
        workspaceId: trigger.workspaceId,
        deployment,
        parameters: triggerParameters(trigger, event),
        idempotencyKey,
        lineage,
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
   * Counts a firing in the trigger's current minute; false when the minute is full. Each
   * statement is atomic, so replicas firing the same trigger share one count (two replicas
   * opening a new window at the same instant may each count one firing more).
   */
  private async takeFiring(trigger: Pick<Trigger, "id" | "workspaceId">): Promise<boolean> {
    const now = new Date();
    const windowOpen = new Date(now.getTime() - RATE_WINDOW_MS);
    const inWindow = await this.db.trigger.updateMany({
      where: {
        id: trigger.id,
        workspaceId: trigger.workspaceId,
        windowStartedAt: { gt: windowOpen },
        windowFirings: { lt: this.limits.perMinute },
      },
      data: { windowFirings: { increment: 1 } },
    });
    if (inWindow.count) return true;
    const opened = await this.db.trigger.updateMany({
      where: {
        id: trigger.id,
        workspaceId: trigger.workspaceId,
        OR: [{ windowStartedAt: null }, { windowStartedAt: { lte: windowOpen } }],
      },
      data: { windowStartedAt: now, windowFirings: 1 },
    });
    return opened.count === 1;
  }

  /** Records a refused firing where its owner sees it (`ferry trigger ls`, the triggers API) and logs it. */
  private async refuse(trigger: Pick<Trigger, "id" | "workspaceId">, reason: string, source: Source): Promise<void> {
    this.log.warn({ triggerId: trigger.id, fromRunId: source.runId, reason }, "trigger firing refused");
    await this.db.trigger.updateMany({
      where: { id: trigger.id, workspaceId: trigger.workspaceId },
      data: { lastRefusal: reason.slice(0, 1000), lastRefusedAt: new Date() },
    });
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
      // The publishing run of this workspace only (ids come from an agent).
      const run = await this.db.flowRun.findFirst({
        where: { id: e.flowRunId, workspaceId },
        include: { deployment: { select: { name: true } } },
      });
      const event = {
        event: { name: e.name, payload: e.payload, at: e.timestamp, taskRunId: e.taskRunId ?? null },
        ...(run ? runEvent(run, run.deployment?.name ?? null) : {}),
      };
      // The runs an event starts inherit the publishing run's lineage.
      const source = run ? await this.sourceOf(run) : { runId: null, chain: [] };
      for (const t of triggers.filter((t) => t.eventName === e.name)) {
        try {
          await this.fire(t, event, `event:${e.eventId}`, source);
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
    // A webhook call starts a new lineage: its run is at depth 1.
    const outcome = await this.fire(trigger, { payload }, key, { runId: null, chain: [] });
    if (outcome && "refused" in outcome) return { status: "refused" as const, reason: outcome.refused };
    return { status: "ok" as const, run: outcome?.run ?? null, created: outcome?.created ?? false };
  }
}
