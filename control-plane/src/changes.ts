import type { Db } from "@ferry/prisma";

import { z } from "zod";

const id = z.string().min(1).max(200);

export const RunPart = z.enum(["state", "tasks", "logs"]);
export type RunPart = z.infer<typeof RunPart>;

/**
 * What changed, after it was committed, and what other control-plane replicas must act on.
 * The web app's live views subscribe to these and re-read what they show (the database stays
 * the source of truth; a missed or merged notification costs at most one extra read, never a
 * wrong screen). With PostgreSQL every change is also relayed to the other replicas
 * (cluster.ts), so this schema is a wire format and is validated on receipt.
 *
 * - `runs`: a flow run of the workspace was created, changed state or was deleted.
 * - `run`: something inside one root run changed: its task runs (`tasks`), its logs
 *   (`logs`), or the run itself or one of its child flow runs (`state`).
 * - `agents`: an agent connected, disconnected, or took or released work.
 * - `deployments`: a deployment was created, changed or deleted.
 * - `runState`: a flow run entered a state (what event triggers and alert rules listen to).
 * - `cancel`: the agent holding an attempt must stop it (sent by whichever replica holds its socket).
 * - `tokenRevoked`: close the agent sockets opened with this token.
 * - `slotsFreed`: task-tag concurrency slots were freed in a workspace (wake the waiters).
 * - `wake`: a background worker (which runs on one replica) has new work.
 */
export const Change = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("runs"), workspaceId: id }),
  z.object({ kind: z.literal("run"), workspaceId: id, rootId: id, parts: z.array(RunPart).max(3) }),
  z.object({ kind: z.literal("agents"), workspaceId: id }),
  z.object({ kind: z.literal("deployments"), workspaceId: id }),
  z.object({
    kind: z.literal("runState"),
    workspaceId: id,
    flowRunId: id,
    deploymentId: id.nullable(),
    stateType: z.string().max(40),
    stateName: z.string().max(100),
    attempt: z.number().int().nonnegative(),
  }),
  z.object({
    kind: z.literal("cancel"),
    workspaceId: id,
    agentId: id,
    flowRunId: id,
    attempt: z.number().int().nonnegative(),
    reason: z.string().max(500),
  }),
  z.object({ kind: z.literal("tokenRevoked"), workspaceId: id, tokenId: id }),
  z.object({ kind: z.literal("slotsFreed"), workspaceId: id }),
  z.object({ kind: z.literal("wake"), worker: z.enum(["scheduler", "backfiller", "notifier"]) }),
]);
export type Change = z.infer<typeof Change>;

/** Where a change came from: this process, or another replica (through the relay). */
export type Origin = "local" | "remote";

type Listener = (change: Change, origin: Origin) => void;

/**
 * In-process fan-out of committed changes. One per database client, so every module that
 * writes through `db` can announce what it wrote without threading a bus through every call.
 * A relay (cluster.ts, PostgreSQL) forwards local changes to the other replicas and hands
 * theirs to `receive`.
 */
export class ChangeFeed {
  private readonly listeners = new Set<Listener>();
  /** Forwards local changes to the other replicas (set by the cluster relay). */
  relay: ((change: Change) => void) | undefined;

  publish(change: Change): void {
    this.deliver(change, "local");
    this.relay?.(change);
  }

  /** A change another replica published. */
  receive(change: Change): void {
    this.deliver(change, "remote");
  }

  private deliver(change: Change, origin: Origin): void {
    for (const listener of this.listeners) {
      try {
        listener(change, origin);
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
