import { setImmediate as nextTurn } from "node:timers/promises";
import type { Db } from "@ferry/prisma";
import { TERMINAL_STATES } from "@ferry/sdk/protocol";
import { changesOf } from "./changes.ts";
import type { Logger } from "./logger.ts";

/** Runs, states and logs older than this are deleted unless configured otherwise. */
export const DEFAULT_RETENTION_MS = 30 * 24 * 60 * 60 * 1000;

export interface RetentionOptions {
  /** Age after its end at which a finished run is deleted (default 30 days); 0 disables the job. */
  maxAgeMs?: number | undefined;
  /** How often the job runs (default 10 minutes). */
  periodMs?: number | undefined;
  /** Most rows one statement deletes, and most runs looked at per step (default 500). */
  batchSize?: number | undefined;
  /**
   * Most batches in one run of the job (default 200, at least 2): a batch is one delete of at
   * most `batchSize` rows (with the read of its ids), or one scan for at most `batchSize` roots.
   */
  maxBatchesPerRun?: number | undefined;
  /** Delay before the first run after `start()` (default 60 s, so start-up is not slowed down). */
  initialDelayMs?: number | undefined;
}

export interface RetentionResult {
  flowRuns: number;
  taskRuns: number;
  logs: number;
  /** Flow-run and task-run state history rows. */
  states: number;
}

const TERMINAL = [...TERMINAL_STATES];
const TERMINAL_SET: ReadonlySet<string> = TERMINAL_STATES;

/** Ran out of its batch budget, or `stop()` was called: the rest is left for the next run. */
class Interrupted extends Error {}

interface RunRef {
  id: string;
  workspaceId: string;
}

function byWorkspace(runs: readonly RunRef[]): Map<string, string[]> {
  const groups = new Map<string, string[]>();
  for (const run of runs) {
    const ids = groups.get(run.workspaceId);
    if (ids) ids.push(run.id);
    else groups.set(run.workspaceId, [run.id]);
  }
  return groups;
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Longest delay a Node.js timer takes (about 24.8 days); a longer one would fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

function checkNumber(name: string, value: number, min: number, max: number, integer = false): number {
  if (!Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
    throw new RangeError(`retention: ${name} must be ${integer ? "an integer" : "a number"} from ${min} to ${max}, got ${value}`);
  }
  return value;
}

/**
 * Deletes finished flow runs, with everything that belongs to them, once they are older than
 * `maxAgeMs`, so the database does not grow without end. A system job: it covers every
 * workspace, but each tree of runs is deleted within its own workspace only.
 *
 * What goes: root flow runs (no parent) in a terminal state (COMPLETED, FAILED, CRASHED,
 * CANCELLED) whose `endTime` is before `now - maxAgeMs`, together with their child flow runs
 * (nested, same workspace), and the logs, task runs, task-run states, edges and state history
 * of all of them. A run that is not terminal is never deleted, whatever its age; a tree with
 * an unfinished or recently finished child flow run is kept whole.
 *
 * How: in bounded batches. Every statement deletes at most `batchSize` rows, chosen by key
 * (ids read first with `take`), so no statement or implicit transaction touches an unbounded
 * number of rows, and the foreign-key cascades find nothing left to delete. Rows are removed
 * leaves first (logs, edges, task-run states, task runs, flow-run states, then the runs,
 * deepest child flow runs before their parents), so a run interrupted at any point leaves
 * consistent data that the next run picks up. The job yields to the event loop between
 * batches and stops after `maxBatchesPerRun` batches, continuing on its next period.
 */
export class RetentionJob {
  readonly maxAgeMs: number;
  readonly periodMs: number;
  readonly batchSize: number;
  readonly maxBatchesPerRun: number;
  readonly initialDelayMs: number;

  private timer: NodeJS.Timeout | undefined;
  private started = false;
  private halted = false;
  private running: Promise<RetentionResult> | undefined;
  /** Batches left in the current run, and what it has deleted so far. */
  private budget = 0;
  private totals: RetentionResult = { flowRuns: 0, taskRuns: 0, logs: 0, states: 0 };
  /**
   * Where the scan of candidate roots resumes: past roots that had to be kept (unfinished
   * children) or that a previous run did not get to. Cleared when a scan reaches the end.
   */
  private cursor: { endTime: Date; id: string } | undefined;

  constructor(
    private readonly db: Db,
    private readonly log: Logger,
    options: RetentionOptions = {},
  ) {
    this.maxAgeMs = checkNumber("maxAgeMs", options.maxAgeMs ?? DEFAULT_RETENTION_MS, 0, Number.MAX_SAFE_INTEGER);
    this.periodMs = checkNumber("periodMs", options.periodMs ?? 10 * 60_000, 1, MAX_TIMER_MS);
    // Bounded so that a statement's parameters (two per edge key) stay under SQLite's limit.
    this.batchSize = checkNumber("batchSize", options.batchSize ?? 500, 1, 10_000, true);
    this.maxBatchesPerRun = checkNumber("maxBatchesPerRun", options.maxBatchesPerRun ?? 200, 2, Number.MAX_SAFE_INTEGER, true);
    this.initialDelayMs = checkNumber("initialDelayMs", options.initialDelayMs ?? 60_000, 0, MAX_TIMER_MS);
  }

  get enabled(): boolean {
    return this.maxAgeMs > 0;
  }

  /** Runs the job every `periodMs`, the first time after `initialDelayMs`. Does nothing when disabled. */
  start(): void {
    if (this.started) return;
    if (!this.enabled) {
      this.log.info("retention disabled: runs, states and logs are kept forever");
      return;
    }
    this.started = true;
    this.halted = false;
    this.schedule(this.initialDelayMs);
    this.log.info(
      { maxAgeMs: this.maxAgeMs, periodMs: this.periodMs, batchSize: this.batchSize },
      "retention: finished runs older than maxAgeMs will be deleted",
    );
  }

  /** Stops the timer and interrupts a run in progress at its next batch; resolves once it has ended. */
  async stop(): Promise<void> {
    this.started = false;
    this.halted = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => undefined);
  }

  private schedule(delayMs: number): void {
    this.timer = setTimeout(() => void this.tick(), delayMs);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    this.timer = undefined;
    try {
      await this.runOnce();
    } catch (err) {
      this.log.error({ err }, "retention run failed; trying again next period");
    }
    if (this.started) this.schedule(this.periodMs);
  }

  /**
   * One run of the job: deletes what is older than `now - maxAgeMs`, in at most
   * `maxBatchesPerRun` batches. Returns the rows it deleted (zeros when disabled, or when a
   * run is already in progress).
   */
  async runOnce(now: Date = new Date()): Promise<RetentionResult> {
    if (!this.enabled || this.running) return { flowRuns: 0, taskRuns: 0, logs: 0, states: 0 };
    const run = this.purge(new Date(now.getTime() - this.maxAgeMs));
    this.running = run;
    try {
      return await run;
    } finally {
      this.running = undefined;
    }
  }

  private async purge(cutoff: Date): Promise<RetentionResult> {
    const totals: RetentionResult = { flowRuns: 0, taskRuns: 0, logs: 0, states: 0 };
    this.totals = totals;
    const startedAt = performance.now();
    this.budget = this.maxBatchesPerRun;
    let kept = 0;
    let finished = false;
    try {
      for (;;) {
        const cursor = this.cursor;
        const roots = await this.batch(() =>
          this.db.flowRun.findMany({
            where: {
              parentFlowRunId: null,
              stateType: { in: TERMINAL },
              endTime: { lt: cutoff },
              ...(cursor
                ? { OR: [{ endTime: { gt: cursor.endTime } }, { endTime: cursor.endTime, id: { gt: cursor.id } }] }
                : {}),
            },
            orderBy: [{ endTime: "asc" }, { id: "asc" }],
            take: this.batchSize,
            select: { id: true, workspaceId: true, endTime: true },
          }),
        );
        const plan = await this.plan(roots, cutoff);
        kept += plan.kept.length;
        if (plan.kept.length) this.log.debug({ roots: plan.kept }, "retention: kept old runs whose child flow runs are not done");
        await this.deleteRuns(plan.runs);
        const last = roots.at(-1);
        if (!last?.endTime || roots.length < this.batchSize) {
          this.cursor = undefined;
          finished = true;
          break;
        }
        this.cursor = { endTime: last.endTime, id: last.id };
      }
    } catch (err) {
      if (!(err instanceof Interrupted)) throw err;
    }
    const deleted = totals.flowRuns + totals.taskRuns + totals.logs + totals.states;
    if (deleted || kept || (!finished && !this.halted)) {
      this.log.info(
        {
          ...totals,
          cutoff: cutoff.toISOString(),
          ...(kept ? { keptWithUnfinishedChildren: kept } : {}),
          batches: this.maxBatchesPerRun - this.budget,
          ms: Math.round(performance.now() - startedAt),
          finished,
        },
        finished ? "retention: deleted old runs" : "retention: deleted old runs; the rest follows next period",
      );
    }
    return totals;
  }

  /**
   * Runs one bounded statement against this run's budget (a delete, or the scan for roots),
   * then lets the event loop serve others. Throws Interrupted when the budget is spent.
   */
  private async batch<T>(step: () => Promise<T>): Promise<T> {
    if (this.budget <= 0) throw new Interrupted();
    this.budget--;
    return this.read(step);
  }

  /**
   * A read that only prepares a charged batch (the ids it will delete, or a check that there
   * are none left). Not charged, so every run that is not stopped deletes something: a
   * budget spent on re-checking what earlier runs already emptied could never make progress.
   */
  private async read<T>(step: () => Promise<T>): Promise<T> {
    if (this.halted) throw new Interrupted();
    const result = await step();
    await nextTurn();
    return result;
  }

  /**
   * The flow runs to delete for these roots: each root with its child flow runs (any depth,
   * and only those in the root's own workspace), deepest first and roots last. A root whose
   * tree holds a run that is unfinished, or finished after the cutoff, is kept with its tree.
   */
  private async plan(roots: readonly RunRef[], cutoff: Date): Promise<{ runs: RunRef[]; kept: string[] }> {
    const rootOf = new Map<string, RunRef>(roots.map((r) => [r.id, r]));
    const levels: RunRef[][] = [roots.map(({ id, workspaceId }) => ({ id, workspaceId }))];
    const kept = new Set<string>();
    const wanted = (run: RunRef) => !kept.has(rootOf.get(run.id)?.id ?? run.id);
    let frontier = levels[0] ?? [];
    while (frontier.length) {
      const next: RunRef[] = [];
      for (const parents of chunks(frontier, this.batchSize)) {
        const children = await this.read(() =>
          this.db.flowRun.findMany({
            where: { OR: [...byWorkspace(parents)].map(([workspaceId, ids]) => ({ workspaceId, parentFlowRunId: { in: ids } })) },
            select: { id: true, workspaceId: true, parentFlowRunId: true, stateType: true, endTime: true },
          }),
        );
        for (const child of children) {
          const root = child.parentFlowRunId === null ? undefined : rootOf.get(child.parentFlowRunId);
          if (root === undefined || root.workspaceId !== child.workspaceId || rootOf.has(child.id)) continue;
          rootOf.set(child.id, root);
          if (!TERMINAL_SET.has(child.stateType) || (child.endTime !== null && child.endTime >= cutoff)) kept.add(root.id);
          next.push({ id: child.id, workspaceId: child.workspaceId });
        }
      }
      if (next.length) levels.push(next);
      frontier = next.filter(wanted);
    }
    return { runs: levels.reverse().flat().filter(wanted), kept: [...kept] };
  }

  /** Deletes these flow runs (children listed before parents) and all their rows, each run within its workspace. */
  private async deleteRuns(runs: readonly RunRef[]): Promise<void> {
    const { db, totals } = this;
    for (const chunk of chunks(runs, this.batchSize)) {
      const groups = [...byWorkspace(chunk)];
      const ofRuns = { OR: groups.map(([workspaceId, ids]) => ({ workspaceId, flowRunId: { in: ids } })) };
      await this.drain(
        "logs",
        () => db.log.findMany({ where: ofRuns, select: { id: true }, take: this.batchSize }),
        (rows) => db.log.deleteMany({ where: { id: { in: rows.map((r) => r.id) } } }),
      );
      await this.drain(
        null,
        () => db.taskRunEdge.findMany({ where: ofRuns, select: { upstreamId: true, downstreamId: true }, take: this.batchSize }),
        (rows) =>
          db.taskRunEdge.deleteMany({
            where: { OR: rows.map(({ upstreamId, downstreamId }) => ({ upstreamId, downstreamId })) },
          }),
      );
      for (;;) {
        const taskRuns = await this.read(() =>
          db.taskRun.findMany({ where: ofRuns, select: { id: true }, take: this.batchSize }),
        );
        if (!taskRuns.length) break;
        const taskRunIds = taskRuns.map((r) => r.id);
        await this.drain(
          "states",
          () =>
            db.taskRunState.findMany({ where: { taskRunId: { in: taskRunIds } }, select: { id: true }, take: this.batchSize }),
          (rows) => db.taskRunState.deleteMany({ where: { id: { in: rows.map((r) => r.id) } } }),
        );
        totals.taskRuns += (await this.batch(() => db.taskRun.deleteMany({ where: { id: { in: taskRunIds } } }))).count;
        if (taskRuns.length < this.batchSize) break;
      }
      await this.drain(
        "states",
        () => db.flowRunState.findMany({ where: ofRuns, select: { id: true }, take: this.batchSize }),
        (rows) => db.flowRunState.deleteMany({ where: { id: { in: rows.map((r) => r.id) } } }),
      );
      // Terminal is final (a retry re-queues in the transaction that ends the attempt), but
      // check again in the statement itself: a run that is not terminal is never deleted.
      const gone = await this.batch(() =>
        db.flowRun.deleteMany({
          where: {
            stateType: { in: TERMINAL },
            OR: groups.map(([workspaceId, ids]) => ({ workspaceId, id: { in: ids } })),
          },
        }),
      );
      totals.flowRuns += gone.count;
      if (gone.count) for (const [workspaceId] of groups) changesOf(db).publish({ kind: "runs", workspaceId });
    }
  }

  /** Deletes what `select` finds, at most `batchSize` rows per statement, until nothing is left; counts as it goes. */
  private async drain<R>(
    counter: keyof RetentionResult | null,
    select: () => Promise<R[]>,
    remove: (rows: R[]) => Promise<{ count: number }>,
  ): Promise<void> {
    for (;;) {
      const rows = await this.read(select);
      if (!rows.length) return;
      const { count } = await this.batch(() => remove(rows));
      if (counter) this.totals[counter] += count;
      if (rows.length < this.batchSize) return;
    }
  }
}
