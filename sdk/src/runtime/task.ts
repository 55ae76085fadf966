import { type Duration, toMs } from "../duration.ts";
import { errorMessage, errorReport, NonRetriableError, TimeoutError } from "../errors.ts";
import type { StateProposal } from "../protocol/common.ts";
import { newId } from "./ids.ts";
import { hashInputs } from "./result-store.ts";
import { collectUpstream, recordResult } from "./results.ts";
import { currentScope, type FlowRunScope, nextDynamicKey, runInScope } from "./scope.ts";
import { mapWithConcurrency, sleep, withTimeout } from "./timing.ts";

export interface TaskOptions<Args extends unknown[] = never[]> {
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
  /**
   * Makes results reusable across runs: calls with the same key reuse the stored result
   * (state Cached) instead of running. Without it, results are reused only by later attempts
   * of the same flow run (key: task and call index and inputs).
   *
   * @example
   * task({ cacheKey: (path: string) => `${path}@v2`, cacheExpiration: "1d" }, loadDataset)
   */
  cacheKey?: (...args: Args) => string;
  /** How long a stored result may be reused. */
  cacheExpiration?: Duration;
}

export interface TaskDef {
  readonly kind: "task";
  name: string;
  readonly retries: number;
  readonly retryDelayMs: number;
  readonly retryBackoff: number;
  readonly timeoutMs: number | undefined;
  readonly tags: string[];
  readonly cacheKey: ((...args: never[]) => string) | undefined;
  readonly cacheExpirationMs: number | undefined;
  readonly fn: (...args: never[]) => unknown;
}

/** The item type of `task.map`: the argument for a one-parameter task, else the argument tuple. */
export type MapItem<Args extends unknown[]> = Args extends [infer Only] ? Only : Args;

/**
 * Task runs of one `map` in flight at once unless told otherwise: enough to keep any agent busy,
 * few enough that a 100,000-item map holds a thousand calls' state, not all of them.
 */
export const DEFAULT_MAP_CONCURRENCY = 1000;

export interface MapOptions {
  /** Most task runs of this map in flight at once (default: DEFAULT_MAP_CONCURRENCY, 1,000). */
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

export function makeTaskDef<Args extends unknown[]>(
  options: TaskOptions<Args>,
  fn: (...args: never[]) => unknown,
  fallbackName: string,
): TaskDef {
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
    cacheKey: options.cacheKey as ((...args: never[]) => string) | undefined,
    cacheExpirationMs: options.cacheExpiration === undefined ? undefined : toMs(options.cacheExpiration),
    fn,
  };
}

function emitState(
  flow: FlowRunScope,
  taskRunId: string,
  attempt: number,
  state: StateProposal,
  result?: { resultRef?: string | undefined; cacheKey?: string | undefined },
): void {
  flow.reporter.event({
    kind: "task_run.state",
    eventId: newId(),
    taskRunId,
    attempt,
    state,
    timestamp: new Date().toISOString(),
    ...(result?.resultRef ? { resultRef: result.resultRef } : {}),
    ...(result?.cacheKey ? { cacheKey: result.cacheKey } : {}),
  });
}

/**
 * The key a task call's result is stored under: the task's own cache key (reusable across
 * runs), else one that only a later attempt of the same flow run can produce.
 */
function cacheKeyOf(def: TaskDef, flow: FlowRunScope, dynamicKey: number, args: unknown[]): string | undefined {
  if (!flow.resultStore) return undefined;
  if (def.cacheKey) return `task:${def.name}:${def.cacheKey(...(args as never[]))}`;
  // Run-scoped keys matter only between attempts: kept while retries remain, looked up after the first.
  if (!flow.persistResults && flow.attempt === 1) return undefined;
  const inputs = hashInputs(args);
  return inputs === undefined ? undefined : `run:${flow.rootFlowRunId}:${flow.flowName}:${def.name}:${dynamicKey}:${inputs}`;
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

  const id = newId();
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
  const store = flow.resultStore;
  const cacheKey = cacheKeyOf(def, flow, dynamicKey, resolvedArgs);
  if (store && cacheKey && (def.cacheKey || flow.attempt > 1)) {
    const hit = await store.get(cacheKey);
    if (hit) {
      emitState(
        flow,
        id,
        1,
        { type: "COMPLETED", name: "Cached", message: `reused the stored result ${hit.ref}` },
        { resultRef: hit.ref, cacheKey },
      );
      recordResult(hit.value, id, flow.results);
      return hit.value;
    }
  }
  // Tag limits (e.g. at most 2 `gpu` tasks in the workspace): wait PENDING for the slots.
  if (def.tags.length && flow.reporter.acquireSlots) {
    emitState(flow, id, 0, {
      type: "PENDING",
      name: "Pending",
      message: `waiting for a concurrency slot: ${def.tags.join(", ")}`,
    });
    await flow.reporter.acquireSlots(id, def.tags);
  }
  for (let attempt = 1; ; attempt++) {
    emitState(flow, id, attempt, { type: "RUNNING", name: attempt === 1 ? "Running" : "Retrying" });
    try {
      const work = runInScope({ flow, taskRunId: id }, async () => def.fn.apply(self, resolvedArgs as never[]));
      const result = await withTimeout(work, def.timeoutMs, `task ${def.name}-${dynamicKey}`);
      const expiresAt = def.cacheExpirationMs === undefined ? undefined : new Date(Date.now() + def.cacheExpirationMs);
      const keep = store && cacheKey && (def.cacheKey || flow.persistResults);
      const resultRef = keep ? await store.put(cacheKey, result, expiresAt).catch(() => undefined) : undefined;
      emitState(
        flow,
        id,
        attempt,
        { type: "COMPLETED", name: "Completed" },
        { resultRef, cacheKey: resultRef ? cacheKey : undefined },
      );
      recordResult(result, id, flow.results);
      return result;
    } catch (err) {
      const message = errorMessage(err);
      const timedOut = err instanceof TimeoutError;
      const retriable = !(err instanceof NonRetriableError) && !flow.signal.aborted;
      if (!retriable || attempt > def.retries) {
        emitState(flow, id, attempt, {
          type: "FAILED",
          name: timedOut ? "TimedOut" : "Failed",
          message: timedOut ? message : errorReport(err),
        });
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
      return mapWithConcurrency(list, options.concurrency ?? DEFAULT_MAP_CONCURRENCY, (item) => call(...asArgs(item)));
    },
  });
}
