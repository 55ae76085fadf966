import assert from "node:assert/strict";
import { test } from "node:test";
import { z } from "zod";
import { ParamsValidator } from "./params.ts";

const schema = JSON.stringify(z.toJSONSchema(z.object({ grid: z.array(z.number()).min(1), name: z.string().optional() })));

test("valid parameters pass", () => {
  assert.deepEqual(new ParamsValidator().check(schema, { grid: [0.1] }), []);
});

test("invalid parameters list every problem with its path", () => {
  const issues = new ParamsValidator().check(schema, { grid: ["x"], name: 3 });
  assert.ok(
    issues.some((i) => i.startsWith("grid.0:")),
    issues.join("\n"),
  );
  assert.ok(
    issues.some((i) => i.startsWith("name:")),
    issues.join("\n"),
  );
  assert.ok(new ParamsValidator().check(schema, {})[0]?.includes("grid"));
});

test("a broken schema is reported, not thrown", () => {
  assert.match(new ParamsValidator().check('{"type": 12}', {})[0] ?? "", /schema is invalid/);
});
