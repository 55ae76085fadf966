import assert from "node:assert/strict";
import { test } from "node:test";
import { newId } from "./ids.ts";

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

test("ids are UUIDv7, unique, and increase in creation order, also within one millisecond", () => {
  const ids = Array.from({ length: 10_000 }, () => newId(1_700_000_000_000));
  for (const id of ids.slice(0, 50)) assert.match(id, UUID_V7);
  assert.equal(new Set(ids).size, ids.length);
  assert.deepEqual([...ids].sort(), ids, "lexical order is creation order");
  // The timestamp is in the first 48 bits.
  assert.equal(Number.parseInt(newId(1_800_000_000_000).replaceAll("-", "").slice(0, 12), 16), 1_800_000_000_000);
});

test("a clock that goes back does not break the order", () => {
  const a = newId(1_900_000_000_000);
  const b = newId(1_899_999_999_000);
  assert.ok(b > a);
});
