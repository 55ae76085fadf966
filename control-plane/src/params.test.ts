import assert from "node:assert/strict";
import { test } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { z } from "zod";
import { ParamsValidator, SCHEMA_LIMITS } from "./params.ts";

const schema = JSON.stringify(z.toJSONSchema(z.object({ grid: z.array(z.number()).min(1), name: z.string().optional() })));
const ws = "ws-a";

test("valid parameters pass", () => {
  assert.deepEqual(new ParamsValidator().check(ws, schema, { grid: [0.1] }), []);
});

test("invalid parameters list every problem with its path", () => {
  const issues = new ParamsValidator().check(ws, schema, { grid: ["x"], name: 3 });
  assert.ok(
    issues.some((i) => i.startsWith("grid.0:")),
    issues.join("\n"),
  );
  assert.ok(
    issues.some((i) => i.startsWith("name:")),
    issues.join("\n"),
  );
  assert.ok(new ParamsValidator().check(ws, schema, {})[0]?.includes("grid"));
});

test("a broken schema is reported, not thrown", () => {
  assert.match(new ParamsValidator().check(ws, '{"type": 12}', {})[0] ?? "", /schema is invalid/);
  assert.match(new ParamsValidator().schemaProblem(ws, '{"type": 12}') ?? "", /schema is invalid/);
  assert.equal(new ParamsValidator().schemaProblem(ws, schema), undefined);
});

/** Runs fn and returns how long it held the thread. */
function timed<T>(fn: () => T): { value: T; ms: number } {
  const start = performance.now();
  const value = fn();
  return { value, ms: performance.now() - start };
}

test("a catastrophic-backtracking pattern is answered at once, with a clear issue", () => {
  const evil = JSON.stringify({ type: "object", properties: { name: { type: "string", pattern: "^(a+)+$" } } });
  const v = new ParamsValidator();
  const { value, ms } = timed(() => v.check(ws, evil, { name: `${"a".repeat(39)}!` }));
  assert.ok(ms < 100, `took ${ms} ms`);
  assert.equal(value.length, 1);
  assert.match(value[0] ?? "", /^name: must match pattern "\^\(a\+\)\+\$"/);
  assert.deepEqual(v.check(ws, evil, { name: "a".repeat(40) }), []);
});

test("patternProperties keys and propertyNames patterns run on the linear engine too", () => {
  const v = new ParamsValidator();
  const key = `${"a".repeat(39)}!`;
  const viaPatternProperties = JSON.stringify({
    type: "object",
    patternProperties: { "^(a+)+$": { type: "number" } },
    additionalProperties: false,
  });
  const a = timed(() => v.check(ws, viaPatternProperties, { [key]: 1 }));
  assert.ok(a.ms < 100, `took ${a.ms} ms`);
  assert.match(a.value.join("\n"), /must NOT have additional properties/);
  const viaPropertyNames = JSON.stringify({ type: "object", propertyNames: { pattern: "^(a+)+$" } });
  const b = timed(() => v.check(ws, viaPropertyNames, { [key]: 1 }));
  assert.ok(b.ms < 100, `took ${b.ms} ms`);
  assert.match(b.value.join("\n"), /property name must be valid|must match pattern/);
});

test("format is an annotation here: no format evaluates a pattern on the control plane", () => {
  const s = JSON.stringify({ type: "object", properties: { when: { type: "string", format: "date-time" } } });
  assert.deepEqual(new ParamsValidator().check(ws, s, { when: "not a date" }), []);
});

test("a pattern RE2 cannot run is left to the flow's own check; a pattern that is not a regex is refused", () => {
  const v = new ParamsValidator();
  const lookahead = JSON.stringify({ type: "object", properties: { h: { type: "string", pattern: "^(?=a)a+$" } } });
  assert.equal(v.schemaProblem(ws, lookahead), undefined);
  assert.deepEqual(v.check(ws, lookahead, { h: "b" }), []);
  const broken = JSON.stringify({ type: "object", properties: { h: { type: "string", pattern: "(unclosed" } } });
  assert.match(v.schemaProblem(ws, broken) ?? "", /invalid pattern "\(unclosed"/);
});

test("patterns and schemas over their caps are refused, naming the cap", () => {
  const v = new ParamsValidator();
  const long = JSON.stringify({ type: "string", pattern: "a".repeat(SCHEMA_LIMITS.maxPatternChars + 1) });
  assert.match(v.schemaProblem(ws, long) ?? "", /the cap is 1000/);
  const fine = JSON.stringify({ type: "string", pattern: "a".repeat(SCHEMA_LIMITS.maxPatternChars) });
  assert.equal(v.schemaProblem(ws, fine), undefined);
  const properties = Object.fromEntries(Array.from({ length: 3000 }, (_, i) => [`p${i}`, { type: "string" }]));
  const big = JSON.stringify({ type: "object", properties });
  assert.ok(big.length > SCHEMA_LIMITS.maxSchemaBytes);
  assert.match(v.schemaProblem(ws, big) ?? "", /the cap is 65536 bytes/);
  assert.match(v.check(ws, big, {})[0] ?? "", /the cap is 65536 bytes/);
  // 14 characters that compile to 2,000 RE2 instructions: a small schema must not hold megabytes of programs.
  const heavy = Object.fromEntries(
    Array.from({ length: 20 }, (_, i) => [`p${i}`, { type: "string", pattern: `[\\s\\S]{1,1000}${i}` }]),
  );
  assert.match(
    v.schemaProblem(ws, JSON.stringify({ type: "object", properties: heavy })) ?? "",
    /more than 10000 RE2 instructions/,
  );
});

test("a huge input against a costly pattern hits the work budget, not the event loop", () => {
  const s = JSON.stringify({ type: "object", properties: { t: { type: "string", pattern: "(.*a){20}x" } } });
  const v = new ParamsValidator();
  const { value, ms } = timed(() => v.check(ws, s, { t: "ab".repeat(500_000) }));
  assert.ok(ms < 200, `took ${ms} ms`);
  assert.match(value[0] ?? "", /too large to check against the schema's patterns/);
  // Within the budget the same pattern is evaluated.
  assert.match(v.check(ws, s, { t: "ab".repeat(100) })[0] ?? "", /must match pattern/);
});

test("uniqueItems is linear: a large array of objects is answered at once, and duplicates are still found", () => {
  const v = new ParamsValidator();
  const s = JSON.stringify({ type: "object", properties: { xs: { type: "array", uniqueItems: true } } });
  const xs = Array.from({ length: 100_000 }, (_, i) => ({ a: i, b: [i, { c: "x" }] }));
  const { value, ms } = timed(() => v.check(ws, s, { xs }));
  assert.deepEqual(value, []);
  assert.ok(ms < 1000, `took ${ms} ms`);
  const dup = v.check(ws, s, { xs: [{ a: 1, b: 2 }, 3, { b: 2, a: 1 }] });
  assert.match(dup.join("\n"), /^xs: must NOT have duplicate items \(items ## 0 and 2 are identical\)/);
  assert.deepEqual(v.check(ws, s, { xs: [1, "1", [1], { 1: 1 }, null, true] }), []);
  assert.match(v.check(ws, s, { xs: [1, 2, 1.0] }).join("\n"), /duplicate items/);
  assert.deepEqual(v.check(ws, JSON.stringify({ type: "array", uniqueItems: false }), [1, 1]), []);
});

test("an $id is not registered across schemas: no squatting, no cross-schema $ref", () => {
  const v = new ParamsValidator();
  const victim = JSON.stringify({ $id: "https://ferry.dev/victim", type: "object", properties: { secretRule: { const: 42 } } });
  const squat = JSON.stringify({ $id: "https://ferry.dev/victim", type: "object", properties: { x: { type: "string" } } });
  // The attacker deploys first with the victim's $id; the victim's schema still compiles and holds.
  assert.equal(v.schemaProblem("attacker", squat), undefined);
  assert.equal(v.schemaProblem("victim", victim), undefined);
  assert.deepEqual(v.check("victim", victim, { secretRule: 42 }), []);
  assert.match(v.check("victim", victim, { secretRule: 1 }).join("\n"), /secretRule/);
  // Same text in another workspace: still its own compile, same answers.
  assert.equal(v.schemaProblem("attacker", victim), undefined);
  const reader = JSON.stringify({ $ref: "https://ferry.dev/victim" });
  assert.match(v.schemaProblem("attacker", reader) ?? "", /points outside the schema/);
  const relative = JSON.stringify({ $id: "https://ferry.dev/a/b", $ref: "victim" });
  assert.match(v.schemaProblem("attacker", relative) ?? "", /points outside the schema/);
  // A $ref inside the same schema works, and a "$ref" in data (const) is data.
  const local = JSON.stringify({
    $defs: { n: { type: "number" } },
    type: "object",
    properties: { a: { $ref: "#/$defs/n" }, b: { const: { $ref: "elsewhere" } } },
  });
  assert.equal(v.schemaProblem("victim", local), undefined);
  assert.match(v.check("victim", local, { a: "x" }).join("\n"), /^a: must be number/);
});

test("the cache is bounded by count and by estimated bytes", () => {
  const byCount = new ParamsValidator({ maxEntries: 50, maxShare: 1 });
  for (let i = 0; i < 200; i++) {
    const s = JSON.stringify({ type: "object", properties: { [`p${i}`]: { type: "string", pattern: `^x${i}$` } } });
    assert.deepEqual(byCount.check(`ws-${i % 7}`, s, { [`p${i}`]: `x${i}` }), []);
  }
  assert.equal(byCount.stats().entries, 50);
  assert.ok((byCount.stats("ws-0").entries ?? 0) <= 12, JSON.stringify(byCount.stats("ws-0")));
  const byBytes = new ParamsValidator({ maxBytes: 1024 * 1024, maxShare: 1 });
  for (let i = 0; i < 200; i++) {
    const s = JSON.stringify({ type: "object", properties: { [`p${i}`]: { type: "string" } }, description: "d".repeat(2000) });
    byBytes.check(ws, s, {});
  }
  const stats = byBytes.stats();
  assert.ok(stats.estimatedBytes <= 1024 * 1024, JSON.stringify(stats));
  assert.ok(stats.entries < 200 && stats.entries > 10, JSON.stringify(stats));
  // The most recently used entry survives eviction: checking it again compiles nothing new.
  const entries = stats.entries;
  const last = JSON.stringify({ type: "object", properties: { p199: { type: "string" } }, description: "d".repeat(2000) });
  byBytes.check(ws, last, {});
  assert.equal(byBytes.stats().entries, entries);
});

test("one workspace cannot flush the others' schemas from the cache", () => {
  const v = new ParamsValidator({ maxEntries: 40 });
  const schemaNo = (i: number) => JSON.stringify({ type: "object", properties: { [`p${i}`]: { type: "integer" } } });
  for (let i = 0; i < 5; i++) v.check("victim", schemaNo(i), {});
  for (let i = 100; i < 400; i++) v.check("attacker", schemaNo(i), {});
  assert.equal(v.stats("victim").entries, 5);
  assert.equal(v.stats("attacker").entries, 10);
  assert.equal(v.stats().entries, 15);
});

test("the byte estimate is not below the measured heap of cached validators", () => {
  // A collection before each reading, so the figure is what the cache holds, not garbage.
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  const v = new ParamsValidator({ maxEntries: 100_000, maxBytes: Number.MAX_SAFE_INTEGER });
  gc();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < 300; i++) {
    const properties = Object.fromEntries(
      Array.from({ length: 1 + (i % 40) }, (_, j) => [
        `p${i}_${j}`,
        { type: "string", pattern: `^[a-z]{1,${j + 1}}$`, maxLength: 99 },
      ]),
    );
    v.check(ws, JSON.stringify({ type: "object", properties, required: Object.keys(properties).slice(0, 3) }), {});
  }
  gc();
  const measured = process.memoryUsage().heapUsed - before;
  const { estimatedBytes } = v.stats();
  process.stdout.write(
    `# 300 cached validators: measured heap ${(measured / 1024).toFixed(0)} KiB, estimate ${(estimatedBytes / 1024).toFixed(0)} KiB\n`,
  );
  assert.ok(estimatedBytes >= measured, `estimate ${estimatedBytes} < measured ${measured}`);
});
