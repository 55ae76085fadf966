import assert from "node:assert/strict";
import { test } from "node:test";
import { z } from "zod";
import { REDACTED, redactParameters } from "./secret-params.ts";

test("write-only fields are redacted, at any depth, in objects and arrays", () => {
  const schema = z.object({
    table: z.string(),
    apiKey: z.string().meta({ writeOnly: true }),
    db: z.object({ host: z.string(), password: z.string().meta({ writeOnly: true }) }),
    targets: z.array(z.object({ url: z.string(), token: z.string().meta({ writeOnly: true }) })),
  });
  const json = JSON.stringify(z.toJSONSchema(schema, { io: "input" }));
  const shown = redactParameters(
    { table: "t", apiKey: "k-123", db: { host: "h", password: "p-456" }, targets: [{ url: "u", token: "x-789" }], extra: 1 },
    json,
  );
  assert.deepEqual(shown, {
    table: "t",
    apiKey: REDACTED,
    db: { host: "h", password: REDACTED },
    targets: [{ url: "u", token: REDACTED }],
    extra: 1,
  });
});

test("without marks (or a schema), parameters are returned as they are", () => {
  const params = { a: 1, b: { c: "d" } };
  assert.equal(redactParameters(params, '{"type":"object","properties":{"a":{"type":"number"}}}'), params);
  assert.equal(redactParameters(params, undefined), params);
  assert.equal(redactParameters(params, "not json writeOnly"), params);
});
