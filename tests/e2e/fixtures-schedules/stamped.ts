// Flows used by the schedule end-to-end tests; copied into a temporary project as flows/stamped.ts.
import { flow, getRunContext, log } from "@ferry/sdk";
import { z } from "zod";

/** Logs the slot and data interval of its run; declares one schedule (synced by `ferry deploy`). */
export const stamped = flow({ name: "stamped", schedules: [{ every: "1h", catchup: "SKIP" }] }, async () => {
  const ctx = getRunContext();
  const line = `scheduledFor=${ctx?.scheduledFor?.toISOString() ?? "none"} start=${ctx?.dataInterval?.start?.toISOString() ?? "none"} end=${ctx?.dataInterval?.end.toISOString() ?? "none"}`;
  log.info(line);
  return line;
});

/** No schedules; a required parameter (for schedules with invalid parameters). */
export const plain = flow({ name: "plain", params: z.object({ n: z.number().int() }) }, async ({ n }) => n * 2);
