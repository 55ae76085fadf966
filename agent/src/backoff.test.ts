import assert from "node:assert/strict";
import { test } from "node:test";
import { Backoff } from "./backoff.ts";

test("delays grow exponentially up to the cap, with jitter inside [cap/2, cap]", () => {
  const lo = new Backoff(100, 1000, () => 0);
  assert.deepEqual([lo.next(), lo.next(), lo.next(), lo.next(), lo.next()], [50, 100, 200, 400, 500]);
  const hi = new Backoff(100, 1000, () => 1);
  assert.deepEqual([hi.next(), hi.next(), hi.next(), hi.next(), hi.next()], [100, 200, 400, 800, 1000]);
  hi.reset();
  assert.equal(hi.next(), 100);
});
