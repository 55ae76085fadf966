import type { z } from "zod";
import { type Duration, toMs } from "../duration.ts";
import { errorMessage, errorReport, ParameterError, TimeoutError } from "../errors.ts";
import type { JsonObject, ScheduleInfo, StateProposal } from "../protocol/common.ts";
import { newId } from "./ids.ts";
import type { ResultStore } from "./result-store.ts";
import { collectUpstream, recordResult, toJsonObject } from "./results.ts";
import { currentScope, type FlowRunScope, nextDynamicKey, type RunReporter, runInScope } from "./scope.ts";
import { withTimeout } from "./timing.ts";

export interface FlowOptions {
  /** Flow name: what `ferry run <name>` and deployments refer to. Defaults to the function or method name. */
  name?: string;
  description?: string;
  /** zod schema of the parameters: validated before the body runs, published as JSON Schema on deploy. */
  params?: z.ZodType;
  /** Attempts the control plane starts again after a failed or crashed run (default 0). */
  retries?: number;
  retryDelay?: Duration;
  /** Fail the run after this long (state TimedOut); the agent ends the flow process. */
  timeout?: Duration;
  tags?: string[];
  /** Work pool whose agents run this flow's deployment (default "default"). */
  workPool?: string;
  /** Most runs of this flow's deployment running at once. */
  concurrencyLimit?: number;
  /** Over the limit, a new run waits ("ENQUEUE", the default) or is cancelled ("CANCEL_NEW"). */
  collisionStrategy?: "ENQUEUE" | "CANCEL_NEW";
  /** When the deployment runs by time; `ferry deploy` keeps the deployment's schedules equal to these. */
  schedules?: FlowSchedule[];
}

/** A schedule declared with a flow: a cron expression in a time zone, or a fixed interval. */
export interface FlowSchedule {
  /** Cron expression, 5 fields (or 6 with seconds first), read in `timezone` (default UTC). */
  cron?: string;
  timezone?: string;
  /** Or every this long, counted from `anchor` (default: when the schedule is created). */
  every?: Duration;
  anchor?: Date | string;
  /** Parameters of the scheduled runs (over the deployment's defaults). */
  parameters?: Record<string, unknown>;
  /** Slots missed during an outage: run "ALL", only the "LATEST" (default), or "SKIP" them. */
  catchup?: "ALL" | "LATEST" | "SKIP";
  /** A run not started this long after its slot is Late (default 60 s). */
  grace?: Duration;
  active?: boolean;
}

/** A FlowSchedule as the API takes it. */
export interface ScheduleSpecInput {
  cron?: string;
  timezone: string;
  intervalSeconds?: number;
  anchor?: string;
  parameters: Record<string, unknown>;
  catchup: "ALL" | "LATEST" | "SKIP";
  graceSeconds: number;
  active: boolean;
}

function normaliseSchedule(s: FlowSchedule): ScheduleSpecInput {
  if ((s.cron === undefined) === (s.every === undefined)) throw new RangeError("a flow schedule needs either cron or every");
  return {
    ...(s.cron !== undefined ? { cron: s.cron } : {}),
    timezone: s.timezone ?? "UTC",
    ...(s.every !== undefined ? { intervalSeconds: Math.max(1, Math.round(toMs(s.every) / 1000)) } : {}),
    ...(s.anchor !== undefined ? { anchor: new Date(s.anchor).toISOString() } : {}),
    parameters: s.parameters ?? {},
    catchup: s.catchup ?? "LATEST",
    graceSeconds: Math.max(1, Math.round(toMs(s.grace ?? "60s") / 1000)),
    active: s.active ?? true,
  };
}

export interface FlowDef {
  readonly kind: "flow";
  name: string;
  readonly description: string | undefined;
  readonly params: z.ZodType | undefined;
  readonly retries: number;
  readonly retryDelayMs: number;
  readonly timeoutMs: number | undefined;
  readonly tags: string[];
  readonly workPool: string;
  readonly concurrencyLimit: number | undefined;
  readonly collisionStrategy: "ENQUEUE" | "CANCEL_NEW";
  readonly schedules: ScheduleSpecInput[];
  readonly fn: (params: never) => unknown;
}

/**
 * A flow: an async function over one parameters object. Call it inside another flow to
 * get a child flow run; run it with `runLocal` in tests, or deploy it to run on agents.
 */
export interface Flow<P, R> {
  (params: P): Promise<R>;
  readonly def: FlowDef;
  /** The instance the flow's method is bound to (class-based flows). */
  readonly self?: object;
}

let unnamed = 0;

export function makeFlowDef(options: FlowOptions, fn: (params: never) => unknown, fallbackName: string): FlowDef {
  const retries = options.retries ?? 0;
  if (!Number.isInteger(retries) || retries < 0) throw new RangeError(`flow retries must be an integer >= 0, got ${retries}`);
  return {
    kind: "flow",
    name: options.name ?? (fallbackName || `flow-${++unnamed}`),
    description: options.description,
    params: options.params,
    retries,
    retryDelayMs: toMs(options.retryDelay ?? 0),
    timeoutMs: options.timeout === undefined ? undefined : toMs(options.timeout),
    tags: options.tags ?? [],
    workPool: options.workPool ?? "default",
    concurrencyLimit: options.concurrencyLimit,
    collisionStrategy: options.collisionStrategy ?? "ENQUEUE",
    schedules: (options.schedules ?? []).map(normaliseSchedule),
    fn,
  };
}

/** Validates raw parameters against the flow's schema; throws ParameterError listing every issue. */
export function parseParams(def: FlowDef, raw: unknown): unknown {
  if (!def.params) return raw ?? {};
  const parsed = def.params.safeParse(raw ?? {});
  if (parsed.success) return parsed.data;
  throw new ParameterError(
    def.name,
    parsed.error.issues.map((i) => `${i.path.length ? i.path.join(".") : "(root)"}: ${i.message}`),
  );
}

export interface FlowOutcome {
  state: StateProposal;
  result?: unknown;
  error?: unknown;
}

export interface ExecuteOptions {
  flowRunId: string;
  attempt: number;
  reporter: RunReporter;
  signal?: AbortSignal;
  /** Shared across a whole process run so results flow between parent and child flows. */
  results?: WeakMap<object, string>;
  /** Where task results are kept for reuse (the agent's result store). */
  resultStore?: ResultStore;
  /** Keep every task's result for a later attempt of this run (it has retries left). */
  persistResults?: boolean;
  /** The slot and data interval of a run a schedule made. */
  schedule?: ScheduleInfo;
}

function outcomeOf(err: unknown): FlowOutcome {
  return {
    state: {
      type: "FAILED",
      name: err instanceof TimeoutError ? "TimedOut" : "Failed",
      message: err instanceof TimeoutError || err instanceof ParameterError ? errorMessage(err) : errorReport(err),
    },
    error: err,
  };
}

/** Runs one attempt of a flow body as the root of a run: validates parameters, then runs it. */
export async function executeFlow(def: FlowDef, self: unknown, rawParams: unknown, opts: ExecuteOptions): Promise<FlowOutcome> {
  let params: unknown;
  try {
    params = parseParams(def, rawParams);
  } catch (err) {
    return outcomeOf(err);
  }
  const scope: FlowRunScope = {
    flowRunId: opts.flowRunId,
    rootFlowRunId: opts.flowRunId,
    resultStore: opts.resultStore,
    persistResults: opts.persistResults ?? false,
    flowName: def.name,
    attempt: opts.attempt,
    parameters: toJsonObject(params),
    reporter: opts.reporter,
    dynamicKeys: new Map(),
    results: opts.results ?? new WeakMap(),
    signal: opts.signal ?? new AbortController().signal,
    schedule: opts.schedule,
  };
  try {
    const work = runInScope({ flow: scope }, async () => def.fn.call(self, params as never));
    const result = await withTimeout(work, def.timeoutMs, `flow ${def.name}`);
    return { state: { type: "COMPLETED", name: "Completed" }, result };
  } catch (err) {
    return outcomeOf(err);
  }
}

/**
 * A flow called inside a flow run: a child flow run, executed in this process, shown in
 * the parent's graph as a task run that stands for it.
 */
async function callChildFlow(def: FlowDef, self: unknown, rawParams: unknown, parent: FlowRunScope): Promise<unknown> {
  const params = parseParams(def, rawParams);
  const reporter = parent.reporter;
  const taskRunId = newId();
  const childId = newId();
  const dynamicKey = nextDynamicKey(parent, `flow:${def.name}`);
  const now = () => new Date().toISOString();
  reporter.event({
    kind: "task_run.created",
    id: taskRunId,
    flowRunId: parent.flowRunId,
    taskKey: `flow:${def.name}`,
    dynamicKey,
    name: `${def.name}-${dynamicKey}`,
    tags: def.tags,
    maxRetries: 0,
    upstream: collectUpstream(rawParams, parent.results),
    childFlowRunId: childId,
    timestamp: now(),
  });
  const parameters: JsonObject = toJsonObject(params);
  reporter.event({
    kind: "flow_run.created",
    id: childId,
    parentFlowRunId: parent.flowRunId,
    parentTaskRunId: taskRunId,
    flowName: def.name,
    parameters,
    timestamp: now(),
  });
  const setState = (state: StateProposal) => {
    reporter.event({ kind: "flow_run.state", eventId: newId(), flowRunId: childId, state, timestamp: now() });
    reporter.event({ kind: "task_run.state", eventId: newId(), taskRunId, attempt: 1, state, timestamp: now() });
  };
  setState({ type: "RUNNING", name: "Running" });
  const child: FlowRunScope = { ...parent, flowRunId: childId, flowName: def.name, parameters, dynamicKeys: new Map() };
  try {
    const work = runInScope({ flow: child }, async () => def.fn.call(self, params as never));
    const result = await withTimeout(work, def.timeoutMs, `flow ${def.name}`);
    setState({ type: "COMPLETED", name: "Completed" });
    recordResult(result, taskRunId, parent.results);
    return result;
  } catch (err) {
    setState(outcomeOf(err).state);
    throw err;
  }
}

/** Calls a flow: a child flow run inside a flow run; outside, validates parameters and runs the body. */
export function callFlow(def: FlowDef, self: unknown, params: unknown): Promise<unknown> {
  const scope = currentScope();
  if (scope) return callChildFlow(def, self, params, scope.flow);
  return Promise.resolve().then(() => def.fn.call(self, parseParams(def, params) as never));
}

export function makeFlow<P, R>(def: FlowDef, self?: object): Flow<P, R> {
  const call = (params: P) => callFlow(def, self, params) as Promise<R>;
  return Object.assign(call, { def, ...(self ? { self } : {}) });
}
