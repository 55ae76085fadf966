// A big dynamic run: n mapped no-op tasks, reduced in groups of 1,000 and then to one total
// (a tree reduce: every mapped result is an upstream edge of exactly one group's sum).
import { flow, log, task } from "@ferry/sdk";
import { z } from "zod";

const GROUP = 1000;

export const item = task({ name: "item" }, async (i: number) => ({ i }));
export const groupSum = task({ name: "group-sum" }, async (items: { i: number }[]) => ({
  sum: items.reduce((a, b) => a + b.i, 0),
}));
export const total = task({ name: "total" }, async (groups: { sum: number }[]) => groups.reduce((a, b) => a + b.sum, 0));

export const scale = flow({ name: "scale", params: z.object({ n: z.number().int().min(1) }) }, async ({ n }) => {
  const items = await item.map(Array.from({ length: n }, (_, i) => i));
  const groups: { i: number }[][] = [];
  for (let at = 0; at < items.length; at += GROUP) groups.push(items.slice(at, at + GROUP));
  const sums = await groupSum.map(groups);
  const sum = await total(sums);
  log.info(`total=${sum}`);
  return sum;
});
