import assert from "node:assert/strict";
import { test } from "node:test";
import { decideTransition, shouldRetry } from "./rules.ts";

test("the happy path is legal", () => {
  assert.deepEqual(decideTransition("SCHEDULED", "PENDING", "system"), { accept: true });
  assert.deepEqual(decideTransition("PENDING", "RUNNING", "agent"), { accept: true });
  assert.deepEqual(decideTransition("RUNNING", "COMPLETED", "agent"), { accept: true });
});

test("terminal states are final for agents and users", () => {
  const r = decideTransition("COMPLETED", "RUNNING", "agent");
  assert.equal(r.accept, false);
  assert.equal(decideTransition("CANCELLED", "RUNNING", "user").accept, false);
  assert.equal(decideTransition("FAILED", "SCHEDULED", "user").accept, false);
  assert.equal(decideTransition("FAILED", "SCHEDULED", "system").accept, true);
});

test("runs never move backwards and agents cannot queue work", () => {
  assert.equal(decideTransition("RUNNING", "PENDING", "system").accept, false);
  assert.equal(decideTransition("PENDING", "SCHEDULED", "agent").accept, false);
  assert.equal(decideTransition("RUNNING", "CANCELLING", "agent").accept, false);
  assert.equal(decideTransition("RUNNING", "CANCELLING", "user").accept, true);
});

test("retries are granted while attempts remain", () => {
  assert.equal(shouldRetry("FAILED", 0, 1), true);
  assert.equal(shouldRetry("FAILED", 1, 1), false);
  assert.equal(shouldRetry("CRASHED", 0, 0), false);
  assert.equal(shouldRetry("CANCELLED", 0, 5), false);
});
