import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { flow, task } from "./authoring.ts";
import { runLocal } from "./local.ts";
import { getRunContext } from "./scope.ts";

const dir = mkdtempSync(join(tmpdir(), "ferry-cache-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("a retried flow run reuses the completed results of its earlier attempt (Cached)", async () => {
  let computed = 0;
  const expensive = task({ name: "expensive" }, async (x: { n: number }) => {
    computed++;
    return { squared: x.n * x.n };
  });
  const f = flow({ name: "resumable", retries: 1 }, async () => {
    const r = await expensive({ n: 7 });
    if (getRunContext()?.attempt === 1) throw new Error("fails after the expensive part, once");
    return r;
  });
  const run = await runLocal(f, {}, { resultDir: join(dir, "retry") });
  assert.equal(run.state.type, "COMPLETED");
  assert.deepEqual(run.result, { squared: 49 });
  assert.equal(run.attempts, 2);
  assert.equal(computed, 1);
  const names = run.taskRuns.map((t) => t.states.at(-1)?.name);
  assert.deepEqual(names, ["Completed", "Cached"]);
});

test("without retries left, results are not kept; a new run computes again", async () => {
  let computed = 0;
  const work = task({ name: "work" }, async (n: number) => {
    computed++;
    return { n };
  });
  const f = flow({ name: "once" }, async () => work(1));
  await runLocal(f, {}, { resultDir: join(dir, "once") });
  await runLocal(f, {}, { resultDir: join(dir, "once") });
  assert.equal(computed, 2);
});

test("a cache key makes results reusable across runs until they expire", async () => {
  let computed = 0;
  const load = task({ name: "load", cacheKey: (path: string) => path, cacheExpiration: "200ms" }, async (path: string) => {
    computed++;
    return { rows: path.length };
  });
  const f = flow({ name: "loader" }, async ({ path }: { path: string }) => load(path));
  const first = await runLocal(f, { path: "a.csv" }, { resultDir: join(dir, "keyed") });
  const second = await runLocal(f, { path: "a.csv" }, { resultDir: join(dir, "keyed") });
  const other = await runLocal(f, { path: "b.csv" }, { resultDir: join(dir, "keyed") });
  assert.deepEqual([first.result, second.result, other.result], [{ rows: 5 }, { rows: 5 }, { rows: 5 }]);
  assert.equal(computed, 2);
  assert.equal(second.taskRuns[0]?.states.at(-1)?.name, "Cached");
  await new Promise((r) => setTimeout(r, 250));
  await runLocal(f, { path: "a.csv" }, { resultDir: join(dir, "keyed") });
  assert.equal(computed, 3, "an expired result is computed again");
});

test("a result JSON cannot hold is simply not cached", async () => {
  let computed = 0;
  const makeFn = task({ name: "make-fn", cacheKey: () => "same" }, async () => {
    computed++;
    return () => 42;
  });
  const f = flow({ name: "fn-maker" }, async () => (await makeFn())());
  const a = await runLocal(f, {}, { resultDir: join(dir, "fn") });
  const b = await runLocal(f, {}, { resultDir: join(dir, "fn") });
  assert.deepEqual([a.result, b.result], [42, 42]);
  assert.equal(computed, 2);
});
