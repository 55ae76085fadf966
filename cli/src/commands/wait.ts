import type { FerryClient } from "@ferry/control-plane/client";
import { isTerminal, StateType } from "@ferry/sdk/protocol";
import { formatLogLine } from "../output.ts";

/** Exit codes of `ferry run --wait`: the run's final state, so scripts can branch on it. */
export const EXIT_CODES: Record<"COMPLETED" | "FAILED" | "CRASHED" | "CANCELLED", number> = {
  COMPLETED: 0,
  FAILED: 1,
  CRASHED: 2,
  CANCELLED: 3,
};

const POLL_MS = 250;

/**
 * Follows a run until it ends, printing state changes and log lines as they arrive.
 * Returns the final state type.
 */
export async function followRun(
  api: FerryClient,
  runId: string,
  out: { states: boolean; logs: boolean; json: boolean },
): Promise<StateType> {
  let afterId: number | undefined;
  let lastState = "";
  for (;;) {
    const run = await api.runs.get.query({ id: runId });
    const type = StateType.parse(run.stateType);
    const label = `${run.stateType}/${run.stateName}`;
    const printState = () => {
      if (!out.states || label === lastState) return;
      lastState = label;
      const message = run.stateMessage ? `: ${run.stateMessage}` : "";
      process.stdout.write(
        out.json
          ? `${JSON.stringify({ kind: "state", type: run.stateType, name: run.stateName, message: run.stateMessage })}\n`
          : `--> ${run.name} is ${run.stateName} (${run.stateType})${message}\n`,
      );
    };
    // A new state is shown before the logs it led to; the final state after the last logs.
    if (!isTerminal(type)) printState();
    if (out.logs) {
      for (;;) {
        const page = await api.logs.list.query({ flowRunId: runId, ...(afterId !== undefined ? { afterId } : {}), limit: 1000 });
        for (const l of page.items) {
          process.stdout.write(out.json ? `${JSON.stringify({ kind: "log", ...l })}\n` : `${formatLogLine(l)}\n`);
        }
        if (page.lastId !== null) afterId = page.lastId;
        if (page.items.length < 1000) break;
      }
    }
    printState();
    // A run waiting for its retry is not over.
    if (isTerminal(type)) return type;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}
