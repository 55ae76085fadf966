import { type ChildProcess, spawn } from "node:child_process";
import { resolve, sep } from "node:path";
import { createInterface } from "node:readline";
import {
  FromFlowProcess,
  type IpcFinished,
  LIMITS,
  type LogRecord,
  PROTOCOL_VERSION,
  type RunAssign,
  type RunEvent,
  type StateProposal,
  validateMessage,
} from "@ferry/sdk/protocol";

export interface FlowProcessHandlers {
  running(): void;
  events(events: RunEvent[]): void;
  logs(lines: LogRecord[]): void;
  /** A task run asks for concurrency slots of its tags. */
  acquireSlots(taskRunId: string, tags: string[]): void;
  /** The process is gone; `state` is the run's final state as this agent sees it. */
  exited(state: StateProposal): void;
}

export interface FlowProcessOptions {
  /** Directory the deployment's entrypoint is relative to; the process runs there. */
  workDir: string;
  /** Time between SIGTERM and SIGKILL when stopping a flow process. */
  killGraceMs: number;
  /** The result store (a directory) task results are kept in; absent: none. */
  resultDir?: string | undefined;
}

const tsxLoader = import.meta.resolve("tsx");
const runnerMain = new URL(import.meta.resolve("@ferry/sdk/runner/main"));

/**
 * One flow run in its own child process: user code never shares the agent's memory, and
 * a crash, a timeout or a cancel ends exactly that process.
 */
export class FlowProcess {
  private child: ChildProcess | undefined;
  private finished: IpcFinished | undefined;
  private stopReason: { state: StateProposal } | undefined;
  private timeout: NodeJS.Timeout | undefined;
  private killTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly assign: RunAssign,
    private readonly options: FlowProcessOptions,
    private readonly handlers: FlowProcessHandlers,
  ) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  start(): void {
    const { assign } = this;
    const child = spawn(process.execPath, ["--import", tsxLoader, runnerMain.pathname], {
      cwd: this.options.workDir,
      stdio: ["ignore", "pipe", "pipe", "ipc"],
      env: { ...process.env, FERRY_FLOW_RUN_ID: assign.flowRunId, FERRY_ATTEMPT: String(assign.attempt) },
    });
    this.child = child;
    this.pipeLines(child.stdout, "info");
    this.pipeLines(child.stderr, "error");
    child.on("message", (raw: unknown) => this.onMessage(raw));
    child.on("error", (err) => {
      this.handlers.logs([line("error", `could not start the flow process: ${err.message}`)]);
    });
    // "close" (not "exit"): it comes after the last IPC message and output line were delivered.
    child.on("close", (code, signal) => this.onExit(code, signal));
    if (assign.timeoutMs) {
      this.timeout = setTimeout(
        () => this.stop({ type: "FAILED", name: "TimedOut", message: `flow run exceeded its timeout of ${assign.timeoutMs} ms` }),
        assign.timeoutMs,
      );
    }
  }

  /** Ends the process (SIGTERM, then SIGKILL after the grace period); the run ends in `state`. */
  stop(state: StateProposal): void {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.stopReason ??= { state };
    this.child.kill("SIGTERM");
    this.killTimer = setTimeout(() => this.child?.kill("SIGKILL"), this.options.killGraceMs);
  }

  slotsGranted(taskRunId: string): void {
    if (this.child?.connected) this.child.send({ type: "slots.granted", v: PROTOCOL_VERSION, taskRunId });
  }

  /** Ends the process at once without reporting a state (the attempt is no longer ours). */
  kill(): void {
    this.stopReason ??= { state: { type: "CANCELLED", name: "Cancelled" } };
    this.child?.kill("SIGKILL");
  }

  private onMessage(raw: unknown): void {
    const parsed = validateMessage(FromFlowProcess, raw);
    if (!parsed.ok) {
      this.handlers.logs([line("error", `agent: the flow process sent a bad message: ${parsed.message}`)]);
      return;
    }
    const msg = parsed.value;
    switch (msg.type) {
      case "ready": {
        // Entrypoints are relative to the work directory and may not leave it.
        const root = resolve(this.options.workDir);
        const entrypoint = resolve(root, this.assign.entrypoint);
        if (!entrypoint.startsWith(`${root}${sep}`)) {
          this.handlers.logs([
            line("error", `agent: entrypoint ${this.assign.entrypoint} is outside the work directory ${root}`),
          ]);
          this.stop({
            type: "FAILED",
            name: "Failed",
            message: `entrypoint ${this.assign.entrypoint} is outside the agent's work directory`,
          });
          return;
        }
        this.child?.send({
          type: "start",
          v: PROTOCOL_VERSION,
          flowRunId: this.assign.flowRunId,
          attempt: this.assign.attempt,
          entrypoint,
          flowName: this.assign.flowName,
          parameters: this.assign.parameters,
          retriesLeft: this.assign.retriesLeft,
          ...(this.options.resultDir ? { resultDir: this.options.resultDir } : {}),
          ...(this.assign.schedule ? { schedule: this.assign.schedule } : {}),
        });
        return;
      }
      case "running":
        this.handlers.running();
        return;
      case "events":
        this.handlers.events(msg.events);
        return;
      case "logs":
        this.handlers.logs(msg.lines);
        return;
      case "finished":
        this.finished = msg;
        return;
      case "slots.acquire":
        this.handlers.acquireSlots(msg.taskRunId, msg.tags);
        return;
      default: {
        const unreachable: never = msg;
        throw new Error(`unhandled message ${JSON.stringify(unreachable)}`);
      }
    }
  }

  private onExit(code: number | null, signal: NodeJS.Signals | null): void {
    clearTimeout(this.timeout);
    clearTimeout(this.killTimer);
    let state: StateProposal;
    if (this.stopReason) state = this.stopReason.state;
    else if (this.finished) state = this.finished.state;
    else {
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      state = { type: "CRASHED", name: "Crashed", message: `the flow process ${how} before reporting a result` };
    }
    this.handlers.exited(state);
  }

  private pipeLines(stream: NodeJS.ReadableStream | null, level: "info" | "error"): void {
    if (!stream) return;
    const rl = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
    rl.on("line", (text) => this.handlers.logs([line(level, text)]));
  }
}

function line(level: LogRecord["level"], message: string): LogRecord {
  return { timestamp: new Date().toISOString(), level, message: message.slice(0, LIMITS.maxLogChars) };
}
