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

/**
 * Warm start: load the SDK and this entrypoint (and so its imports) now, then wait for `start`.
 * Sent instead of `start` to a process the agent keeps in its pool.
 */
export const IpcPrepare = z.object({
  type: z.literal("prepare"),
  v: Version,
  /** Absolute path of the module to import ahead of the run. */
  entrypoint: z.string().min(1),
  /**
   * Runs this process may serve before it exits (1: a fresh process per run). With more, the
   * process waits for the next `start` after a run that ended with `finished`.
   */
  maxRuns: z.number().int().min(1).max(10_000).default(1),
});
export type IpcPrepare = z.infer<typeof IpcPrepare>;

export const ToFlowProcess = z.discriminatedUnion("type", [IpcStart, IpcPrepare, IpcCancel, IpcSlotsGranted]);
export type ToFlowProcess = z.infer<typeof ToFlowProcess>;

// ---- flow process → agent ------------------------------------------------------------

/** The runner is loaded and waits for `start`. */
export const IpcReady = z.object({ type: z.literal("ready"), v: Version });
/** A loaded source file of the user's project, as it was when it was read (see `IpcPrepared`). */
export const LoadedFile = z.object({
  path: z.string().min(1),
  size: z.number().int().min(0),
  mtimeMs: z.number(),
  ctimeMs: z.number(),
  ino: z.number().min(0),
});
export type LoadedFile = z.infer<typeof LoadedFile>;

/**
 * Answer to `prepare`: the entrypoint is imported (or failed to import: `error`). `files` are the
 * user-project modules it loaded, stat'ed before they were read, so the agent can tell when
 * the code on disk no longer matches what this process holds.
 */
export const IpcPrepared = z.object({
  type: z.literal("prepared"),
  v: Version,
  files: z.array(LoadedFile).max(100_000),
  error: z.string().optional(),
});
export type IpcPrepared = z.infer<typeof IpcPrepared>;

/** The entrypoint is imported, the parameters are valid: the flow body starts now. */
export const IpcRunning = z.object({ type: z.literal("running"), v: Version });
export const IpcEvents = z.object({ type: z.literal("events"), v: Version, events: z.array(RunEvent).min(1) });
export const IpcLogs = z.object({ type: z.literal("logs"), v: Version, lines: z.array(LogRecord).min(1) });
export const IpcFinished = z.object({
  type: z.literal("finished"),
  v: Version,
  state: StateProposal,
  error: SerializedError.optional(),
  /**
   * The process stays and waits for another `start` (a warm process with runs left after a
   * run that completed). Absent or false: it exits now.
   */
  reusable: z.boolean().optional(),
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
  IpcPrepared,
  IpcRunning,
  IpcEvents,
  IpcLogs,
  IpcFinished,
  IpcAcquireSlots,
]);
export type FromFlowProcess = z.infer<typeof FromFlowProcess>;
