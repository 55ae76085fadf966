import assert from "node:assert/strict";
import { test } from "node:test";
import { toMs } from "./duration.ts";

test("toMs parses numbers and unit strings", () => {
  assert.equal(toMs(250), 250);
  assert.equal(toMs("500ms"), 500);
  assert.equal(toMs("1s"), 1000);
  assert.equal(toMs("1.5s"), 1500);
  assert.equal(toMs("5m"), 300_000);
  assert.equal(toMs("2h"), 7_200_000);
  assert.equal(toMs("1d"), 86_400_000);
});

test("toMs rejects bad values with the value in the message", () => {
  assert.throws(() => toMs("5 minutes"), /invalid duration "5 minutes"/);
  assert.throws(() => toMs(-1), /invalid duration -1/);
  assert.throws(() => toMs(Number.NaN), /invalid duration/);
});
