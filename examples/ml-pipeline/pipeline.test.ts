import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, test } from "node:test";
import { runLocal } from "@ferry/sdk";
import { mlPipeline } from "./pipeline.ts";

// The example runs in-process with runLocal, as a user would unit-test their own pipeline.
const source = resolve(import.meta.dirname, "data/houses.csv");
const work = mkdtempSync(join(tmpdir(), "ferry-example-"));
process.chdir(work);
after(() => rmSync(work, { recursive: true, force: true }));

test("the ML pipeline trains one model per grid point and registers the best", async () => {
  const run = await runLocal(mlPipeline, { source, grid: [0.1, 0.03, 0.001], epochs: 150 });
  assert.equal(run.state.type, "COMPLETED", run.state.message);
  const trains = run.taskRuns.filter((t) => t.taskKey === "train");
  assert.equal(trains.length, 3);
  const clean = run.taskRuns.find((t) => t.taskKey === "clean");
  assert.ok(clean);
  for (const t of trains) assert.deepEqual(t.upstream, [clean.id]);
  assert.equal(run.childFlowRuns[0]?.flowName, "register-model");
  const registered = run.result as { path: string; rmse: number };
  assert.ok(existsSync(registered.path));
  assert.ok(registered.rmse < 50, `holdout RMSE ${registered.rmse}`);
});

test("a missing source fails at once without retries", async () => {
  const run = await runLocal(mlPipeline, { source: join(work, "nope.csv") });
  assert.equal(run.state.type, "FAILED");
  assert.equal(run.taskRuns.find((t) => t.taskKey === "ingest")?.attempts, 1);
});
