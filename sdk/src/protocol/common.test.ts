import assert from "node:assert/strict";
import { test } from "node:test";
import { Counter, JsonObject, jsonDepth, MAX_JSON_DEPTH, Timestamp } from "./common.ts";

test("timestamps are accepted from 1970 to 9999 only", () => {
  assert.ok(Timestamp.safeParse(new Date().toISOString()).success);
  assert.ok(Timestamp.safeParse("9999-12-31T23:59:59.999Z").success);
  assert.ok(!Timestamp.safeParse("0000-01-01T00:00:00Z").success);
  assert.ok(!Timestamp.safeParse("1969-12-31T23:59:59Z").success);
});

test("counters fit a 32-bit column", () => {
  assert.ok(Counter.safeParse(2_147_483_647).success);
  assert.ok(!Counter.safeParse(2_147_483_648).success);
  assert.ok(!Counter.safeParse(-1).success);
});

test("JSON nesting is bounded without recursion", () => {
  let deep: unknown = {};
  for (let i = 0; i < 100_000; i++) deep = { a: deep };
  assert.equal(jsonDepth(deep), MAX_JSON_DEPTH + 1);
  assert.ok(!JsonObject.safeParse(deep).success);
  assert.ok(JsonObject.safeParse({ grid: [[1, 2], [3]] }).success);
});
