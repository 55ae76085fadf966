/**
 * Regression tests for what the protocol fuzzer found in message validation and close
 * reasons: each ran for seconds (or forever), threw, or made a multi-megabyte error reply.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { AgentMessage, LIMITS, parseMessage } from "@ferry/sdk/protocol";
import { closeReason } from "../../control-plane/src/agents/hub.ts";

function timed<T>(fn: () => T): { value: T; ms: number } {
  const started = performance.now();
  const value = fn();
  return { value, ms: performance.now() - started };
}

test("a version that is a deeply nested array is reported, not thrown", () => {
  const deep = `${"[".repeat(200_000)}${"]".repeat(200_000)}`;
  const r = parseMessage(AgentMessage, `{"type":"heartbeat","v":${deep},"runs":[]}`);
  assert.equal(r.ok, false);
  assert.equal(!r.ok && r.code, "UNSUPPORTED_VERSION");
});

test("a frame with a million schema violations is refused quickly with a short message", () => {
  const bad = { kind: "task_run.created", upstream: new Array(1_000).fill(1) };
  const text = JSON.stringify({
    type: "run.events",
    v: 1,
    msgId: 1,
    flowRunId: "x",
    attempt: 1,
    events: new Array(1_000).fill(bad),
  });
  assert.ok(text.length < LIMITS.maxFrameBytes);
  const { value: r, ms } = timed(() => parseMessage(AgentMessage, text));
  assert.equal(r.ok, false);
  assert.ok(!r.ok && r.message.length <= LIMITS.maxMessageChars);
  assert.ok(ms < 1_000, `took ${ms} ms`);
});

test("error messages stay bounded when a peer's key is megabytes long", () => {
  const key = "k".repeat(3_000_000);
  const text = `{"type":"hello","v":1,"agentId":"a","name":"n","pools":["p"],"capacity":1,"version":"x","inFlight":[],"labels":{"${key}":"v"}}`;
  const r = parseMessage(AgentMessage, text);
  assert.ok(!r.ok && r.message.length <= LIMITS.maxMessageChars);
  const version = parseMessage(AgentMessage, JSON.stringify({ type: "hello", v: "x".repeat(1_000_000) }));
  assert.ok(!version.ok && version.code === "UNSUPPORTED_VERSION" && version.message.length < 200);
});

test("closeReason cuts a multi-megabyte text at once, to at most 123 bytes of UTF-8", () => {
  const { value, ms } = timed(() => closeReason(`expected hello: ${"é".repeat(3_000_000)}`));
  assert.ok(Buffer.byteLength(value) <= 123);
  assert.ok(value.startsWith("expected hello: é"));
  assert.ok(ms < 100, `took ${ms} ms`);
  assert.equal(closeReason("short"), "short");
});
