/**
 * Entry point of a flow process. The agent starts one per flow run with an IPC channel,
 * sends `start`, and this process imports the flow's module, runs the flow and reports.
 * It exits 0 after reporting `finished`. If it exits without reporting `finished`, the
 * agent records the run as CRASHED with the exit code or signal.
 */
import { pathToFileURL } from "node:url";
import { errorMessage, serializeError } from "../errors.ts";
import { PROTOCOL_VERSION } from "../protocol/common.ts";
import { type FromFlowProcess, type IpcStart, ToFlowProcess } from "../protocol/ipc.ts";
import { validateMessage } from "../protocol/parse.ts";
import { decoratedFlowDefs, flowsInModule } from "../runtime/authoring.ts";
import { executeFlow } from "../runtime/flow.ts";
import { LocalResultStore } from "../runtime/result-store.ts";
import { log } from "../runtime/scope.ts";
import { IpcReporter } from "./ipc-reporter.ts";
import { registerFallbackResolution } from "./resolution.ts";

registerFallbackResolution();

function send(message: FromFlowProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!process.send) return reject(new Error("the flow process has no IPC channel: it must be started by an agent"));
    process.send(message, undefined, {}, (err) => (err ? reject(err) : resolve()));
  });
}

const abort = new AbortController();
/** The running flow's reporter, flushed on SIGTERM so a cancelled run keeps its last events and logs. */
let activeReporter: IpcReporter | undefined;

async function finish(reporter: IpcReporter, message: FromFlowProcess & { type: "finished" }): Promise<never> {
  await reporter.flush();
  await send(message);
  process.disconnect?.();
  process.exit(0);
}

async function run(start: IpcStart): Promise<never> {
  const reporter = new IpcReporter(send);
  activeReporter = reporter;
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
    moduleExports = (await import(pathToFileURL(start.entrypoint).href)) as Record<string, unknown>;
  } catch (err) {
    const text = `could not import ${start.entrypoint}: ${errorMessage(err)}`;
    logError(err instanceof Error && err.stack ? `${text}\n${err.stack}` : text);
    return fail(text, err);
  }
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
  return finish(reporter, {
    type: "finished",
    v: PROTOCOL_VERSION,
    state: outcome.state,
    ...(outcome.error !== undefined ? { error: serializeError(outcome.error) } : {}),
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

let started = false;
process.on("message", (raw: unknown) => {
  const parsed = validateMessage(ToFlowProcess, raw);
  if (!parsed.ok) {
    process.stderr.write(`flow process: ignored a bad message from the agent: ${parsed.message}\n`);
    return;
  }
  const message = parsed.value;
  if (message.type === "cancel") {
    abort.abort(new Error(`cancelled: ${message.reason}`));
    return;
  }
  if (message.type === "slots.granted") {
    activeReporter?.slotsGranted(message.taskRunId);
    return;
  }
  if (started) return;
  started = true;
  void run(message);
});
process.on("SIGTERM", () => {
  abort.abort(new Error("cancelled: the agent stopped this flow process"));
  const flushed = activeReporter?.flush() ?? Promise.resolve();
  const deadline = new Promise((r) => setTimeout(r, 2_000));
  void Promise.race([flushed, deadline]).finally(() => process.exit(143));
});
// The agent is gone (killed, crashed): a flow process never outlives it as an orphan.
process.on("disconnect", () => {
  abort.abort(new Error("the agent went away"));
  process.exit(137);
});
void send({ type: "ready", v: PROTOCOL_VERSION });
