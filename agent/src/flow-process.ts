import { type ChildProcess, spawn } from "node:child_process";
import { realpathSync } from "node:fs";
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
  type ToFlowProcess,
  validateMessage,
} from "@ferry/sdk/protocol";
import { flowEnvironment } from "./flow-env.ts";

export interface FlowProcessHandlers {
  running(): void;
  events(events: RunEvent[]): void;
  logs(lines: LogRecord[]): void;
  /** A task run asks for concurrency slots of its tags. */
  acquireSlots(taskRunId: string, tags: string[]): void;
  /** The run is over (the process is gone, or went back to the pool); `state` is its final state as this agent sees it. */
  exited(state: StateProposal): void;
}

export interface FlowProcessOptions {
  /** Directory the deployment's entrypoint is relative to; the process runs there. */
  workDir: string;
  /** Time between SIGTERM and SIGKILL when stopping a flow process. */
  killGraceMs: number;
  /** The result store (a directory) task results are kept in; absent: none. */
  resultDir?: string | undefined;
  /** The agent's name, shown in the process title of flow processes. */
  agentName?: string | undefined;
  /** The flow process's environment before the run's own variables (default: the allow-listed agent environment). */
  env?: Readonly<Record<string, string>> | undefined;
}

const tsxLoader = import.meta.resolve("tsx");

let defaultEnv: Record<string, string> | undefined;
/** The allow-listed environment without operator additions, for callers that give none. */
function defaultFlowEnv(): Record<string, string> {
  defaultEnv ??= flowEnvironment(process.env);
  return defaultEnv;
}
const runnerMain = new URL(import.meta.resolve("@ferry/sdk/runner/main"));

/** Stdout/stderr lines of a process that serves several runs may trail its `finished` message by this much. */
const OUTPUT_DRAIN_MS = 25;

/**
 * The absolute path of a deployment's entrypoint inside the work directory, or undefined when
 * it points outside it (entrypoints may not leave the work directory). Checked twice: as
 * written (`../`), and as the file system resolves it, so a symbolic link inside the work
 * directory (to a file, or a folder on the way) cannot lead out of it. A path that does not
 * exist passes the second check (the run then fails to find its module).
 */
export function resolveEntrypoint(workDir: string, entrypoint: string): string | undefined {
  const root = resolve(workDir);
  const path = resolve(root, entrypoint);
  if (!path.startsWith(`${root}${sep}`)) return undefined;
  let real: string;
  try {
    real = realpathSync(path);
  } catch {
    return path;
  }
  const realRoot = realpathSync(root);
  return real.startsWith(`${realRoot}${sep}`) ? path : undefined;
}

/** What a flow child reports; the owner (the warm pool while idle, a FlowProcess while it runs) swaps these. */
export interface FlowChildSink {
  message(message: FromFlowProcess): void;
  badMessage(problem: string): void;
  line(level: "info" | "error", text: string): void;
  /** The process is gone (after its last message and output line). */
  closed(code: number | null, signal: NodeJS.Signals | null): void;
}

/**
 * A child process running the flow runner (`@ferry/sdk/runner/main` under tsx), with its IPC
 * messages validated and its output split in lines. Cold starts spawn one per run; the warm
 * pool spawns them ahead of runs.
 */
export class FlowChild {
  private sink: FlowChildSink;
  private exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  private constructor(
    readonly process: ChildProcess,
    sink: FlowChildSink,
  ) {
    this.sink = sink;
    process.on("message", (raw: unknown) => {
      const parsed = validateMessage(FromFlowProcess, raw);
      if (parsed.ok) this.sink.message(parsed.value);
      else this.sink.badMessage(parsed.message);
    });
    process.on("error", (err) => this.sink.line("error", `could not start the flow process: ${err.message}`));
    // "close" (not "exit"): it comes after the last IPC message and output line were delivered.
    process.on("close", (code, signal) => {
      this.exit = { code, signal };
      this.sink.closed(code, signal);
    });
    for (const [stream, level] of [
      [process.stdout, "info"],
      [process.stderr, "error"],
    ] as const) {
      if (!stream) continue;
      const rl = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
      rl.on("line", (text) => this.sink.line(level, text));
    }
  }

  /**
   * Starts a flow process with exactly `env` (never the agent's own environment, which holds its
   * token): `base` is the allow-listed environment (see flow-env.ts), `env` the runner's variables.
   */
  static spawn(
    workDir: string,
    env: Record<string, string>,
    sink: FlowChildSink,
    base: Readonly<Record<string, string>> = defaultFlowEnv(),
  ): FlowChild {
    const child = spawn(process.execPath, ["--import", tsxLoader, runnerMain.pathname], {
      cwd: workDir,
      stdio: ["ignore", "pipe", "pipe", "ipc"],
      env: { ...base, ...env },
    });
    return new FlowChild(child, sink);
  }

  get pid(): number | undefined {
    return this.process.pid;
  }

  /** Whether the process is still running (it may still be loading). */
  get alive(): boolean {
    return !this.exit && this.process.exitCode === null && this.process.signalCode === null;
  }

  setSink(sink: FlowChildSink): void {
    this.sink = sink;
  }

  send(message: ToFlowProcess): void {
    if (this.process.connected) this.process.send(message);
  }

  kill(signal: NodeJS.Signals): void {
    if (this.alive) this.process.kill(signal);
  }
}

/** A sink that ignores everything but the end of the process. */
export function quietSink(closed: FlowChildSink["closed"] = () => {}): FlowChildSink {
  return { message: () => {}, badMessage: () => {}, line: () => {}, closed };
}

/**
 * One flow run in its own child process: user code never shares the agent's memory, and
 * a crash, a timeout or a cancel ends exactly that process. The process is either started
 * for the run (cold) or taken from the warm pool, already prepared (warm).
 */
export class FlowProcess {
  private child: FlowChild | undefined;
  private finished: IpcFinished | undefined;
  private stopReason: { state: StateProposal } | undefined;
  private timeout: NodeJS.Timeout | undefined;
  private killTimer: NodeJS.Timeout | undefined;
  private ended = false;
  /** The process has answered `start` (the run began in it): from here its end is the run's end. */
  private heard = false;
  private sink: FlowChildSink | undefined;
  /** Whether the process was taken from the warm pool. */
  warm = false;

  constructor(
    readonly assign: RunAssign,
    private readonly options: FlowProcessOptions,
    private readonly handlers: FlowProcessHandlers,
    /** Called with the process when a run ended and it may serve another (warm processes with runs left). */
    private readonly reusable?: (child: FlowChild) => void,
  ) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts the run, in `prepared` (a warm process whose entrypoint is this run's) or else in a new process. */
  start(prepared?: FlowChild): void {
    const { assign } = this;
    const sink: FlowChildSink = {
      message: (msg) => this.onMessage(msg),
      // A report the agent cannot pass on would leave the run's record incomplete (task runs or
      // states missing): the run ends CRASHED, saying why, rather than going on with a gap.
      badMessage: (problem) => {
        const message = `agent: the flow process sent a bad message: ${problem}`;
        this.handlers.logs([line("error", message)]);
        this.stop({ type: "CRASHED", name: "Crashed", message: message.slice(0, 2000) });
      },
      line: (level, text) => {
        if (!this.ended) this.handlers.logs([line(level, text)]);
      },
      closed: (code, signal) => this.onExit(code, signal),
    };
    this.sink = sink;
    if (prepared?.alive) {
      this.warm = true;
      this.child = prepared;
      prepared.setSink(sink);
      this.sendStart();
    } else {
      this.child = FlowChild.spawn(this.options.workDir, this.processEnv(), sink, this.options.env);
    }
    if (assign.timeoutMs) {
      this.timeout = setTimeout(
        () => this.stop({ type: "FAILED", name: "TimedOut", message: `flow run exceeded its timeout of ${assign.timeoutMs} ms` }),
        assign.timeoutMs,
      );
    }
  }

  private processEnv(): Record<string, string> {
    return {
      FERRY_FLOW_RUN_ID: this.assign.flowRunId,
      FERRY_ATTEMPT: String(this.assign.attempt),
      FERRY_AGENT_NAME: this.options.agentName ?? "agent",
    };
  }

  /** Ends the process (SIGTERM, then SIGKILL after the grace period); the run ends in `state`. */
  stop(state: StateProposal): void {
    if (!this.child?.alive || this.ended) return;
    this.stopReason ??= { state };
    this.child.kill("SIGTERM");
    this.killTimer = setTimeout(() => this.child?.kill("SIGKILL"), this.options.killGraceMs);
  }

  slotsGranted(taskRunId: string): void {
    this.child?.send({ type: "slots.granted", v: PROTOCOL_VERSION, taskRunId });
  }

  /** Ends the process at once without reporting a state (the attempt is no longer ours). */
  kill(): void {
    if (this.ended) return;
    this.stopReason ??= { state: { type: "CANCELLED", name: "Cancelled" } };
    this.child?.kill("SIGKILL");
  }

  private sendStart(): void {
    const entrypoint = resolveEntrypoint(this.options.workDir, this.assign.entrypoint);
    if (!entrypoint) {
      this.handlers.logs([
        line(
          "error",
          `agent: entrypoint ${this.assign.entrypoint} is outside the work directory ${resolve(this.options.workDir)}`,
        ),
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
  }

  private onMessage(msg: FromFlowProcess): void {
    if (msg.type !== "ready" && msg.type !== "prepared") this.heard = true;
    switch (msg.type) {
      case "ready":
        // A cold process has loaded: the agent answers with the run.
        if (!this.warm) this.sendStart();
        return;
      case "prepared":
        return;
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
        // A process that stays for another run does not exit: the run ends here.
        if (msg.reusable) setTimeout(() => this.endReusable(), OUTPUT_DRAIN_MS);
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

  private endReusable(): void {
    const child = this.child;
    if (this.ended || !child?.alive || this.stopReason || !this.finished) return;
    this.ended = true;
    clearTimeout(this.timeout);
    child.setSink(quietSink());
    this.handlers.exited(this.finished.state);
    if (this.reusable) this.reusable(child);
    else child.kill("SIGTERM");
  }

  private onExit(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.ended) return;
    if (this.warm && !this.heard && !this.stopReason && this.sink) {
      // The warm process died before the run began in it (e.g. killed while idle, just before
      // the agent noticed): nothing of the run has happened yet, so it starts cold instead.
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      this.handlers.logs([line("info", `agent: the warm flow process ${how} before the run began; starting it cold`)]);
      this.warm = false;
      this.child = FlowChild.spawn(this.options.workDir, this.processEnv(), this.sink, this.options.env);
      return;
    }
    clearTimeout(this.timeout);
    clearTimeout(this.killTimer);
    this.ended = true;
    let state: StateProposal;
    if (this.stopReason) state = this.stopReason.state;
    else if (this.finished) state = this.finished.state;
    else {
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      state = { type: "CRASHED", name: "Crashed", message: `the flow process ${how} before reporting a result` };
    }
    this.handlers.exited(state);
  }
}

function line(level: LogRecord["level"], message: string): LogRecord {
  return { timestamp: new Date().toISOString(), level, message: message.slice(0, LIMITS.maxLogChars) };
}
