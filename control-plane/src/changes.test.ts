import assert from "node:assert/strict";
import { getEventListeners } from "node:events";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { Db } from "@ferry/prisma";
import { type Change, ChangeFeed, changesOf, type RunPart, runChanged } from "./changes.ts";

// The in-process change feed behind the live views (no database: a plain object stands in
// for the client a feed hangs off).

type Tick = { parts: RunPart[]; first: boolean };
const PENDING: unique symbol = Symbol("pending");

const run = (rootId: string, parts: RunPart[], workspaceId = "ws"): Change => ({ kind: "run", workspaceId, rootId, parts });

/** What `promise` settled to within `ms`, or PENDING. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | typeof PENDING> {
  return Promise.race([promise, sleep(ms).then((): typeof PENDING => PENDING)]);
}

function sorted(parts: RunPart[]): RunPart[] {
  return [...parts].sort();
}

describe("ChangeFeed.watch", () => {
  // The feed's interval timer is unref'd (in a server, the listening socket keeps the process
  // alive): keep the test process alive while a watch waits on it.
  let keepAlive: NodeJS.Timeout | undefined;
  before(() => {
    keepAlive = setInterval(() => {}, 1_000);
  });
  after(() => clearInterval(keepAlive));

  test("yields at once, before any change, and subscribes while it runs", async () => {
    const feed = new ChangeFeed();
    const ac = new AbortController();
    const watch = feed.watch(() => true, ac.signal, 50);
    assert.equal(feed.size, 0, "nothing subscribes before the first read");
    const started = Date.now();
    const first = await watch.next();
    assert.ok(Date.now() - started < 1_000);
    assert.deepEqual(first, { done: false, value: { parts: ["state", "tasks", "logs"], first: true } });
    assert.equal(feed.size, 1);
    ac.abort();
    assert.deepEqual(await watch.next(), { done: true, value: undefined });
    assert.equal(feed.size, 0);
  });

  test("a burst of changes is one yield with the union of their parts", async () => {
    const feed = new ChangeFeed();
    const ac = new AbortController();
    const watch = feed.watch(() => true, ac.signal, 10);
    await watch.next();
    const next = watch.next();
    feed.publish(run("r1", ["tasks"]));
    feed.publish(run("r1", ["logs"]));
    feed.publish(run("r1", ["tasks", "logs"]));
    const tick = await next;
    assert.equal(tick.done, false);
    assert.equal((tick.value as Tick).first, false);
    assert.deepEqual(sorted((tick.value as Tick).parts), ["logs", "tasks"]);
    // Everything was delivered: the next read waits for a new change.
    const after = watch.next();
    assert.equal(await within(after, 100), PENDING);
    feed.publish(run("r1", ["state"]));
    assert.deepEqual((await after).value, { parts: ["state"], first: false });
    ac.abort();
    await watch.return(undefined);
    assert.equal(feed.size, 0);
  });

  test("changes published while the reader is busy are kept and merged into its next read", async () => {
    const feed = new ChangeFeed();
    const ac = new AbortController();
    const watch = feed.watch(() => true, ac.signal, 0);
    await watch.next(); // the reader now "re-reads" the page; meanwhile:
    feed.publish(run("r1", ["logs"]));
    feed.publish(run("r1", ["state"]));
    const tick = await watch.next();
    assert.deepEqual(sorted((tick.value as Tick).parts), ["logs", "state"]);
    ac.abort();
    assert.equal((await watch.next()).done, true);
  });

  test("changes that do not match are ignored; a change of another kind counts as state", async () => {
    const feed = new ChangeFeed();
    const ac = new AbortController();
    const watch = feed.watch(
      (c) => "workspaceId" in c && c.workspaceId === "ws" && (c.kind !== "run" || c.rootId === "mine"),
      ac.signal,
      0,
    );
    await watch.next();
    const next = watch.next();
    feed.publish(run("other", ["tasks"]));
    feed.publish(run("mine", ["logs"], "another-workspace"));
    assert.equal(await within(next, 100), PENDING);
    feed.publish({ kind: "agents", workspaceId: "ws" });
    assert.deepEqual((await next).value, { parts: ["state"], first: false });
    ac.abort();
    await watch.return(undefined);
  });

  test("yields at most once per minIntervalMs: changes arriving meanwhile wait and are merged", async () => {
    const interval = 300;
    const feed = new ChangeFeed();
    const ac = new AbortController();
    const watch = feed.watch(() => true, ac.signal, interval);
    await watch.next();
    const since = Date.now();
    const second = watch.next();
    feed.publish(run("r1", ["tasks"]));
    // Held back by the interval (measured from the previous read): still waiting after 50 ms...
    assert.equal(await within(second, 50), PENDING);
    // ...so a change published now joins the same yield.
    feed.publish(run("r1", ["logs"]));
    const tick = await second;
    assert.deepEqual(sorted((tick.value as Tick).parts), ["logs", "tasks"]);
    assert.ok(Date.now() - since >= interval - 20, `yielded after ${Date.now() - since} ms`);

    // The next change right after a yield waits for the interval again.
    const yielded = Date.now();
    const third = watch.next();
    feed.publish(run("r1", ["state"]));
    assert.equal(await within(third, 50), PENDING);
    assert.deepEqual((await third).value, { parts: ["state"], first: false });
    assert.ok(Date.now() - yielded >= interval - 20, `yielded after ${Date.now() - yielded} ms`);
    ac.abort();
    await watch.return(undefined);
    assert.equal(feed.size, 0);
  });

  test("a change after a quiet spell longer than the interval is yielded without delay", async () => {
    const feed = new ChangeFeed();
    const ac = new AbortController();
    const watch = feed.watch(() => true, ac.signal, 50);
    await watch.next();
    const next = watch.next();
    await sleep(120);
    feed.publish(run("r1", ["tasks"]));
    const published = Date.now();
    assert.deepEqual((await next).value, { parts: ["tasks"], first: false });
    assert.ok(Date.now() - published < 1_000);
    ac.abort();
    await watch.return(undefined);
  });

  test("ends when the signal aborts while waiting for a change, and unsubscribes", async () => {
    const feed = new ChangeFeed();
    const ac = new AbortController();
    const watch = feed.watch(() => true, ac.signal, 10);
    await watch.next();
    assert.equal(feed.size, 1);
    const next = watch.next();
    assert.equal(await within(next, 30), PENDING);
    ac.abort();
    assert.deepEqual(await within(next, 1_000), { done: true, value: undefined });
    assert.equal(feed.size, 0);
    assert.equal(getEventListeners(ac.signal, "abort").length, 0);
    // Changes after the end reach no one.
    feed.publish(run("r1", ["tasks"]));
    assert.deepEqual(await watch.next(), { done: true, value: undefined });
  });

  test("ends when the signal aborts during the interval wait, without yielding what was pending", async () => {
    const feed = new ChangeFeed();
    const ac = new AbortController();
    const watch = feed.watch(() => true, ac.signal, 5_000);
    await watch.next();
    const next = watch.next();
    feed.publish(run("r1", ["tasks"]));
    assert.equal(await within(next, 50), PENDING);
    ac.abort();
    assert.deepEqual(await within(next, 1_000), { done: true, value: undefined });
    assert.equal(feed.size, 0);
  });

  test("a signal aborted from the start still gets the first yield, then the end", async () => {
    const feed = new ChangeFeed();
    const watch = feed.watch(() => true, AbortSignal.abort(), 10);
    assert.equal((await watch.next()).value?.first, true);
    assert.deepEqual(await watch.next(), { done: true, value: undefined });
    assert.equal(feed.size, 0);
  });

  test("a reader that stops (return) unsubscribes and leaves no listener on its signal", async () => {
    const feed = new ChangeFeed();
    const ac = new AbortController();
    const watches = [feed.watch(() => true, ac.signal, 10), feed.watch(() => true, ac.signal, 10)];
    for (const w of watches) await w.next();
    assert.equal(feed.size, 2);
    await watches[0]?.return(undefined);
    assert.equal(feed.size, 1);
    await watches[1]?.return(undefined);
    assert.equal(feed.size, 0);
    // A long-lived signal shared by many watches must not collect their abort listeners.
    assert.equal(getEventListeners(ac.signal, "abort").length, 0);
  });

  test("several watchers each get every matching change", async () => {
    const feed = new ChangeFeed();
    const ac = new AbortController();
    const a = feed.watch((c) => c.kind === "run", ac.signal, 0);
    const b = feed.watch((c) => c.kind === "runs", ac.signal, 0);
    await a.next();
    await b.next();
    const [na, nb] = [a.next(), b.next()];
    feed.publish(run("r1", ["logs"]));
    feed.publish({ kind: "runs", workspaceId: "ws" });
    assert.deepEqual((await na).value, { parts: ["logs"], first: false });
    assert.deepEqual((await nb).value, { parts: ["state"], first: false });
    ac.abort();
    await Promise.all([a.return(undefined), b.return(undefined)]);
    assert.equal(feed.size, 0);
  });
});

describe("ChangeFeed", () => {
  test("a listener that throws does not keep the others from hearing the change", () => {
    const feed = new ChangeFeed();
    const heard: Change[] = [];
    feed.subscribe(() => {
      throw new Error("broken listener");
    });
    const off = feed.subscribe((c) => heard.push(c));
    feed.publish({ kind: "deployments", workspaceId: "ws" });
    assert.deepEqual(heard, [{ kind: "deployments", workspaceId: "ws" }]);
    off();
    assert.equal(feed.size, 1);
  });

  test("one feed per database client; runChanged announces the run, and the run list when its state changed", () => {
    const db = {} as Db;
    const feed = changesOf(db);
    assert.equal(changesOf(db), feed);
    assert.notEqual(changesOf({} as Db), feed);
    const heard: Change[] = [];
    feed.subscribe((c) => heard.push(c));
    runChanged(db, "ws", "root", ["logs"]);
    runChanged(db, "ws", "root");
    assert.deepEqual(heard, [
      { kind: "run", workspaceId: "ws", rootId: "root", parts: ["logs"] },
      { kind: "runs", workspaceId: "ws" },
      { kind: "run", workspaceId: "ws", rootId: "root", parts: ["state"] },
    ]);
  });
});
