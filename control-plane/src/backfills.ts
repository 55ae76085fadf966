import type { Db } from "@ferry/prisma";
import type { Backfill } from "@ferry/prisma/sqlite";
import { changesOf } from "./changes.ts";
import { parseObject } from "./json.ts";
import type { Logger } from "./logger.ts";
import { createFlowRun } from "./orchestration/create-run.ts";
import type { ParamsValidator } from "./params.ts";
import { specOf } from "./scheduler.ts";
import { previousSlot, type ScheduleSpec, slotsBefore, slotsBetween } from "./scheduling/slots.ts";
import { SerialPass } from "./serial.ts";

export type Reprocess = "none" | "failed" | "completed";
const UNFINISHED = ["SCHEDULED", "PENDING", "RUNNING", "CANCELLING", "PAUSED"];

/** Whether a slot whose runs (of any origin) ended in `states` is left out, per the reprocess rule. */
export function skipSlot(reprocess: Reprocess, states: readonly string[]): boolean {
  if (!states.length) return false;
  if (states.some((s) => UNFINISHED.includes(s))) return true; // running now: never twice at once
  if (reprocess === "completed") return false;
  if (reprocess === "failed") return states.includes("COMPLETED"); // a failed slot runs again, a completed one not
  return true;
}

/**
 * Works through backfills: for each RUNNING one, keeps up to `maxActive` of its runs
 * unfinished, creating the next slots in its direction (skipping slots per `reprocess`).
 * Runs a pass when runs change (a finished run makes room at once) and every few seconds.
 * One run per backfill and slot (a unique key), so several control planes may work on the
 * same backfill; the cursor only moves forward.
 */
export class Backfiller {
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private active = false;
  /** No backfill was running at the last pass: run changes need no pass (the timer still looks). */
  private idle = false;
  private readonly passes: SerialPass;

  constructor(
    private readonly db: Db,
    private readonly params: ParamsValidator,
    private readonly onCreated: () => void,
    private readonly log: Logger,
    private readonly intervalMs = 2_000,
  ) {
    this.passes = new SerialPass(
      () => this.pass(),
      (err) => this.log.error({ err }, "backfill pass failed"),
    );
  }

  /** Starts the passes (on one replica: the leader; runs finishing on any replica make room). */
  start(): void {
    this.active = true;
    this.passes.resume();
    clearInterval(this.timer);
    this.timer = setInterval(() => this.kick(), this.intervalMs);
    this.timer.unref();
    this.unsubscribe = changesOf(this.db).subscribe((c) => {
      // Run changes make room only while a backfill runs; creating or resuming one kicks.
      if ((c.kind === "runs" && !this.idle) || (c.kind === "wake" && c.worker === "backfiller")) this.passes.kick();
    });
    this.kick();
  }

  stop(): void {
    this.active = false;
    this.passes.stop();
    clearInterval(this.timer);
    this.unsubscribe?.();
  }

  /** Runs a pass soon (merged with one in progress), here or on the replica that runs them. */
  kick(): void {
    if (this.active) this.passes.kick();
    else changesOf(this.db).publish({ kind: "wake", worker: "backfiller" });
  }

  async pass(): Promise<number> {
    const active = await this.db.backfill.findMany({ where: { status: "RUNNING" } });
    this.idle = active.length === 0;
    let created = 0;
    for (const b of active) {
      try {
        created += await this.advance(b);
      } catch (err) {
        this.log.warn({ err, backfillId: b.id }, "backfill step failed");
      }
    }
    if (created) this.onCreated();
    return created;
  }

  /** Creates runs for the next slots while fewer than maxActive are unfinished; completes the backfill at the end. */
  private async advance(b: Backfill): Promise<number> {
    const unfinished = await this.db.flowRun.count({ where: { backfillId: b.id, stateType: { in: UNFINISHED } } });
    let room = b.maxActive - unfinished;
    const spec = specOf(b);
    let cursor = b.cursor;
    let created = 0;
    let skipped = 0;
    let exhausted = false;
    const deployment = await this.db.deployment.findUnique({ where: { id: b.deploymentId } });
    if (!deployment) return 0;
    const parameters = parseObject(b.parametersJson);
    while (room > 0) {
      const batch = nextSlots(spec, b, cursor, Math.min(500, room * 4));
      if (!batch.length) {
        exhausted = true;
        break;
      }
      const existing = await this.db.flowRun.findMany({
        where: { deploymentId: b.deploymentId, scheduledFor: { in: batch } },
        select: { scheduledFor: true, stateType: true, backfillId: true },
      });
      const bySlot = new Map<number, { states: string[]; ours: boolean }>();
      for (const r of existing) {
        const key = r.scheduledFor?.getTime() ?? 0;
        const entry = bySlot.get(key) ?? { states: [], ours: false };
        entry.states.push(r.stateType);
        if (r.backfillId === b.id) entry.ours = true;
        bySlot.set(key, entry);
      }
      for (const slot of batch) {
        cursor = slot;
        const seen = bySlot.get(slot.getTime());
        if (seen?.ours) continue; // made by an earlier pass (or another control plane)
        if (seen && skipSlot(b.reprocess as Reprocess, seen.states)) {
          skipped++;
          continue;
        }
        const outcome = await createFlowRun(this.db, this.params, {
          workspaceId: b.workspaceId,
          deployment,
          parameters,
          slot: {
            backfillId: b.id,
            scheduledFor: slot,
            dataIntervalStart: previousSlot(spec, slot),
            dataIntervalEnd: slot,
          },
        });
        if (outcome.created) created++;
        if (--room <= 0) break;
      }
    }
    // Only forward, in the backfill's direction (another control plane may be ahead).
    if (cursor && (created || skipped || !b.cursor || cursor.getTime() !== b.cursor.getTime())) {
      await this.db.backfill.updateMany({
        where: { id: b.id, OR: [{ cursor: null }, { cursor: b.backwards ? { gt: cursor } : { lt: cursor } }] },
        data: { cursor, ...(skipped ? { skipped: { increment: skipped } } : {}) },
      });
    }
    if (exhausted && created === 0) {
      const left = await this.db.flowRun.count({ where: { backfillId: b.id, stateType: { in: UNFINISHED } } });
      if (left === 0) {
        await this.db.backfill.updateMany({ where: { id: b.id, status: "RUNNING" }, data: { status: "COMPLETED" } });
        changesOf(this.db).publish({ kind: "deployments", workspaceId: b.workspaceId });
        this.log.info({ backfillId: b.id }, "backfill completed");
      }
    }
    return created;
  }
}

/** The next slots of a backfill after its cursor, in its direction, inside its range. */
function nextSlots(spec: ScheduleSpec, b: Backfill, cursor: Date | null, max: number): Date[] {
  if (b.backwards) {
    const before = cursor ?? new Date(b.rangeEnd.getTime() + 1);
    return slotsBefore(spec, before, b.rangeStart, max);
  }
  const after = cursor ?? new Date(b.rangeStart.getTime() - 1);
  return slotsBetween(spec, after, b.rangeEnd, max);
}
