import assert from "node:assert/strict";
import { test } from "node:test";
import { z } from "zod";
import { NonRetriableError, ParameterError } from "../errors.ts";
import { flow, flowsInModule, flowsOf, task } from "./authoring.ts";
import { runLocal } from "./local.ts";
import { log } from "./scope.ts";
import { DEFAULT_MAP_CONCURRENCY } from "./task.ts";

const double = task({ name: "double" }, async (x: { v: number }) => ({ v: x.v * 2 }));
const sum = task({ name: "sum" }, async (xs: { v: number }[]) => xs.reduce((a, b) => a + b.v, 0));

test("map fans out one task run per item and records edges into the consumer", async () => {
  const f = flow({ name: "fan", params: z.object({ n: z.number().int().min(1) }) }, async ({ n }) => {
    const doubled = await double.map(
      Array.from({ length: n }, (_, i) => ({ v: i })),
      { concurrency: 2 },
    );
    return sum(doubled);
  });
  const run = await runLocal(f, { n: 5 });
  assert.equal(run.state.type, "COMPLETED");
  assert.equal(run.result, 20);
  const doubles = run.taskRuns.filter((t) => t.taskKey === "double");
  assert.deepEqual(
    doubles.map((t) => t.dynamicKey),
    [0, 1, 2, 3, 4],
  );
  const sumRun = run.taskRuns.find((t) => t.taskKey === "sum");
  assert.ok(sumRun);
  assert.deepEqual(new Set(sumRun.upstream), new Set(doubles.map((t) => t.id)));
  assert.equal(run.edges.length, 5);
});

test("map respects the concurrency cap", async () => {
  let inFlight = 0;
  let peak = 0;
  const slow = task({ name: "slow" }, async (i: number) => {
    inFlight++;
    peak = Math.max(peak, inFlight);
    await new Promise((r) => setTimeout(r, 5));
    inFlight--;
    return i;
  });
  const f = flow({ name: "capped" }, async () => slow.map([1, 2, 3, 4, 5, 6, 7], { concurrency: 3 }));
  const run = await runLocal(f, {});
  assert.deepEqual(run.result, [1, 2, 3, 4, 5, 6, 7]);
  assert.equal(peak, 3);
});

test("a map without a concurrency holds DEFAULT_MAP_CONCURRENCY task runs in flight, not all of them", async () => {
  let inFlight = 0;
  let peak = 0;
  const gated = task({ name: "gated" }, async (i: number) => {
    inFlight++;
    peak = Math.max(peak, inFlight);
    await new Promise((r) => setTimeout(r, 1));
    inFlight--;
    return i;
  });
  const n = DEFAULT_MAP_CONCURRENCY + 500;
  const f = flow({ name: "default-cap" }, async () => gated.map(Array.from({ length: n }, (_, i) => i)));
  const run = await runLocal(f, {});
  assert.equal((run.result as number[]).length, n);
  assert.equal((run.result as number[])[n - 1], n - 1);
  assert.equal(peak, DEFAULT_MAP_CONCURRENCY);
});

test("a fan-in bigger than LIMITS.maxBatch records the first 1,000 edges and the run still completes", async () => {
  const f = flow({ name: "wide" }, async () => sum(await double.map(Array.from({ length: 1200 }, (_, i) => ({ v: i })))));
  const run = await runLocal(f, {});
  assert.equal(run.state.type, "COMPLETED");
  assert.equal(run.result, 1199 * 1200);
  assert.equal(run.taskRuns.find((t) => t.taskKey === "sum")?.upstream.length, 1000);
});

test("a task that fails once succeeds on retry; NonRetriableError skips retries", async () => {
  let calls = 0;
  const flaky = task({ name: "flaky", retries: 2, retryDelay: "1ms" }, async () => {
    if (++calls === 1) throw new Error("transient");
    return "ok";
  });
  const fatal = task({ name: "fatal", retries: 5 }, async () => {
    throw new NonRetriableError("bad input");
  });
  const f = flow({ name: "retrying" }, async () => {
    const value = await flaky();
    await fatal().catch(() => undefined);
    return value;
  });
  const run = await runLocal(f, {});
  assert.equal(run.state.type, "COMPLETED");
  const flakyRun = run.taskRuns.find((t) => t.taskKey === "flaky");
  assert.deepEqual(
    flakyRun?.states.map((s) => s.name),
    ["Pending", "Running", "AwaitingRetry", "Retrying", "Completed"],
  );
  const fatalRun = run.taskRuns.find((t) => t.taskKey === "fatal");
  assert.equal(fatalRun?.attempts, 1);
  assert.equal(fatalRun?.states.at(-1)?.type, "FAILED");
});

test("task timeout fails the attempt as TimedOut", async () => {
  const hang = task({ name: "hang", timeout: "20ms" }, () => new Promise<never>(() => {}));
  const f = flow({ name: "hanging" }, async () => hang());
  const run = await runLocal(f, {});
  assert.equal(run.state.type, "FAILED");
  assert.equal(run.taskRuns[0]?.states.at(-1)?.name, "TimedOut");
});

test("flow timeout ends the run as TimedOut", async () => {
  const f = flow({ name: "slowflow", timeout: "20ms" }, () => new Promise<never>(() => {}));
  const run = await runLocal(f, {});
  assert.equal(run.state.name, "TimedOut");
});

test("parameters are validated before the body runs", async () => {
  let ran = false;
  const f = flow({ name: "typed", params: z.object({ grid: z.array(z.number()).min(1) }) }, async () => {
    ran = true;
  });
  const run = await runLocal(f, { grid: [] });
  assert.equal(run.state.type, "FAILED");
  assert.ok(run.error instanceof ParameterError);
  assert.match(run.state.message ?? "", /grid/);
  assert.equal(ran, false);
});

test("a flow called inside a flow is a child flow run linked to a task run", async () => {
  const child = flow({ name: "child" }, async ({ x }: { x: number }) => {
    log.info("child got %d", x);
    return { v: x + 1 };
  });
  const parent = flow({ name: "parent" }, async () => {
    const r = await child({ x: 1 });
    return double(r);
  });
  const run = await runLocal(parent, {});
  assert.deepEqual(run.result, { v: 4 });
  assert.equal(run.childFlowRuns.length, 1);
  const childRun = run.childFlowRuns[0];
  assert.equal(childRun?.flowName, "child");
  assert.deepEqual(
    childRun?.states.map((s) => s.type),
    ["RUNNING", "COMPLETED"],
  );
  const wrapper = run.taskRuns.find((t) => t.childFlowRunId === childRun?.id);
  assert.ok(wrapper);
  const doubleRun = run.taskRuns.find((t) => t.taskKey === "double");
  assert.deepEqual(doubleRun?.upstream, [wrapper.id]);
  assert.equal(run.logs[0]?.flowRunId, childRun?.id);
});

test("flow retries start the body again", async () => {
  let attempts = 0;
  const f = flow({ name: "retryflow", retries: 1 }, async () => {
    if (++attempts === 1) throw new Error("first attempt fails");
    return attempts;
  });
  const run = await runLocal(f, {});
  assert.equal(run.state.type, "COMPLETED");
  assert.equal(run.attempts, 2);
});

class Training {
  constructor(private readonly base = 1) {}

  @task({ retries: 1 })
  async trainOne(cfg: { lr: number }) {
    return { lr: cfg.lr, loss: this.base + cfg.lr };
  }

  @task()
  async pickBest(models: { lr: number; loss: number }[]) {
    return models.reduce((a, b) => (a.loss <= b.loss ? a : b));
  }

  @flow({ name: "train", params: z.object({ grid: z.array(z.number()).min(1) }) })
  async run({ grid }: { grid: number[] }) {
    const models = await Promise.all(grid.map((lr) => this.trainOne({ lr })));
    return this.pickBest(models);
  }
}

test("decorated class methods are tasks and flows with `this` intact", async () => {
  const { train } = flowsOf(new Training());
  assert.ok(train);
  const run = await runLocal(train, { grid: [0.5, 0.1, 0.3] });
  assert.equal(run.state.type, "COMPLETED");
  assert.deepEqual(run.result, { lr: 0.1, loss: 1.1 });
  assert.equal(run.taskRuns.filter((t) => t.taskKey === "trainOne").length, 3);
  assert.equal(run.taskRuns.find((t) => t.taskKey === "pickBest")?.upstream.length, 3);
});

test("flowsInModule finds exported flows and classes, naming unnamed ones by export", () => {
  const anonymousTask = task({}, async (x: number) => x);
  const anonymousFlow = flow({}, async () => anonymousTask(1));
  const flows = flowsInModule({ Training, myFlow: anonymousFlow, anonymousTask, notAFlow: 42 });
  assert.deepEqual([...flows.keys()].sort(), ["myFlow", "train"]);
  assert.equal(anonymousTask.def.name, "anonymousTask");
});

test("tasks called outside a flow run are plain function calls", async () => {
  assert.deepEqual(await double({ v: 2 }), { v: 4 });
});
