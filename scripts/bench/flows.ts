// Flows measured by `npm run bench`.
import { flow, log, task } from "@ferry/sdk";
import { z } from "zod";

/**
 * The first line of the body logs when it ran (start latency is measured up to here) and when
 * its process started (before the run was created: a warm start).
 */
export const hello = flow({ name: "bench-start" }, async () => {
  log.info(`body-start ${Date.now()} ${Math.round(performance.timeOrigin)}`);
});

export const noop = task({ name: "noop" }, async (i: number) => i);

export const mapNoops = flow({ name: "bench-map", params: z.object({ n: z.number().int().min(1) }) }, async ({ n }) => {
  const results = await noop.map(Array.from({ length: n }, (_, i) => i));
  return results.length;
});

/** Log ingestion: n lines as fast as the flow can write them. */
export const logLines = flow({ name: "bench-logs", params: z.object({ n: z.number().int().min(1) }) }, async ({ n }) => {
  for (let i = 0; i < n; i++) log.info(`line ${i}`);
  return n;
});
