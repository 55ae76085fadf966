import type { Db } from "@ferry/prisma";
import type { Schedule } from "@ferry/prisma/sqlite";
import { changesOf } from "./changes.ts";
import { DomainError } from "./errors.ts";
import { parseObject } from "./json.ts";
import type { Logger } from "./logger.ts";
import { createFlowRun } from "./orchestration/create-run.ts";
import { proposeFlowRunState } from "./orchestration/flow-runs.ts";
import type { ParamsValidator } from "./params.ts";
import { type Catchup, planSlots, previousSlot, type ScheduleSpec } from "./scheduling/slots.ts";
import { SerialPass } from "./serial.ts";

export interface SchedulerOptions {
  /** How far ahead runs are created (default 1 h)… */
  horizonMs?: number;
  /** …but at most this many future runs per schedule (default 10). */
  maxAhead?: number;
  /** Most slots one schedule gets per pass (catch-up with ALL works through longer gaps pass by pass). */
  maxPerPass?: number;
  /** Time between passes (default 5 s); changes to schedules start a pass at once. */
  intervalMs?: number;
  /** The clock (tests pass a fake one). */
  now?: () => Date;
}

export interface PassResult {
  created: number;
  skipped: number;
  late: number;
  cancelled: number;
}

export function specOf(
  s: Pick<Schedule, "kind" | "cron" | "timezone" | "intervalSeconds" | "anchor" | "createdAt">,
): ScheduleSpec {
  if (s.kind === "interval") {
    return { kind: "interval", intervalSeconds: s.intervalSeconds ?? 3600, anchor: s.anchor ?? s.createdAt };
  }
  return { kind: "cron", cron: s.cron ?? "0 * * * *", timezone: s.timezone };
}

/**
 * Turns schedules into runs. Each pass, for every active schedule: creates the runs of its
 * slots up to the horizon (one per schedule and slot: a unique key in the database, so any
 * number of control-plane processes may run passes at once), applies its catch-up policy to
 * slots missed while nothing ran passes, marks runs not started within the grace period
 * Late, and collapses Late runs per the policy (LATEST keeps the newest, SKIP cancels them).
 * The dispatcher starts each run at its slot time (its timer on the next due run).
 */
export class Scheduler {
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private active = false;
  private readonly passes: SerialPass;
  private readonly now: () => Date;

  constructor(
    private readonly db: Db,
    private readonly params: ParamsValidator,
    private readonly onCreated: () => void,
    private readonly log: Logger,
    private readonly options: SchedulerOptions = {},
  ) {
    this.now = options.now ?? (() => new Date());
    this.passes = new SerialPass(
      () => this.pass(),
      (err) => this.log.error({ err }, "scheduler pass failed"),
    );
  }

  /** Starts the passes (on one replica: the leader; the others' kicks are relayed to it). */
  start(): void {
    this.active = true;
    this.passes.resume();
    clearInterval(this.timer);
    this.timer = setInterval(() => this.kick(), this.options.intervalMs ?? 5_000);
    this.timer.unref();
    this.unsubscribe = changesOf(this.db).subscribe((c) => {
      if (c.kind === "wake" && c.worker === "scheduler") this.passes.kick();
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
    else changesOf(this.db).publish({ kind: "wake", worker: "scheduler" });
  }

  /** One pass over every active schedule. */
  async pass(): Promise<PassResult> {
    const total: PassResult = { created: 0, skipped: 0, late: 0, cancelled: 0 };
    const schedules = await this.db.schedule.findMany({ where: { active: true } });
    for (const schedule of schedules) {
      try {
        const r = await this.schedule(schedule);
        total.created += r.created;
        total.skipped += r.skipped;
        total.late += r.late;
        total.cancelled += r.cancelled;
      } catch (err) {
        // One broken schedule (say, parameters its deployment no longer accepts) must not stop the others.
        this.log.warn({ err, scheduleId: schedule.id }, "schedule pass failed");
      }
    }
    if (total.created) this.onCreated();
    return total;
  }

  private async schedule(schedule: Schedule): Promise<PassResult> {
    const now = this.now();
    const spec = specOf(schedule);
    const graceMs = schedule.graceSeconds * 1000;
    const plan = planSlots({
      spec,
      // A new schedule starts at its creation (or its resumption): no slots from before.
      from: schedule.lastSlotAt ?? new Date(schedule.createdAt.getTime() - 1),
      now,
      graceMs,
      horizonMs: this.options.horizonMs ?? 3_600_000,
      maxAhead: this.options.maxAhead ?? 10,
      maxPerPass: this.options.maxPerPass ?? 500,
      catchup: schedule.catchup as Catchup,
    });
    let created = 0;
    if (plan.create.length) {
      const deployment = await this.db.deployment.findUnique({ where: { id: schedule.deploymentId } });
      if (!deployment) return { created: 0, skipped: 0, late: 0, cancelled: 0 };
      const parameters = parseObject(schedule.parametersJson);
      const made: string[] = [];
      try {
        for (const slot of plan.create) {
          const outcome = await createFlowRun(this.db, this.params, {
            workspaceId: schedule.workspaceId,
            deployment,
            parameters,
            expectedStartTime: slot,
            slot: {
              scheduleId: schedule.id,
              scheduledFor: slot,
              dataIntervalStart: previousSlot(spec, slot),
              dataIntervalEnd: slot,
            },
          });
          if (outcome.created) made.push(outcome.run.id);
        }
      } catch (err) {
        if (!(err instanceof DomainError && err.code === "INVALID_PARAMETERS")) {
          await this.withdrawIfStopped(schedule, made);
          throw err;
        }
        this.log.warn({ scheduleId: schedule.id, issues: err.issues }, "scheduled parameters are invalid: no runs created");
        created = made.length - (await this.withdrawIfStopped(schedule, made));
        return { created, skipped: plan.skipped, late: 0, cancelled: 0 };
      }
      created = made.length - (await this.withdrawIfStopped(schedule, made));
    }
    if (plan.cursor) {
      // Only forward: another process may have moved it further meanwhile.
      await this.db.schedule.updateMany({
        where: { id: schedule.id, OR: [{ lastSlotAt: null }, { lastSlotAt: { lt: plan.cursor } }] },
        data: { lastSlotAt: plan.cursor },
      });
    }
    const { late, cancelled } = await this.lateRuns(schedule, now, graceMs);
    if (plan.skipped) this.log.info({ scheduleId: schedule.id, skipped: plan.skipped }, "missed slots skipped (catch-up policy)");
    return { created, skipped: plan.skipped, late, cancelled };
  }

  /**
   * A pause, delete or redeploy that lands during a pass removes the runs it can see, not
   * those this pass makes after it: once its runs exist, the pass looks at the schedule
   * again and removes them (those not started) if it was stopped meanwhile. Returns how many.
   */
  private async withdrawIfStopped(schedule: Schedule, made: string[]): Promise<number> {
    if (!made.length) return 0;
    const current = await this.db.schedule.findUnique({ where: { id: schedule.id }, select: { active: true } });
    if (current?.active) return 0;
    const { count } = await this.db.flowRun.deleteMany({
      where: { id: { in: made }, stateType: "SCHEDULED", agentId: null, attempt: 0 },
    });
    if (count) changesOf(this.db).publish({ kind: "runs", workspaceId: schedule.workspaceId });
    return count;
  }

  /** Marks this schedule's runs not started within the grace period Late, then applies the catch-up policy to them. */
  private async lateRuns(schedule: Schedule, now: Date, graceMs: number): Promise<{ late: number; cancelled: number }> {
    const overdue = await this.db.flowRun.findMany({
      where: {
        scheduleId: schedule.id,
        stateType: "SCHEDULED",
        stateName: "Scheduled",
        expectedStartTime: { lt: new Date(now.getTime() - graceMs) },
      },
      select: { id: true, workspaceId: true },
      take: 1000,
    });
    let late = 0;
    for (const run of overdue) {
      const outcome = await proposeFlowRunState(this.db, {
        workspaceId: run.workspaceId,
        flowRunId: run.id,
        state: { type: "SCHEDULED", name: "Late", message: `not started within ${schedule.graceSeconds} s of its slot` },
        proposer: "system",
      });
      if (outcome.result.status === "ACCEPT") late++;
    }
    if (schedule.catchup === "ALL") return { late, cancelled: 0 };
    const lateRuns = await this.db.flowRun.findMany({
      where: { scheduleId: schedule.id, stateType: "SCHEDULED", stateName: "Late" },
      orderBy: { scheduledFor: "desc" },
      select: { id: true, workspaceId: true },
      take: 1000,
    });
    // LATEST keeps the newest late run; SKIP keeps none.
    const drop = schedule.catchup === "LATEST" ? lateRuns.slice(1) : lateRuns;
    let cancelled = 0;
    for (const run of drop) {
      const outcome = await proposeFlowRunState(this.db, {
        workspaceId: run.workspaceId,
        flowRunId: run.id,
        state: {
          type: "CANCELLED",
          name: "Skipped",
          message: `missed its slot; catch-up policy ${schedule.catchup} ${schedule.catchup === "LATEST" ? "runs only the latest" : "skips missed slots"}`,
        },
        proposer: "system",
      });
      if (outcome.result.status === "ACCEPT") cancelled++;
    }
    return { late, cancelled };
  }
}
