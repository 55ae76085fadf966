import assert from "node:assert/strict";
import { test } from "node:test";
import { batches } from "./agent.ts";

test("batches respect the item limit", () => {
  const out = batches(
    Array.from({ length: 25 }, (_, i) => i),
    10,
    1_000_000,
  );
  assert.deepEqual(
    out.map((b) => b.length),
    [10, 10, 5],
  );
});

test("batches respect the byte limit, and an item larger than it travels alone", () => {
  const line = "x".repeat(100);
  const out = batches([line, line, line, "y".repeat(500), line], 1000, 250);
  assert.deepEqual(
    out.map((b) => b.length),
    [2, 1, 1, 1],
  );
  assert.deepEqual(out.flat(), [line, line, line, "y".repeat(500), line]);
});
