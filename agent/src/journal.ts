import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { join } from "node:path";

/** One line of the journal: a report the agent produced, or the control plane's acknowledgement of one. */
type Entry<T> = { op: "put"; msgId: number; message: T } | { op: "ack"; msgId: number };

/** Rewrite the file once it holds this many more entries than pending messages. */
const COMPACT_SLACK = 10_000;

/**
 * The agent's append-only journal of unacknowledged reports (states, task events, logs).
 * Every report is appended before it is sent and marked when the control plane
 * acknowledges it, so an agent that is killed and started again replays exactly what the
 * control plane has not confirmed. Writes go straight to the file (the OS keeps them if the
 * process dies); `fsync` is used when compacting, so a rewrite cannot lose the journal.
 */
export class Journal<T> {
  private fd: number;
  private entries = 0;
  readonly pending = new Map<number, T>();
  private readonly path: string;

  constructor(dir: string) {
    this.path = join(dir, "journal.jsonl");
    if (existsSync(this.path)) this.load();
    this.fd = openSync(this.path, "a");
  }

  /** The highest msgId ever journaled (new messages continue after it). */
  get lastMsgId(): number {
    return this.maxId;
  }
  private maxId = 0;

  private load(): void {
    const text = readFileSync(this.path, "utf8");
    for (const line of text.split("\n")) {
      if (!line) continue;
      let entry: Entry<T>;
      try {
        entry = JSON.parse(line) as Entry<T>;
      } catch {
        continue; // a line cut short by a crash mid-write: it was never sent, or will be re-produced
      }
      this.entries++;
      this.maxId = Math.max(this.maxId, entry.msgId);
      if (entry.op === "put") this.pending.set(entry.msgId, entry.message);
      else this.pending.delete(entry.msgId);
    }
  }

  put(msgId: number, message: T): void {
    this.append({ op: "put", msgId, message });
    this.pending.set(msgId, message);
    this.maxId = Math.max(this.maxId, msgId);
  }

  ack(msgId: number): void {
    if (!this.pending.delete(msgId)) return;
    this.append({ op: "ack", msgId });
    if (this.entries > this.pending.size + COMPACT_SLACK) this.compact();
  }

  private append(entry: Entry<T>): void {
    writeSync(this.fd, `${JSON.stringify(entry)}\n`);
    this.entries++;
  }

  /** Rewrites the file with only the pending messages (write a copy, fsync, rename over). */
  private compact(): void {
    const tmp = `${this.path}.tmp`;
    const fd = openSync(tmp, "w");
    for (const [msgId, message] of this.pending) writeSync(fd, `${JSON.stringify({ op: "put", msgId, message })}\n`);
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, this.path);
    closeSync(this.fd);
    this.fd = openSync(this.path, "a");
    this.entries = this.pending.size;
  }

  close(): void {
    closeSync(this.fd);
  }
}
