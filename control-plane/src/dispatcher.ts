import { type Db, inList, sqlOf } from "@ferry/prisma";
import type { Deployment, FlowRun } from "@ferry/prisma/sqlite";
import { PROTOCOL_VERSION } from "@ferry/sdk/protocol";
import type { AgentConnection } from "./agents/connection.ts";
import { changesOf, runChanged } from "./changes.ts";
import { newId } from "./ids.ts";
import type { Logger } from "./logger.ts";
import type { Assignment } from "./orchestration/create-run.ts";
import { nextDueTime, readDeployments, readDueRuns, transitionRun } from "./orchestration/flow-run-sql.ts";
import { proposeFlowRunState } from "./orchestration/flow-runs.ts";

export const HELD_STATES = ["PENDING", "RUNNING", "CANCELLING", "PAUSED"];

/** A slot of an agent held for a run being created (the fast path). */
export interface Reservation {
  agent: AgentConnection;
  token: string;
  assignment: Assignment;
  /** performance.now() when the slot was reserved, just before the run is written. */
  at: number;
}

/** A due run as the dispatcher reads it. */
type DueRun = FlowRun & { deployment: Deployment | null };

export interface DispatcherOptions {
  leaseMs: number;
  /**
   * Called when a run's assignment was sent to an agent (by a dispatch pass or the fast path),
   * with the time since the run became dispatchable: created, due, or back in the queue.
   */
  onAssigned?: (run: FlowRun, latencyMs: number) => void;
}

/** Longest single sleep until the next scheduled run is due; re-checked after it. */
const MAX_WAKE_MS = 60_000;
/** Runs one workspace claims in one dispatch pass before the next workspace's turn. */
export const CLAIMS_PER_PASS = 64;

/**
 * Pushes due runs to connected agents the moment there is work and capacity. Every event
 * that can make work dispatchable (run created, agent connected, slot freed, retry due)
 * calls `kick()`; passes are coalesced so one runs at a time. For runs due in the future
 * a single timer wakes the dispatcher at the earliest due time; nothing polls.
 */
export class Dispatcher {
  private readonly agents = new Map<string, AgentConnection>();
  private running = false;
  private again = false;
  /** Which workspace a pass starts at (round robin). */
  private turn = 0;
  private wake: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly db: Db,
    private readonly log: Logger,
    private readonly options: DispatcherOptions,
  ) {
    this.unsubscribe = changesOf(db).subscribe((c, origin) => {
      // Another replica created a run or freed capacity: our agents may take it.
      if (origin === "remote" && (c.kind === "runs" || c.kind === "agents")) this.kick();
      // Whichever replica holds the agent's socket tells it to stop.
      else if (c.kind === "cancel") {
        this.agents.get(c.agentId)?.send({
          type: "run.cancel",
          v: PROTOCOL_VERSION,
          flowRunId: c.flowRunId,
          attempt: c.attempt,
          reason: c.reason,
        });
      }
    });
  }

  addAgent(conn: AgentConnection): void {
    this.agents.set(conn.agentId, conn);
    this.kick();
  }

  removeAgent(conn: AgentConnection): void {
    if (this.agents.get(conn.agentId) === conn) this.agents.delete(conn.agentId);
  }

  agent(agentId: string): AgentConnection | undefined {
    return this.agents.get(agentId);
  }

  connected(): AgentConnection[] {
    return [...this.agents.values()];
  }

  /** Tells the agent holding an attempt to stop it, through whichever replica it is connected to. */
  cancelOnAgent(workspaceId: string, agentId: string, flowRunId: string, attempt: number, reason: string): void {
    changesOf(this.db).publish({ kind: "cancel", workspaceId, agentId, flowRunId, attempt, reason });
  }

  /** A slot was freed or a run went back to the queue. */
  release(agentId: string | null, flowRunId: string): void {
    if (agentId) this.agents.get(agentId)?.held.delete(flowRunId);
    this.kick();
  }

  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    setImmediate(() => void this.loop());
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe();
    clearTimeout(this.wake);
  }

  private async loop(): Promise<void> {
    try {
      do {
        this.again = false;
        await this.pass();
      } while (this.again && !this.stopped);
    } catch (err) {
      this.log.error({ err }, "dispatch pass failed");
    } finally {
      this.running = false;
    }
  }

  private async pass(): Promise<void> {
    const byWorkspace = new Map<string, AgentConnection[]>();
    for (const a of this.agents.values()) {
      if (!a.open) continue;
      const list = byWorkspace.get(a.workspaceId) ?? [];
      list.push(a);
      byWorkspace.set(a.workspaceId, list);
    }
    let nextDue: Date | undefined;
    // Fair across workspaces: each pass starts at the next workspace, and one workspace claims
    // at most CLAIMS_PER_PASS runs before the others get their turn (another pass serves the
    // rest), so one tenant's backlog or agent capacity never holds up another's dispatch.
    const workspaces = [...byWorkspace];
    const first = workspaces.length ? this.turn++ % workspaces.length : 0;
    for (const [workspaceId, agents] of [...workspaces.slice(first), ...workspaces.slice(0, first)]) {
      const pools = [...new Set(agents.flatMap((a) => a.pools))];
      const free = agents.reduce((n, a) => n + Math.max(0, a.free), 0);
      const now = new Date();
      if (free > 0) {
        const sql = sqlOf(this.db);
        const share = Math.min(free, CLAIMS_PER_PASS);
        // Look past runs held back by a concurrency limit, so they do not block the queue.
        const runs = await readDueRuns(sql, workspaceId, pools, now, share * 4 + 20);
        const deployments = await readDeployments(sql, [
          ...new Set(runs.flatMap((r) => (r.deploymentId ? [r.deploymentId] : []))),
        ]);
        const due: DueRun[] = runs.map((r) => ({
          ...r,
          deployment: (r.deploymentId && deployments.get(r.deploymentId)) || null,
        }));
        const limits = due.length ? await this.limits(workspaceId, due) : undefined;
        let claimed = 0;
        for (const run of due) {
          if (limits && !(await limits.admit(run))) continue;
          const candidates = agents.filter((a) => a.open && a.free > 0 && a.pools.includes(run.workPool));
          const agent = candidates.sort((x, y) => y.free - x.free)[0];
          if (!agent) continue;
          if (await this.claim(run, agent)) {
            limits?.taken(run);
            if (++claimed >= CLAIMS_PER_PASS) {
              this.again = true; // its share of this pass is used: the next pass goes on
              break;
            }
          }
          if (!agents.some((a) => a.open && a.free > 0)) break;
        }
      }
      const upcoming = await nextDueTime(sqlOf(this.db), workspaceId, pools, now);
      if (upcoming && (!nextDue || upcoming < nextDue)) nextDue = upcoming;
    }
    this.scheduleWake(nextDue);
  }

  private scheduleWake(at: Date | undefined): void {
    clearTimeout(this.wake);
    if (!at || this.stopped) return;
    const ms = Math.min(Math.max(0, at.getTime() - Date.now()), MAX_WAKE_MS);
    this.wake = setTimeout(() => this.kick(), ms);
    this.wake.unref();
  }

  /**
   * Concurrency limits per work pool and per deployment, counted from the runs agents hold
   * (PENDING, RUNNING, CANCELLING, PAUSED). They are derived from run states, which leases
   * keep honest, so a crashed agent can never leak a slot. A run over its deployment's limit
   * waits (ENQUEUE) or is cancelled (CANCEL_NEW).
   */
  private async limits(
    workspaceId: string,
    due: DueRun[],
  ): Promise<{ admit(run: DueRun): Promise<boolean>; taken(run: DueRun): void }> {
    // Only what a limit applies to is counted: with no limits, a pass costs one small query.
    const names = inList([...new Set(due.map((r) => r.workPool))]);
    const pools = await sqlOf(this.db).all<{ name: string; concurrencyLimit: number | null }>(
      `SELECT "name", "concurrencyLimit" FROM "WorkPool"
       WHERE "workspaceId" = ? AND "name" IN (${names.placeholders}) AND "concurrencyLimit" IS NOT NULL`,
      [workspaceId, ...names.params],
    );
    const limitedPools = pools.map((p) => p.name);
    const limitedDeployments = [
      ...new Set(due.flatMap((r) => (r.deploymentId && r.deployment?.concurrencyLimit != null ? [r.deploymentId] : []))),
    ];
    const [byPool, byDeployment] = await Promise.all([
      limitedPools.length
        ? this.db.flowRun.groupBy({
            by: ["workPool"],
            where: { workspaceId, workPool: { in: limitedPools }, stateType: { in: HELD_STATES }, parentFlowRunId: null },
            _count: { _all: true },
          })
        : [],
      limitedDeployments.length
        ? this.db.flowRun.groupBy({
            by: ["deploymentId"],
            where: { workspaceId, deploymentId: { in: limitedDeployments }, stateType: { in: HELD_STATES } },
            _count: { _all: true },
          })
        : [],
    ]);
    const poolLimit = new Map(pools.map((p) => [p.name, p.concurrencyLimit ?? Number.POSITIVE_INFINITY]));
    const poolUsed = new Map(byPool.map((g) => [g.workPool, g._count._all]));
    const deploymentUsed = new Map(byDeployment.map((g) => [g.deploymentId ?? "", g._count._all]));
    return {
      admit: async (run) => {
        if ((poolUsed.get(run.workPool) ?? 0) >= (poolLimit.get(run.workPool) ?? Number.POSITIVE_INFINITY)) return false;
        const limit = run.deployment?.concurrencyLimit;
        if (limit === null || limit === undefined || !run.deploymentId) return true;
        if ((deploymentUsed.get(run.deploymentId) ?? 0) < limit) return true;
        if (run.deployment?.collisionStrategy === "CANCEL_NEW") {
          await proposeFlowRunState(this.db, {
            workspaceId: run.workspaceId,
            flowRunId: run.id,
            state: {
              type: "CANCELLED",
              name: "Cancelled",
              message: `deployment concurrency limit of ${limit} reached (collision strategy CANCEL_NEW)`,
            },
            proposer: "system",
          });
        }
        return false;
      },
      taken: (run) => {
        poolUsed.set(run.workPool, (poolUsed.get(run.workPool) ?? 0) + 1);
        if (run.deploymentId) deploymentUsed.set(run.deploymentId, (deploymentUsed.get(run.deploymentId) ?? 0) + 1);
      },
    };
  }

  /** Claims a run for an agent and pushes it; false if someone else changed the run first. */
  private async claim(run: DueRun, agent: AgentConnection): Promise<boolean> {
    const now = new Date();
    const attempt = run.attempt + 1;
    const leaseExpiresAt = new Date(now.getTime() + this.options.leaseMs);
    if (!run.deployment) {
      await proposeFlowRunState(this.db, {
        workspaceId: run.workspaceId,
        flowRunId: run.id,
        state: { type: "CRASHED", name: "Crashed", message: "the run has no deployment to execute" },
        proposer: "system",
      });
      return false;
    }
    // Another replica claiming this run right now holds its row (PostgreSQL): skip it rather than wait.
    const claimed = await transitionRun(sqlOf(this.db), {
      flowRunId: run.id,
      expected: { stateType: "SCHEDULED", attempt: run.attempt },
      changes: {
        stateType: "PENDING",
        stateName: "Pending",
        stateMessage: null,
        stateTimestamp: now,
        agentId: agent.agentId,
        attempt,
        leaseExpiresAt,
      },
      state: {
        id: newId(),
        workspaceId: run.workspaceId,
        flowRunId: run.id,
        type: "PENDING",
        name: "Pending",
        message: `assigned to agent ${agent.name}`,
        timestamp: now,
        attempt,
      },
      skipLocked: true,
    });
    if (!claimed) return false;
    agent.held.add(run.id);
    // Dispatchable since it was due, or since it went back to the queue if that was later (a
    // requeue); marking a run Late (scheduler.ts) changes its state time but it was due before.
    const due = run.expectedStartTime.getTime();
    const readyAt = run.stateName === "Late" ? due : Math.max(due, run.stateTimestamp.getTime());
    // Another replica's clock may run ahead of ours: never a negative latency.
    this.push(run, run.deployment, agent, attempt, leaseExpiresAt, Math.max(0, Date.now() - readyAt));
    return true;
  }

  /**
   * The fast path for a run being created now: an open agent of its pool with a free slot,
   * when no concurrency limit applies (those need the pass's counts). The slot is reserved
   * (synchronously, so concurrent creates see it) until `settle`. The run is then created
   * already assigned (create-run.ts), and pushed with no further write: the usual pass would
   * cost a query for due runs and a second commit. (A run created this way may overtake an
   * older one of its pool only if that one waits for a limit, which the pass still honours.)
   */
  async reserve(workspaceId: string, deployment: Deployment): Promise<Reservation | undefined> {
    if (this.stopped || deployment.concurrencyLimit != null) return undefined;
    let agent: AgentConnection | undefined;
    for (const a of this.agents.values()) {
      if (a.workspaceId !== workspaceId || !a.open || a.free <= 0 || !a.pools.includes(deployment.workPool)) continue;
      if (!agent || a.free > agent.free) agent = a;
    }
    if (!agent) return undefined;
    const token = `reserved:${newId()}`;
    agent.held.add(token);
    const poolLimited = await sqlOf(this.db).get(
      `SELECT "id" FROM "WorkPool" WHERE "workspaceId" = ? AND "name" = ? AND "concurrencyLimit" IS NOT NULL`,
      [workspaceId, deployment.workPool],
    );
    if (poolLimited || !agent.open) {
      agent.held.delete(token);
      return undefined;
    }
    const leaseExpiresAt = new Date(Date.now() + this.options.leaseMs);
    return { agent, token, assignment: { agentId: agent.agentId, agentName: agent.name, leaseExpiresAt }, at: performance.now() };
  }

  /** After a reserved create: pushes the run to its agent, or frees the slot when the run was not assigned. */
  settle(reservation: Reservation, outcome: { run: FlowRun; created: boolean }, deployment: Deployment): void {
    const { agent, token, assignment } = reservation;
    const { run } = outcome;
    agent.held.delete(token);
    if (!outcome.created || run.agentId !== agent.agentId || run.stateType !== "PENDING") {
      this.kick(); // an existing run came back (idempotency key), or the create failed
      return;
    }
    agent.held.add(run.id);
    // Measured with the monotonic clock from just before the run was written: the commit included.
    this.push(run, deployment, agent, 1, assignment.leaseExpiresAt, performance.now() - reservation.at);
  }

  /** Sends a claimed run to its agent and announces the change; `latencyMs`: since it became dispatchable. */
  private push(
    run: FlowRun,
    deployment: Deployment,
    agent: AgentConnection,
    attempt: number,
    leaseExpiresAt: Date,
    latencyMs: number,
  ): void {
    runChanged(this.db, run.workspaceId, run.id);
    changesOf(this.db).publish({ kind: "agents", workspaceId: run.workspaceId });
    agent.send({
      type: "run.assign",
      v: PROTOCOL_VERSION,
      flowRunId: run.id,
      attempt,
      flowName: deployment.flowName,
      entrypoint: deployment.entrypoint,
      parameters: JSON.parse(run.parametersJson) as Record<string, unknown>,
      ...(run.timeoutMs ? { timeoutMs: run.timeoutMs } : {}),
      retriesLeft: Math.max(0, run.maxRetries - run.retryCount),
      leaseExpiresAt: leaseExpiresAt.toISOString(),
      ...(run.scheduledFor
        ? {
            schedule: {
              scheduledFor: run.scheduledFor.toISOString(),
              ...(run.dataIntervalStart ? { dataIntervalStart: run.dataIntervalStart.toISOString() } : {}),
              dataIntervalEnd: (run.dataIntervalEnd ?? run.scheduledFor).toISOString(),
            },
          }
        : {}),
    });
    this.options.onAssigned?.(run, latencyMs);
  }
}
