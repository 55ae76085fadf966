import assert from "node:assert/strict";
import { test } from "node:test";
import { DEFAULT_TRIGGER_LIMITS, lineageRefusal } from "./triggers.ts";

const trigger = { id: "t-ping", name: "after pong" };

test("a firing from an untriggered run or a webhook call starts a chain at depth 1", () => {
  assert.equal(lineageRefusal(trigger, { runId: "run-1", chain: [] }, 1), null);
  assert.equal(lineageRefusal(trigger, { runId: null, chain: [] }, 1), null);
});

test("a trigger already in the chain is a cycle, whatever the depth", () => {
  const reason = lineageRefusal(trigger, { runId: "run-3", chain: ["t-pong", "t-ping", "t-pong"] }, 100);
  assert.match(reason ?? "", /^a cycle: trigger "after pong" already started a run in the chain that led to run run-3/);
});

test("a chain one deeper than the limit is refused with the limit and the flag that sets it", () => {
  const chain = Array.from({ length: DEFAULT_TRIGGER_LIMITS.maxDepth }, (_, i) => `t-${i}`);
  assert.equal(lineageRefusal(trigger, { runId: "run-9", chain: chain.slice(1) }, DEFAULT_TRIGGER_LIMITS.maxDepth), null);
  const reason = lineageRefusal(trigger, { runId: "run-10", chain }, DEFAULT_TRIGGER_LIMITS.maxDepth);
  assert.match(
    reason ?? "",
    /chain too deep: run run-10 is 10 trigger\(s\) deep and the limit is 10 \(ferry server start --trigger-max-depth\)/,
  );
});

test("the documented defaults", () => {
  assert.deepEqual(DEFAULT_TRIGGER_LIMITS, { maxDepth: 10, perMinute: 60 });
});
