/**
 * Finds the task runs whose results appear in a value passed to a task or flow: the
 * data edges of the dynamic DAG. Results are recognised by identity (objects, arrays
 * and promises a task returned), so primitives (numbers, strings) carry no edge.
 * The walk is bounded so a huge argument cannot make a call slow, and so are the edges: a
 * task run names at most `LIMITS.maxBatch` (1,000) upstream task runs, the most a
 * `task_run.created` event carries (a bigger fan-in is best reduced in groups).
 */
import { LIMITS } from "../protocol/common.ts";

const MAX_DEPTH = 4;
const MAX_NODES = 10_000;

export function collectUpstream(value: unknown, results: WeakMap<object, string>, max: number = LIMITS.maxBatch): string[] {
  const found = new Set<string>();
  const seen = new Set<object>();
  let budget = MAX_NODES;
  const visit = (v: unknown, depth: number): void => {
    if (typeof v !== "object" || v === null || budget-- <= 0 || found.size >= max || seen.has(v)) return;
    seen.add(v);
    const id = results.get(v);
    if (id !== undefined) {
      found.add(id);
      return;
    }
    if (depth >= MAX_DEPTH) return;
    if (Array.isArray(v)) {
      for (const item of v) visit(item, depth + 1);
    } else if (Object.getPrototypeOf(v) === Object.prototype) {
      for (const item of Object.values(v)) visit(item, depth + 1);
    }
  };
  visit(value, 0);
  return [...found];
}

/**
 * Records a task run's result so later calls that receive it get an edge. A task that
 * passes an input through (e.g. picks the best of its inputs) becomes its latest producer:
 * the edge points at the decision, not at the first task that created the object.
 */
export function recordResult(value: unknown, taskRunId: string, results: WeakMap<object, string>): void {
  if (typeof value === "object" && value !== null) results.set(value, taskRunId);
}

/** Converts a value to plain JSON for the control plane; values JSON cannot hold become strings. */
export function toJsonObject(value: unknown): Record<string, unknown> {
  try {
    const json: unknown = JSON.parse(JSON.stringify(value ?? {}));
    return typeof json === "object" && json !== null && !Array.isArray(json)
      ? (json as Record<string, unknown>)
      : { value: json };
  } catch {
    return { value: String(value) };
  }
}
