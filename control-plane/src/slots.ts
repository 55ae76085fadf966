import type { Db, Provider } from "@ferry/prisma";
import { type AcquireSlots, PROTOCOL_VERSION } from "@ferry/sdk/protocol";
import type { AgentConnection } from "./agents/connection.ts";
import { changesOf } from "./changes.ts";
import { newId } from "./ids.ts";
import type { Logger } from "./logger.ts";

interface Waiter {
  conn: AgentConnection;
  request: AcquireSlots;
}

/**
 * Workspace-wide limits per task tag (e.g. at most 2 concurrent `gpu` tasks). A slot is a
 * row that belongs to the root flow run's attempt: it is freed when the task run ends, and
 * in any case when the attempt ends, however it ends (lease expiry included), so a crash
 * never leaks one. Waiting requests live in memory; agents ask again after a reconnect.
 * With several replicas, a grant is decided under a per-workspace transaction lock in the
 * database, and freed slots wake the waiters of every replica (a `slotsFreed` change).
 */
export class TagSlots {
  private readonly waiting = new Map<string, Waiter[]>();
  /** Workspaces whose waiters are being served, and whether more slots freed meanwhile. */
  private readonly serving = new Map<string, { again: boolean }>();
  /** Grants are decided one at a time per workspace (count, then insert) in this process. */
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(
    private readonly db: Db,
    private readonly log: Logger,
    private readonly provider: Provider = "sqlite",
  ) {
    changesOf(db).subscribe((c, origin) => {
      if (origin === "remote" && c.kind === "slotsFreed") void this.serve(c.workspaceId);
    });
  }

  async acquire(conn: AgentConnection, request: AcquireSlots): Promise<void> {
    if (await this.tryGrant(conn, request)) return;
    const queue = this.waiting.get(conn.workspaceId) ?? [];
    if (!queue.some((w) => w.request.taskRunId === request.taskRunId)) queue.push({ conn, request });
    this.waiting.set(conn.workspaceId, queue);
  }

  /** Slots were freed in a workspace: grant waiting requests in arrival order, here and on the other replicas. */
  async released(workspaceId: string): Promise<void> {
    changesOf(this.db).publish({ kind: "slotsFreed", workspaceId });
    await this.serve(workspaceId);
  }

  private async serve(workspaceId: string): Promise<void> {
    if (!this.waiting.get(workspaceId)?.length) return;
    const current = this.serving.get(workspaceId);
    if (current) {
      current.again = true; // the pass in progress looks once more, so no freed slot goes unnoticed
      return;
    }
    const state = { again: true };
    this.serving.set(workspaceId, state);
    try {
      while (state.again) {
        state.again = false;
        const queue = this.waiting.get(workspaceId) ?? [];
        const still: Waiter[] = [];
        for (const w of queue) {
          if (!w.conn.open) continue; // the agent asks again when it reconnects
          if (!(await this.tryGrant(w.conn, w.request))) still.push(w);
        }
        // Requests that arrived during the pass were appended to the same queue object.
        const arrived = (this.waiting.get(workspaceId) ?? []).filter((w) => !queue.includes(w));
        this.waiting.set(workspaceId, [...still, ...arrived]);
      }
    } finally {
      this.serving.delete(workspaceId);
    }
  }

  /**
   * Frees the slots of task runs of one root attempt that ended. Only that attempt's slot rows
   * are deleted: a report can never free the slots another run holds, whatever ids it names.
   */
  async releaseTasks(workspaceId: string, flowRunId: string, attempt: number, taskRunIds: string[]): Promise<void> {
    if (!taskRunIds.length) return;
    const { count } = await this.db.concurrencySlot.deleteMany({
      where: { workspaceId, flowRunId, attempt, taskRunId: { in: taskRunIds } },
    });
    if (count) await this.released(workspaceId);
  }

  private tryGrant(conn: AgentConnection, request: AcquireSlots): Promise<boolean> {
    const previous = this.locks.get(conn.workspaceId) ?? Promise.resolve();
    const next = previous.then(() => this.grant(conn, request));
    const settled = next.catch(() => false);
    this.locks.set(conn.workspaceId, settled);
    void settled.then(() => {
      if (this.locks.get(conn.workspaceId) === settled) this.locks.delete(conn.workspaceId);
    });
    return next;
  }

  private async grant(conn: AgentConnection, request: AcquireSlots): Promise<boolean> {
    const workspaceId = conn.workspaceId;
    const run = await this.db.flowRun.findFirst({
      where: { id: request.flowRunId, workspaceId, agentId: conn.agentId, attempt: request.attempt },
      select: { stateType: true },
    });
    if (!run || !["PENDING", "RUNNING"].includes(run.stateType)) return true; // the attempt is over: nothing to wait for
    const granted = await this.db.$transaction(async (tx) => {
      // Count-then-insert must not interleave with another replica's grant in this workspace.
      if (this.provider === "postgresql")
        await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtext(${`ferry-slots:${workspaceId}`}))`;
      // Only this attempt's rows: slots another run holds under the same task-run id are not ours.
      const held = await tx.concurrencySlot.findMany({
        where: { workspaceId, taskRunId: request.taskRunId, flowRunId: request.flowRunId, attempt: request.attempt },
        select: { tag: true },
      });
      const missing = request.tags.filter((t) => !held.some((h) => h.tag === t));
      const limits = await tx.tagLimit.findMany({ where: { workspaceId, tag: { in: missing } } });
      for (const limit of limits) {
        const used = await tx.concurrencySlot.count({ where: { workspaceId, tag: limit.tag } });
        if (used >= limit.maxConcurrent) return false;
      }
      // Only limited tags take a slot; the others are free.
      await tx.concurrencySlot.createMany({
        data: limits.map((l) => ({
          id: newId(),
          workspaceId,
          tag: l.tag,
          taskRunId: request.taskRunId,
          flowRunId: request.flowRunId,
          attempt: request.attempt,
        })),
      });
      return true;
    });
    if (granted) {
      conn.send({
        type: "slots.granted",
        v: PROTOCOL_VERSION,
        flowRunId: request.flowRunId,
        attempt: request.attempt,
        taskRunId: request.taskRunId,
      });
    } else {
      this.log.debug({ taskRunId: request.taskRunId, tags: request.tags }, "task run waits for a concurrency slot");
    }
    return granted;
  }
}
