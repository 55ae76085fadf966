import { z } from "zod";
import { Counter, Id, JsonObject, LIMITS, LogLevel, Name, StateProposal, Timestamp } from "./common.ts";

/**
 * Events the flow runtime produces while a flow run executes. They travel
 * flow process → agent → control plane in batches and are applied idempotently:
 * a task run is keyed by its id, a state by its event id.
 */
export const TaskRunCreated = z.object({
  kind: z.literal("task_run.created"),
  id: Id,
  /** The flow run (root or child) the task run belongs to. */
  flowRunId: Id,
  taskKey: Name,
  /** Index of this call among calls of the same task in the same flow run. */
  dynamicKey: Counter,
  name: Name,
  tags: z.array(Name).max(50),
  maxRetries: z.number().int().nonnegative().max(1000),
  /** Task runs whose results were passed into this one. */
  upstream: z.array(Id).max(LIMITS.maxBatch),
  /** Set when this task run stands for a child flow run in its parent's graph. */
  childFlowRunId: Id.optional(),
  timestamp: Timestamp,
});
export type TaskRunCreated = z.infer<typeof TaskRunCreated>;

export const TaskRunStateChanged = z.object({
  kind: z.literal("task_run.state"),
  eventId: Id,
  taskRunId: Id,
  attempt: Counter,
  state: StateProposal,
  timestamp: Timestamp,
  /** Where the result was stored (or found, for Cached), in the result store on the agent's side. */
  resultRef: z.string().max(1000).optional(),
  cacheKey: z.string().max(1000).optional(),
});
export type TaskRunStateChanged = z.infer<typeof TaskRunStateChanged>;

/** A flow called inside a flow: created by the runtime, run in the same process. */
export const ChildFlowRunCreated = z.object({
  kind: z.literal("flow_run.created"),
  id: Id,
  parentFlowRunId: Id,
  parentTaskRunId: Id,
  flowName: Name,
  parameters: JsonObject,
  timestamp: Timestamp,
});
export type ChildFlowRunCreated = z.infer<typeof ChildFlowRunCreated>;

export const ChildFlowRunStateChanged = z.object({
  kind: z.literal("flow_run.state"),
  eventId: Id,
  flowRunId: Id,
  state: StateProposal,
  timestamp: Timestamp,
});
export type ChildFlowRunStateChanged = z.infer<typeof ChildFlowRunStateChanged>;

/** Most bytes of an event's payload (as JSON). */
export const MAX_EVENT_PAYLOAD_BYTES = 64 * 1024;

/** A named event a flow or task published (`emitEvent`): event triggers start deployments on it. */
export const EventPublished = z.object({
  kind: z.literal("event.published"),
  eventId: Id,
  /** The flow run (root or child) that published it, and the task run if inside one. */
  flowRunId: Id,
  taskRunId: Id.optional(),
  name: z
    .string()
    .min(1)
    .max(200)
    .regex(/^[A-Za-z0-9_.:/-]+$/, "use letters, digits and _ . : / -"),
  payload: JsonObject.refine((p) => Buffer.byteLength(JSON.stringify(p)) <= MAX_EVENT_PAYLOAD_BYTES, {
    message: `an event payload is at most ${MAX_EVENT_PAYLOAD_BYTES} bytes of JSON`,
  }),
  timestamp: Timestamp,
});
export type EventPublished = z.infer<typeof EventPublished>;

export const RunEvent = z.discriminatedUnion("kind", [
  TaskRunCreated,
  TaskRunStateChanged,
  ChildFlowRunCreated,
  ChildFlowRunStateChanged,
  EventPublished,
]);
export type RunEvent = z.infer<typeof RunEvent>;

/** A log line as produced by the flow process (before the agent numbers it). */
export const LogRecord = z.object({
  timestamp: Timestamp,
  level: LogLevel,
  message: z.string().max(LIMITS.maxLogChars),
  taskRunId: Id.optional(),
  /** Set for lines of a child flow run; defaults to the dispatched run. */
  flowRunId: Id.optional(),
});
export type LogRecord = z.infer<typeof LogRecord>;

/** A log line numbered by the agent: (flowRunId, attempt, seq) identifies it for idempotent replay. */
export const LogLine = LogRecord.extend({ seq: Counter });
export type LogLine = z.infer<typeof LogLine>;
