import { randomUUID } from "node:crypto";
import {
  AGENT_WS_PATH,
  CloseCode,
  type Hello,
  isTerminal,
  LIMITS,
  type LogLine,
  type LogRecord,
  PROTOCOL_VERSION,
  type RunAssign,
  type RunEvent,
  type RunRef,
  ServerMessage,
  type StateProposal,
  validateMessage,
} from "@ferry/sdk/protocol";
import WebSocket from "ws";
import { type AgentState, openAgentState } from "./agent-state.ts";
import { Backoff } from "./backoff.ts";
import { type FlowEnvOptions, flowEnvironment, flowEnvProblems } from "./flow-env.ts";
import { FlowProcess, resolveEntrypoint } from "./flow-process.ts";
import { Journal } from "./journal.ts";
import { type Logger, logger } from "./logger.ts";
import { WarmPool } from "./warm-pool.ts";

export const AGENT_VERSION = "0.1.0";

export interface AgentOptions {
  /**
   * The control plane; with several replicas, their URLs: the agent connects to one and moves
   * to the next when it cannot reach it or loses it.
   */
  apiUrl: string | readonly string[];
  token: string;
  agentId?: string;
  name: string;
  pools: string[];
  capacity: number;
  labels?: Record<string, string>;
  /** Directory that deployment entrypoints are relative to. */
  workDir: string;
  /** Time between SIGTERM and SIGKILL when a flow process is stopped. */
  killGraceMs?: number;
  /**
   * Directory for the agent's identity and journal of unacknowledged reports. With it, an
   * agent that is killed and started again keeps its id and replays what the control plane
   * has not confirmed. Without it, reports live in memory only.
   */
  stateDir?: string;
  /** Longest wait between reconnect attempts (default 15 s). */
  reconnectMaxMs?: number;
  /**
   * The result store: a directory where flow processes keep task results for reuse (cache
   * keys, later attempts of a run). Results stay here; the control plane gets references.
   */
  resultDir?: string;
  /**
   * Warm starts: idle flow processes kept per entrypoint with the SDK and the entrypoint's
   * imports already loaded, so a run skips the process start-up (default 0: every run starts cold).
   */
  warmPool?: number;
  /**
   * Runs one warm process may serve (default 1: a fresh process per run). With more, a process
   * whose run completed goes back to the pool; user module-level state then persists between runs.
   */
  maxRunsPerProcess?: number;
  /**
   * What flow processes get of the environment beyond the allow-list (see flow-env.ts): never the
   * agent's whole environment, never a `FERRY_*` variable of it.
   */
  flowEnv?: FlowEnvOptions;
}

/** Messages that carry a msgId and stay in the outbox until the control plane acknowledges them. */
type Unsent =
  | { type: "state.propose"; v: 1; eventId: string; flowRunId: string; attempt: number; state: StateProposal; timestamp: string }
  | { type: "run.events"; v: 1; flowRunId: string; attempt: number; events: RunEvent[] }
  | { type: "logs"; v: 1; flowRunId: string; attempt: number; lines: LogLine[] };
type Reliable = Unsent & { msgId: number };

interface ActiveRun {
  ref: RunRef;
  process: FlowProcess;
  seq: number;
  pendingLogs: LogLine[];
  logTimer: NodeJS.Timeout | undefined;
  /** The control plane asked for a cancel: the run ends CANCELLED whatever the process reports. */
  cancelling: boolean;
  /** The attempt is no longer ours: report nothing more. */
  revoked: boolean;
  /** Task runs waiting for concurrency slots: asked again after every reconnect. */
  slotRequests: Map<string, string[]>;
}

/** Room left in a frame for the envelope around a batch. */
const BATCH_BYTES = LIMITS.maxFrameBytes / 2;

/**
 * Splits reports into batches that respect both the item limit and the frame size, so one
 * batch of long lines can never exceed the frame limit (and be refused on every replay).
 */
export function batches<T>(items: readonly T[], maxItems: number = LIMITS.maxBatch, maxBytes: number = BATCH_BYTES): T[][] {
  const out: T[][] = [];
  let chunk: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const size = Buffer.byteLength(JSON.stringify(item)) + 1;
    if (chunk.length && (chunk.length >= maxItems || bytes + size > maxBytes)) {
      out.push(chunk);
      chunk = [];
      bytes = 0;
    }
    chunk.push(item);
    bytes += size;
  }
  if (chunk.length) out.push(chunk);
  return out;
}

/** Close codes after which reconnecting cannot help. */
const FATAL_CLOSES = new Set<number>([
  CloseCode.unauthorized,
  CloseCode.forbidden,
  CloseCode.tokenRevoked,
  CloseCode.versionMismatch,
]);
const LOG_FLUSH_MS = 50;

export type AgentStatus = "connecting" | "connected" | "stopped";

/**
 * The agent: holds one outbound WebSocket to the control plane, runs each assigned flow
 * run in its own process, and reports states, task events and logs. Everything it
 * reports stays in an outbox until acknowledged and is sent again after a reconnect; the
 * control plane applies replays idempotently.
 */
export class Agent {
  readonly agentId: string;
  private ws: WebSocket | undefined;
  private welcomed = false;
  /** Which of the control-plane URLs the agent uses, and connection attempts since the last welcome. */
  private urlIndex = 0;
  private attemptsSinceWelcome = 0;
  private readonly outbox = new Map<number, Reliable>();
  private nextMsgId = 1;
  /** Times the control plane failed to apply a message (by msgId), for the retry backoff. */
  private readonly failures = new Map<number, number>();
  private readonly runs = new Map<string, ActiveRun>();
  private readonly backoff: Backoff;
  private heartbeat: NodeJS.Timeout | undefined;
  private heartbeatMs = 0;
  private lastHeard = Date.now();
  private reconnectTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  private draining = false;
  /** Every line names the agent, so the logs of several agents can be told apart once collected. */
  private readonly log: Logger;
  private readonly waiters = new Set<() => void>();
  fatalError: string | undefined;

  private readonly journal: Journal<Reliable> | undefined;
  private readonly state: AgentState | undefined;
  private readonly warm: WarmPool;
  /** The environment every flow process starts from (computed once: the agent's environment does not change). */
  private readonly flowEnv: Record<string, string>;

  constructor(private readonly options: AgentOptions) {
    const problems = flowEnvProblems(options.flowEnv ?? {});
    if (problems.length) throw new Error(`invalid flow environment: ${problems.join("; ")}`);
    this.flowEnv = flowEnvironment(process.env, options.flowEnv);
    this.backoff = new Backoff(250, options.reconnectMaxMs ?? 15_000);
    this.state = options.stateDir ? openAgentState(options.stateDir, options.agentId) : undefined;
    this.agentId = this.state?.agentId ?? options.agentId ?? randomUUID();
    this.log = logger.child({ component: "agent", agent: options.name, agentId: this.agentId });
    this.warm = new WarmPool({
      size: options.warmPool ?? 0,
      maxRunsPerProcess: options.maxRunsPerProcess ?? 1,
      workDir: options.workDir,
      agentName: options.name,
      env: this.flowEnv,
      log: this.log.child({ component: "warm-pool" }),
    });
    if (options.stateDir) {
      this.journal = new Journal<Reliable>(options.stateDir);
      this.recover(this.journal);
    }
  }

  /**
   * After a restart: everything journaled but not acknowledged goes back in the outbox.
   * A run with reports but no final state was running when the agent died; its flow
   * process died with it, so the agent reports it CRASHED (the control plane's rules and
   * retries take it from there).
   */
  private recover(journal: Journal<Reliable>): void {
    this.nextMsgId = journal.lastMsgId + 1;
    const owed = new Map<string, RunRef>();
    const ended = new Set<string>();
    for (const [msgId, message] of journal.pending) {
      this.outbox.set(msgId, message);
      owed.set(`${message.flowRunId}:${message.attempt}`, { flowRunId: message.flowRunId, attempt: message.attempt });
      if (message.type === "state.propose" && isTerminal(message.state.type))
        ended.add(`${message.flowRunId}:${message.attempt}`);
    }
    for (const [key, ref] of owed) {
      if (ended.has(key)) continue;
      this.enqueue({
        type: "state.propose",
        v: PROTOCOL_VERSION,
        eventId: randomUUID(),
        ...ref,
        state: {
          type: "CRASHED",
          name: "Crashed",
          message: "the agent restarted while this run was executing; its flow process was lost",
        },
        timestamp: new Date().toISOString(),
      });
    }
    if (owed.size) this.log.warn({ runs: owed.size, reports: this.outbox.size }, "replaying the journal");
  }

  get status(): AgentStatus {
    if (this.stopping) return "stopped";
    return this.welcomed ? "connected" : "connecting";
  }

  get activeRuns(): number {
    return this.runs.size;
  }

  start(): void {
    this.connect();
  }

  /** Stops taking work, waits up to `drainMs` for running flows, stops the rest, then disconnects. */
  async stop(drainMs = 0): Promise<void> {
    this.draining = true;
    this.sendHeartbeat(); // tells the control plane at once to send no more work
    const deadline = Date.now() + drainMs;
    while (this.runs.size > 0 && Date.now() < deadline) await this.changed(Math.max(1, deadline - Date.now()));
    for (const run of this.runs.values()) {
      run.cancelling = true;
      run.process.stop({ type: "CANCELLED", name: "Cancelled", message: "the agent shut down" });
    }
    const killDeadline = Date.now() + (this.options.killGraceMs ?? 5_000) + 1_000;
    while (this.runs.size > 0 && Date.now() < killDeadline) await this.changed(killDeadline - Date.now());
    // Give the control plane a moment to acknowledge the last reports.
    const ackDeadline = Date.now() + 2_000;
    while (this.outbox.size > 0 && this.welcomed && Date.now() < ackDeadline) await this.changed(ackDeadline - Date.now());
    await this.warm.close();
    this.stopping = true;
    clearInterval(this.heartbeat);
    clearTimeout(this.reconnectTimer);
    this.ws?.close(CloseCode.normal, "agent stopping");
    this.journal?.close();
    this.state?.release();
    this.notify();
  }

  /** Resolves when the agent has stopped for good (e.g. its token was revoked). */
  async stopped(): Promise<void> {
    while (!this.stopping) await this.changed(60_000);
  }

  private changed(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.waiters.add(done);
    });
  }

  private urls(): readonly string[] {
    const urls = typeof this.options.apiUrl === "string" ? [this.options.apiUrl] : this.options.apiUrl;
    if (!urls.length) throw new Error("the agent needs at least one control-plane URL");
    return urls;
  }

  private currentUrl(): string {
    const urls = this.urls();
    return urls[this.urlIndex % urls.length] ?? urls[0] ?? "";
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }

  // ---- connection ----------------------------------------------------------------------

  private connect(): void {
    if (this.stopping) return;
    const url = new URL(AGENT_WS_PATH, this.currentUrl().replace(/^http/, "ws"));
    const ws = new WebSocket(url, {
      headers: { authorization: `Bearer ${this.options.token}` },
      maxPayload: LIMITS.maxFrameBytes,
    });
    this.ws = ws;
    ws.on("open", () => {
      const hello: Hello = {
        type: "hello",
        v: PROTOCOL_VERSION,
        agentId: this.agentId,
        name: this.options.name,
        pools: this.options.pools,
        capacity: this.options.capacity,
        labels: this.options.labels ?? {},
        version: AGENT_VERSION,
        inFlight: this.inFlight(),
      };
      ws.send(JSON.stringify(hello));
    });
    ws.on("ping", () => {
      this.lastHeard = Date.now();
    });
    ws.on("message", (data, isBinary) => {
      this.lastHeard = Date.now();
      if (isBinary) return;
      this.onMessage(data.toString());
    });
    ws.on("error", (err) => this.log.debug({ err: err.message }, "connection error"));
    ws.on("close", (code, reason) => this.onClose(ws, code, reason.toString()));
  }

  private onClose(ws: WebSocket, code: number, reason: string): void {
    if (this.ws !== ws) return;
    this.welcomed = false;
    clearInterval(this.heartbeat);
    this.notify();
    if (this.stopping) return;
    if (FATAL_CLOSES.has(code)) {
      this.fatalError = `the control plane refused this agent (${code}): ${reason || "no reason given"}`;
      this.log.error({ code, reason }, "connection refused; not reconnecting");
      for (const run of this.runs.values()) run.process.kill();
      void this.warm.close();
      this.stopping = true;
      this.journal?.close();
      this.state?.release();
      this.notify();
      return;
    }
    // With several replicas, try the next one at once; back off only after a round of them all.
    const urls = this.urls();
    this.urlIndex = (this.urlIndex + 1) % urls.length;
    this.attemptsSinceWelcome++;
    const delay = this.attemptsSinceWelcome % urls.length === 0 ? this.backoff.next() : 50;
    this.log.warn(
      { code, reason, retryInMs: delay, next: this.currentUrl(), unacknowledged: this.outbox.size },
      "disconnected from the control plane",
    );
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  private onMessage(text: string): void {
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      this.log.warn("control plane sent a frame that is not JSON");
      return;
    }
    const parsed = validateMessage(ServerMessage, raw);
    if (!parsed.ok) {
      this.log.warn({ problem: parsed.message }, "control plane sent a message this agent does not understand");
      return;
    }
    const msg = parsed.value;
    switch (msg.type) {
      case "welcome":
        this.welcomed = true;
        this.attemptsSinceWelcome = 0;
        this.backoff.reset();
        this.log.info({ server: msg.serverVersion }, "connected to the control plane");
        clearInterval(this.heartbeat);
        this.heartbeatMs = msg.heartbeatIntervalMs;
        this.heartbeat = setInterval(() => this.sendHeartbeat(), msg.heartbeatIntervalMs);
        // Replay everything not yet acknowledged, in order, then the pending slot requests.
        for (const m of this.outbox.values()) this.transmit(m);
        for (const run of this.runs.values()) {
          for (const [taskRunId, tags] of run.slotRequests)
            this.sendNow({ type: "slots.acquire", v: PROTOCOL_VERSION, ...run.ref, taskRunId, tags });
        }
        this.notify();
        return;
      case "run.assign":
        this.onAssign(msg);
        return;
      case "run.cancel": {
        const run = this.runs.get(msg.flowRunId);
        if (run && run.ref.attempt === msg.attempt) {
          run.cancelling = true;
          run.process.stop({ type: "CANCELLED", name: "Cancelled", message: msg.reason });
        }
        return;
      }
      case "ack": {
        const sent = this.outbox.get(msg.msgId);
        if (!sent) return;
        if (!msg.ok && msg.error?.code === "INTERNAL") {
          // The control plane could not apply it (e.g. its database is down): try again, backing off
          // to at most 30 s per message, so a report that keeps failing does not flood it.
          const failures = (this.failures.get(msg.msgId) ?? 0) + 1;
          this.failures.set(msg.msgId, failures);
          const delay = Math.min(30_000, 1_000 * 2 ** (failures - 1));
          setTimeout(() => this.outbox.has(msg.msgId) && this.transmit(sent), delay).unref();
          return;
        }
        this.failures.delete(msg.msgId);
        this.acknowledged(msg.msgId);
        if (!msg.ok) this.log.warn({ msgId: msg.msgId, error: msg.error, type: sent.type }, "control plane refused a report");
        if (sent.type === "state.propose" && msg.orchestration?.status === "REJECT")
          this.onRejectedState(sent.flowRunId, sent.attempt);
        if (!msg.ok && msg.error?.code === "STALE_ATTEMPT") this.revoke({ flowRunId: sent.flowRunId, attempt: sent.attempt });
        this.notify();
        return;
      }
      case "slots.granted": {
        const run = this.runs.get(msg.flowRunId);
        if (run && run.ref.attempt === msg.attempt && run.slotRequests.delete(msg.taskRunId))
          run.process.slotsGranted(msg.taskRunId);
        return;
      }
      case "heartbeat.ack":
        for (const ref of msg.revoked) this.revoke(ref);
        return;
      case "error":
        this.log.warn({ code: msg.code, message: msg.message }, "control plane reported an error");
        return;
      default: {
        const unreachable: never = msg;
        this.log.warn({ msg: unreachable }, "unhandled message");
      }
    }
  }

  /**
   * Runs this agent still answers for: those it executes, and those it owes reports for
   * (e.g. a run that finished while the agent was disconnected, or before it restarted).
   * The control plane keeps them held until those reports are replayed.
   */
  private inFlight(): RunRef[] {
    const refs = new Map<string, RunRef>();
    for (const r of this.runs.values()) if (!r.revoked) refs.set(`${r.ref.flowRunId}:${r.ref.attempt}`, r.ref);
    for (const m of this.outbox.values()) refs.set(`${m.flowRunId}:${m.attempt}`, { flowRunId: m.flowRunId, attempt: m.attempt });
    return [...refs.values()];
  }

  private sendHeartbeat(): void {
    // Nothing heard from the control plane for three intervals: the connection is dead
    // even if TCP has not noticed. Drop it and reconnect (the outbox is replayed).
    if (this.ws && this.heartbeatMs && Date.now() - this.lastHeard > 3 * this.heartbeatMs) {
      this.log.warn({ silentMs: Date.now() - this.lastHeard }, "control plane silent; reconnecting");
      this.ws.terminate();
      return;
    }
    const runs = [...this.runs.values()].filter((r) => !r.revoked).map((r) => r.ref);
    this.sendNow({ type: "heartbeat", v: PROTOCOL_VERSION, runs, draining: this.draining });
  }

  private sendNow(message: object): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  private transmit(message: Reliable): void {
    if (this.welcomed) this.sendNow(message);
  }

  private enqueue(message: Unsent): void {
    const full: Reliable = { ...message, msgId: this.nextMsgId++ };
    this.journal?.put(full.msgId, full);
    this.outbox.set(full.msgId, full);
    this.transmit(full);
  }

  private acknowledged(msgId: number): void {
    this.outbox.delete(msgId);
    this.journal?.ack(msgId);
  }

  // ---- runs ------------------------------------------------------------------------------

  private onAssign(assign: RunAssign): void {
    const ref = { flowRunId: assign.flowRunId, attempt: assign.attempt };
    if (this.draining || this.runs.size >= this.options.capacity || this.runs.has(assign.flowRunId)) {
      const reason = this.draining ? "the agent is shutting down" : "the agent has no free capacity";
      this.sendNow({ type: "run.reject", v: PROTOCOL_VERSION, ...ref, reason });
      return;
    }
    this.sendNow({ type: "run.accept", v: PROTOCOL_VERSION, ...ref });
    // A prepared process of this entrypoint, if the pool has one whose code is current; else cold.
    const entrypoint = resolveEntrypoint(this.options.workDir, assign.entrypoint);
    const taken = entrypoint ? this.warm.take(entrypoint) : undefined;
    const run: ActiveRun = {
      ref,
      seq: 0,
      pendingLogs: [],
      logTimer: undefined,
      cancelling: false,
      revoked: false,
      slotRequests: new Map(),
      process: new FlowProcess(
        assign,
        {
          workDir: this.options.workDir,
          killGraceMs: this.options.killGraceMs ?? 5_000,
          resultDir: this.options.resultDir,
          agentName: this.options.name,
          env: this.flowEnv,
        },
        {
          running: () => this.propose(run, { type: "RUNNING", name: "Running" }),
          events: (events) => {
            if (run.revoked) return;
            for (const chunk of batches(events)) this.enqueue({ type: "run.events", v: PROTOCOL_VERSION, ...ref, events: chunk });
          },
          logs: (lines) => this.addLogs(run, lines),
          acquireSlots: (taskRunId, tags) => {
            run.slotRequests.set(taskRunId, tags);
            // Reports first: the control plane learns of the task run before its request.
            this.flushLogs(run);
            if (this.welcomed) this.sendNow({ type: "slots.acquire", v: PROTOCOL_VERSION, ...ref, taskRunId, tags });
          },
          exited: (state) => this.onExited(run, state),
        },
        entrypoint && taken ? (child) => this.warm.giveBack(entrypoint, child, taken.runs, this.warm.filesOf(child)) : undefined,
      ),
    };
    this.runs.set(assign.flowRunId, run);
    run.process.start(taken?.child);
    this.log.info(
      { flowRunId: assign.flowRunId, attempt: assign.attempt, flow: assign.flowName, warm: !!taken, pid: run.process.pid },
      "starting flow run",
    );
  }

  private addLogs(run: ActiveRun, lines: LogRecord[]): void {
    if (run.revoked) return;
    for (const l of lines) run.pendingLogs.push({ ...l, seq: run.seq++ });
    if (run.pendingLogs.length >= LIMITS.maxBatch) this.flushLogs(run);
    else run.logTimer ??= setTimeout(() => this.flushLogs(run), LOG_FLUSH_MS);
  }

  private flushLogs(run: ActiveRun): void {
    clearTimeout(run.logTimer);
    run.logTimer = undefined;
    const pending = run.pendingLogs;
    run.pendingLogs = [];
    if (run.revoked) return;
    for (const lines of batches(pending)) this.enqueue({ type: "logs", v: PROTOCOL_VERSION, ...run.ref, lines });
  }

  private propose(run: ActiveRun, state: StateProposal): void {
    if (run.revoked) return;
    this.flushLogs(run);
    this.enqueue({
      type: "state.propose",
      v: PROTOCOL_VERSION,
      eventId: randomUUID(),
      ...run.ref,
      state,
      timestamp: new Date().toISOString(),
    });
  }

  private onExited(run: ActiveRun, state: StateProposal): void {
    const final =
      run.cancelling && state.type !== "CANCELLED"
        ? { type: "CANCELLED" as const, name: "Cancelled", message: "cancelled" }
        : state;
    this.propose(run, final);
    this.runs.delete(run.ref.flowRunId);
    this.log.info({ flowRunId: run.ref.flowRunId, state: final.type }, "flow run finished");
    this.notify();
  }

  /** The control plane refused a state of this run (e.g. it was cancelled or handed to another attempt). */
  private onRejectedState(flowRunId: string, attempt: number): void {
    const run = this.runs.get(flowRunId);
    if (run && run.ref.attempt === attempt) this.revoke(run.ref);
  }

  private revoke(ref: RunRef): void {
    const run = this.runs.get(ref.flowRunId);
    if (!run || run.ref.attempt !== ref.attempt || run.revoked) return;
    this.log.warn({ flowRunId: ref.flowRunId, attempt: ref.attempt }, "attempt no longer held by this agent; stopping it");
    run.revoked = true;
    run.process.kill();
  }
}
