/**
 * An agent on the raw wire protocol for benchmarks: it says hello, heartbeats like a real
 * agent, and (when `complete` is set) finishes every run it is assigned at once, so what is
 * measured is the control plane, not flow processes.
 */
import { performance } from "node:perf_hooks";
import { AGENT_WS_PATH, PROTOCOL_VERSION } from "@ferry/sdk/protocol";
import WebSocket from "ws";

export interface FakeAgentOptions {
  url: string;
  token: string;
  agentId: string;
  pools: string[];
  capacity: number;
  /** Finish each assigned run at once (RUNNING then COMPLETED). */
  complete: boolean;
  heartbeatMs?: number;
}

export class FakeAgent {
  private ws: WebSocket | undefined;
  private msgId = 0;
  private heartbeat: NodeJS.Timeout | undefined;
  private readonly held = new Map<string, number>();
  /** msgId of each run's COMPLETED proposal → run id. */
  private readonly completing = new Map<number, string>();
  /** When each run's assignment arrived (performance.now()). */
  readonly assignedAt = new Map<string, number>();
  /** Runs whose COMPLETED the control plane acknowledged. */
  completed = 0;
  onAssign: ((flowRunId: string, at: number) => void) | undefined;
  onCompleted: (() => void) | undefined;

  constructor(private readonly options: FakeAgentOptions) {}

  async connect(): Promise<void> {
    const ws = new WebSocket(new URL(AGENT_WS_PATH, this.options.url.replace(/^http/, "ws")), {
      headers: { authorization: `Bearer ${this.options.token}` },
    });
    this.ws = ws;
    let welcomed: () => void = () => {};
    const welcome = new Promise<void>((resolve) => (welcomed = resolve));
    ws.on("message", (data) => {
      const at = performance.now();
      const msg = JSON.parse(data.toString()) as {
        type: string;
        flowRunId?: string;
        attempt?: number;
        msgId?: number;
        ok?: boolean;
        heartbeatIntervalMs?: number;
      };
      if (msg.type === "welcome") {
        const every = this.options.heartbeatMs ?? msg.heartbeatIntervalMs ?? 5_000;
        this.heartbeat = setInterval(() => this.sendHeartbeat(), every);
        welcomed();
      } else if (msg.type === "run.assign" && msg.flowRunId && msg.attempt !== undefined) {
        this.assignedAt.set(msg.flowRunId, at);
        this.held.set(msg.flowRunId, msg.attempt);
        this.onAssign?.(msg.flowRunId, at);
        if (this.options.complete) this.finish(msg.flowRunId, msg.attempt);
      } else if (msg.type === "ack" && msg.msgId !== undefined) {
        const run = this.completing.get(msg.msgId);
        if (run !== undefined) {
          this.completing.delete(msg.msgId);
          this.held.delete(run);
          this.completed++;
          this.onCompleted?.();
        }
      }
    });
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
    });
    this.send({
      type: "hello",
      v: PROTOCOL_VERSION,
      agentId: this.options.agentId,
      name: this.options.agentId,
      pools: this.options.pools,
      capacity: this.options.capacity,
      labels: {},
      version: "bench",
      inFlight: [],
    });
    await welcome;
  }

  private send(message: Record<string, unknown>): void {
    this.ws?.send(JSON.stringify(message));
  }

  private sendHeartbeat(): void {
    const runs = [...this.held].map(([flowRunId, attempt]) => ({ flowRunId, attempt }));
    this.send({ type: "heartbeat", v: PROTOCOL_VERSION, runs, draining: false });
  }

  private finish(flowRunId: string, attempt: number): void {
    for (const type of ["RUNNING", "COMPLETED"] as const) {
      const msgId = this.msgId++;
      if (type === "COMPLETED") this.completing.set(msgId, flowRunId);
      this.send({
        type: "state.propose",
        v: PROTOCOL_VERSION,
        msgId,
        eventId: `${flowRunId}-${attempt}-${type}`,
        flowRunId,
        attempt,
        state: { type, name: type === "RUNNING" ? "Running" : "Completed" },
        timestamp: new Date().toISOString(),
      });
    }
  }

  close(): void {
    clearInterval(this.heartbeat);
    this.ws?.close();
  }
}
