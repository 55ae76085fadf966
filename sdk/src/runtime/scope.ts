import { AsyncLocalStorage } from "node:async_hooks";
import { format } from "node:util";
import { type JsonObject, LIMITS, type LogLevel, type ScheduleInfo } from "../protocol/common.ts";
import type { LogRecord, RunEvent } from "../protocol/events.ts";
import { newId } from "./ids.ts";
import type { ResultStore } from "./result-store.ts";

/** Where the runtime sends what happens: memory for `runLocal`, the agent over IPC in a flow process. */
export interface RunReporter {
  event(event: RunEvent): void;
  log(record: LogRecord): void;
  /**
   * Resolves when the task run holds a slot of each tag's concurrency limit (workspace-wide
   * limits live in the control plane). Absent: no limits apply (e.g. `runLocal`).
   */
  acquireSlots?(taskRunId: string, tags: readonly string[]): Promise<void>;
}

/** State of one flow run (root or child) inside the process that executes it. */
export interface FlowRunScope {
  readonly flowRunId: string;
  /** The dispatched run this flow run belongs to (itself, or its root for child flow runs). */
  readonly rootFlowRunId: string;
  /** Where task results are kept for reuse; absent: no caching. */
  readonly resultStore?: ResultStore | undefined;
  /** Keep every task's result (a later attempt of this run may reuse it), not only those with a cache key. */
  readonly persistResults: boolean;
  readonly flowName: string;
  readonly attempt: number;
  readonly parameters: JsonObject;
  readonly reporter: RunReporter;
  /** Next dynamic key per task key: the n-th call of a task in this flow run gets key n. */
  readonly dynamicKeys: Map<string, number>;
  /** Results (objects and promises) produced by task runs of the whole process run → task-run id. */
  readonly results: WeakMap<object, string>;
  readonly signal: AbortSignal;
  /** The slot and data interval of a run a schedule made (child flow runs share their root's). */
  readonly schedule?: ScheduleInfo | undefined;
}

interface Scope {
  readonly flow: FlowRunScope;
  readonly taskRunId?: string;
}

// One store per process even if two copies of the SDK are loaded (the agent's and the
// user project's): both must see the same current run.
const STORE = Symbol.for("ferry.sdk.scope");
type GlobalWithStore = typeof globalThis & { [STORE]?: AsyncLocalStorage<Scope> };
const g = globalThis as GlobalWithStore;
g[STORE] ??= new AsyncLocalStorage<Scope>();
const storage: AsyncLocalStorage<Scope> = g[STORE];

export function currentScope(): Scope | undefined {
  return storage.getStore();
}

export function runInScope<T>(scope: Scope, fn: () => T): T {
  return storage.run(scope, fn);
}

export function nextDynamicKey(flow: FlowRunScope, taskKey: string): number {
  const n = flow.dynamicKeys.get(taskKey) ?? 0;
  flow.dynamicKeys.set(taskKey, n + 1);
  return n;
}

/** A logger whose lines become run logs, attached to the current task run when there is one. */
export interface RunLogger {
  debug(...args: unknown[]): void;
  info(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
}

function emitLog(level: LogLevel, args: unknown[]): void {
  const message = format(...args).slice(0, LIMITS.maxLogChars);
  const scope = currentScope();
  if (!scope) {
    // Outside a run (a plain function call in a unit test): behave like console.
    process.stderr.write(`[${level}] ${message}\n`);
    return;
  }
  scope.flow.reporter.log({
    timestamp: new Date().toISOString(),
    level,
    message,
    flowRunId: scope.flow.flowRunId,
    ...(scope.taskRunId ? { taskRunId: scope.taskRunId } : {}),
  });
}

/**
 * Run logs. Inside a flow or task, lines are recorded against the current flow run and task run.
 *
 * @example
 * log.info("loaded %d rows from %s", rows.length, path);
 */
export const log: RunLogger = {
  debug: (...args) => emitLog("debug", args),
  info: (...args) => emitLog("info", args),
  warn: (...args) => emitLog("warn", args),
  error: (...args) => emitLog("error", args),
};

/**
 * Publishes a named event from inside a flow or task. Event triggers (`ferry trigger add
 * <deployment> --on-event <name>`) start deployments on it, with payload fields mapped into
 * their parameters. The payload must be JSON (at most 64 KiB); each call is one event,
 * delivered once even when reports are replayed.
 *
 * @example
 * emitEvent("model.registered", { uri: model.path, rmse });
 */
export function emitEvent(name: string, payload: Record<string, unknown> = {}): void {
  const scope = currentScope();
  if (!scope) throw new Error("emitEvent must be called inside a flow run");
  if (!/^[A-Za-z0-9_.:/-]{1,200}$/.test(name))
    throw new RangeError(`invalid event name "${name}": use letters, digits and _ . : / -`);
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(JSON.stringify(payload)) as Record<string, unknown>;
  } catch (err) {
    throw new TypeError(`the payload of event "${name}" is not JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (Buffer.byteLength(JSON.stringify(json)) > 64 * 1024) throw new RangeError(`the payload of event "${name}" is over 64 KiB`);
  scope.flow.reporter.event({
    kind: "event.published",
    eventId: newId(),
    flowRunId: scope.flow.flowRunId,
    ...(scope.taskRunId ? { taskRunId: scope.taskRunId } : {}),
    name,
    payload: json,
    timestamp: new Date().toISOString(),
  });
}

/** What a flow or task can know about the run it is part of. */
export interface RunContext {
  readonly flowRunId: string;
  readonly flowName: string;
  readonly attempt: number;
  readonly parameters: JsonObject;
  readonly taskRunId: string | undefined;
  readonly signal: AbortSignal;
  readonly log: RunLogger;
  /** When a schedule made the run: the slot it was made for. */
  readonly scheduledFor: Date | undefined;
  /** When a schedule made the run: the data interval it covers, from the previous slot (if any) to its own. */
  readonly dataInterval: { start: Date | undefined; end: Date } | undefined;
}

/** The current run, or undefined when called outside a flow run. */
export function getRunContext(): RunContext | undefined {
  const scope = currentScope();
  if (!scope) return undefined;
  const { flow } = scope;
  return {
    flowRunId: flow.flowRunId,
    flowName: flow.flowName,
    attempt: flow.attempt,
    parameters: flow.parameters,
    taskRunId: scope.taskRunId,
    signal: flow.signal,
    log,
    scheduledFor: flow.schedule ? new Date(flow.schedule.scheduledFor) : undefined,
    dataInterval: flow.schedule
      ? {
          start: flow.schedule.dataIntervalStart ? new Date(flow.schedule.dataIntervalStart) : undefined,
          end: new Date(flow.schedule.dataIntervalEnd),
        }
      : undefined,
  };
}
