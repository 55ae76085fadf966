/**
 * `npm run bench:backfill`: a backfill of 10,000 hourly slots through a real control plane
 * (separate process, SQLite and PostgreSQL), to an agent on the raw protocol that completes
 * each run as soon as it is assigned (no flow process: this measures the orchestrator — the
 * backfiller, run creation, dispatch, state ingestion — not the cold start of user code,
 * which `npm run bench` reports separately). Prints JSON.
 *
 * BENCH_BACKFILL_SLOTS (default 10000), BENCH_BACKFILL_MAX_ACTIVE (default 200), BENCH_BACKFILL_PROVIDERS.
 */
import { performance } from "node:perf_hooks";
import {
  createDatabase,
  createToken,
  makeProject,
  type Provider,
  postgresUnavailable,
  removeDir,
  startServer,
  stopAll,
  waitUntil,
} from "../tests/e2e/harness.ts";
import { FakeAgent } from "./fake-agent.ts";

const SLOTS = Number(process.env.BENCH_BACKFILL_SLOTS ?? 10_000);
const MAX_ACTIVE = Number(process.env.BENCH_BACKFILL_MAX_ACTIVE ?? 200);
const PROVIDERS = (process.env.BENCH_BACKFILL_PROVIDERS ?? "sqlite,postgresql").split(",") as Provider[];

async function benchProvider(provider: Provider) {
  const project = makeProject();
  const database = await createDatabase(provider, project);
  const server = await startServer(database.url);
  try {
    await server.api.deployments.upsert.mutate({
      name: "bench-backfill",
      flowName: "bench-backfill",
      entrypoint: "unused.ts",
      paramsSchema: { type: "object" },
      workPool: "bench-backfill",
    });
    const token = await createToken(server, ["agent"], "bench-backfill");
    const agent = new FakeAgent({
      url: server.url,
      token: token.secret,
      agentId: "bench-backfill-agent",
      pools: ["bench-backfill"],
      capacity: MAX_ACTIVE,
      complete: true,
    });
    await agent.connect();
    const from = new Date("2020-01-01T00:00:00Z");
    const to = new Date(from.getTime() + (SLOTS - 1) * 3_600_000);
    const t0 = performance.now();
    const created = await server.api.backfills.create.mutate({
      deployment: "bench-backfill",
      from: from.toISOString(),
      to: to.toISOString(),
      intervalSeconds: 3600,
      maxActive: MAX_ACTIVE,
    });
    const createMs = performance.now() - t0;
    const id = String(created.backfill?.id);
    const samples: { t: number; done: number }[] = [];
    const end = await waitUntil(
      "the backfill to complete",
      async () => {
        const b = await server.api.backfills.get.query({ id });
        samples.push({ t: performance.now() - t0, done: b.runs.COMPLETED ?? 0 });
        return b.status === "COMPLETED" ? b : undefined;
      },
      30 * 60_000,
    );
    const wall = performance.now() - t0;
    agent.close();
    // Throughput over the middle of the run (first and last 10% left out).
    const lo = samples.find((s) => s.done >= SLOTS * 0.1);
    const hi = samples.find((s) => s.done >= SLOTS * 0.9);
    const steady = lo && hi && hi.t > lo.t ? ((hi.done - lo.done) / (hi.t - lo.t)) * 1000 : Number.NaN;
    return {
      provider,
      slots: SLOTS,
      maxActive: MAX_ACTIVE,
      createCallMs: Math.round(createMs),
      wallSeconds: Math.round(wall / 100) / 10,
      runsPerSecond: Math.round((SLOTS / wall) * 1000),
      steadyRunsPerSecond: Math.round(steady),
      completed: end.runs.COMPLETED ?? 0,
      runsByState: end.runs,
      assigned: agent.assignedAt.size,
    };
  } finally {
    await stopAll();
    await database.drop();
    removeDir(project);
  }
}

const results = [];
for (const provider of PROVIDERS) {
  if (provider === "postgresql") {
    const why = await postgresUnavailable();
    if (why) {
      process.stderr.write(`skipping PostgreSQL: ${why}\n`);
      continue;
    }
  }
  process.stderr.write(`bench:backfill on ${provider} (${SLOTS} slots, max ${MAX_ACTIVE} active)…\n`);
  results.push(await benchProvider(provider));
}
const sqlite = results.find((r) => r.provider === "sqlite");
const pg = results.find((r) => r.provider === "postgresql");
process.stdout.write(
  `${JSON.stringify(
    {
      results,
      ratios: sqlite && pg ? { wallPgOverSqlite: Math.round((pg.wallSeconds / sqlite.wallSeconds) * 100) / 100 } : undefined,
    },
    null,
    2,
  )}\n`,
);
for (const r of results) {
  if (r.completed !== SLOTS) {
    process.stderr.write(`${r.provider}: ${r.completed} of ${SLOTS} completed\n`);
    process.exitCode = 1;
  }
}
