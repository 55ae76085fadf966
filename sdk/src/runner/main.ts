/**
 * Entry point of a flow process. The agent starts one per flow run with an IPC channel,
 * sends `start`, and this process imports the flow's module, runs the flow and reports.
 * It exits 0 after reporting `finished`. If it exits without reporting `finished`, the
 * agent records the run as CRASHED with the exit code or signal.
 *
 * Warm start: the agent may instead send `prepare` ahead of any run. The process then
 * imports the entrypoint (the SDK and the user's imports get loaded), answers `prepared`
 * with the files it loaded, and waits in the agent's pool for `start`. With `maxRuns` > 1 it
 * waits for the next `start` after a run that completed, instead of exiting.
 */
import { pathToFileURL } from "node:url";
import { errorMessage, serializeError } from "../errors.ts";
import { PROTOCOL_VERSION } from "../protocol/common.ts";
import { type FromFlowProcess, type IpcPrepare, type IpcStart, ToFlowProcess } from "../protocol/ipc.ts";
import { validateMessage } from "../protocol/parse.ts";
import { decoratedFlowDefs, flowsInModule } from "../runtime/authoring.ts";
import { executeFlow } from "../runtime/flow.ts";
import { LocalResultStore } from "../runtime/result-store.ts";
import { log } from "../runtime/scope.ts";
import { IpcReporter } from "./ipc-reporter.ts";
import { LoadedFiles } from "./loaded-files.ts";
import { registerFallbackResolution } from "./resolution.ts";

// The agent died while this process was loading: never start work as an orphan.
if (!process.connected) process.exit(137);
registerFallbackResolution();

function send(message: FromFlowProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!process.send) return reject(new Error("the flow process has no IPC channel: it must be started by an agent"));
    process.send(message, undefined, {}, (err) => (err ? reject(err) : resolve()));
  });
}

/** The run in progress: its abort signal, and its reporter (flushed on SIGTERM so a cancelled run keeps its last reports). */
let current: { abort: AbortController; reporter: IpcReporter } | undefined;
/** Set by `prepare`: the entrypoint imported ahead of the run, and how many runs this process may serve. */
let prepared: { entrypoint: string; exports: Promise<Record<string, unknown>>; maxRuns: number } | undefined;
let runsStarted = 0;

function importEntrypoint(entrypoint: string): Promise<Record<string, unknown>> {
  return import(pathToFileURL(entrypoint).href) as Promise<Record<string, unknown>>;
}

async function prepare(message: IpcPrepare): Promise<void> {
  const agent = process.env.FERRY_AGENT_NAME ?? "agent";
  process.title = `ferry-flow loading ${agent}`;
  const files = new LoadedFiles();
  const exports = importEntrypoint(message.entrypoint);
  prepared = { entrypoint: message.entrypoint, exports, maxRuns: message.maxRuns };
  let error: string | undefined;
  try {
    await exports;
  } catch (err) {
    error = `could not import ${message.entrypoint}: ${errorMessage(err)}`.slice(0, 8000);
  }
  // Validate a sample `start` once: the schema's first use (compiling its checks) is paid now, not by the run.
  ToFlowProcess.safeParse({
    type: "start",
    v: PROTOCOL_VERSION,
    flowRunId: "warm-up",
    attempt: 1,
    entrypoint: message.entrypoint,
    flowName: "warm-up",
    parameters: {},
  });
  const loaded = await files.list();
  if (!error) process.title = `ferry-flow warm ${agent}`;
  await send({ type: "prepared", v: PROTOCOL_VERSION, files: loaded, ...(error ? { error } : {}) });
}

async function finish(reporter: IpcReporter, message: FromFlowProcess & { type: "finished" }): Promise<void> {
  await reporter.flush();
  await send(message);
  current = undefined;
  if (message.reusable) return;
  process.disconnect?.();
  process.exit(0);
}

async function run(start: IpcStart): Promise<void> {
  const reporter = new IpcReporter(send);
  const abort = new AbortController();
  current = { abort, reporter };
  runsStarted++;
  // What a run sees of its process is its own, also when the process served a run before.
  process.title = `ferry-flow run ${start.flowRunId}`;
  process.env.FERRY_FLOW_RUN_ID = start.flowRunId;
  process.env.FERRY_ATTEMPT = String(start.attempt);
  const logError = (text: string) =>
    reporter.log({
      timestamp: new Date().toISOString(),
      level: "error",
      message: text.slice(0, 16_000),
      flowRunId: start.flowRunId,
    });
  const fail = (message: string, err?: unknown) =>
    finish(reporter, {
      type: "finished",
      v: PROTOCOL_VERSION,
      state: { type: "FAILED", name: "Failed", message: message.slice(0, 8000) },
      ...(err !== undefined ? { error: serializeError(err) } : {}),
    });

  const before = decoratedFlowDefs().length;
  let moduleExports: Record<string, unknown>;
  try {
    moduleExports = await (prepared?.entrypoint === start.entrypoint ? prepared.exports : importEntrypoint(start.entrypoint));
  } catch (err) {
    const text = `could not import ${start.entrypoint}: ${errorMessage(err)}`;
    logError(err instanceof Error && err.stack ? `${text}\n${err.stack}` : text);
    return fail(text, err);
  }
  // Built per run: an exported class with @flow methods gets a fresh instance each time.
  const flows = flowsInModule(moduleExports);
  const flow = flows.get(start.flowName);
  if (!flow) {
    const hidden = decoratedFlowDefs()
      .slice(before)
      .some((d) => d.name === start.flowName);
    const text = hidden
      ? `flow "${start.flowName}" is a method of a class that ${start.entrypoint} does not export; export the class`
      : `no flow named "${start.flowName}" in ${start.entrypoint} (it exports: ${[...flows.keys()].join(", ") || "no flows"})`;
    logError(text);
    return fail(text);
  }

  routeConsoleToRunLogs();
  await send({ type: "running", v: PROTOCOL_VERSION });
  const outcome = await executeFlow(flow.def, flow.self, start.parameters, {
    flowRunId: start.flowRunId,
    attempt: start.attempt,
    reporter,
    signal: abort.signal,
    ...(start.resultDir ? { resultStore: new LocalResultStore(start.resultDir), persistResults: start.retriesLeft > 0 } : {}),
    ...(start.schedule ? { schedule: start.schedule } : {}),
  });
  if (outcome.error !== undefined) {
    const e = serializeError(outcome.error);
    logError(e.stack ?? `${e.name}: ${e.message}`);
  }
  // Only a run that completed leaves its process fit for another one; anything else ends it.
  const reusable =
    prepared !== undefined && runsStarted < prepared.maxRuns && outcome.state.type === "COMPLETED" && !abort.signal.aborted;
  return finish(reporter, {
    type: "finished",
    v: PROTOCOL_VERSION,
    state: outcome.state,
    ...(outcome.error !== undefined ? { error: serializeError(outcome.error) } : {}),
    ...(reusable ? { reusable: true } : {}),
  });
}

/**
 * `console.*` inside a flow becomes run logs through the same channel as `log.*`, so the
 * two keep their order. Raw writes to stdout/stderr are still captured by the agent.
 */
function routeConsoleToRunLogs(): void {
  console.log = (...args: unknown[]) => log.info(...args);
  console.info = (...args: unknown[]) => log.info(...args);
  console.debug = (...args: unknown[]) => log.debug(...args);
  console.warn = (...args: unknown[]) => log.warn(...args);
  console.error = (...args: unknown[]) => log.error(...args);
}

process.on("message", (raw: unknown) => {
  const parsed = validateMessage(ToFlowProcess, raw);
  if (!parsed.ok) {
    process.stderr.write(`flow process: ignored a bad message from the agent: ${parsed.message}\n`);
    return;
  }
  const message = parsed.value;
  switch (message.type) {
    case "cancel":
      current?.abort.abort(new Error(`cancelled: ${message.reason}`));
      return;
    case "slots.granted":
      current?.reporter.slotsGranted(message.taskRunId);
      return;
    case "prepare":
      // Only before any run, and once.
      if (prepared || runsStarted > 0) return;
      void prepare(message);
      return;
    case "start":
      // One run at a time; a cold process serves exactly one, a prepared one up to maxRuns.
      if (current || runsStarted >= (prepared?.maxRuns ?? 1)) return;
      void run(message);
      return;
    default: {
      const unreachable: never = message;
      process.stderr.write(`flow process: unhandled message ${JSON.stringify(unreachable)}\n`);
    }
  }
});
process.on("SIGTERM", () => {
  current?.abort.abort(new Error("cancelled: the agent stopped this flow process"));
  const flushed = current?.reporter.flush() ?? Promise.resolve();
  const deadline = new Promise((r) => setTimeout(r, 2_000));
  void Promise.race([flushed, deadline]).finally(() => process.exit(143));
});
// The agent is gone (killed, crashed): a flow process never outlives it as an orphan.
process.on("disconnect", () => {
  current?.abort.abort(new Error("the agent went away"));
  process.exit(137);
});
void send({ type: "ready", v: PROTOCOL_VERSION });
