/**
 * `npm run bench:cluster`: how the control plane holds up as agents, runs and replicas grow.
 * The control planes run as separate `ferry server start` processes; agents are raw-protocol
 * agents in this process (they finish each run at once), so the control plane is what is
 * measured. Prints JSON.
 *
 * - dispatchMs: run created (API call starts) → run.assign at an idle agent on the same control
 *   plane; on PostgreSQL also at an idle agent connected to another replica (created through A,
 *   agent on B). One run at a time, each after the previous one finished. `serverSide`: the
 *   control plane's own ferry_dispatch_latency_seconds over the same runs (scraped before and
 *   after): from just before the run is written (its durable commit included) to run.assign sent.
 * - throughput: runs/s dispatched and completed by 1, 10 and 100 agents (4 slots each), with
 *   the runs queued before the agents connect, so the figure is the dispatch loop's.
 * - idleAgents: 1,000 connected agents heartbeating (default 5 s): control-plane CPU (% of one
 *   core, over a 20 s window) and memory.
 * - logs: a real agent and flow process logging 50,000 lines: lines/s from run created to the
 *   last line stored.
 * - warmThroughput: 4 real agents (4 slots each, warm pools of 4, a process serving up to 1,000
 *   completed runs) running a one-line flow: runs/s from the first create to the last COMPLETED,
 *   with the runs created 8 API calls at a time while the agents work.
 */
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { openDatabase } from "@ferry/prisma";
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
  startReplica,
  startServer,
  stopAll,
  waitUntil,
} from "../tests/e2e/harness.ts";
import { BENCH_SERVER_ARGS, cpuSeconds, histogramQuantiles, memoryMb, scrapeHistogram, summary } from "./bench/stats.ts";
import { FakeAgent } from "./fake-agent.ts";

const DISPATCH_RUNS = Number(process.env.BENCH_DISPATCH_RUNS ?? 300);
const THROUGHPUT_RUNS = Number(process.env.BENCH_THROUGHPUT_RUNS ?? 2_000);
const IDLE_AGENTS = Number(process.env.BENCH_IDLE_AGENTS ?? 1_000);
const LOG_LINES = Number(process.env.BENCH_LOG_LINES ?? 50_000);
const WARM_RUNS = Number(process.env.BENCH_WARM_RUNS ?? 1_000);
const WARM_AGENTS = 4;
const CPU_WINDOW_MS = 20_000;

async function deployment(server: Server, name: string, pool: string): Promise<void> {
  await server.api.deployments.upsert.mutate({
    name,
    flowName: name,
    entrypoint: "unused.ts",
    paramsSchema: { type: "object" },
    workPool: pool,
  });
}

/**
 * create (API call starts) → run.assign at an idle agent, one run at a time: the next run is
 * created only after the previous one's COMPLETED was acknowledged and the control plane had
 * a moment to settle, so the figure is the dispatch path's, not a backlog's.
 */
async function dispatchLatency(createOn: Server | { api: Server["api"] }, agent: FakeAgent, name: string) {
  const latencies: number[] = [];
  for (let i = 0; i < DISPATCH_RUNS; i++) {
    const started = performance.now();
    const arrived = new Promise<number>((resolve) => {
      agent.onAssign = (_id, at) => resolve(at);
    });
    const finished = new Promise<void>((resolve) => {
      agent.onCompleted = resolve;
    });
    await createOn.api.runs.create.mutate({ deployment: name });
    latencies.push((await arrived) - started);
    await finished;
    await new Promise((r) => setTimeout(r, 20));
  }
  agent.onAssign = undefined;
  agent.onCompleted = undefined;
  return summary(latencies);
}

async function dispatchAcrossReplicas(a: Server, b: { url: string; api: Server["api"] }, token: string) {
  await deployment(a, "bench-replicas", "bench-replicas");
  const results: Record<string, ReturnType<typeof summary> & { serverSide: ReturnType<typeof histogramQuantiles> }> = {};
  for (const [label, url] of [
    ["sameReplica", a.url],
    ["acrossReplicas", b.url],
  ] as const) {
    const agent = new FakeAgent({
      url,
      token,
      agentId: `replica-${label}`,
      pools: ["bench-replicas"],
      capacity: 64,
      complete: true,
    });
    await agent.connect();
    // The replica the agent is connected to sends the assignment and times it.
    const on = label === "sameReplica" ? a : { url: b.url, adminToken: a.adminToken };
    const before = await scrapeHistogram(on.url, on.adminToken, "ferry_dispatch_latency_seconds");
    const fromApiCall = await dispatchLatency(a, agent, "bench-replicas");
    const after = await scrapeHistogram(on.url, on.adminToken, "ferry_dispatch_latency_seconds");
    results[label] = { ...fromApiCall, serverSide: histogramQuantiles(before, after) };
    agent.close();
    await new Promise((r) => setTimeout(r, 500));
  }
  return results;
}

async function dispatchOnOne(server: Server, token: string) {
  await deployment(server, "bench-dispatch", "bench-dispatch");
  const agent = new FakeAgent({
    url: server.url,
    token,
    agentId: "dispatch",
    pools: ["bench-dispatch"],
    capacity: 64,
    complete: true,
  });
  await agent.connect();
  try {
    const before = await scrapeHistogram(server.url, server.adminToken, "ferry_dispatch_latency_seconds");
    const fromApiCall = await dispatchLatency(server, agent, "bench-dispatch");
    const after = await scrapeHistogram(server.url, server.adminToken, "ferry_dispatch_latency_seconds");
    return { ...fromApiCall, serverSide: histogramQuantiles(before, after) };
  } finally {
    agent.close();
  }
}

async function throughput(server: Server, token: string, agents: number) {
  const pool = `tp-${agents}`;
  await deployment(server, pool, pool);
  // Queue the runs first (8 API calls at a time), then let the agents drain the queue.
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < THROUGHPUT_RUNS) {
        next++;
        await server.api.runs.create.mutate({ deployment: pool });
      }
    }),
  );
  const fleet = Array.from(
    { length: agents },
    (_, i) => new FakeAgent({ url: server.url, token, agentId: `${pool}-${i}`, pools: [pool], capacity: 4, complete: true }),
  );
  const started = performance.now();
  let completed = 0;
  const done = new Promise<void>((resolve) => {
    for (const agent of fleet)
      agent.onCompleted = () => {
        if (++completed === THROUGHPUT_RUNS) resolve();
      };
  });
  await Promise.all(fleet.map((agent) => agent.connect()));
  await done;
  const seconds = (performance.now() - started) / 1000;
  for (const agent of fleet) agent.close();
  return {
    agents,
    runs: THROUGHPUT_RUNS,
    seconds: Math.round(seconds * 100) / 100,
    runsPerSecond: Math.round(THROUGHPUT_RUNS / seconds),
  };
}

async function idleAgents(server: Server, token: string) {
  const pid = server.proc.child.pid ?? 0;
  const before = memoryMb(pid);
  const fleet = Array.from(
    { length: IDLE_AGENTS },
    (_, i) => new FakeAgent({ url: server.url, token, agentId: `idle-${i}`, pools: ["idle"], capacity: 4, complete: true }),
  );
  const connectStarted = performance.now();
  for (let i = 0; i < fleet.length; i += 50) await Promise.all(fleet.slice(i, i + 50).map((a) => a.connect()));
  const connectSeconds = (performance.now() - connectStarted) / 1000;
  await new Promise((r) => setTimeout(r, 5_000)); // settle: every agent has heartbeated once
  const cpu0 = cpuSeconds(pid);
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, CPU_WINDOW_MS));
  const cpu = (cpuSeconds(pid) - cpu0) / ((performance.now() - t0) / 1000);
  const health = (await (
    await fetch(new URL("/healthz", server.url), { headers: { authorization: `Bearer ${server.adminToken}` } })
  ).json()) as { agents: number };
  const after = memoryMb(pid);
  for (const agent of fleet) agent.close();
  return {
    agents: health.agents,
    connectSeconds: Math.round(connectSeconds * 10) / 10,
    cpuPercentOfOneCore: Math.round(cpu * 1000) / 10,
    rssMbBefore: before.rssMb,
    rssMbWith: after.rssMb,
  };
}

async function logIngestion(server: Server, databaseUrl: string) {
  const database = await openDatabase(databaseUrl, { migrate: false });
  try {
    const started = performance.now();
    const run = await server.api.runs.create.mutate({ deployment: "bench-logs", parameters: { n: LOG_LINES } });
    await waitUntil(
      "every line is stored",
      async () => (await database.db.log.count({ where: { flowRunId: run.id, message: { startsWith: "line " } } })) >= LOG_LINES,
      600_000,
    );
    const seconds = (performance.now() - started) / 1000;
    return { lines: LOG_LINES, seconds: Math.round(seconds * 100) / 100, linesPerSecond: Math.round(LOG_LINES / seconds) };
  } finally {
    await database.close();
  }
}

/** Database handles a provider's run opened, closed when it ends. */
const closers: (() => Promise<void>)[] = [];

async function completedOf(databaseUrl: string, deployment: string): Promise<() => Promise<number>> {
  const database = await openDatabase(databaseUrl, { migrate: false });
  closers.push(() => database.close());
  const dep = await database.db.deployment.findFirstOrThrow({ where: { name: deployment }, select: { id: true } });
  return () => database.db.flowRun.count({ where: { deploymentId: dep.id, stateType: "COMPLETED" } });
}

async function warmThroughput(server: Server, project: string, databaseUrl: string) {
  const agents = await Promise.all(
    Array.from({ length: WARM_AGENTS }, (_, i) =>
      startAgent(server, {
        name: `warm-tp-${i}`,
        workDir: project,
        concurrency: 4,
        pools: ["default"],
        extra: ["--warm-pool", "4", "--max-runs-per-process", "1000"],
      }),
    ),
  );
  const completed = await completedOf(databaseUrl, "bench-start");
  const runBatch = async (n: number) => {
    const before = await completed();
    const started = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < n) {
          next++;
          await server.api.runs.create.mutate({ deployment: "bench-start" });
        }
      }),
    );
    await waitUntil("every run completed", async () => (await completed()) >= before + n, 600_000);
    return (performance.now() - started) / 1000;
  };
  // Warm-up: every agent's pool learns the entrypoint and fills.
  await runBatch(WARM_AGENTS * 8);
  await new Promise((r) => setTimeout(r, 2_000));
  const seconds = await runBatch(WARM_RUNS);
  const warmProcesses = flowProcesses().filter((p) => p.agent?.startsWith("warm-tp-")).length;
  for (const agent of agents) await agent.stop("SIGTERM");
  return {
    agents: WARM_AGENTS,
    runs: WARM_RUNS,
    seconds: Math.round(seconds * 100) / 100,
    runsPerSecond: Math.round(WARM_RUNS / seconds),
    warmProcessesAtEnd: warmProcesses,
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
    const token = (await createToken(server, ["agent"], "bench-cluster")).secret;
    const out: Record<string, unknown> = {};
    if (provider === "postgresql") {
      const b = await startReplica(server);
      out.dispatchMs = await dispatchAcrossReplicas(server, b, token);
    } else {
      out.dispatchMs = { sameReplica: await dispatchOnOne(server, token) };
    }
    out.throughput = [];
    for (const n of [1, 10, 100]) (out.throughput as unknown[]).push(await throughput(server, token, n));
    out.idleAgents = await idleAgents(server, token);
    const deployed = await ferry(["deploy", "flows/flows.ts"], { cwd: project, env: server.env });
    if (deployed.code !== 0) throw new Error(deployed.output);
    out.warmThroughput = await warmThroughput(server, project, database.url);
    await startAgent(server, { name: "bench-logs", workDir: project, concurrency: 1, pools: ["default"] });
    out.logs = await logIngestion(server, database.url);
    out.controlPlaneMemory = memoryMb(server.proc.child.pid ?? 0);
    return out;
  } finally {
    for (const close of closers.splice(0)) await close();
    await stopAll();
    await database.drop();
    removeDir(project);
  }
}

const only = process.argv[2] as Provider | undefined;
const results: Record<string, unknown> = {};
for (const provider of ["sqlite", "postgresql"] as const) {
  if (only && only !== provider) continue;
  results[provider] = await benchProvider(provider);
}
process.stdout.write(
  `${JSON.stringify(
    {
      machine: { node: process.version, cpus: (await import("node:os")).cpus().length },
      settings: { DISPATCH_RUNS, THROUGHPUT_RUNS, IDLE_AGENTS, LOG_LINES, WARM_RUNS, CPU_WINDOW_MS },
      results,
    },
    null,
    2,
  )}\n`,
);
process.exit(0);
