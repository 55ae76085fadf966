import { statSync } from "node:fs";
import { type LoadedFile, PROTOCOL_VERSION } from "@ferry/sdk/protocol";
import { FlowChild, type FlowChildSink, quietSink } from "./flow-process.ts";
import type { Logger } from "./logger.ts";

export interface WarmPoolOptions {
  /** Idle prepared processes kept per entrypoint (0: the pool is off, every run starts cold). */
  size: number;
  /** Runs one process may serve before it exits (1: a fresh process per run). */
  maxRunsPerProcess: number;
  /** Directory flow processes run in (the agent's work dir). */
  workDir: string;
  /** Shown in the title of idle processes: `ferry-flow warm <agentName>`. */
  agentName: string;
  log: Pick<Logger, "info" | "warn" | "debug">;
  /** Entrypoints kept warm at once; the least recently used one is dropped beyond this (default 4). */
  maxEntrypoints?: number;
  /** New processes started per second at most, across entrypoints (default 4). */
  spawnsPerSecond?: number;
  /** The flow processes' environment (default: the allow-listed agent environment, see flow-env.ts). */
  env?: Readonly<Record<string, string>>;
  /** Starts a process (tests replace it). */
  spawn?: (sink: FlowChildSink) => FlowChild;
  /** Reads a file's stamp now, undefined when it is gone (tests replace it). */
  stat?: (path: string) => Omit<LoadedFile, "path"> | undefined;
}

type WarmState = "loading" | "preparing" | "idle";

interface WarmProcess {
  child: FlowChild;
  entrypoint: string;
  state: WarmState;
  files: LoadedFile[];
  /** Runs it has served so far. */
  runs: number;
}

function statFile(path: string): Omit<LoadedFile, "path"> | undefined {
  try {
    const s = statSync(path);
    return { size: s.size, mtimeMs: s.mtimeMs, ctimeMs: s.ctimeMs, ino: s.ino };
  } catch {
    return undefined;
  }
}

/**
 * The first of `files` whose stamp differs from the file on disk now (changed, replaced or
 * deleted), or undefined when all match: the code a process loaded is still the code on disk.
 */
export function changedFile(
  files: readonly LoadedFile[],
  stat: (path: string) => Omit<LoadedFile, "path"> | undefined = statFile,
): string | undefined {
  for (const f of files) {
    const now = stat(f.path);
    if (!now || now.size !== f.size || now.mtimeMs !== f.mtimeMs || now.ctimeMs !== f.ctimeMs || now.ino !== f.ino) return f.path;
  }
  return undefined;
}

/**
 * Flow processes started ahead of runs, per entrypoint (the code version key: the agent's
 * work dir is fixed, so the entrypoint's absolute path names it). A process in the pool has
 * imported the SDK and the entrypoint with its imports, and waits for `start`; a run that
 * takes one skips the process start-up and module loading.
 *
 * - `take` never hands out a process whose loaded files changed on disk since it loaded them;
 *   such a process is ended, and the run starts cold.
 * - Taking refills the pool in the background, never before the run has been handed its process,
 *   and at most `spawnsPerSecond` new processes a second.
 * - A process that fails to prepare or dies while idle is dropped (the run starts cold).
 */
export class WarmPool {
  private readonly byEntrypoint = new Map<string, WarmProcess[]>();
  /** Entrypoints by last use, oldest first. */
  private readonly recent: string[] = [];
  /** Entrypoints whose last prepare failed: not refilled until their next run. */
  private readonly failing = new Set<string>();
  private readonly spawnTimes: number[] = [];
  private readonly loadedFiles = new WeakMap<FlowChild, LoadedFile[]>();
  private refillTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly options: WarmPoolOptions) {}

  get enabled(): boolean {
    return this.options.size > 0 && !this.closed;
  }

  /** Processes alive in the pool (loading or idle), for an entrypoint or in all. */
  count(entrypoint?: string): number {
    if (entrypoint) return this.byEntrypoint.get(entrypoint)?.length ?? 0;
    let n = 0;
    for (const list of this.byEntrypoint.values()) n += list.length;
    return n;
  }

  /** Processes prepared and waiting for a run. */
  idle(entrypoint: string): number {
    return (this.byEntrypoint.get(entrypoint) ?? []).filter((w) => w.state === "idle").length;
  }

  /**
   * A prepared process for `entrypoint` (an absolute path), or undefined: start cold. Either
   * way the pool for `entrypoint` is refilled afterwards.
   */
  take(entrypoint: string): { child: FlowChild; runs: number } | undefined {
    if (!this.enabled) return undefined;
    this.touch(entrypoint);
    this.failing.delete(entrypoint);
    const list = this.byEntrypoint.get(entrypoint) ?? [];
    let taken: WarmProcess | undefined;
    for (const w of list.filter((p) => p.state === "idle")) {
      const changed = changedFile(w.files, this.options.stat);
      if (changed) {
        this.options.log.info({ entrypoint, changed, pid: w.child.pid }, "warm process holds old code; ending it");
        this.remove(w);
        w.child.kill("SIGTERM");
        continue;
      }
      taken = w;
      break;
    }
    this.scheduleRefill();
    if (!taken) {
      this.options.log.info({ entrypoint, loading: list.length }, "no warm process ready; starting cold");
      return undefined;
    }
    this.remove(taken);
    taken.runs++;
    return { child: taken.child, runs: taken.runs };
  }

  /**
   * A process whose run completed and that may serve another (`runs` served so far). It goes
   * back to the pool if there is room; otherwise it is ended.
   */
  giveBack(entrypoint: string, child: FlowChild, runs: number, files: LoadedFile[]): void {
    const list = this.byEntrypoint.get(entrypoint) ?? [];
    // (An entrypoint dropped from the pool while the run went on gets no process back either.)
    if (!this.enabled || !child.alive || runs >= this.options.maxRunsPerProcess || !this.recent.includes(entrypoint)) {
      child.kill("SIGTERM");
      return;
    }
    if (list.length >= this.options.size) {
      // The refill after the take started a fresh process in its place: the returning one is
      // already loaded and is the reason reuse was asked for, so the newest fresh one makes room.
      const fresh = list.findLast((w) => w.runs === 0);
      if (!fresh) {
        child.kill("SIGTERM");
        return;
      }
      this.remove(fresh);
      fresh.child.kill("SIGTERM");
    }
    const w: WarmProcess = { child, entrypoint, state: "idle", files, runs };
    child.setSink(this.idleSink(() => w));
    list.unshift(w); // a process already used goes first, so fewer processes stay in use
    this.byEntrypoint.set(entrypoint, list);
  }

  /** The files a pooled process loaded (kept with a taken process so it can come back). */
  filesOf(child: FlowChild): LoadedFile[] {
    return this.loadedFiles.get(child) ?? [];
  }

  /** Ends every pooled process and stops refilling; resolves when they are gone (or after `timeoutMs`). */
  async close(timeoutMs = 3_000): Promise<void> {
    this.closed = true;
    clearTimeout(this.refillTimer);
    const all = [...this.byEntrypoint.values()].flat();
    this.byEntrypoint.clear();
    const gone = all.map(
      (w) =>
        new Promise<void>((resolve) => {
          if (!w.child.alive) return resolve();
          w.child.setSink(quietSink(() => resolve()));
          w.child.kill("SIGTERM");
        }),
    );
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        for (const w of all) w.child.kill("SIGKILL");
        resolve();
      }, timeoutMs);
    });
    await Promise.race([Promise.all(gone), deadline]);
    clearTimeout(timer);
  }

  private touch(entrypoint: string): void {
    const at = this.recent.indexOf(entrypoint);
    if (at >= 0) this.recent.splice(at, 1);
    this.recent.push(entrypoint);
    const max = this.options.maxEntrypoints ?? 4;
    while (this.recent.length > max) {
      const dropped = this.recent.shift();
      if (!dropped) break;
      for (const w of this.byEntrypoint.get(dropped) ?? []) w.child.kill("SIGTERM");
      this.byEntrypoint.delete(dropped);
      this.options.log.debug({ entrypoint: dropped }, "warm pool: entrypoint not used lately; its processes ended");
    }
  }

  private remove(w: WarmProcess): void {
    const list = this.byEntrypoint.get(w.entrypoint);
    if (!list) return;
    const at = list.indexOf(w);
    if (at >= 0) list.splice(at, 1);
  }

  /** Refills soon, off the dispatch path: the run that took a process gets its `start` first. */
  private scheduleRefill(delayMs = 10): void {
    if (this.refillTimer || this.closed) return;
    this.refillTimer = setTimeout(() => {
      this.refillTimer = undefined;
      this.refill();
    }, delayMs);
  }

  private refill(): void {
    const perSecond = this.options.spawnsPerSecond ?? 4;
    for (const entrypoint of [...this.recent].reverse()) {
      if (this.failing.has(entrypoint)) continue;
      while (this.count(entrypoint) < this.options.size) {
        const now = Date.now();
        while (this.spawnTimes.length && (this.spawnTimes[0] ?? 0) <= now - 1_000) this.spawnTimes.shift();
        if (this.spawnTimes.length >= perSecond) {
          // Over the rate: come back when the oldest spawn of the last second leaves the window.
          this.scheduleRefill((this.spawnTimes[0] ?? now) + 1_000 - now + 1);
          return;
        }
        this.spawnTimes.push(now);
        this.spawnFor(entrypoint);
      }
    }
  }

  private spawnFor(entrypoint: string): void {
    let w: WarmProcess | undefined;
    const sink = this.idleSink(() => w);
    const child = this.options.spawn
      ? this.options.spawn(sink)
      : FlowChild.spawn(
          this.options.workDir,
          { FERRY_AGENT_NAME: this.options.agentName, FERRY_FLOW_WARM: "1" },
          sink,
          this.options.env,
        );
    w = { child, entrypoint, state: "loading", files: [], runs: 0 };
    const list = this.byEntrypoint.get(entrypoint) ?? [];
    list.push(w);
    this.byEntrypoint.set(entrypoint, list);
  }

  /** What a pooled process's messages and end mean while it waits. */
  private idleSink(get: () => WarmProcess | undefined): FlowChildSink {
    return {
      message: (msg) => {
        const w = get();
        if (!w) return;
        if (msg.type === "ready" && w.state === "loading") {
          w.state = "preparing";
          w.child.send({
            type: "prepare",
            v: PROTOCOL_VERSION,
            entrypoint: w.entrypoint,
            maxRuns: this.options.maxRunsPerProcess,
          });
        } else if (msg.type === "prepared" && w.state === "preparing") {
          if (msg.error) {
            this.options.log.warn(
              { entrypoint: w.entrypoint, error: msg.error },
              "warm process could not prepare; runs start cold",
            );
            this.failing.add(w.entrypoint);
            this.remove(w);
            w.child.kill("SIGTERM");
            return;
          }
          w.state = "idle";
          w.files = msg.files;
          this.loadedFiles.set(w.child, msg.files);
        }
      },
      badMessage: (problem) => this.options.log.warn({ pid: get()?.child.pid, problem }, "warm process sent a bad message"),
      line: (level, text) => this.options.log.debug({ pid: get()?.child.pid, level, text }, "warm process output"),
      closed: (code, signal) => {
        const w = get();
        if (!w) return;
        const list = this.byEntrypoint.get(w.entrypoint);
        if (!list?.includes(w)) return;
        this.remove(w);
        this.options.log.warn({ entrypoint: w.entrypoint, pid: w.child.pid, code, signal }, "warm process died while idle");
        this.scheduleRefill();
      },
    };
  }
}
