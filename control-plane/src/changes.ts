import type { Db } from "@ferry/prisma";

/**
 * What changed, after it was committed. The web app's live views subscribe to these and
 * re-read what they show (the database stays the source of truth; a missed or merged
 * notification costs at most one extra read, never a wrong screen).
 *
 * - `runs`: a flow run of the workspace was created, changed state or was deleted.
 * - `run`: something inside one root run changed: its task runs (`tasks`), its logs
 *   (`logs`), or the run itself or one of its child flow runs (`state`).
 * - `agents`: an agent connected, disconnected, or took or released work.
 * - `deployments`: a deployment was created, changed or deleted.
 * - `runState`: a flow run entered a state (what event triggers listen to).
 */
export type Change =
  | { kind: "runs"; workspaceId: string }
  | { kind: "run"; workspaceId: string; rootId: string; parts: RunPart[] }
  | { kind: "agents"; workspaceId: string }
  | { kind: "deployments"; workspaceId: string }
  | {
      kind: "runState";
      workspaceId: string;
      flowRunId: string;
      deploymentId: string | null;
      stateType: string;
      stateName: string;
      attempt: number;
    };

export type RunPart = "state" | "tasks" | "logs";

type Listener = (change: Change) => void;

/**
 * In-process fan-out of committed changes. One per database client, so every module that
 * writes through `db` can announce what it wrote without threading a bus through every call.
 * (Several control-plane replicas will relay changes through the database: issue 6.)
 */
export class ChangeFeed {
  private readonly listeners = new Set<Listener>();

  publish(change: Change): void {
    for (const listener of this.listeners) {
      try {
        listener(change);
      } catch {
        // a broken listener must not break the writer
      }
    }
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get size(): number {
    return this.listeners.size;
  }

  /**
   * Yields once at the start and then whenever a change that `matches` was published,
   * at most once per `minIntervalMs` (changes arriving meanwhile are merged into the next
   * yield, with the union of their run parts). Ends when `signal` aborts.
   */
  async *watch(
    matches: (change: Change) => boolean,
    signal: AbortSignal | undefined,
    minIntervalMs = 200,
  ): AsyncGenerator<{ parts: RunPart[]; first: boolean }> {
    let pending = new Set<RunPart>();
    let dirty = false;
    let wake: (() => void) | undefined;
    const unsubscribe = this.subscribe((change) => {
      if (!matches(change)) return;
      dirty = true;
      for (const p of change.kind === "run" ? change.parts : (["state"] as const)) pending.add(p);
      wake?.();
    });
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<void>((resolve) => {
      onAbort = resolve;
      if (signal?.aborted) resolve();
      // Removed in `finally`: a long-lived signal shared by many watches must not collect them.
      else signal?.addEventListener("abort", onAbort, { once: true });
    });
    try {
      yield { parts: ["state", "tasks", "logs"], first: true };
      let last = Date.now();
      while (!signal?.aborted) {
        if (!dirty) {
          await Promise.race([new Promise<void>((resolve) => (wake = resolve)), aborted]);
          wake = undefined;
          continue;
        }
        const wait = last + minIntervalMs - Date.now();
        if (wait > 0) {
          await Promise.race([new Promise((resolve) => setTimeout(resolve, wait).unref()), aborted]);
          if (signal?.aborted) break;
        }
        const parts = [...pending];
        pending = new Set();
        dirty = false;
        last = Date.now();
        yield { parts, first: false };
      }
    } finally {
      unsubscribe();
      if (onAbort) signal?.removeEventListener("abort", onAbort);
    }
  }
}

const feeds = new WeakMap<object, ChangeFeed>();

/** The change feed of a database client. */
export function changesOf(db: Db): ChangeFeed {
  let feed = feeds.get(db);
  if (!feed) {
    feed = new ChangeFeed();
    feeds.set(db, feed);
  }
  return feed;
}

/** Announces that a run (and the workspace's run list) changed. */
export function runChanged(db: Db, workspaceId: string, rootId: string, parts: RunPart[] = ["state"]): void {
  const feed = changesOf(db);
  if (parts.includes("state")) feed.publish({ kind: "runs", workspaceId });
  feed.publish({ kind: "run", workspaceId, rootId, parts });
}
