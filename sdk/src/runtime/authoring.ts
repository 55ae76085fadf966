import type { z } from "zod";
import { callFlow, type Flow, type FlowDef, type FlowOptions, makeFlow, makeFlowDef } from "./flow.ts";
import { callTask, makeTask, makeTaskDef, type Task, type TaskDef, type TaskOptions } from "./task.ts";

const TASK_DEF = Symbol.for("ferry.sdk.taskDef");
const FLOW_DEF = Symbol.for("ferry.sdk.flowDef");
const REGISTRY = Symbol.for("ferry.sdk.decoratedFlows");

type AsyncMethod<This, Args extends unknown[], R> = (this: This, ...args: Args) => Promise<R>;

/** The decorator `@task(...)` returns: the method keeps its exact type. */
export type TaskMethodDecorator = <This, Args extends unknown[], R>(
  target: AsyncMethod<This, Args, R>,
  context: ClassMethodDecoratorContext<This, AsyncMethod<This, Args, R>>,
) => AsyncMethod<This, Args, R>;

/** The decorator `@flow(...)` returns: the method keeps its exact type. */
export type FlowMethodDecorator = <This, P, R>(
  target: AsyncMethod<This, [P], R>,
  context: ClassMethodDecoratorContext<This, AsyncMethod<This, [P], R>>,
) => AsyncMethod<This, [P], R>;

type Marked = { [TASK_DEF]?: TaskDef; [FLOW_DEF]?: FlowDef };
type GlobalWithRegistry = typeof globalThis & { [REGISTRY]?: FlowDef[] };

/** Flows defined by `@flow` methods, in definition order (to tell users about classes they forgot to export). */
export function decoratedFlowDefs(): FlowDef[] {
  const g = globalThis as GlobalWithRegistry;
  g[REGISTRY] ??= [];
  return g[REGISTRY];
}

/**
 * Declares a task. As a function: `task(options, fn)` or `task(fn)`. As a decorator on
 * an async method: `@task(options)`. The task's parameters and result are the function's.
 *
 * @example
 * export const trainOne = task({ retries: 2, retryDelay: "1s", timeout: "5m" }, async (cfg: { lr: number }) => fit(cfg));
 * class Training { @task() async pickBest(models: Model[]) { ... } }
 */
export function task(options?: TaskOptions<unknown[]>): TaskMethodDecorator;
export function task<Args extends unknown[], R>(fn: (...args: Args) => R | Promise<R>): Task<Args, Awaited<R>>;
export function task<Args extends unknown[], R>(
  options: TaskOptions<Args>,
  fn: (...args: Args) => R | Promise<R>,
): Task<Args, Awaited<R>>;
export function task(a?: TaskOptions<never[]> | ((...args: never[]) => unknown), b?: (...args: never[]) => unknown): unknown {
  if (typeof a === "function") return makeTask(makeTaskDef({}, a, a.name));
  const options = a ?? {};
  if (typeof b === "function") return makeTask(makeTaskDef(options, b, b.name));
  return (target: (...args: never[]) => unknown, context: ClassMethodDecoratorContext) => {
    if (context.kind !== "method") throw new TypeError("@task() decorates methods");
    const def = makeTaskDef(options, target, String(context.name));
    const method = function (this: unknown, ...args: unknown[]) {
      return callTask(def, this, args);
    };
    (method as Marked)[TASK_DEF] = def;
    return method;
  };
}

/**
 * Declares a flow. As a function: `flow(options, fn)`, where `fn` takes one parameters
 * object (typed by `options.params` when given). As a decorator on an async method:
 * `@flow(options)`; the class must be exported from the module so the runner can build it.
 *
 * @example
 * export const train = flow({ name: "train", params: z.object({ grid: z.array(z.number()) }) }, async ({ grid }) => {
 *   return pickBest(await trainOne.map(grid.map((lr) => ({ lr }))));
 * });
 */
export function flow(options?: FlowOptions): FlowMethodDecorator;
export function flow<S extends z.ZodType, R>(
  options: FlowOptions & { params: S },
  fn: (params: z.output<S>) => R | Promise<R>,
): Flow<z.input<S>, Awaited<R>>;
export function flow<P, R>(options: FlowOptions, fn: (params: P) => R | Promise<R>): Flow<P, Awaited<R>>;
export function flow(options: FlowOptions = {}, fn?: (params: never) => unknown): unknown {
  if (typeof fn === "function") return makeFlow(makeFlowDef(options, fn, fn.name));
  return (target: (params: never) => unknown, context: ClassMethodDecoratorContext) => {
    if (context.kind !== "method") throw new TypeError("@flow() decorates methods");
    const def = makeFlowDef(options, target, String(context.name));
    decoratedFlowDefs().push(def);
    const method = function (this: unknown, params: unknown) {
      return callFlow(def, this, params);
    };
    (method as Marked)[FLOW_DEF] = def;
    return method;
  };
}

export function isFlow(value: unknown): value is Flow<unknown, unknown> {
  return typeof value === "function" && (value as { def?: { kind?: unknown } }).def?.kind === "flow";
}

export function isTask(value: unknown): value is Task<unknown[], unknown> {
  return typeof value === "function" && (value as { def?: { kind?: unknown } }).def?.kind === "task";
}

/**
 * The `@flow` methods of an instance, as flows bound to it, by flow name.
 *
 * @example
 * const { train } = flowsOf(new Training());
 * const run = await runLocal(train, { grid: [0.1] });
 */
export function flowsOf(instance: object): Record<string, Flow<unknown, unknown>> {
  const flows: Record<string, Flow<unknown, unknown>> = {};
  for (let proto = Object.getPrototypeOf(instance); proto && proto !== Object.prototype; proto = Object.getPrototypeOf(proto)) {
    for (const key of Object.getOwnPropertyNames(proto)) {
      const def = flowDefOf(Object.getOwnPropertyDescriptor(proto, key)?.value);
      if (def && !(def.name in flows)) flows[def.name] = makeFlow(def, instance);
    }
  }
  return flows;
}

function flowDefOf(member: unknown): FlowDef | undefined {
  return typeof member === "function" ? (member as Marked)[FLOW_DEF] : undefined;
}

function hasFlowMethods(value: unknown): value is new () => object {
  if (typeof value !== "function" || typeof value.prototype !== "object" || value.prototype === null) return false;
  const proto = value.prototype as object;
  return Object.getOwnPropertyNames(proto).some((key) => flowDefOf(Object.getOwnPropertyDescriptor(proto, key)?.value));
}

/**
 * Every flow a module exports: flow values, and `@flow` methods of exported classes (built
 * with `new Class()`). Tasks and flows that got no explicit name take their export name.
 */
export function flowsInModule(moduleExports: Record<string, unknown>): Map<string, Flow<unknown, unknown>> {
  const flows = new Map<string, Flow<unknown, unknown>>();
  for (const [exportName, value] of Object.entries(moduleExports)) {
    if (isTask(value) && /^task-\d+$/.test(value.def.name)) value.def.name = exportName;
    if (isFlow(value)) {
      if (/^flow-\d+$/.test(value.def.name)) value.def.name = exportName;
      flows.set(value.def.name, value);
    } else if (hasFlowMethods(value)) {
      for (const [name, bound] of Object.entries(flowsOf(new value()))) flows.set(name, bound);
    }
  }
  return flows;
}
