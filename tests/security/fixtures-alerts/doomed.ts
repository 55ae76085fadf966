/** One flow process, many failures: every child flow run throws, and each failure may alert. */
import { flow } from "@ferry/sdk";
import { z } from "zod";

export const doomed = flow({ name: "doomed" }, async ({ i }: { i: number }) => {
  throw new Error(`doomed child ${i}`);
});

export const failMany = flow({ name: "fail-many", params: z.object({ n: z.number().int().min(1).max(500) }) }, async ({ n }) => {
  const outcomes = await Promise.allSettled(Array.from({ length: n }, (_, i) => doomed({ i })));
  return outcomes.filter((o) => o.status === "rejected").length;
});
