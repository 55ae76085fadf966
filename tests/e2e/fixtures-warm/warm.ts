// Flows of the warm-start end-to-end tests; copied into a temporary project as flows/warm.ts.
// Each run logs one "probe" line describing the process it ran in.
import { flow, getRunContext, log } from "@ferry/sdk";
import { z } from "zod";
import { CODE_VERSION } from "./version.ts";

/** Module-level state of user code: it persists across runs of one process (opt-in reuse only). */
let moduleRuns = 0;

function probe(extra: Record<string, unknown> = {}): void {
  moduleRuns++;
  log.info(
    `probe ${JSON.stringify({
      pid: process.pid,
      processStartedAt: Math.round(performance.timeOrigin),
      bodyAt: Date.now(),
      moduleRuns,
      version: CODE_VERSION,
      envRunId: process.env.FERRY_FLOW_RUN_ID,
      contextRunId: getRunContext()?.flowRunId,
      ...extra,
    })}`,
  );
}

export const probeFlow = flow(
  { name: "warm-probe", params: z.object({ fail: z.boolean().default(false), sleepMs: z.number().int().min(0).default(0) }) },
  async ({ fail, sleepMs }) => {
    probe();
    if (sleepMs) await new Promise((r) => setTimeout(r, sleepMs));
    if (fail) throw new Error("failing on purpose");
    return process.pid;
  },
);

export class ProbeClass {
  /** Instance state: the runner builds a new instance for every run, also in a reused process. */
  calls = 0;

  @flow({ name: "warm-probe-class" })
  async run(_params: Record<string, unknown>) {
    this.calls++;
    probe({ instanceCalls: this.calls });
    return this.calls;
  }
}
