import { isTerminal, type StateType } from "@ferry/sdk/protocol";

/** Who proposes a transition: the agent running the attempt, a user (API/CLI), or the control plane itself. */
export type Proposer = "agent" | "user" | "system";

/**
 * Legal flow-run transitions. The control plane is authoritative: anything not listed is
 * rejected, so a late or confused report can never move a run backwards.
 */
const ALLOWED: Record<StateType, readonly StateType[]> = {
  SCHEDULED: ["PENDING", "SCHEDULED", "CANCELLED", "CRASHED"],
  PENDING: ["RUNNING", "SCHEDULED", "FAILED", "CRASHED", "CANCELLING", "CANCELLED"],
  RUNNING: ["COMPLETED", "FAILED", "CRASHED", "CANCELLING", "CANCELLED", "PAUSED"],
  PAUSED: ["RUNNING", "SCHEDULED", "CANCELLING", "CANCELLED", "CRASHED"],
  CANCELLING: ["CANCELLED", "COMPLETED", "FAILED", "CRASHED"],
  COMPLETED: [],
  // A failed or crashed attempt is re-queued for its retry by the control plane only.
  FAILED: ["SCHEDULED"],
  CRASHED: ["SCHEDULED"],
  CANCELLED: [],
};

export type Decision = { accept: true } | { accept: false; reason: string };

export function decideTransition(from: StateType, to: StateType, proposer: Proposer): Decision {
  if (isTerminal(from) && proposer !== "system") {
    return { accept: false, reason: `run is already ${from}` };
  }
  if (!ALLOWED[from].includes(to)) return { accept: false, reason: `${from} → ${to} is not a legal transition` };
  if (proposer === "agent" && (to === "SCHEDULED" || to === "PENDING" || to === "CANCELLING")) {
    return { accept: false, reason: `an agent may not move a run to ${to}` };
  }
  return { accept: true };
}

/** Whether a failed or crashed attempt gets another one: `retryCount` retries used of `maxRetries`. */
export function shouldRetry(type: StateType, retryCount: number, maxRetries: number): boolean {
  return (type === "FAILED" || type === "CRASHED") && retryCount < maxRetries;
}
