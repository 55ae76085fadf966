/**
 * A realistic small ML pipeline: ingest a CSV → clean it → train one model per learning
 * rate of a grid chosen at run time (fan-out) → evaluate each → register the best.
 * Data stays on the agent's machine: files under examples/ml-pipeline/data and .ferry/.
 *
 *   npx ferry run ml-pipeline --param grid='[0.1,0.03,0.01]' --wait
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { flow, getRunContext, log, NonRetriableError, task } from "@ferry/sdk";
import { z } from "zod";

type Row = { sqft: number; bedrooms: number; age: number; price: number };
type Dataset = { path: string; rows: number };
type Model = { lr: number; weights: number[]; trainLoss: number };
type Evaluated = Model & { rmse: number };

const FEATURES = ["sqft", "bedrooms", "age"] as const;
const workDir = () => resolve(".ferry", "artifacts", getRunContext()?.flowRunId ?? "local");

export const ingest = task({ name: "ingest", retries: 2, retryDelay: "500ms" }, async (source: string): Promise<Dataset> => {
  const text = await readFile(source, "utf8").catch((err: Error) => {
    throw new NonRetriableError(`cannot read ${source}: ${err.message}`);
  });
  const dir = workDir();
  await mkdir(dir, { recursive: true });
  const path = join(dir, "raw.csv");
  await writeFile(path, text);
  const rows = text.trim().split("\n").length - 1;
  log.info("ingested %d rows from %s", rows, source);
  return { path, rows };
});

export const clean = task({ name: "clean" }, async (raw: Dataset): Promise<Dataset> => {
  const [header, ...lines] = (await readFile(raw.path, "utf8")).trim().split("\n");
  const kept: Row[] = [];
  for (const line of lines) {
    const [sqft, bedrooms, age, price] = line.split(",").map((v) => (v === "" ? Number.NaN : Number(v)));
    const row = { sqft, bedrooms, age, price } as Row;
    if (Object.values(row).every((v) => Number.isFinite(v))) kept.push(row);
  }
  const path = join(workDir(), "clean.json");
  await writeFile(path, JSON.stringify(kept));
  log.info("kept %d of %d rows (%s)", kept.length, lines.length, header);
  return { path, rows: kept.length };
});

async function load(data: Dataset): Promise<{ x: number[][]; y: number[] }> {
  const rows = JSON.parse(await readFile(data.path, "utf8")) as Row[];
  // Standardise features so one learning rate suits them all.
  const stats = FEATURES.map((f) => {
    const values = rows.map((r) => r[f]);
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    const sd = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length) || 1;
    return { mean, sd };
  });
  const x = rows.map((r) => [1, ...FEATURES.map((f, i) => (r[f] - (stats[i]?.mean ?? 0)) / (stats[i]?.sd ?? 1))]);
  return { x, y: rows.map((r) => r.price / 1000) };
}

const predict = (w: number[], row: number[]) => row.reduce((s, v, i) => s + v * (w[i] ?? 0), 0);

export const train = task(
  { name: "train", retries: 1, retryDelay: "1s", timeout: "2m", tags: ["cpu"] },
  async (cfg: { data: Dataset; lr: number; epochs: number }): Promise<Model> => {
    const { x, y } = await load(cfg.data);
    const split = Math.floor(x.length * 0.8);
    let w = new Array<number>(FEATURES.length + 1).fill(0);
    let loss = 0;
    for (let epoch = 0; epoch < cfg.epochs; epoch++) {
      const grad = new Array<number>(w.length).fill(0);
      loss = 0;
      for (let i = 0; i < split; i++) {
        const row = x[i] ?? [];
        const err = predict(w, row) - (y[i] ?? 0);
        loss += err * err;
        row.forEach((v, j) => {
          grad[j] = (grad[j] ?? 0) + (2 * err * v) / split;
        });
      }
      w = w.map((wi, j) => wi - cfg.lr * (grad[j] ?? 0));
      if (!Number.isFinite(loss)) throw new NonRetriableError(`training diverged at lr=${cfg.lr}`);
    }
    log.info("lr=%s: train MSE %s", cfg.lr, (loss / split).toFixed(1));
    return { lr: cfg.lr, weights: w, trainLoss: loss / split };
  },
);

export const evaluate = task({ name: "evaluate" }, async (input: { data: Dataset; model: Model }): Promise<Evaluated> => {
  const { x, y } = await load(input.data);
  const split = Math.floor(x.length * 0.8);
  let se = 0;
  for (let i = split; i < x.length; i++) se += (predict(input.model.weights, x[i] ?? []) - (y[i] ?? 0)) ** 2;
  const rmse = Math.sqrt(se / (x.length - split));
  log.info("lr=%s: holdout RMSE %s k$", input.model.lr, rmse.toFixed(2));
  return { ...input.model, rmse };
});

export const registerModel = flow({ name: "register-model" }, async (best: Evaluated) => {
  const dir = resolve(".ferry", "models");
  await mkdir(dir, { recursive: true });
  const path = join(dir, `house-prices-lr${best.lr}.json`);
  await writeFile(path, JSON.stringify(best, null, 2));
  log.info("registered model lr=%s (RMSE %s) at %s", best.lr, best.rmse.toFixed(2), path);
  return { path, rmse: best.rmse };
});

export const mlPipeline = flow(
  {
    name: "ml-pipeline",
    description: "ingest → clean → train over a grid → evaluate → register the best model",
    params: z.object({
      source: z.string().default("examples/ml-pipeline/data/houses.csv"),
      grid: z.array(z.number().positive().max(1)).min(1).max(100).default([0.1, 0.03, 0.01]),
      epochs: z.number().int().min(1).max(5000).default(200),
    }),
  },
  async ({ source, grid, epochs }) => {
    const raw = await ingest(source);
    const data = await clean(raw);
    // Fan-out decided at run time: one train task run per learning rate.
    const models = await train.map(
      grid.map((lr) => ({ data, lr, epochs })),
      { concurrency: 4 },
    );
    const scored = await evaluate.map(models.map((model) => ({ data, model })));
    const best = scored.reduce((a, b) => (a.rmse <= b.rmse ? a : b));
    console.log(`best learning rate: ${best.lr}`);
    return registerModel(best);
  },
);
