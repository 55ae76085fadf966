/**
 * `npm run bench:latency` (part of `npm run bench`): measures the paths a user feels, on
 * SQLite and PostgreSQL, with the control plane and agent as separate processes over real
 * sockets. Prints JSON.
 *
 * - dispatch latency: run created (API call starts) → run.assign received by a connected agent
 * - start latency: run created → first line of the flow body runs, cold (a new process per run)
 *   and warm (a process of the agent's warm pool: spaced runs that find the pool refilled, and
 *   back-to-back runs that may outrun the refill and fall back to cold)
 * - map: wall time and task runs/s of a flow mapping 1,000 no-op tasks
 */
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { AGENT_WS_PATH, PROTOCOL_VERSION } from "@ferry/sdk/protocol";
import WebSocket from "ws";
import {
  createDatabase,
  createToken,
  ferry,
  flowProcesses,
  makeProject,
  type Provider,
  postgresUnavailable,
  REPO,
  removeDir,
  type Server,
  startAgent,
  startServer,
  stopAll,
  waitUntil,
} from "../tests/e2e/harness.ts";
import { BENCH_SERVER_ARGS, memoryMb, type Summary, summary } from "./bench/stats.ts";

const DISPATCH_RUNS = Number(process.env.BENCH_DISPATCH_RUNS ?? 500);
const START_RUNS = Number(process.env.BENCH_START_RUNS ?? 20);
const MAP_SIZE = Number(process.env.BENCH_MAP_SIZE ?? 1000);

/** A minimal agent on the raw protocol: records when each assignment arrives and completes it at once. */
async function dispatchLatency(server: Server): Promise<{ createToAssign: Summary; createCall: Summary }> {
  const token = await createToken(server, ["agent"], "bench-dispatch");
  await server.api.deployments.upsert.mutate({
    name: "bench-dispatch",
    flowName: "bench-dispatch",
    entrypoint: "unused.ts",
    paramsSchema: { type: "object" },
    workPool: "bench-dispatch",
  });
  const ws = new WebSocket(new URL(AGENT_WS_PATH, server.url.replace("http", "ws")), {
    headers: { authorization: `Bearer ${token.secret}` },
  });
  const arrivals = new Map<string, (t: number) => void>();
  const early = new Map<string, number>();
  let msgId = 0;
  let welcomed = false;
  ws.on("message", (data) => {
    const at = performance.now();
    const msg = JSON.parse(data.toString()) as { type: string; flowRunId?: string; attempt?: number };
    if (msg.type === "welcome") welcomed = true;
    if (msg.type !== "run.assign" || !msg.flowRunId) return;
    const done = arrivals.get(msg.flowRunId);
    if (done) done(at);
    else early.set(msg.flowRunId, at);
    for (const type of ["RUNNING", "COMPLETED"] as const) {
      ws.send(
        JSON.stringify({
          type: "state.propose",
          v: PROTOCOL_VERSION,
          msgId: msgId++,
          eventId: `${msg.flowRunId}-${type}`,
          flowRunId: msg.flowRunId,
          attempt: msg.attempt,
          state: { type, name: type === "RUNNING" ? "Running" : "Completed" },
          timestamp: new Date().toISOString(),
        }),
      );
    }
  });
  await new Promise((r) => ws.once("open", r));
  ws.send(
    JSON.stringify({
      type: "hello",
      v: PROTOCOL_VERSION,
      agentId: "bench-agent",
      name: "bench",
      pools: ["bench-dispatch"],
      capacity: 64,
      labels: {},
      version: "bench",
      inFlight: [],
    }),
  );
  await waitUntil("welcome", async () => welcomed);
  const latencies: number[] = [];
  const calls: number[] = [];
  for (let i = 0; i < DISPATCH_RUNS; i++) {
    const started = performance.now();
    const run = await server.api.runs.create.mutate({ deployment: "bench-dispatch" });
    calls.push(performance.now() - started);
    const arrived =
      early.get(run.id) ??
      (await new Promise<number>((resolve) => {
        arrivals.set(run.id, resolve);
      }));
    latencies.push(arrived - started);
  }
  ws.close();
  // createCall: the API call alone (HTTP, validation, commit); the assignment usually arrives before its response.
  return { createToAssign: summary(latencies), createCall: summary(calls) };
}

interface StartSample {
  latencyMs: number;
  /** The body ran in a process started before the run was created. */
  warm: boolean;
}

async function startOnce(server: Server, deployment: string): Promise<StartSample> {
  const started = Date.now();
  const run = await server.api.runs.create.mutate({ deployment });
  const line = await waitUntil(
    "the body's first line",
    async () => (await server.api.logs.list.query({ flowRunId: run.id })).items.find((l) => l.message.startsWith("body-start")),
    60_000,
  );
  const [, bodyAt, processStartedAt] = line.message.split(" ").map(Number);
  await waitUntil(
    "the run ends",
    async () => (await server.api.runs.get.query({ id: run.id })).stateType === "COMPLETED",
    60_000,
  );
  return { latencyMs: (bodyAt ?? Number.NaN) - started, warm: (processStartedAt ?? Number.POSITIVE_INFINITY) < started };
}

async function startLatency(server: Server, deployment: string): Promise<Summary> {
  const latencies: number[] = [];
  for (let i = 0; i < START_RUNS; i++) latencies.push((await startOnce(server, deployment)).latencyMs);
  return summary(latencies);
}

/** Warm starts on the agent "bench-warm" (--warm-pool 2): spaced (pool refilled first), then back to back. */
async function warmStartLatency(server: Server, deployment: string) {
  const poolFull = () =>
    waitUntil(
      "the warm pool is full",
      async () => {
        const idle = flowProcesses().filter((p) => p.agent === "bench-warm" && p.idle);
        return idle.length >= 2 ? idle : undefined;
      },
      60_000,
    );
  await startOnce(server, deployment); // the first run of an entrypoint is cold and seeds its pool
  const spaced: StartSample[] = [];
  for (let i = 0; i < START_RUNS; i++) {
    await poolFull();
    spaced.push(await startOnce(server, deployment));
  }
  const idle = await poolFull();
  // What a waiting process costs: its resident memory (Node, tsx, the SDK and the flow module loaded).
  const idleProcessRssMb = Math.max(...idle.map((p) => memoryMb(p.pid).rssMb));
  const backToBack: StartSample[] = [];
  for (let i = 0; i < START_RUNS; i++) backToBack.push(await startOnce(server, deployment));
  const figures = (samples: StartSample[]) => ({
    ...summary(samples.map((s) => s.latencyMs)),
    warmHits: samples.filter((s) => s.warm).length,
  });
  return { spaced: figures(spaced), backToBack: figures(backToBack), idleProcessRssMb };
}

async function mapThroughput(server: Server) {
  const started = Date.now();
  const run = await server.api.runs.create.mutate({ deployment: "bench-map", parameters: { n: MAP_SIZE } });
  const done = await waitUntil(
    "the map flow completes",
    async () => {
      const r = await server.api.runs.get.query({ id: run.id });
      if (r.stateType === "FAILED" || r.stateType === "CRASHED")
        throw new Error(`bench-map ended ${r.stateType}: ${r.stateMessage}`);
      return r.stateType === "COMPLETED" ? r : undefined;
    },
    300_000,
  );
  const wallMs = Date.now() - started;
  // startTime/endTime are the agent's RUNNING and COMPLETED proposals: the flow process's view.
  const flowProcessMs = new Date(done.endTime ?? 0).getTime() - new Date(done.startTime ?? 0).getTime();
  const persisted = (await server.api.taskRuns.list.query({ flowRunId: run.id, limit: 5000 })).items.filter(
    (t) => t.stateType === "COMPLETED",
  ).length;
  return {
    tasks: MAP_SIZE,
    persistedCompleted: persisted,
    /** Run created → COMPLETED recorded, every task run persisted (includes the cold process start). */
    wallMs,
    flowProcessMs,
    /** End to end: task runs recorded by the control plane per second of wall time. */
    taskRunsPerSecond: Math.round((MAP_SIZE / wallMs) * 1000),
    /** Inside the flow process only. */
    taskRunsPerSecondInProcess: Math.round((MAP_SIZE / flowProcessMs) * 1000),
  };
}

async function benchProvider(provider: Provider) {
  if (provider === "postgresql") {
    const reason = await postgresUnavailable();
    if (reason) return { skipped: reason };
  }
  const project = makeProject(join(REPO, "scripts/bench"));
  const database = await createDatabase(provider, project);
  try {
    const server = await startServer(database.url, BENCH_SERVER_ARGS);
    // The main agent starts every run cold (as before warm starts), so its figures stay comparable.
    await startAgent(server, { name: "bench-agent", workDir: project, concurrency: 4, extra: ["--warm-pool", "0"] });
    await startAgent(server, {
      name: "bench-warm",
      pools: ["bench-warm"],
      workDir: project,
      concurrency: 4,
      extra: ["--warm-pool", "2"],
    });
    const deployed = await ferry(["deploy", "flows/flows.ts"], { cwd: project, env: server.env });
    if (deployed.code !== 0) throw new Error(deployed.output);
    await server.api.deployments.upsert.mutate({
      name: "bench-start-warm",
      flowName: "bench-start",
      entrypoint: "flows/flows.ts",
      paramsSchema: { type: "object" },
      workPool: "bench-warm",
    });
    const dispatch = await dispatchLatency(server);
    const start = await startLatency(server, "bench-start");
    const warmStart = await warmStartLatency(server, "bench-start-warm");
    const map = await mapThroughput(server);
    return {
      dispatchLatencyMs: dispatch,
      startLatencyMs: start,
      warmStartLatencyMs: warmStart,
      warmOverColdP50: Math.round((warmStart.spaced.p50 / start.p50) * 1000) / 1000,
      map,
    };
  } finally {
    await stopAll();
    await database.drop();
    removeDir(project);
  }
}

const results: Record<string, unknown> = {};
for (const provider of ["sqlite", "postgresql"] as const) results[provider] = await benchProvider(provider);
type Figures = { dispatchLatencyMs?: { createToAssign: { p50: number } }; map?: { taskRunsPerSecond: number } };
const sqlite = results.sqlite as Figures;
const pgRes = results.postgresql as Figures;
const ratios =
  sqlite.dispatchLatencyMs && pgRes.dispatchLatencyMs && sqlite.map && pgRes.map
    ? {
        dispatchP50PostgresOverSqlite:
          Math.round((pgRes.dispatchLatencyMs.createToAssign.p50 / sqlite.dispatchLatencyMs.createToAssign.p50) * 100) / 100,
        mapThroughputPostgresOverSqlite: Math.round((pgRes.map.taskRunsPerSecond / sqlite.map.taskRunsPerSecond) * 100) / 100,
      }
    : undefined;
process.stdout.write(
  `${JSON.stringify({ machine: { node: process.version, cpus: (await import("node:os")).cpus().length }, settings: { DISPATCH_RUNS, START_RUNS, MAP_SIZE }, results, ratios }, null, 2)}\n`,
);
process.exit(0);
