import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DomainError } from "./errors.ts";
import { checkParametersSize, DEFAULT_QUOTAS, parseQuotaFlags, RateLimiter } from "./quotas.ts";

describe("quotas", () => {
  it("reads --quota flags over the defaults and refuses unknown names and bad values clearly", () => {
    const q = parseQuotaFlags(["maxSchedules=5", "runCreatesPerSecond=2"]);
    assert.equal(q.maxSchedules, 5);
    assert.equal(q.runCreatesPerSecond, 2);
    assert.equal(q.maxParametersBytes, DEFAULT_QUOTAS.maxParametersBytes);
    assert.throws(() => parseQuotaFlags(["maxScheduels=5"]), /unknown quota "maxScheduels" \(known: maxParametersBytes/);
    assert.throws(() => parseQuotaFlags(["maxSchedules"]), /expected name=value/);
    assert.throws(() => parseQuotaFlags(["maxSchedules=-1"]), /whole number/);
    assert.throws(() => parseQuotaFlags(["maxSchedules=1e9"]), /whole number/);
    assert.throws(() => parseQuotaFlags(["maxBatchSize=2"]), /maxBatchSize/);
  });

  it("measures parameters as JSON bytes and names the quota when they are too large", () => {
    checkParametersSize({ maxParametersBytes: 1024 }, { a: "x".repeat(1000) });
    assert.throws(
      () => checkParametersSize({ maxParametersBytes: 1024 }, { a: "é".repeat(600) }),
      (err: unknown) =>
        err instanceof DomainError && err.code === "QUOTA_EXCEEDED" && /maxParametersBytes = 1024/.test(err.message),
    );
  });

  it("gives each workspace its own bucket: a burst, then the sustained rate", () => {
    let now = 0;
    const limiter = new RateLimiter(2, 3, () => now);
    assert.deepEqual(
      [1, 2, 3, 4].map(() => limiter.take("a")),
      [true, true, true, false],
    );
    assert.equal(limiter.take("b"), true, "another workspace is not slowed by the first one's burst");
    now += 500; // half a second: one token back at 2/s
    assert.equal(limiter.take("a"), true);
    assert.equal(limiter.take("a"), false);
    now += 10_000;
    assert.equal([1, 2, 3, 4].filter(() => limiter.take("a")).length, 3, "refills to the burst, not beyond");
  });
});
