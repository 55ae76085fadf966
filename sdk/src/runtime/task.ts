import { randomUUID } from "node:crypto";
import { type Duration, toMs } from "../duration.ts";
import { errorMessage, NonRetriableError, TimeoutError } from "../errors.ts";
import type { StateProposal } from "../protocol/common.ts";
import { collectUpstream, recordResult } from "./results.ts";
import { currentScope, type FlowRunScope, nextDynamicKey, runInScope } from "./scope.ts";
import { mapWithConcurrency, sleep, withTimeout } from "./timing.ts";

export interface TaskOptions {
  /** Name shown in the UI and the task key; defaults to the function or method name. */
  name?: string;
  /** Extra attempts after a failure (default 0). */
  retries?: number;
  /** Wait before the first retry (default 0). */
  retryDelay?: Duration;
  /** Each further retry waits this many times longer than the previous one (default 1). */
  retryBackoff?: number;
  /** Fail an attempt that runs longer than this (state TimedOut; it is retried like other failures). */
  timeout?: Duration;
  tags?: string[];
}

export interface TaskDef {
  readonly kind: "task";
  name: string;
  readonly retries: number;
  readonly retryDelayMs: number;
  readonly retryBackoff: number;
  readonly timeoutMs: number | undefined;
  readonly tags: string[];
  readonly fn: (...args: never[]) => unknown;
}

/** The item type of `task.map`: the argument for a one-parameter task, else the argument tuple. */
export type MapItem<Args extends unknown[]> = Args extends [infer Only] ? Only : Args;

export interface MapOptions {
  /** Most task runs of this map in flight at once (default: all). */
  concurrency?: number;
}

/**
 * A task: call it like the function it wraps. Inside a flow run every call is a task run.
 *
 * @example
 * const clean = task({ retries: 2, retryDelay: "1s" }, async (path: string) => {...});
 * const cleaned = await clean.map(paths, { concurrency: 4 });
 */
export interface Task<Args extends unknown[], R> {
  (...args: Args): Promise<R>;
  readonly def: TaskDef;
  /** Fans out: one task run per item, results in item order. */
  map(items: Iterable<MapItem<Args>>, options?: MapOptions): Promise<R[]>;
}

let unnamed = 0;

export function makeTaskDef(options: TaskOptions, fn: (...args: never[]) => unknown, fallbackName: string): TaskDef {
  const retries = options.retries ?? 0;
  if (!Number.isInteger(retries) || retries < 0) throw new RangeError(`task retries must be an integer >= 0, got ${retries}`);
  return {
    kind: "task",
    name: options.name ?? (fallbackName || `task-${++unnamed}`),
    retries,
    retryDelayMs: toMs(options.retryDelay ?? 0),
    retryBackoff: options.retryBackoff ?? 1,
    timeoutMs: options.timeout === undefined ? undefined : toMs(options.timeout),
    tags: options.tags ?? [],
    fn,
  };
}

function emitState(flow: FlowRunScope, taskRunId: string, attempt: number, state: StateProposal): void {
  flow.reporter.event({
    kind: "task_run.state",
    eventId: randomUUID(),
    taskRunId,
    attempt,
    state,
    timestamp: new Date().toISOString(),
  });
}

/**
 * Calls a task: plainly outside a flow run, as a tracked task run with retries inside one.
 * The task run is created synchronously, so the returned promise can itself be passed
 * into another task (un-awaited) and still be recognised as this task run's result.
 */
export function callTask(def: TaskDef, self: unknown, args: unknown[]): Promise<unknown> {
  const scope = currentScope();
  if (!scope) return Promise.resolve().then(() => def.fn.apply(self, args as never[]));
  const flow = scope.flow;
  if (flow.signal.aborted) return Promise.reject(flow.signal.reason);

  const id = randomUUID();
  const dynamicKey = nextDynamicKey(flow, def.name);
  flow.reporter.event({
    kind: "task_run.created",
    id,
    flowRunId: flow.flowRunId,
    taskKey: def.name,
    dynamicKey,
    name: `${def.name}-${dynamicKey}`,
    tags: def.tags,
    maxRetries: def.retries,
    upstream: collectUpstream(args, flow.results),
    timestamp: new Date().toISOString(),
  });
  emitState(flow, id, 0, { type: "PENDING", name: "Pending" });
  const promise = runAttempts(def, flow, id, dynamicKey, self, args);
  flow.results.set(promise, id);
  return promise;
}

async function runAttempts(def: TaskDef, flow: FlowRunScope, id: string, dynamicKey: number, self: unknown, args: unknown[]) {
  // Promises of task results passed as arguments are awaited first (their edges are recorded).
  const resolvedArgs = await Promise.all(args);
  for (let attempt = 1; ; attempt++) {
    emitState(flow, id, attempt, { type: "RUNNING", name: attempt === 1 ? "Running" : "Retrying" });
    try {
      const work = runInScope({ flow, taskRunId: id }, async () => def.fn.apply(self, resolvedArgs as never[]));
      const result = await withTimeout(work, def.timeoutMs, `task ${def.name}-${dynamicKey}`);
      emitState(flow, id, attempt, { type: "COMPLETED", name: "Completed" });
      recordResult(result, id, flow.results);
      return result;
    } catch (err) {
      const message = errorMessage(err);
      const timedOut = err instanceof TimeoutError;
      const retriable = !(err instanceof NonRetriableError) && !flow.signal.aborted;
      if (!retriable || attempt > def.retries) {
        emitState(flow, id, attempt, { type: "FAILED", name: timedOut ? "TimedOut" : "Failed", message });
        throw err;
      }
      const delay = Math.round(def.retryDelayMs * def.retryBackoff ** (attempt - 1));
      emitState(flow, id, attempt, { type: "SCHEDULED", name: "AwaitingRetry", message });
      await sleep(delay, flow.signal);
    }
  }
}

/** Wraps a TaskDef into the callable Task value. */
export function makeTask<Args extends unknown[], R>(def: TaskDef): Task<Args, R> {
  const call = (...args: Args) => callTask(def, undefined, args) as Promise<R>;
  return Object.assign(call, {
    def,
    map(items: Iterable<MapItem<Args>>, options: MapOptions = {}): Promise<R[]> {
      const list = [...items];
      const asArgs = (item: MapItem<Args>) => (def.fn.length === 1 || !Array.isArray(item) ? [item] : item) as Args;
      return mapWithConcurrency(list, options.concurrency ?? list.length, (item) => call(...asArgs(item)));
    },
  });
}
