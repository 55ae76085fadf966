/**
 * `npm run bench:scale`: big dynamic runs. A flow maps N no-op tasks (1,000, 10,000 and
 * 100,000 by default; BENCH_SCALE_SIZES=1000,10000 to choose) on SQLite and PostgreSQL with
 * the control plane, the agent and the flow process as separate processes. For each size:
 * wall time (run created → COMPLETED with every task run persisted), task runs/s, µs per task,
 * CPU µs per task of each process (utime+stime from /proc/<pid>/stat) and its peak RSS
 * (VmHWM). Prints JSON on stdout and a table on stderr. A fresh control plane and agent per run, so peaks
 * belong to that size alone. Each size runs BENCH_SCALE_REPEATS times (default 3); the median run is reported.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  createDatabase,
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
import { BENCH_SERVER_ARGS } from "./bench/stats.ts";

const SIZES = (process.env.BENCH_SCALE_SIZES ?? "1000,10000,100000").split(",").map(Number);
const PROVIDERS = (process.env.BENCH_SCALE_PROVIDERS ?? "sqlite,postgresql").split(",") as Provider[];
const TICKS_PER_SECOND = 100; // USER_HZ on Linux
/** Runs per size; the row reported is the median one (BENCH_SCALE_REPEATS=1 for a quick look). */
const REPEATS = Math.max(1, Number(process.env.BENCH_SCALE_REPEATS ?? 3));

interface ProcSample {
  cpuMs: number;
  peakRssMiB: number;
}

/** CPU time and peak RSS of a live process, or undefined once it is gone. */
function sample(pid: number): ProcSample | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // fields[0] is field 3 (state): utime is field 14, stime field 15.
    const ticks = Number(fields[11]) + Number(fields[12]);
    const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return { cpuMs: (ticks * 1000) / TICKS_PER_SECOND, peakRssMiB: Math.round(Number(hwm?.[1] ?? 0) / 1024) };
  } catch {
    return undefined;
  }
}

async function countCompleted(server: Server, flowRunId: string): Promise<number> {
  const page = await server.api.taskRuns.page.query({ flowRunId, state: ["COMPLETED"], limit: 1 });
  return page.total;
}

async function measure(provider: Provider, size: number) {
  const project = makeProject(join(REPO, "scripts/bench"));
  const database = await createDatabase(provider, project);
  try {
    const server = await startServer(database.url, BENCH_SERVER_ARGS);
    const agent = await startAgent(server, { name: "bench-scale", workDir: project, concurrency: 2 });
    const deployed = await ferry(["deploy", "flows/flows.ts"], { cwd: project, env: server.env });
    if (deployed.code !== 0) throw new Error(deployed.output);
    const cpPid = server.proc.child.pid ?? 0;
    const agentPid = agent.child.pid ?? 0;
    const cpBefore = sample(cpPid);
    const agentBefore = sample(agentPid);
    const started = Date.now();
    const run = await server.api.runs.create.mutate({ deployment: "bench-map", parameters: { n: size } });
    let flow: ProcSample | undefined;
    // Sample the flow process while it lives: its counters vanish with it.
    const sampler = setInterval(() => {
      const proc = flowProcesses().find((p) => p.flowRunId === run.id);
      const s = proc && sample(proc.pid);
      if (s) flow = s;
    }, 100);
    try {
      await waitUntil(
        "the map flow completes",
        async () => {
          const r = await server.api.runs.get.query({ id: run.id });
          if (r.stateType === "FAILED" || r.stateType === "CRASHED")
            throw new Error(`bench-map ended ${r.stateType}: ${r.stateMessage}`);
          // Not counting task runs while it runs: a COUNT over 100,000 rows per poll would be the
          // control plane's biggest cost. The agent reports the run's end after its last events.
          return r.stateType === "COMPLETED";
        },
        1_800_000,
      );
    } finally {
      clearInterval(sampler);
    }
    const wallMs = Date.now() - started;
    const completed = await countCompleted(server, run.id);
    if (completed !== size) throw new Error(`${completed} of ${size} task runs persisted COMPLETED`);
    const cp = sample(cpPid);
    const ag = sample(agentPid);
    const perTask = (after?: ProcSample, before?: ProcSample) =>
      after && before ? Math.round(((after.cpuMs - before.cpuMs) * 1000) / size) : null;
    return {
      provider,
      tasks: size,
      wallMs,
      taskRunsPerSecond: Math.round((size / wallMs) * 1000),
      usPerTask: Math.round((wallMs * 1000) / size),
      cpuUsPerTask: {
        controlPlane: perTask(cp, cpBefore),
        agent: perTask(ag, agentBefore),
        flow: flow ? Math.round((flow.cpuMs * 1000) / size) : null,
      },
      peakRssMiB: { controlPlane: cp?.peakRssMiB ?? null, agent: ag?.peakRssMiB ?? null, flow: flow?.peakRssMiB ?? null },
    };
  } finally {
    await stopAll();
    await database.drop();
    removeDir(project);
  }
}

const rows: (Awaited<ReturnType<typeof measure>> & { runs: number; wallMsRange: (number | undefined)[] })[] = [];
const skipped: Record<string, string> = {};
for (const provider of PROVIDERS) {
  if (provider === "postgresql") {
    const reason = await postgresUnavailable();
    if (reason) {
      skipped[provider] = reason;
      continue;
    }
  }
  for (const size of SIZES) {
    // The median run of REPEATS (by wall time), reported whole so its figures belong together.
    const tries: Awaited<ReturnType<typeof measure>>[] = [];
    for (let i = 0; i < REPEATS; i++) {
      const row = await measure(provider, size);
      tries.push(row);
      console.error(`${provider} ${size} (run ${i + 1} of ${REPEATS}): ${row.taskRunsPerSecond} task runs/s`);
    }
    tries.sort((a, b) => a.wallMs - b.wallMs);
    const median = tries[Math.floor(tries.length / 2)];
    if (median) rows.push({ ...median, runs: tries.length, wallMsRange: [tries[0]?.wallMs, tries.at(-1)?.wallMs] });
  }
}
console.log(JSON.stringify({ cpus: (await import("node:os")).cpus().length, rows, skipped }, null, 2));
// The table goes to stderr: stdout is JSON alone (npm run bench collects it).
const header = "| db | tasks | wall s | task runs/s | µs/task | CPU µs/task cp / agent / flow | peak RSS MiB cp / agent / flow |";
console.error(`\n${header}\n|---|---:|---:|---:|---:|---|---|`);
for (const r of rows)
  console.error(
    `| ${r.provider} | ${r.tasks} | ${(r.wallMs / 1000).toFixed(1)} | ${r.taskRunsPerSecond} | ${r.usPerTask} | ${r.cpuUsPerTask.controlPlane} / ${r.cpuUsPerTask.agent} / ${r.cpuUsPerTask.flow} | ${r.peakRssMiB.controlPlane} / ${r.peakRssMiB.agent} / ${r.peakRssMiB.flow} |`,
  );
