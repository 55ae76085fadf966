/**
 * A protocol-level agent for the security suites, on the fuzzer's socket: says hello, accepts
 * every assignment and proposes RUNNING, and sends whatever reports a test makes up.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { AgentMessage, type LogLine, PROTOCOL_VERSION, type RunEvent, type RunRef, ServerMessage } from "@ferry/sdk/protocol";
import { waitUntil } from "../e2e/harness.ts";
import { FuzzSocket } from "../fuzz/agent-socket.ts";

/** The pool a raw agent serves unless told otherwise. */
export const RAW_AGENT_POOL = "sec-agents";

const now = () => new Date().toISOString();

/** A protocol-level agent on the fuzzer's socket: accepts every assignment and proposes RUNNING. */
export class RawAgent {
  readonly frames: ServerMessage[] = [];
  closed: { code: number; reason: string } | undefined;
  private nextMsgId = 1;

  private constructor(private readonly socket: FuzzSocket) {
    void this.pump();
  }

  /** Opens a socket with `token` and says hello as `agentId`; does not wait for the answer. */
  static async open(
    wsUrl: string,
    token: string,
    agentId: string,
    inFlight: RunRef[] = [],
    options: { pools?: string[]; capacity?: number } = {},
  ): Promise<RawAgent> {
    const opened = await FuzzSocket.open(wsUrl, { authorization: `Bearer ${token}` });
    if (!opened.ok) throw new Error(`agent upgrade refused: ${opened.refused}`);
    const agent = new RawAgent(opened.socket);
    agent.send({
      type: "hello",
      v: PROTOCOL_VERSION,
      agentId,
      name: agentId,
      pools: options.pools ?? [RAW_AGENT_POOL],
      capacity: options.capacity ?? 4,
      labels: {},
      version: "test",
      inFlight,
    });
    return agent;
  }

  /** Opens and waits for the welcome. */
  static async connect(wsUrl: string, token: string, agentId: string): Promise<RawAgent> {
    const agent = await RawAgent.open(wsUrl, token, agentId);
    await waitUntil(`welcome of ${agentId}`, async () => agent.welcomed || agent.closed, 10_000);
    assert.ok(agent.welcomed, `${agentId} was refused: ${JSON.stringify(agent.closed)}`);
    const welcome = agent.frames.find((f) => f.type === "welcome");
    assert.equal(welcome?.type === "welcome" && welcome.agentId, agentId, "the welcome names the agent's own id");
    return agent;
  }

  private async pump(): Promise<void> {
    for (;;) {
      const e = await this.socket.next(60_000);
      if (!e) continue;
      if (e.kind === "close") {
        this.closed = { code: e.code, reason: e.reason };
        return;
      }
      const parsed = ServerMessage.safeParse(e.value);
      if (!parsed.success) continue;
      const msg = parsed.data;
      this.frames.push(msg);
      if (msg.type === "run.assign") {
        this.send({ type: "run.accept", v: PROTOCOL_VERSION, flowRunId: msg.flowRunId, attempt: msg.attempt });
        this.send({
          type: "state.propose",
          v: PROTOCOL_VERSION,
          msgId: this.msgId(),
          eventId: randomUUID(),
          flowRunId: msg.flowRunId,
          attempt: msg.attempt,
          state: { type: "RUNNING", name: "Running" },
          timestamp: now(),
        });
      }
    }
  }

  get welcomed(): boolean {
    return this.frames.some((f) => f.type === "welcome");
  }

  get open(): boolean {
    return !this.closed;
  }

  msgId(): number {
    return this.nextMsgId++;
  }

  send(msg: AgentMessage): void {
    this.socket.sendText(JSON.stringify(AgentMessage.parse(msg)));
  }

  /** The attempt of a run assigned to this agent. */
  assigned(flowRunId: string): Promise<RunRef> {
    return waitUntil(`run.assign of ${flowRunId}`, async () => {
      const a = this.frames.find((f) => f.type === "run.assign" && f.flowRunId === flowRunId);
      return a?.type === "run.assign" ? { flowRunId, attempt: a.attempt } : undefined;
    });
  }

  /** Sends a reliable report and returns its ack. */
  async report(msg: AgentMessage & { msgId: number }): Promise<Extract<ServerMessage, { type: "ack" }>> {
    this.send(msg);
    return waitUntil(`ack of ${msg.type} ${msg.msgId}`, async () => {
      const ack = this.frames.find((f) => f.type === "ack" && f.msgId === msg.msgId);
      return ack?.type === "ack" ? ack : undefined;
    });
  }

  events(ref: RunRef, events: RunEvent[]) {
    return this.report({ type: "run.events", v: PROTOCOL_VERSION, msgId: this.msgId(), ...ref, events });
  }

  logs(ref: RunRef, lines: LogLine[]) {
    return this.report({ type: "logs", v: PROTOCOL_VERSION, msgId: this.msgId(), ...ref, lines });
  }

  /** A heartbeat listing `runs`; resolves with the attempts the control plane revoked. */
  async heartbeat(runs: RunRef[]): Promise<RunRef[]> {
    const before = this.frames.filter((f) => f.type === "heartbeat.ack").length;
    this.send({ type: "heartbeat", v: PROTOCOL_VERSION, runs, draining: false });
    const ack = await waitUntil("heartbeat.ack", async () => this.frames.filter((f) => f.type === "heartbeat.ack")[before]);
    return ack.type === "heartbeat.ack" ? ack.revoked : [];
  }

  close(): void {
    this.socket.close();
  }
}
