import type { ServerMessage } from "@ferry/sdk/protocol";
import type { WebSocket } from "ws";

/** What the control plane knows about one connected agent. Rebuilt from the hello on every connect. */
export class AgentConnection {
  /** Runs this agent holds (PENDING, RUNNING, CANCELLING): its used capacity. */
  readonly held = new Set<string>();
  /** The agent said it is shutting down: no new work for it. */
  draining = false;
  /** Runs the agent's last heartbeat listed (and the control plane confirmed it holds), and those it reported on since. */
  vouched = new Set<string>();
  /** When leases of `vouched` runs were last renewed (ms since the epoch). */
  renewedAt = 0;
  /** When this connection said hello (a later one of the same agent, on any replica, wins). */
  connectedAt = new Date();

  constructor(
    readonly socket: WebSocket,
    readonly agentId: string,
    readonly workspaceId: string,
    readonly tokenId: string,
    readonly name: string,
    readonly pools: readonly string[],
    readonly capacity: number,
    /** Told the type of every message sent (metrics). */
    private readonly onSend?: (type: ServerMessage["type"]) => void,
  ) {}

  get free(): number {
    return this.draining ? 0 : this.capacity - this.held.size;
  }

  get open(): boolean {
    return this.socket.readyState === this.socket.OPEN;
  }

  send(message: ServerMessage): void {
    if (!this.open) return;
    this.socket.send(JSON.stringify(message));
    this.onSend?.(message.type);
  }
}
