import assert from "node:assert/strict";
import { test } from "node:test";
import { Counter, JsonObject, jsonDepth, logLevelFromEnv, MAX_JSON_DEPTH, processLogLevel, Timestamp } from "./common.ts";

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

test("FERRY_LOG_LEVEL: known levels in any case; unset, empty or unknown values mean info", () => {
  assert.deepEqual(processLogLevel("debug"), { level: "debug" });
  assert.deepEqual(processLogLevel(" WARN "), { level: "warn" });
  assert.deepEqual(processLogLevel("silent"), { level: "silent" });
  assert.deepEqual(processLogLevel(undefined), { level: "info" });
  assert.deepEqual(processLogLevel(""), { level: "info" });
  assert.deepEqual(processLogLevel("verbose"), { level: "info", invalid: "verbose" });
  assert.deepEqual(processLogLevel("30"), { level: "info", invalid: "30" });
});

test("an unknown FERRY_LOG_LEVEL is reported once per process, however many loggers read it", () => {
  const first = logLevelFromEnv({ FERRY_LOG_LEVEL: "loud" });
  assert.equal(first.level, "info");
  assert.match(first.warning ?? "", /unknown FERRY_LOG_LEVEL "loud" \(expected fatal, error, warn, info, debug, trace, silent\)/);
  assert.deepEqual(logLevelFromEnv({ FERRY_LOG_LEVEL: "loud" }), { level: "info" });
  assert.deepEqual(logLevelFromEnv({ FERRY_LOG_LEVEL: "debug" }), { level: "debug" });
});
