import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import type { LoadedFile } from "@ferry/sdk/protocol";
import { changedFile, WarmPool, type WarmPoolOptions } from "./warm-pool.ts";

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A project with flows/main.ts importing flows/dep.ts, both ES modules. */
function project(): { dir: string; entrypoint: string; dep: string } {
  const dir = mkdtempSync(join(tmpdir(), "ferry-warm-"));
  dirs.push(dir);
  writeFileSync(join(dir, "package.json"), JSON.stringify({ type: "module" }));
  const dep = join(dir, "dep.ts");
  writeFileSync(dep, 'export const version = "v1";\n');
  const entrypoint = join(dir, "main.ts");
  writeFileSync(
    entrypoint,
    'import { flow } from "@ferry/sdk";\nimport { version } from "./dep.ts";\nexport const f = flow({ name: "f" }, async () => version);\n',
  );
  return { dir, entrypoint, dep };
}

interface Logged {
  level: string;
  obj: Record<string, unknown>;
  msg: string;
}
function recorder(): { lines: Logged[]; log: ConstructorParameters<typeof WarmPool>[0]["log"] } {
  const lines: Logged[] = [];
  const at = (level: string) => (obj: object, msg?: string) =>
    lines.push({ level, obj: obj as Record<string, unknown>, msg: msg ?? "" });
  return { lines, log: { info: at("info"), warn: at("warn"), debug: at("debug") } as never };
}

async function until(what: string, fn: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A pool for `dir` (defaults: 2 per entrypoint, one run per process, a silent log). */
function poolIn(dir: string, options: Partial<WarmPoolOptions> = {}): WarmPool {
  return new WarmPool({ size: 2, maxRunsPerProcess: 1, workDir: dir, agentName: "t", log: recorder().log, ...options });
}

/** The first run of an entrypoint seeds its pool; waits for a prepared process and takes it. */
async function takePrepared(pool: WarmPool, entrypoint: string) {
  pool.take(entrypoint);
  await until("a process is prepared", () => pool.idle(entrypoint) >= 1);
  const taken = pool.take(entrypoint);
  assert.ok(taken);
  return taken;
}

test("changedFile: a file's size, mtime, ctime, inode or existence changing counts; the same stamps do not", () => {
  const stamp: LoadedFile = { path: "/p/a.ts", size: 10, mtimeMs: 1, ctimeMs: 2, ino: 3 };
  const same = { size: 10, mtimeMs: 1, ctimeMs: 2, ino: 3 };
  assert.equal(
    changedFile([stamp], () => same),
    undefined,
  );
  assert.equal(
    changedFile([], () => undefined),
    undefined,
  );
  for (const change of [{ size: 11 }, { mtimeMs: 5 }, { ctimeMs: 6 }, { ino: 4 }])
    assert.equal(
      changedFile([stamp], () => ({ ...same, ...change })),
      "/p/a.ts",
      JSON.stringify(change),
    );
  assert.equal(
    changedFile([stamp], () => undefined),
    "/p/a.ts",
    "deleted",
  );
});

test("changedFile reads real files: a rewrite with the same size is still caught by its mtime", () => {
  const { dep } = project();
  const s = statSync(dep);
  const stamp: LoadedFile = { path: dep, size: s.size, mtimeMs: s.mtimeMs, ctimeMs: s.ctimeMs, ino: s.ino };
  assert.equal(changedFile([stamp]), undefined);
  writeFileSync(dep, 'export const version = "v2";\n');
  utimesSync(dep, new Date(), new Date(Date.now() + 5_000));
  assert.equal(changedFile([stamp]), dep);
});

test("a pool of size 0 never starts a process", () => {
  const { dir, entrypoint } = project();
  const pool = poolIn(dir, { size: 0, maxRunsPerProcess: 1 });
  assert.equal(pool.take(entrypoint), undefined);
  assert.equal(pool.count(), 0);
  assert.equal(pool.enabled, false);
});

test("the pool prepares processes per entrypoint, hands out only current code, and ends them all on close", async () => {
  const { dir, entrypoint, dep } = project();
  const { log, lines } = recorder();
  const pool = poolIn(dir, { size: 2, maxRunsPerProcess: 1, log });
  try {
    assert.equal(pool.take(entrypoint), undefined, "nothing is warm before the first run");
    await until("two processes are prepared", () => pool.idle(entrypoint) === 2);

    const taken = pool.take(entrypoint);
    assert.ok(taken?.child.alive);
    assert.equal(taken.runs, 1);
    const files = pool.filesOf(taken.child).map((f) => f.path);
    assert.deepEqual(files.sort(), [dep, entrypoint].sort(), "the user's modules, not the SDK's nor node_modules'");
    taken.child.kill("SIGKILL");

    // The pool refills what was taken.
    await until("the pool is full again", () => pool.idle(entrypoint) === 2);
    const before = pool.count(entrypoint);
    assert.equal(before, 2);

    // New code on disk: the prepared processes are stale, ended, and the run starts cold.
    writeFileSync(dep, 'export const version = "v2"; // longer\n');
    assert.equal(pool.take(entrypoint), undefined);
    assert.ok(lines.some((l) => l.msg.includes("holds old code") && l.obj.changed === dep));
    await until("fresh processes are prepared", () => pool.idle(entrypoint) === 2);
    const current = pool.take(entrypoint);
    assert.ok(current, "a process of the new code");
    current.child.kill("SIGKILL"); // a taken process is its run's to end, not the pool's
  } finally {
    await pool.close();
  }
  assert.equal(pool.count(), 0);
  assert.equal(pool.take(entrypoint), undefined, "a closed pool hands out nothing");
});

test("a process that fails to prepare is dropped and not replaced until the next run", async () => {
  const { dir } = project();
  const broken = join(dir, "broken.ts");
  writeFileSync(broken, 'throw new Error("boom at import");\n');
  const { log, lines } = recorder();
  const pool = poolIn(dir, { size: 1, maxRunsPerProcess: 1, log });
  try {
    assert.equal(pool.take(broken), undefined);
    await until("the prepare failure is logged", () => lines.some((l) => l.msg.includes("could not prepare")));
    await until("the failed process is gone", () => pool.count(broken) === 0);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(pool.count(broken), 0, "no endless respawning");
    assert.match(String(lines.find((l) => l.msg.includes("could not prepare"))?.obj.error), /boom at import/);
  } finally {
    await pool.close();
  }
});

test("new processes are started at most spawnsPerSecond a second", async () => {
  const { dir, entrypoint } = project();
  const pool = poolIn(dir, { size: 3, maxRunsPerProcess: 1, spawnsPerSecond: 1 });
  try {
    pool.take(entrypoint);
    await until("one process was started", () => pool.count(entrypoint) >= 1);
    assert.equal(pool.count(entrypoint), 1, "a second one waits for the next second");
    await until("the rest follow", () => pool.count(entrypoint) === 3);
  } finally {
    await pool.close();
  }
});

test("giveBack: a process with runs left returns to the pool in front of fresh ones; one at its limit is ended", async () => {
  const { dir, entrypoint } = project();
  const pool = poolIn(dir, { size: 1, maxRunsPerProcess: 2 });
  try {
    const first = await takePrepared(pool, entrypoint);
    await until("the refill started another", () => pool.count(entrypoint) === 1);
    pool.giveBack(entrypoint, first.child, first.runs, pool.filesOf(first.child));
    assert.equal(pool.count(entrypoint), 1, "the returning process took the fresh one's place");
    const again = pool.take(entrypoint);
    assert.equal(again?.child, first.child);
    assert.equal(again?.runs, 2);
    pool.giveBack(entrypoint, first.child, 2, pool.filesOf(first.child));
    await until("the process at its limit has exited", () => !first.child.alive);
  } finally {
    await pool.close();
  }
});

test("only the most recently run entrypoints keep processes", async () => {
  const { dir, entrypoint } = project();
  const other = join(dir, "other.ts");
  writeFileSync(other, 'import { flow } from "@ferry/sdk";\nexport const g = flow({ name: "g" }, async () => 1);\n');
  const pool = poolIn(dir, { size: 1, maxRunsPerProcess: 2, maxEntrypoints: 1 });
  try {
    const first = await takePrepared(pool, entrypoint);
    pool.take(other);
    assert.equal(pool.count(entrypoint), 0, "the first entrypoint's pool is dropped");
    pool.giveBack(entrypoint, first.child, first.runs, pool.filesOf(first.child));
    await until("a process returned for a dropped entrypoint is ended", () => !first.child.alive);
    await until("the second entrypoint's pool fills", () => pool.idle(other) === 1);
  } finally {
    await pool.close();
  }
});
