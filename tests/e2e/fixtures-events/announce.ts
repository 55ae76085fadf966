/** A flow that publishes an event from inside a task (for event triggers). */
import { emitEvent, flow, task } from "@ferry/sdk";
import { z } from "zod";

export const prepareDataset = task({ name: "prepare-dataset" }, async (rows: number) => {
  const path = `/data/dataset-${rows}.parquet`;
  emitEvent("dataset.ready", { rows, path });
  return { rows, path };
});

export const announce = flow({ name: "announce", params: z.object({ rows: z.number().int().min(0) }) }, async ({ rows }) => {
  const dataset = await prepareDataset(rows);
  return dataset.path;
});
