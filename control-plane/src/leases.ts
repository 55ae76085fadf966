import type { Db } from "@ferry/prisma";
import type { Dispatcher } from "./dispatcher.ts";
import { HELD_STATES } from "./dispatcher.ts";
import type { Logger } from "./logger.ts";
import { lostRunState, proposeFlowRunState } from "./orchestration/flow-runs.ts";
import type { TagSlots } from "./slots.ts";

/**
 * Ends runs whose lease ran out (their agent stopped heartbeating): RUNNING/PENDING become
 * CRASHED (and are retried per policy), CANCELLING becomes CANCELLED. This is a background
 * sweep, not part of dispatch; its period bounds how late after expiry a crash is noticed.
 */
export class LeaseReaper {
  private timer: NodeJS.Timeout | undefined;
  private grace: NodeJS.Timeout | undefined;
  private sweeping = false;

  constructor(
    private readonly db: Db,
    private readonly dispatcher: Dispatcher,
    private readonly slots: TagSlots,
    private readonly log: Logger,
    private readonly periodMs: number,
  ) {}

  /**
   * Starts sweeping after `graceMs`: after a control-plane restart, agents get one lease
   * period to reconnect and renew before their runs are declared crashed.
   */
  start(graceMs: number): void {
    this.grace = setTimeout(() => {
      void this.sweep();
      this.timer = setInterval(() => void this.sweep(), this.periodMs);
      this.timer.unref();
    }, graceMs);
    this.grace.unref();
  }

  stop(): void {
    clearTimeout(this.grace);
    clearInterval(this.timer);
  }

  async sweep(): Promise<number> {
    if (this.sweeping) return 0;
    this.sweeping = true;
    try {
      const expired = await this.db.flowRun.findMany({
        where: { stateType: { in: HELD_STATES }, leaseExpiresAt: { lt: new Date() }, parentFlowRunId: null },
        take: 500,
      });
      for (const run of expired) {
        const outcome = await proposeFlowRunState(this.db, {
          workspaceId: run.workspaceId,
          flowRunId: run.id,
          state: lostRunState(run.stateType, "lease expired: the agent stopped sending heartbeats"),
          proposer: "system",
        });
        if (outcome.result.status === "ACCEPT") {
          this.log.warn(
            { flowRunId: run.id, workspaceId: run.workspaceId, agentId: run.agentId, attempt: run.attempt },
            "run lease expired",
          );
          this.dispatcher.release(run.agentId, run.id);
          await this.slots.released(run.workspaceId);
        }
      }
      return expired.length;
    } catch (err) {
      this.log.error({ err }, "lease sweep failed");
      return 0;
    } finally {
      this.sweeping = false;
    }
  }
}
