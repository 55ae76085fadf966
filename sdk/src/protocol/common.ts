import { z } from "zod";

/** Version of every message in this folder. A receiver rejects other versions with a clear error. */
export const PROTOCOL_VERSION = 1 as const;

/** Size bounds shared by both ends, so a sender learns its limits from the same place as the receiver. */
export const LIMITS = {
  /** Largest WebSocket frame the control plane accepts (bytes); larger frames close the socket with 1009. */
  maxFrameBytes: 4 * 1024 * 1024,
  /** Most events or log lines in one batch. */
  maxBatch: 1000,
  /** Longest log message kept (characters); longer ones are truncated by the producer. */
  maxLogChars: 16 * 1024,
  /** Longest state or error message (characters). */
  maxMessageChars: 8 * 1024,
  maxNameChars: 200,
  maxIdChars: 100,
} as const;

export const Version = z.literal(PROTOCOL_VERSION);

export const Id = z.string().min(1).max(LIMITS.maxIdChars);
export type Id = z.infer<typeof Id>;

export const Name = z.string().min(1).max(LIMITS.maxNameChars);

/** An ISO-8601 instant with an offset, in years both databases store (1970–9999). */
export const Timestamp = z.iso.datetime({ offset: true }).refine((t) => {
  const ms = Date.parse(t);
  return ms >= 0 && ms < Date.UTC(10_000, 0, 1);
}, "timestamp out of range (1970–9999)");

/** Counters stored in 32-bit integer columns (attempts, sequence numbers, call indexes). */
export const Counter = z.number().int().nonnegative().max(2_147_483_647);
export type Timestamp = z.infer<typeof Timestamp>;

export const StateType = z.enum([
  "SCHEDULED",
  "PENDING",
  "RUNNING",
  "COMPLETED",
  "FAILED",
  "CRASHED",
  "CANCELLING",
  "CANCELLED",
  "PAUSED",
]);
export type StateType = z.infer<typeof StateType>;

/** A run made by a schedule: its slot, and the data interval it covers (from the previous slot to this one). */
export const ScheduleInfo = z.object({
  scheduledFor: Timestamp,
  dataIntervalStart: Timestamp.optional(),
  dataIntervalEnd: Timestamp,
});
export type ScheduleInfo = z.infer<typeof ScheduleInfo>;

/** The plain display name of each state type (a state may carry a more specific one, e.g. "Retrying"). */
export const STATE_DISPLAY_NAMES: Readonly<Record<StateType, string>> = {
  SCHEDULED: "Scheduled",
  PENDING: "Pending",
  RUNNING: "Running",
  COMPLETED: "Completed",
  FAILED: "Failed",
  CRASHED: "Crashed",
  CANCELLING: "Cancelling",
  CANCELLED: "Cancelled",
  PAUSED: "Paused",
};

/** States after which nothing more happens to a run attempt. */
export const TERMINAL_STATES: ReadonlySet<StateType> = new Set(["COMPLETED", "FAILED", "CRASHED", "CANCELLED"]);

export function isTerminal(type: StateType): boolean {
  return TERMINAL_STATES.has(type);
}

/** A state as proposed or recorded: a type, a display name (e.g. Running/Retrying) and an optional message. */
export const StateProposal = z.object({
  type: StateType,
  name: Name,
  message: z.string().max(LIMITS.maxMessageChars).optional(),
});
export type StateProposal = z.infer<typeof StateProposal>;

export const LogLevel = z.enum(["debug", "info", "warn", "error"]);
export type LogLevel = z.infer<typeof LogLevel>;

/** `FERRY_LOG_LEVEL`: how much Ferry's own processes (control plane, agent) log, in pino's level names. */
export const ProcessLogLevel = z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]);
export type ProcessLogLevel = z.infer<typeof ProcessLogLevel>;

/**
 * Reads a `FERRY_LOG_LEVEL` value. Case and surrounding blanks do not matter; unset or empty
 * means `info`. An unknown value also means `info`, with `invalid` set so that the process can
 * say so in one warning line: a typo in a setting must not keep a server from starting.
 */
export function processLogLevel(value: string | undefined): { level: ProcessLogLevel; invalid?: string } {
  const text = value?.trim().toLowerCase() ?? "";
  if (!text) return { level: "info" };
  const parsed = ProcessLogLevel.safeParse(text);
  return parsed.success ? { level: parsed.data } : { level: "info", invalid: value };
}

let logLevelWarned = false;

/**
 * `processLogLevel` of `FERRY_LOG_LEVEL`, for a process's logger. `warning` is set for an unknown
 * value only on the first call in the process, so a process with two loggers (the CLI runs the
 * control plane and an agent in one) warns once.
 */
export function logLevelFromEnv(env: NodeJS.ProcessEnv = process.env): { level: ProcessLogLevel; warning?: string } {
  const { level, invalid } = processLogLevel(env.FERRY_LOG_LEVEL);
  if (invalid === undefined || logLevelWarned) return { level };
  logLevelWarned = true;
  return {
    level,
    warning: `unknown FERRY_LOG_LEVEL ${JSON.stringify(invalid)} (expected ${ProcessLogLevel.options.join(", ")}); logging at info`,
  };
}

/** JSON values as they cross the wire (parameters). */
/** Deepest nesting accepted in user JSON (parameters, schemas): deeper values cannot be stored or echoed safely. */
export const MAX_JSON_DEPTH = 64;

/** The nesting depth of a JSON value, computed without recursion (so a hostile value cannot overflow the stack). */
export function jsonDepth(value: unknown, limit = MAX_JSON_DEPTH + 1): number {
  let deepest = 0;
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length) {
    const [v, depth] = stack.pop() as [unknown, number];
    if (typeof v !== "object" || v === null) continue;
    deepest = Math.max(deepest, depth);
    if (deepest >= limit) return deepest;
    for (const child of Object.values(v)) stack.push([child, depth + 1]);
  }
  return deepest;
}

export const JsonObject = z
  .record(z.string(), z.unknown())
  .refine((v) => jsonDepth(v) <= MAX_JSON_DEPTH, `nested deeper than ${MAX_JSON_DEPTH} levels`);
export type JsonObject = z.infer<typeof JsonObject>;

export const SerializedError = z.object({
  name: z.string().max(LIMITS.maxNameChars),
  message: z.string().max(LIMITS.maxMessageChars),
  stack: z.string().max(LIMITS.maxLogChars).optional(),
});
export type SerializedError = z.infer<typeof SerializedError>;
