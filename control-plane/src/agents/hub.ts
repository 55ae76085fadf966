import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { type Db, sqlOf } from "@ferry/prisma";
import {
  type AcquireSlots,
  type AgentMessage,
  AgentMessage as AgentMessageSchema,
  CloseCode,
  type ErrorCode,
  type EventPublished,
  type Heartbeat,
  type Hello,
  Hello as HelloSchema,
  LIMITS,
  type LogBatch,
  PROTOCOL_VERSION,
  type ProposeState,
  type RunEventBatch,
  type RunRef,
  type RunReject,
  validateMessage,
} from "@ferry/sdk/protocol";
import { type RawData, type WebSocket, WebSocketServer } from "ws";
import type { Authenticator, Principal } from "../auth/authenticate.ts";
import { scopeAllows } from "../auth/tokens.ts";
import { changesOf, runChanged } from "../changes.ts";
import { type Dispatcher, HELD_STATES } from "../dispatcher.ts";
import { newId } from "../ids.ts";
import type { Logger } from "../logger.ts";
import { lostRunState, proposeFlowRunState } from "../orchestration/flow-runs.ts";
import { applyLogs, applyRunEvents, type RootRun, RunTree, taskRunsOfAttempt } from "../orchestration/run-events.ts";
import { DEFAULT_QUOTAS, type Quotas } from "../quotas.ts";
import type { TagSlots } from "../slots.ts";
import { AgentConnection } from "./connection.ts";

/** How long heartbeat times wait to be written together. */
const BEAT_FLUSH_MS = 1_000;

export interface HubOptions {
  heartbeatIntervalMs: number;
  leaseMs: number;
  serverVersion: string;
  /** Time a new connection has to send its hello. */
  helloTimeoutMs?: number;
  /** Events flows published (emitEvent), after their report is stored and before it is acknowledged. */
  onPublished?: (workspaceId: string, events: EventPublished[]) => Promise<void>;
  /** Told of every agent message: its direction and type (`invalid` for an inbound one that failed validation). */
  onMessage?: (direction: "in" | "out", type: string) => void;
  /** Told how many run events and log lines an agent's accepted report carried. */
  onIngested?: (kind: "events" | "logs", count: number) => void;
  /** What one token's agents may ask for (default: DEFAULT_QUOTAS). */
  quotas?: Pick<Quotas, "maxAgentCapacity" | "maxAgentsPerToken" | "maxSocketsPerToken">;
}

/** How far back an agent counts toward its token's maxAgentsPerToken (ids of agents long gone do not). */
const AGENT_SEEN_WINDOW_MS = 86_400_000;

/** Messages queued per connection before it is closed for flooding. */
const MAX_QUEUED = 10_000;
/**
 * Bytes of frames waiting on one connection above which the hub stops reading from its socket
 * (TCP then holds the sender back): a burst of frames near the size limit cannot pile up in memory.
 */
const MAX_QUEUED_BYTES = 2 * LIMITS.maxFrameBytes;

/** A msgId an `ack` can echo: the schema's (a non-negative safe integer), else the answer is an `error` frame. */
function isMsgId(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function byteSize(data: RawData): number {
  if (Array.isArray(data)) return data.reduce((n, b) => n + b.length, 0);
  return data instanceof ArrayBuffer ? data.byteLength : data.length;
}

/**
 * The agent side of the control plane: accepts agent WebSockets, authenticates them,
 * validates every frame, and applies what agents report. Messages of one connection are
 * handled strictly in order (a promise chain), which the idempotency rules rely on.
 */
export class AgentHub {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: LIMITS.maxFrameBytes });
  private readonly sockets = new Set<WebSocket>();
  private readonly byToken = new Map<string, Set<WebSocket>>();

  constructor(
    private readonly db: Db,
    private readonly auth: Authenticator,
    private readonly dispatcher: Dispatcher,
    private readonly slots: TagSlots,
    private readonly log: Logger,
    private readonly options: HubOptions,
  ) {
    this.unsubscribe = changesOf(db).subscribe((c) => {
      // A token revoked through any replica closes its sockets on every replica.
      if (c.kind === "tokenRevoked") {
        for (const ws of this.byToken.get(c.tokenId) ?? []) ws.close(CloseCode.tokenRevoked, "token revoked");
      }
    });
  }

  private readonly unsubscribe: () => void;
  private get quotas(): Pick<Quotas, "maxAgentCapacity" | "maxAgentsPerToken" | "maxSocketsPerToken"> {
    return this.options.quotas ?? DEFAULT_QUOTAS;
  }
  private liveness: NodeJS.Timeout | undefined;
  /** Agents that heartbeated since the last flush (see flushBeats). */
  private readonly beats = new Set<string>();
  private beatFlush: NodeJS.Timeout | undefined;
  private readonly alive = new WeakMap<WebSocket, boolean>();

  /**
   * Pings every socket once per heartbeat interval and drops those that did not answer the
   * previous ping: a half-open connection is noticed in two intervals, not at lease expiry.
   */
  private checkLiveness(): void {
    for (const ws of this.sockets) {
      if (this.alive.get(ws) === false) {
        ws.terminate();
        continue;
      }
      this.alive.set(ws, false);
      ws.ping();
    }
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (!this.liveness) {
      this.liveness = setInterval(() => this.checkLiveness(), this.options.heartbeatIntervalMs);
      this.liveness.unref();
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.sockets.add(ws);
      this.alive.set(ws, true);
      ws.on("pong", () => this.alive.set(ws, true));
      ws.on("message", () => this.alive.set(ws, true));
      ws.on("close", () => this.sockets.delete(ws));
      ws.on("error", (err) => this.log.debug({ err }, "agent socket error"));
      void this.accept(ws, req);
    });
  }

  /** Agents connected to this process that have said hello (not yet authenticated sockets excluded). */
  connectedCount(): number {
    return this.dispatcher.connected().filter((a) => a.open).length;
  }

  /** Closes every agent connection made with this token (on revocation), on every replica. */
  closeToken(workspaceId: string, tokenId: string): void {
    changesOf(this.db).publish({ kind: "tokenRevoked", workspaceId, tokenId });
  }

  async close(): Promise<void> {
    this.unsubscribe();
    clearInterval(this.liveness);
    clearTimeout(this.beatFlush);
    if (this.beats.size) await this.flushBeats();
    clearTimeout(this.beatFlush);
    for (const ws of this.sockets) ws.close(CloseCode.goingAway, "control plane shutting down");
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  private async accept(ws: WebSocket, req: IncomingMessage): Promise<void> {
    // Frames that arrive while authenticating are kept and handled in order afterwards.
    const early: RawData[] = [];
    const earlyBinary: boolean[] = [];
    const buffer = (data: RawData, isBinary: boolean) => {
      early.push(data);
      earlyBinary.push(isBinary);
    };
    ws.on("message", buffer);
    const auth = await this.auth
      .fromHeader(req.headers.authorization)
      .catch(() => ({ ok: false as const, reason: "authentication failed" }));
    if (!auth.ok) {
      ws.close(CloseCode.unauthorized, closeReason(auth.reason));
      return;
    }
    if (!scopeAllows(auth.principal.scopes, "agent")) {
      ws.close(CloseCode.forbidden, "token lacks the agent scope");
      return;
    }
    const tokenSockets = this.byToken.get(auth.principal.tokenId) ?? new Set();
    if (tokenSockets.size >= this.quotas.maxSocketsPerToken) {
      ws.close(
        CloseCode.forbidden,
        closeReason(`this token has ${tokenSockets.size} agent connections open (quota maxSocketsPerToken)`),
      );
      return;
    }
    tokenSockets.add(ws);
    this.byToken.set(auth.principal.tokenId, tokenSockets);
    ws.on("close", () => tokenSockets.delete(ws));

    const session = new AgentSession(ws, auth.principal, this, this.options);
    ws.off("message", buffer);
    ws.on("message", (data, isBinary) => session.enqueue(data, isBinary));
    for (const [i, data] of early.entries()) session.enqueue(data, earlyBinary[i] ?? false);
  }

  // ---- handlers used by sessions ---------------------------------------------------------

  async hello(ws: WebSocket, principal: Principal, hello: Hello): Promise<AgentConnection> {
    const now = new Date();
    // A capacity of thousands would make every dispatch pass read that many of the workspace's runs.
    if (hello.capacity > this.quotas.maxAgentCapacity) {
      throw new HelloError(
        `capacity ${hello.capacity} is over the quota maxAgentCapacity = ${this.quotas.maxAgentCapacity}: lower --concurrency`,
        CloseCode.forbidden,
      );
    }
    // The binding is checked before anything else: a refused hello leaves the agent that owns
    // the id connected, with its runs.
    const key = await this.register(principal, hello, now);
    const previous = this.dispatcher.agent(key);
    if (previous && previous.socket !== ws) {
      previous.socket.close(CloseCode.normal, "replaced by a new connection of the same agent");
      this.dispatcher.removeAgent(previous);
    }
    const conn = new AgentConnection(
      ws,
      key,
      principal.workspaceId,
      principal.tokenId,
      hello.name,
      hello.pools,
      hello.capacity,
      this.options.onMessage && ((type) => this.options.onMessage?.("out", type)),
    );
    conn.connectedAt = now;
    await this.reconcile(conn, hello.inFlight);
    changesOf(this.db).publish({ kind: "agents", workspaceId: principal.workspaceId });
    conn.send({
      type: "welcome",
      v: PROTOCOL_VERSION,
      // The agent's own id: the control plane's key (conn.agentId) never leaves it.
      agentId: hello.agentId,
      heartbeatIntervalMs: this.options.heartbeatIntervalMs,
      leaseMs: this.options.leaseMs,
      serverVersion: this.options.serverVersion,
    });
    this.dispatcher.addAgent(conn);
    this.log.info(
      {
        agent: conn.name,
        agentId: conn.agentId,
        externalId: hello.agentId,
        workspaceId: conn.workspaceId,
        pools: conn.pools,
        capacity: conn.capacity,
      },
      "agent connected",
    );
    return conn;
  }

  /**
   * The agent row of a hello, registered to the hello's token; returns its key (Agent.id, what
   * FlowRun.agentId holds). Agent ids are scoped by workspace (another workspace's agent of the
   * same id is another row) and bound to the token that registered them: another token of the
   * workspace is refused, unless the id was released by an admin or its token can no longer
   * connect (revoked, expired or deleted: rotating a token needs no admin step, and no live
   * agent can be taken over that way, since revoking a token closes its sockets).
   */
  private async register(principal: Principal, hello: Hello, now: Date): Promise<string> {
    const workspaceId = principal.workspaceId;
    const data = {
      name: hello.name,
      tokenId: principal.tokenId,
      poolsJson: JSON.stringify(hello.pools),
      labelsJson: JSON.stringify(hello.labels),
      capacity: hello.capacity,
      version: hello.version,
      status: "ONLINE",
      connectedAt: now,
      lastHeartbeatAt: now,
      disconnectedAt: null,
    };
    // Twice at most: a concurrent hello of the same id (another replica) may win the create or the rebind.
    for (let round = 0; round < 2; round++) {
      const existing = await this.db.agent.findUnique({
        where: { workspaceId_externalId: { workspaceId, externalId: hello.agentId } },
        select: { id: true, tokenId: true },
      });
      if (!existing) {
        const seen = await this.db.agent.count({
          where: {
            workspaceId,
            tokenId: principal.tokenId,
            lastHeartbeatAt: { gte: new Date(now.getTime() - AGENT_SEEN_WINDOW_MS) },
          },
        });
        if (seen >= this.quotas.maxAgentsPerToken) {
          throw new HelloError(
            `this token ran ${seen} agents in the last day (quota maxAgentsPerToken): reuse an agent id (--state-dir) or use another token`,
            CloseCode.forbidden,
          );
        }
        const id = newId();
        try {
          await this.db.agent.create({ data: { id, workspaceId, externalId: hello.agentId, ...data } });
          return id;
        } catch (err) {
          if ((err as { code?: string }).code === "P2002") continue;
          throw err;
        }
      }
      if (existing.tokenId !== principal.tokenId && !(await this.tokenGone(workspaceId, existing.tokenId, now))) {
        throw new HelloError(
          `agent id bound to another token; an admin can free it: ferry agent release ${hello.agentId}`,
          CloseCode.forbidden,
        );
      }
      // Conditional on the binding read above: of two tokens taking a released id, one wins.
      const updated = await this.db.agent.updateMany({ where: { id: existing.id, tokenId: existing.tokenId }, data });
      if (updated.count === 1) return existing.id;
    }
    throw new HelloError("agent id is being registered by another connection; retrying");
  }

  /** Whether a bound token can no longer connect: released (null), deleted, revoked or expired. */
  private async tokenGone(workspaceId: string, tokenId: string | null, now: Date): Promise<boolean> {
    if (tokenId === null) return true;
    const token = await this.db.apiToken.findFirst({
      where: { id: tokenId, workspaceId },
      select: { revokedAt: true, expiresAt: true },
    });
    return !token || token.revokedAt !== null || (token.expiresAt !== null && token.expiresAt <= now);
  }

  /**
   * An admin frees an agent id from its token: the next agent token of the workspace that says
   * hello with it takes it (and replaces a connection of the old token, which is then refused).
   * Returns false if the workspace has no agent of that id.
   */
  async release(workspaceId: string, externalId: string): Promise<boolean> {
    const { count } = await this.db.agent.updateMany({ where: { workspaceId, externalId }, data: { tokenId: null } });
    if (count) this.log.info({ workspaceId, externalId }, "agent id released");
    return count === 1;
  }

  /**
   * After a (re)connect: runs the control plane believes this agent holds but the agent
   * does not report are over (RUNNING → CRASHED; PENDING, never started → back to the
   * queue); runs the agent reports that are no longer its own are cancelled on the agent.
   */
  private async reconcile(conn: AgentConnection, inFlight: readonly RunRef[]): Promise<void> {
    const reported = new Map(inFlight.map((r) => [r.flowRunId, r.attempt]));
    const believed = await this.db.flowRun.findMany({
      where: { workspaceId: conn.workspaceId, agentId: conn.agentId, stateType: { in: HELD_STATES } },
    });
    for (const run of believed) {
      if (reported.get(run.id) === run.attempt) {
        conn.held.add(run.id);
        // A cancel sent while the agent was away (or to another control-plane process) is sent again.
        if (run.stateType === "CANCELLING") {
          conn.send({
            type: "run.cancel",
            v: PROTOCOL_VERSION,
            flowRunId: run.id,
            attempt: run.attempt,
            reason: run.stateMessage ?? "cancelled",
          });
        }
        continue;
      }
      if (run.stateType === "PENDING") {
        await this.requeue(run.id, run.workspaceId, conn.agentId, run.attempt, "agent reconnected without the run");
      } else {
        const outcome = await proposeFlowRunState(this.db, {
          workspaceId: run.workspaceId,
          flowRunId: run.id,
          state: lostRunState(run.stateType, `agent ${conn.name} reconnected without this run (it was lost)`),
          proposer: "system",
        });
        if (outcome.requeued) this.dispatcher.kick();
      }
    }
    const believedIds = new Set(believed.filter((r) => conn.held.has(r.id)).map((r) => r.id));
    for (const ref of inFlight) {
      if (!believedIds.has(ref.flowRunId)) {
        conn.send({ type: "run.cancel", v: PROTOCOL_VERSION, ...ref, reason: "this attempt no longer belongs to this agent" });
      }
    }
  }

  /**
   * PENDING → SCHEDULED: the run never started, so no retry is used. The attempt number is
   * kept (the next dispatch gets a new one): attempts are fencing tokens and never repeat.
   */
  private async requeue(
    flowRunId: string,
    workspaceId: string,
    agentId: string,
    attempt: number,
    message: string,
  ): Promise<void> {
    // An attempt beyond the column's 32 bits names no run (and PostgreSQL would refuse the query).
    if (attempt > 2 ** 31 - 1) return;
    const now = new Date();
    // The reason comes from the agent: PostgreSQL refuses NUL in text, and an INTERNAL answer
    // would have the agent send the reject again forever.
    const text = message.replaceAll("\u0000", "\ufffd");
    const requeued = await this.db.$transaction(async (tx) => {
      const updated = await tx.flowRun.updateMany({
        where: { id: flowRunId, agentId, attempt, stateType: "PENDING" },
        data: {
          stateType: "SCHEDULED",
          stateName: "Scheduled",
          stateMessage: text,
          stateTimestamp: now,
          agentId: null,
          leaseExpiresAt: null,
        },
      });
      if (updated.count === 1) {
        await tx.flowRunState.create({
          data: {
            id: newId(),
            workspaceId,
            flowRunId,
            type: "SCHEDULED",
            name: "Scheduled",
            message: text,
            timestamp: now,
            attempt,
          },
        });
      }
      return updated.count === 1;
    });
    // Only a run that went back to the queue frees the agent's slot: a reject naming another
    // attempt (or a run that already started) must not let the dispatcher exceed its capacity.
    if (requeued) {
      this.dispatcher.release(agentId, flowRunId);
      runChanged(this.db, workspaceId, flowRunId);
    }
  }

  /** A message could not be applied: logged with whose it was (agent, workspace, message type and run). */
  internalError(err: unknown, context: Record<string, unknown> = {}): void {
    this.log.error({ err, ...context }, "failed to handle an agent message");
  }

  /**
   * Agents' last heartbeat times, written for all agents that beat in the last second with one
   * statement (1,000 idle agents would otherwise cost 200 commits a second). Only the time is
   * written: ONLINE/OFFLINE follow connects and disconnects, which are written at once.
   */
  private async flushBeats(): Promise<void> {
    const ids = [...this.beats];
    this.beats.clear();
    try {
      for (let i = 0; i < ids.length; i += 500) {
        await this.db.agent.updateMany({ where: { id: { in: ids.slice(i, i + 500) } }, data: { lastHeartbeatAt: new Date() } });
      }
    } catch (err) {
      this.log.warn({ err }, "could not record agent heartbeats");
    } finally {
      this.beatFlush = undefined;
      if (this.beats.size) {
        this.beatFlush = setTimeout(() => void this.flushBeats(), BEAT_FLUSH_MS);
        this.beatFlush.unref();
      }
    }
  }

  async disconnected(conn: AgentConnection): Promise<void> {
    this.dispatcher.removeAgent(conn);
    if (this.dispatcher.agent(conn.agentId)) return; // a newer connection took over
    // Unless the agent has connected again since (perhaps to another replica).
    await this.db.agent.updateMany({
      where: { id: conn.agentId, connectedAt: { lte: conn.connectedAt } },
      data: { status: "OFFLINE", disconnectedAt: new Date() },
    });
    changesOf(this.db).publish({ kind: "agents", workspaceId: conn.workspaceId });
    this.log.info(
      { agent: conn.name, agentId: conn.agentId, workspaceId: conn.workspaceId },
      "agent disconnected; its runs are held until their leases end",
    );
  }

  async handle(conn: AgentConnection, msg: AgentMessage): Promise<void> {
    await this.renewVouched(conn);
    switch (msg.type) {
      case "hello":
        throw new ProtocolError("BAD_MESSAGE", "hello was already received on this connection");
      case "run.accept":
        return;
      case "slots.acquire":
        return this.onAcquire(conn, msg);
      case "run.reject":
        return this.onReject(conn, msg);
      case "state.propose":
        return this.onPropose(conn, msg);
      case "run.events":
        return this.onEvents(conn, msg);
      case "logs":
        return this.onLogs(conn, msg);
      case "heartbeat":
        return this.onHeartbeat(conn, msg);
      default: {
        const unreachable: never = msg;
        throw new ProtocolError("BAD_MESSAGE", `unknown message ${JSON.stringify(unreachable).slice(0, 100)}`);
      }
    }
  }

  /**
   * A task run asks for its tags' slots: it must be a task run of the held attempt. One not
   * stored yet is let through (its creation may be retried after this request; a slot row
   * belongs to the root attempt, which frees it when it ends); one stored elsewhere is refused.
   */
  private async onAcquire(conn: AgentConnection, msg: AcquireSlots): Promise<void> {
    const run = await this.ownedRun(conn, msg);
    const sql = sqlOf(this.db);
    const task = await taskRunsOfAttempt(sql, new RunTree(sql, run), msg.attempt, [msg.taskRunId]);
    if (task.stored.has(msg.taskRunId) && !task.ours.has(msg.taskRunId)) {
      throw new ProtocolError(
        "UNKNOWN_RUN",
        `task run ${msg.taskRunId} is not part of attempt ${msg.attempt} of run ${msg.flowRunId}`,
      );
    }
    return this.slots.acquire(conn, msg);
  }

  private async onReject(conn: AgentConnection, msg: RunReject): Promise<void> {
    await this.requeue(
      msg.flowRunId,
      conn.workspaceId,
      conn.agentId,
      msg.attempt,
      `agent ${conn.name} rejected the run: ${msg.reason}`,
    );
  }

  private async onPropose(conn: AgentConnection, msg: ProposeState): Promise<void> {
    const outcome = await proposeFlowRunState(this.db, {
      workspaceId: conn.workspaceId,
      flowRunId: msg.flowRunId,
      state: msg.state,
      proposer: "agent",
      fence: { agentId: conn.agentId, attempt: msg.attempt },
      eventId: msg.eventId,
      timestamp: new Date(msg.timestamp),
    });
    if (outcome.released) {
      this.dispatcher.release(conn.agentId, msg.flowRunId);
      await this.slots.released(conn.workspaceId);
    }
    conn.send({ type: "ack", v: PROTOCOL_VERSION, msgId: msg.msgId, ok: true, orchestration: outcome.result });
  }

  /** The root run of a report, if this agent holds (or held, for late reports) that attempt. */
  private async ownedRun(conn: AgentConnection, ref: RunRef): Promise<RootRun> {
    // Direct SQL: this runs for every report an agent sends (see prisma/src/sql.ts).
    const run = await sqlOf(this.db).get<RootRun & { agentId: string | null; attempt: number }>(
      `SELECT "id", "workspaceId", "workPool", "agentId", "attempt" FROM "FlowRun" WHERE "id" = ? AND "workspaceId" = ?`,
      [ref.flowRunId, conn.workspaceId],
    );
    if (!run) throw new ProtocolError("UNKNOWN_RUN", `unknown flow run ${ref.flowRunId}`);
    if (run.agentId !== conn.agentId || run.attempt !== ref.attempt) {
      throw new ProtocolError("STALE_ATTEMPT", `attempt ${ref.attempt} of run ${ref.flowRunId} is no longer held by this agent`);
    }
    // A run's own reports vouch for it as a heartbeat does (see renewVouched).
    conn.vouched.add(run.id);
    return run;
  }

  private async onEvents(conn: AgentConnection, msg: RunEventBatch): Promise<void> {
    const run = await this.ownedRun(conn, msg);
    // Only what belongs to this run's tree comes back: published events naming another run
    // never reach triggers, and only this attempt's task runs free slots.
    const applied = await applyRunEvents(this.db, run, msg.attempt, msg.events);
    this.options.onIngested?.("events", msg.events.length);
    if (applied.published.length) await this.options.onPublished?.(conn.workspaceId, applied.published);
    await this.slots.releaseTasks(conn.workspaceId, run.id, msg.attempt, applied.ended);
    conn.send({ type: "ack", v: PROTOCOL_VERSION, msgId: msg.msgId, ok: true });
  }

  private async onLogs(conn: AgentConnection, msg: LogBatch): Promise<void> {
    const run = await this.ownedRun(conn, msg);
    await applyLogs(this.db, run, msg.attempt, msg.lines);
    this.options.onIngested?.("logs", msg.lines.length);
    conn.send({ type: "ack", v: PROTOCOL_VERSION, msgId: msg.msgId, ok: true });
  }

  /**
   * Messages are handled in order, so on a busy control plane a heartbeat can wait behind a
   * backlog of reports longer than a lease. Any message handled from a connection shows its
   * agent alive: the runs its last heartbeat listed, and those it has reported on since, get
   * their leases renewed (at most once per half lease, one statement for all of them). A run
   * the agent stops listing drops out at the next heartbeat.
   */
  private async renewVouched(conn: AgentConnection): Promise<void> {
    const now = Date.now();
    if (!conn.vouched.size || now - conn.renewedAt < this.options.leaseMs / 2) return;
    conn.renewedAt = now;
    await this.db.flowRun.updateMany({
      where: { id: { in: [...conn.vouched] }, agentId: conn.agentId, stateType: { in: HELD_STATES } },
      data: { leaseExpiresAt: new Date(now + this.options.leaseMs) },
    });
  }

  private async onHeartbeat(conn: AgentConnection, msg: Heartbeat): Promise<void> {
    const now = new Date();
    const ids = msg.runs.map((r) => r.flowRunId);
    const rows = ids.length
      ? await this.db.flowRun.findMany({
          where: { id: { in: ids }, workspaceId: conn.workspaceId },
          select: { id: true, agentId: true, attempt: true, stateType: true },
        })
      : [];
    const held = new Map(
      rows.filter((r) => r.agentId === conn.agentId && HELD_STATES.includes(r.stateType)).map((r) => [r.id, r.attempt]),
    );
    const live = msg.runs.filter((r) => held.get(r.flowRunId) === r.attempt);
    conn.vouched = new Set(live.map((r) => r.flowRunId));
    conn.renewedAt = now.getTime();
    if (live.length) {
      await this.db.flowRun.updateMany({
        where: { id: { in: live.map((r) => r.flowRunId) }, agentId: conn.agentId, stateType: { in: HELD_STATES } },
        data: { leaseExpiresAt: new Date(now.getTime() + this.options.leaseMs) },
      });
    }
    this.beats.add(conn.agentId);
    if (!this.beatFlush) {
      this.beatFlush = setTimeout(() => void this.flushBeats(), BEAT_FLUSH_MS);
      this.beatFlush.unref();
    }
    const revoked = msg.runs.filter((r) => held.get(r.flowRunId) !== r.attempt);
    if (conn.draining !== msg.draining) {
      conn.draining = msg.draining;
      if (!conn.draining) this.dispatcher.kick();
    }
    conn.send({ type: "heartbeat.ack", v: PROTOCOL_VERSION, revoked });
  }
}

/** A hello that cannot be applied: the connection is closed with `code` and the message as reason. */
export class HelloError extends Error {
  constructor(
    message: string,
    readonly code: CloseCode = CloseCode.badHandshake,
  ) {
    super(message);
  }
}

/** WebSocket close reasons are limited to 123 bytes of UTF-8; longer ones make `close` throw. */
export function closeReason(text: string): string {
  // A character is at least one byte: cut to 123 characters first, or trimming one character
  // at a time is quadratic (minutes of blocked event loop for a reason of a few megabytes).
  let out = text.slice(0, 123);
  while (Buffer.byteLength(out) > 123) out = out.slice(0, -1);
  return out;
}

export class ProtocolError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** One connection's lifecycle: hello first, then messages handled in order. */
class AgentSession {
  private conn: AgentConnection | undefined;
  private queue: Promise<void> = Promise.resolve();
  private queued = 0;
  private queuedBytes = 0;
  private readonly helloTimer: NodeJS.Timeout;

  constructor(
    private readonly ws: WebSocket,
    private readonly principal: Principal,
    private readonly hub: AgentHub,
    private readonly options: HubOptions,
  ) {
    this.helloTimer = setTimeout(() => ws.close(CloseCode.badHandshake, "no hello received"), options.helloTimeoutMs ?? 10_000);
    ws.on("close", () => {
      clearTimeout(this.helloTimer);
      const conn = this.conn;
      if (conn) this.queue = this.queue.then(() => hub.disconnected(conn)).catch(() => {});
    });
  }

  enqueue(data: RawData, isBinary: boolean): void {
    if (++this.queued > MAX_QUEUED) {
      this.ws.close(CloseCode.policyViolation, "too many unprocessed messages");
      return;
    }
    const bytes = byteSize(data);
    this.queuedBytes += bytes;
    if (this.queuedBytes > MAX_QUEUED_BYTES && !this.ws.isPaused) this.ws.pause();
    this.queue = this.queue
      // One frame per turn of the event loop: with a synchronous driver (better-sqlite3) a
      // backlog of thousands of frames would otherwise run as one chain of microtasks and keep
      // every other connection and API request waiting until it is done.
      .then(() => new Promise<void>((resolve) => setImmediate(resolve)))
      .then(() => this.process(data, isBinary))
      .catch((err: unknown) => this.hub.internalError(err, this.context()))
      .finally(() => {
        this.queued--;
        this.queuedBytes -= bytes;
        if (this.ws.isPaused && this.queuedBytes <= MAX_QUEUED_BYTES) this.ws.resume();
      });
  }

  /** Who this connection is, for log lines. */
  private context(): Record<string, unknown> {
    const conn = this.conn;
    return conn
      ? { agent: conn.name, agentId: conn.agentId, workspaceId: conn.workspaceId }
      : { workspaceId: this.principal.workspaceId };
  }

  private sendError(code: ErrorCode, message: string, msgId: number | undefined): void {
    const frame =
      msgId !== undefined
        ? { type: "ack" as const, v: PROTOCOL_VERSION, msgId, ok: false, error: { code, message } }
        : { type: "error" as const, v: PROTOCOL_VERSION, code, message };
    if (this.ws.readyState !== this.ws.OPEN) return;
    this.ws.send(JSON.stringify(frame));
    this.options.onMessage?.("out", frame.type);
  }

  private async process(data: RawData, isBinary: boolean): Promise<void> {
    // Before the hello, anything unexpected ends the handshake at once.
    const refuse = (message: string) => {
      this.options.onMessage?.("in", "invalid");
      return this.conn
        ? this.sendError("BAD_MESSAGE", message, undefined)
        : this.ws.close(CloseCode.badHandshake, closeReason(`expected hello: ${message}`));
    };
    if (isBinary) return refuse("binary frames are not supported; send JSON text");
    let raw: unknown;
    try {
      raw = JSON.parse(data.toString());
    } catch {
      return refuse("message is not valid JSON");
    }
    const msgId = typeof raw === "object" && raw !== null && "msgId" in raw && isMsgId(raw.msgId) ? raw.msgId : undefined;
    if (!this.conn) {
      const hello = validateMessage(HelloSchema, raw);
      this.options.onMessage?.("in", hello.ok ? "hello" : "invalid");
      if (!hello.ok) {
        const code = hello.code === "UNSUPPORTED_VERSION" ? CloseCode.versionMismatch : CloseCode.badHandshake;
        this.ws.close(code, closeReason(`expected hello: ${hello.message}`));
        return;
      }
      clearTimeout(this.helloTimer);
      try {
        this.conn = await this.hub.hello(this.ws, this.principal, hello.value);
      } catch (err) {
        if (err instanceof HelloError) this.ws.close(err.code, closeReason(err.message));
        else {
          this.ws.close(CloseCode.badHandshake, "hello failed");
          this.hub.internalError(err, { workspaceId: this.principal.workspaceId, type: "hello" });
        }
      }
      return;
    }
    const parsed = validateMessage(AgentMessageSchema, raw);
    this.options.onMessage?.("in", parsed.ok ? parsed.value.type : "invalid");
    if (!parsed.ok) return this.sendError(parsed.code, parsed.message, msgId);
    try {
      await this.hub.handle(this.conn, parsed.value);
    } catch (err) {
      if (err instanceof ProtocolError) return this.sendError(err.code, err.message, msgId);
      this.sendError("INTERNAL", "the control plane could not apply this message; send it again", msgId);
      const message = parsed.value;
      this.hub.internalError(err, {
        ...this.context(),
        type: message.type,
        ...("flowRunId" in message ? { flowRunId: message.flowRunId } : {}),
      });
    }
  }
}
