import assert from "node:assert/strict";
import { test } from "node:test";
import { histogramQuantiles } from "./stats.ts";

const scrape = (counts: [number, number][]) => new Map(counts);

test("histogramQuantiles: quantiles of the observations between two scrapes, interpolated inside their bucket", () => {
  const before = scrape([
    [0.001, 5],
    [0.002, 5],
    [0.004, 5],
    [Number.POSITIVE_INFINITY, 5],
  ]);
  // 100 new observations: 50 in (0, 1 ms], 40 in (1, 2 ms], 10 in (2, 4 ms].
  const after = scrape([
    [0.001, 55],
    [0.002, 95],
    [0.004, 105],
    [Number.POSITIVE_INFINITY, 105],
  ]);
  assert.deepEqual(histogramQuantiles(before, after), { n: 100, p50: 1, p99: 3.8 });
});

test("histogramQuantiles: a quantile in the +Inf bucket is its lower bound; no observations give NaN", () => {
  const empty = scrape([]);
  const after = scrape([
    [0.001, 1],
    [Number.POSITIVE_INFINITY, 10],
  ]);
  assert.deepEqual(histogramQuantiles(empty, after), { n: 10, p50: 1, p99: 1 });
  assert.deepEqual(histogramQuantiles(after, after), { n: 0, p50: Number.NaN, p99: Number.NaN });
});
