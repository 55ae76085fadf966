import { randomUUID } from "node:crypto";
import type { StateProposal } from "../protocol/common.ts";
import type { LogRecord, RunEvent } from "../protocol/events.ts";
import { executeFlow, type Flow } from "./flow.ts";
import { LocalResultStore } from "./result-store.ts";
import type { RunReporter } from "./scope.ts";
import { sleep } from "./timing.ts";

export interface LocalTaskRun {
  id: string;
  flowRunId: string;
  taskKey: string;
  dynamicKey: number;
  name: string;
  tags: string[];
  upstream: string[];
  childFlowRunId?: string;
  /** Every state in order; the last one is the current state. */
  states: StateProposal[];
  /** Attempts started (RUNNING states seen). */
  attempts: number;
}

export interface LocalFlowRun {
  id: string;
  parentFlowRunId?: string;
  parentTaskRunId?: string;
  flowName: string;
  parameters: Record<string, unknown>;
  states: StateProposal[];
}

export interface LocalRunResult<R> {
  flowRunId: string;
  state: StateProposal;
  result?: R;
  error?: unknown;
  /** Attempts of the whole flow (1 + flow retries used). */
  attempts: number;
  taskRuns: LocalTaskRun[];
  childFlowRuns: LocalFlowRun[];
  edges: { upstream: string; downstream: string }[];
  logs: LogRecord[];
  /** Events the run published with `emitEvent`. */
  events: { name: string; payload: Record<string, unknown>; flowRunId: string; taskRunId?: string }[];
}

/** Keeps everything a run reports in memory, the way the control plane would record it. */
export class MemoryReporter implements RunReporter {
  readonly taskRuns = new Map<string, LocalTaskRun>();
  readonly flowRuns = new Map<string, LocalFlowRun>();
  readonly logs: LogRecord[] = [];
  readonly published: LocalRunResult<unknown>["events"] = [];

  constructor(private readonly echo = false) {}

  event(e: RunEvent): void {
    switch (e.kind) {
      case "task_run.created":
        this.taskRuns.set(e.id, {
          id: e.id,
          flowRunId: e.flowRunId,
          taskKey: e.taskKey,
          dynamicKey: e.dynamicKey,
          name: e.name,
          tags: e.tags,
          upstream: e.upstream,
          ...(e.childFlowRunId ? { childFlowRunId: e.childFlowRunId } : {}),
          states: [],
          attempts: 0,
        });
        return;
      case "task_run.state": {
        const run = this.taskRuns.get(e.taskRunId);
        if (!run) return;
        run.states.push(e.state);
        if (e.state.type === "RUNNING") run.attempts++;
        return;
      }
      case "flow_run.created":
        this.flowRuns.set(e.id, {
          id: e.id,
          parentFlowRunId: e.parentFlowRunId,
          parentTaskRunId: e.parentTaskRunId,
          flowName: e.flowName,
          parameters: e.parameters,
          states: [],
        });
        return;
      case "flow_run.state":
        this.flowRuns.get(e.flowRunId)?.states.push(e.state);
        return;
      case "event.published":
        this.published.push({
          name: e.name,
          payload: e.payload,
          flowRunId: e.flowRunId,
          ...(e.taskRunId ? { taskRunId: e.taskRunId } : {}),
        });
        return;
      default: {
        const unreachable: never = e;
        throw new Error(`unknown event ${JSON.stringify(unreachable)}`);
      }
    }
  }

  log(record: LogRecord): void {
    this.logs.push(record);
    if (this.echo) process.stderr.write(`${record.timestamp} ${record.level.padEnd(5)} ${record.message}\n`);
  }
}

export interface RunLocalOptions {
  /** Print log lines to stderr as they happen. */
  echo?: boolean;
  signal?: AbortSignal;
  /** A directory to keep task results in: enables caching (cache keys, and reuse across flow retries). */
  resultDir?: string;
}

/**
 * Runs a flow in this process with no control plane: for unit tests and quick tries.
 * Parameters are validated, tasks retried, flow retries honoured; everything that would be
 * reported is returned.
 *
 * @example
 * const run = await runLocal(train, { grid: [0.1, 0.01] });
 * assert.equal(run.state.type, "COMPLETED");
 */
export async function runLocal<P, R>(flow: Flow<P, R>, params: P, options: RunLocalOptions = {}): Promise<LocalRunResult<R>> {
  const reporter = new MemoryReporter(options.echo);
  const flowRunId = randomUUID();
  const def = flow.def;
  const resultStore = options.resultDir ? new LocalResultStore(options.resultDir) : undefined;
  let attempt = 0;
  for (;;) {
    attempt++;
    const outcome = await executeFlow(def, flow.self, params, {
      flowRunId,
      attempt,
      reporter,
      ...(resultStore ? { resultStore, persistResults: attempt <= def.retries } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    const failed = outcome.state.type !== "COMPLETED";
    if (failed && attempt <= def.retries && !options.signal?.aborted) {
      await sleep(def.retryDelayMs, options.signal);
      continue;
    }
    const taskRuns = [...reporter.taskRuns.values()];
    return {
      flowRunId,
      state: outcome.state,
      ...(failed ? { error: outcome.error } : { result: outcome.result as R }),
      attempts: attempt,
      taskRuns,
      childFlowRuns: [...reporter.flowRuns.values()],
      edges: taskRuns.flatMap((t) => t.upstream.map((upstream) => ({ upstream, downstream: t.id }))),
      logs: reporter.logs,
      events: reporter.published,
    };
  }
}
