import { z } from "zod";
import { Counter, Id, JsonObject, LIMITS, Name, ScheduleInfo, StateProposal, Timestamp, Version } from "./common.ts";
import { LogLine, RunEvent } from "./events.ts";

/** WebSocket path of the agent channel, versioned with the protocol. */
export const AGENT_WS_PATH = "/api/v1/agents/ws";

/** Close codes the control plane uses on the agent WebSocket (see PROTOCOL.md). */
export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  policyViolation: 1008,
  tooBig: 1009,
  badHandshake: 4000,
  unauthorized: 4001,
  versionMismatch: 4002,
  forbidden: 4003,
  tokenRevoked: 4008,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

export const RunRef = z.object({ flowRunId: Id, attempt: Counter });
export type RunRef = z.infer<typeof RunRef>;

const MsgId = z.number().int().nonnegative();

// ---- agent → control plane -------------------------------------------------------------

/** First message on every connection. */
export const Hello = z.object({
  type: z.literal("hello"),
  v: Version,
  agentId: Id,
  name: Name,
  pools: z.array(Name).min(1).max(20),
  capacity: z.number().int().min(1).max(10_000),
  labels: z.record(z.string().max(100), z.string().max(500)).default({}),
  version: z.string().max(50),
  /** Runs this agent is executing right now (after a reconnect). */
  inFlight: z.array(RunRef).max(10_000),
});
export type Hello = z.infer<typeof Hello>;

export const RunAccept = z.object({ type: z.literal("run.accept"), v: Version, ...RunRef.shape });
export type RunAccept = z.infer<typeof RunAccept>;

export const RunReject = z.object({
  type: z.literal("run.reject"),
  v: Version,
  ...RunRef.shape,
  reason: z.string().max(LIMITS.maxMessageChars),
});
export type RunReject = z.infer<typeof RunReject>;

/** The agent proposes a flow-run state; the control plane's orchestration rules decide. */
export const ProposeState = z.object({
  type: z.literal("state.propose"),
  v: Version,
  msgId: MsgId,
  /** Unique per proposal, so a replay after reconnect is applied once. */
  eventId: Id,
  ...RunRef.shape,
  state: StateProposal,
  timestamp: Timestamp,
});
export type ProposeState = z.infer<typeof ProposeState>;

export const RunEventBatch = z.object({
  type: z.literal("run.events"),
  v: Version,
  msgId: MsgId,
  ...RunRef.shape,
  events: z.array(RunEvent).min(1).max(LIMITS.maxBatch),
});
export type RunEventBatch = z.infer<typeof RunEventBatch>;

export const LogBatch = z.object({
  type: z.literal("logs"),
  v: Version,
  msgId: MsgId,
  ...RunRef.shape,
  lines: z.array(LogLine).min(1).max(LIMITS.maxBatch),
});
export type LogBatch = z.infer<typeof LogBatch>;

export const Heartbeat = z.object({
  type: z.literal("heartbeat"),
  v: Version,
  runs: z.array(RunRef).max(10_000),
  /** The agent is shutting down: it finishes its runs but takes no new ones. */
  draining: z.boolean().default(false),
});
export type Heartbeat = z.infer<typeof Heartbeat>;

/**
 * A task run with tags asks for a slot of each tag's concurrency limit. Not journaled: the
 * agent sends pending requests again after every reconnect (the control plane keeps at most
 * one slot per tag and task run), and a request dies with its flow process.
 */
export const AcquireSlots = z.object({
  type: z.literal("slots.acquire"),
  v: Version,
  ...RunRef.shape,
  taskRunId: Id,
  tags: z.array(Name).min(1).max(50),
});
export type AcquireSlots = z.infer<typeof AcquireSlots>;

export const AgentMessage = z.discriminatedUnion("type", [
  Hello,
  AcquireSlots,
  RunAccept,
  RunReject,
  ProposeState,
  RunEventBatch,
  LogBatch,
  Heartbeat,
]);
export type AgentMessage = z.infer<typeof AgentMessage>;

// ---- control plane → agent -------------------------------------------------------------

export const Welcome = z.object({
  type: z.literal("welcome"),
  v: Version,
  agentId: Id,
  heartbeatIntervalMs: z.number().int().positive(),
  leaseMs: z.number().int().positive(),
  serverVersion: z.string(),
});
export type Welcome = z.infer<typeof Welcome>;

export const RunAssign = z.object({
  type: z.literal("run.assign"),
  v: Version,
  ...RunRef.shape,
  flowName: Name,
  /** Path of the flow's module, relative to the agent's working directory. */
  entrypoint: z.string().min(1).max(1000),
  parameters: JsonObject,
  timeoutMs: z.number().int().positive().optional(),
  /** Retries of the whole run still available: while some remain, task results are kept for the next attempt. */
  retriesLeft: Counter.default(0),
  leaseExpiresAt: Timestamp,
  /** Present for runs a schedule made. */
  schedule: ScheduleInfo.optional(),
});
export type RunAssign = z.infer<typeof RunAssign>;

export const OrchestrationResult = z.object({
  status: z.enum(["ACCEPT", "REJECT"]),
  /** The run's state after the decision (the current one when rejected). */
  state: StateProposal,
  reason: z.string().optional(),
});
export type OrchestrationResult = z.infer<typeof OrchestrationResult>;

export const ErrorCode = z.enum(["BAD_MESSAGE", "UNSUPPORTED_VERSION", "UNKNOWN_RUN", "STALE_ATTEMPT", "INTERNAL"]);
export type ErrorCode = z.infer<typeof ErrorCode>;

/** Acknowledges a message with a msgId: it is durable, the agent may forget it. */
export const Ack = z.object({
  type: z.literal("ack"),
  v: Version,
  msgId: MsgId,
  ok: z.boolean(),
  error: z.object({ code: ErrorCode, message: z.string() }).optional(),
  orchestration: OrchestrationResult.optional(),
});
export type Ack = z.infer<typeof Ack>;

export const HeartbeatAck = z.object({
  type: z.literal("heartbeat.ack"),
  v: Version,
  /** Runs in the heartbeat that this agent no longer holds: it must stop them. */
  revoked: z.array(RunRef),
});
export type HeartbeatAck = z.infer<typeof HeartbeatAck>;

export const RunCancel = z.object({
  type: z.literal("run.cancel"),
  v: Version,
  ...RunRef.shape,
  reason: z.string().max(LIMITS.maxMessageChars),
});
export type RunCancel = z.infer<typeof RunCancel>;

/** A message that could not be handled and had no msgId to acknowledge. */
export const ErrorFrame = z.object({
  type: z.literal("error"),
  v: Version,
  code: ErrorCode,
  message: z.string(),
});
export type ErrorFrame = z.infer<typeof ErrorFrame>;

/** The task run holds a slot of every tag it asked for (freed when it ends, or its run attempt does). */
export const SlotsGranted = z.object({
  type: z.literal("slots.granted"),
  v: Version,
  ...RunRef.shape,
  taskRunId: Id,
});
export type SlotsGranted = z.infer<typeof SlotsGranted>;

export const ServerMessage = z.discriminatedUnion("type", [
  Welcome,
  RunAssign,
  Ack,
  HeartbeatAck,
  RunCancel,
  ErrorFrame,
  SlotsGranted,
]);
export type ServerMessage = z.infer<typeof ServerMessage>;
