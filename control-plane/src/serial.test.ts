import assert from "node:assert/strict";
import { test } from "node:test";
import { SerialPass } from "./serial.ts";

const tick = () => new Promise((r) => setTimeout(r, 5));

test("kicks during a pass merge into one more pass; passes never overlap; stop ends them", async () => {
  let running = 0;
  let most = 0;
  let passes = 0;
  let release: (() => void) | undefined;
  const s = new SerialPass(
    async () => {
      running++;
      most = Math.max(most, running);
      passes++;
      await new Promise<void>((r) => {
        release = r;
      });
      running--;
    },
    () => {},
  );
  s.kick();
  await tick();
  s.kick();
  s.kick();
  s.kick(); // three kicks while the first pass runs: one more pass
  release?.();
  await tick();
  assert.equal(passes, 2);
  release?.();
  await tick();
  assert.equal(passes, 2, "no pass without a kick");
  assert.equal(most, 1);
  s.stop();
  s.kick();
  await tick();
  assert.equal(passes, 2, "stopped: kicks are ignored");
});

test("an error is reported and the next kick runs again", async () => {
  const errors: unknown[] = [];
  let n = 0;
  const s = new SerialPass(
    async () => {
      n++;
      if (n === 1) throw new Error("boom");
    },
    (err) => errors.push(err),
  );
  s.kick();
  await tick();
  s.kick();
  await tick();
  assert.equal(n, 2);
  assert.equal(errors.length, 1);
});
