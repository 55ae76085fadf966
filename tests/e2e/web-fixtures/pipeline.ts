// A flow for the web API tests (web-api.e2e.test.ts); copied into the suite's project as
// flows/pipeline.ts. Two chained `.map`s (group to group edges, one per item), a loop of one
// task (edges within its group), a single consumer of the second map, and ordered log lines.
import { flow, log, task } from "@ferry/sdk";
import { z } from "zod";

export const double = task({ name: "double" }, async (i: number) => ({ i, v: i * 2 }));
export const inc = task({ name: "inc" }, async (x: { i: number; v: number }) => ({ i: x.i, v: x.v + 1 }));
export const step = task({ name: "step" }, async (acc: { n: number }) => ({ n: acc.n + 1 }));
export const sum = task({ name: "sum" }, async (xs: { v: number }[]) => ({ total: xs.reduce((a, b) => a + b.v, 0) }));

export const pipeline = flow(
  {
    name: "pipeline",
    params: z.object({
      n: z.number().int().min(1).max(1000),
      lines: z.number().int().min(0).default(0),
      pauseMs: z.number().int().min(0).default(0),
    }),
  },
  async ({ n, lines, pauseMs }) => {
    await new Promise((r) => setTimeout(r, pauseMs));
    const doubled = await double.map(Array.from({ length: n }, (_, i) => i));
    const incremented = await inc.map(doubled);
    let acc = { n: 0 };
    for (let i = 0; i < 3; i++) acc = await step(acc);
    const { total } = await sum(incremented);
    for (let i = 0; i < lines; i++) log.info(`pipeline line-${String(i).padStart(2, "0")}`);
    log.info("pipeline total %d", total);
    return { total, steps: acc.n };
  },
);
