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

export const Timestamp = z.iso.datetime({ offset: true });
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

/** JSON values as they cross the wire (parameters). */
export const JsonObject = z.record(z.string(), z.unknown());
export type JsonObject = z.infer<typeof JsonObject>;

export const SerializedError = z.object({
  name: z.string().max(LIMITS.maxNameChars),
  message: z.string().max(LIMITS.maxMessageChars),
  stack: z.string().max(LIMITS.maxLogChars).optional(),
});
export type SerializedError = z.infer<typeof SerializedError>;
