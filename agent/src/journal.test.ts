import assert from "node:assert/strict";
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { Journal } from "./journal.ts";

const dirs: string[] = [];
const fresh = () => {
  const d = mkdtempSync(join(tmpdir(), "ferry-journal-"));
  dirs.push(d);
  return d;
};
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

test("unacknowledged messages survive a restart, in order; acknowledged ones do not", () => {
  const dir = fresh();
  const j = new Journal<{ n: number }>(dir);
  for (let i = 1; i <= 5; i++) j.put(i, { n: i });
  j.ack(2);
  j.ack(4);
  j.close();
  const again = new Journal<{ n: number }>(dir);
  assert.deepEqual(
    [...again.pending.entries()],
    [
      [1, { n: 1 }],
      [3, { n: 3 }],
      [5, { n: 5 }],
    ],
  );
  assert.equal(again.lastMsgId, 5);
  again.close();
});

test("a line cut short by a crash is ignored", () => {
  const dir = fresh();
  const j = new Journal<string>(dir);
  j.put(1, "a");
  j.close();
  appendFileSync(join(dir, "journal.jsonl"), '{"op":"put","msgId":2,"mess');
  const again = new Journal<string>(dir);
  assert.deepEqual([...again.pending.keys()], [1]);
  again.close();
});

test("the file is compacted once acknowledged entries pile up", () => {
  const dir = fresh();
  const j = new Journal<string>(dir);
  for (let i = 1; i <= 12_000; i++) {
    j.put(i, "x");
    if (i !== 7) j.ack(i);
  }
  j.close();
  const lines = readFileSync(join(dir, "journal.jsonl"), "utf8").trim().split("\n");
  assert.ok(lines.length < 5_000, `${lines.length} lines after compaction`);
  const again = new Journal<string>(dir);
  assert.deepEqual([...again.pending.keys()], [7]);
  again.close();
});
