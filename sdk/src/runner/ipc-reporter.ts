import { LIMITS, PROTOCOL_VERSION } from "../protocol/common.ts";
import type { LogRecord, RunEvent } from "../protocol/events.ts";
import type { FromFlowProcess } from "../protocol/ipc.ts";
import type { RunReporter } from "../runtime/scope.ts";

const FLUSH_MS = 20;
/**
 * As many as one agent → control plane message carries: a burst then costs the control plane
 * one transaction (one durable commit) per thousand events.
 */
const FLUSH_AT = LIMITS.maxBatch;

/**
 * Sends what the flow runtime reports to the agent over IPC, in batches: a burst of
 * thousands of task events costs a handful of messages, not one each.
 */
export class IpcReporter implements RunReporter {
  private events: RunEvent[] = [];
  private logs: LogRecord[] = [];
  private timer: NodeJS.Timeout | undefined;

  private readonly waitingForSlots = new Map<string, () => void>();

  constructor(private readonly send: (message: FromFlowProcess) => Promise<void>) {}

  async acquireSlots(taskRunId: string, tags: readonly string[]): Promise<void> {
    const granted = new Promise<void>((resolve) => this.waitingForSlots.set(taskRunId, resolve));
    await this.flush(); // the task run's creation reaches the control plane first
    await this.send({ type: "slots.acquire", v: PROTOCOL_VERSION, taskRunId, tags: [...tags] });
    return granted;
  }

  /** The agent relayed the control plane's grant. */
  slotsGranted(taskRunId: string): void {
    this.waitingForSlots.get(taskRunId)?.();
    this.waitingForSlots.delete(taskRunId);
  }

  event(e: RunEvent): void {
    this.events.push(e);
    this.schedule();
  }

  log(record: LogRecord): void {
    // Events first: a log line may refer to a child flow run created by a pending event.
    this.logs.push(record);
    this.schedule();
  }

  private schedule(): void {
    if (this.events.length + this.logs.length >= FLUSH_AT) {
      void this.flush();
    } else if (!this.timer) {
      this.timer = setTimeout(() => void this.flush(), FLUSH_MS);
    }
  }

  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const events = this.events;
    const logs = this.logs;
    this.events = [];
    this.logs = [];
    if (events.length) await this.send({ type: "events", v: PROTOCOL_VERSION, events });
    if (logs.length) await this.send({ type: "logs", v: PROTOCOL_VERSION, lines: logs });
  }
}
