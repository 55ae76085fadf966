import { z } from "zod";
import { Counter, Id, JsonObject, Name, ScheduleInfo, SerializedError, StateProposal, Version } from "./common.ts";
import { LogRecord, RunEvent } from "./events.ts";

/**
 * Agent ↔ flow process messages over the Node IPC channel of the child process.
 * The agent starts one process per flow run, sends `start`, and the process reports.
 */

// ---- agent → flow process ------------------------------------------------------------

export const IpcStart = z.object({
  type: z.literal("start"),
  v: Version,
  flowRunId: Id,
  attempt: Counter,
  /** Absolute path of the module that defines the flow. */
  entrypoint: z.string().min(1),
  flowName: Name,
  parameters: JsonObject,
  retriesLeft: Counter.default(0),
  /** The agent's result store (a directory); absent: results are not kept. */
  resultDir: z.string().min(1).optional(),
  /** Present for runs a schedule made. */
  schedule: ScheduleInfo.optional(),
});
export type IpcStart = z.infer<typeof IpcStart>;

export const IpcCancel = z.object({ type: z.literal("cancel"), v: Version, reason: z.string() });
export type IpcCancel = z.infer<typeof IpcCancel>;

export const IpcSlotsGranted = z.object({ type: z.literal("slots.granted"), v: Version, taskRunId: Id });
export type IpcSlotsGranted = z.infer<typeof IpcSlotsGranted>;

export const ToFlowProcess = z.discriminatedUnion("type", [IpcStart, IpcCancel, IpcSlotsGranted]);
export type ToFlowProcess = z.infer<typeof ToFlowProcess>;

// ---- flow process → agent ------------------------------------------------------------

/** The runner is loaded and waits for `start`. */
export const IpcReady = z.object({ type: z.literal("ready"), v: Version });
/** The entrypoint is imported, the parameters are valid: the flow body starts now. */
export const IpcRunning = z.object({ type: z.literal("running"), v: Version });
export const IpcEvents = z.object({ type: z.literal("events"), v: Version, events: z.array(RunEvent).min(1) });
export const IpcLogs = z.object({ type: z.literal("logs"), v: Version, lines: z.array(LogRecord).min(1) });
export const IpcFinished = z.object({
  type: z.literal("finished"),
  v: Version,
  state: StateProposal,
  error: SerializedError.optional(),
});
export type IpcReady = z.infer<typeof IpcReady>;
export type IpcRunning = z.infer<typeof IpcRunning>;
export type IpcEvents = z.infer<typeof IpcEvents>;
export type IpcLogs = z.infer<typeof IpcLogs>;
export type IpcFinished = z.infer<typeof IpcFinished>;

/** A task run with tags waits for concurrency slots before it starts. */
export const IpcAcquireSlots = z.object({
  type: z.literal("slots.acquire"),
  v: Version,
  taskRunId: Id,
  tags: z.array(Name).min(1).max(50),
});
export type IpcAcquireSlots = z.infer<typeof IpcAcquireSlots>;

export const FromFlowProcess = z.discriminatedUnion("type", [
  IpcReady,
  IpcRunning,
  IpcEvents,
  IpcLogs,
  IpcFinished,
  IpcAcquireSlots,
]);
export type FromFlowProcess = z.infer<typeof FromFlowProcess>;
