import assert from "node:assert/strict";
import { after, before, beforeEach, describe, test } from "node:test";
import type { Db, OpenDatabase } from "@ferry/prisma";
import type { ServerMessage } from "@ferry/sdk/protocol";
import type { WebSocket } from "ws";
import { AgentConnection } from "./agents/connection.ts";
import { Dispatcher } from "./dispatcher.ts";
import { logger } from "./logger.ts";
import { ControlPlaneMetrics, databaseSources, type MetricsSources } from "./metrics.ts";
import { createFlowRun } from "./orchestration/create-run.ts";
import { ParamsValidator } from "./params.ts";
import { FIXTURE, fixtureDatabase } from "./test-database.ts";

const log = logger.child({ component: "metrics-test" });

/** One sample of the exposition text: `name{labels} value`. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = match[2] ? match[2].split(",") : [];
    if (wanted.every((w) => have.includes(w)) && have.length === wanted.length) return Number(match[3]);
  }
  return undefined;
}

const fixedSources = (overrides: Partial<MetricsSources> = {}): MetricsSources => ({
  runsByState: async () => new Map([["COMPLETED", 3]]),
  queueDepth: async () => 2,
  connectedAgents: () => 1,
  ...overrides,
});

describe("metrics without a database", () => {
  test("each instance has its own registry; nothing goes to prom-client's global one", async () => {
    const a = new ControlPlaneMetrics(log);
    const b = new ControlPlaneMetrics(log);
    a.observe(fixedSources());
    b.observe(fixedSources({ connectedAgents: () => 7 }));
    a.apiRequests.inc({ procedure: "runs.list", outcome: "ok" });
    const [textA, textB] = await Promise.all([a.render(), b.render()]);
    assert.equal(sample(textA.body, "ferry_api_requests_total", { procedure: "runs.list", outcome: "ok" }), 1);
    assert.equal(sample(textB.body, "ferry_api_requests_total", { procedure: "runs.list", outcome: "ok" }), undefined);
    assert.equal(sample(textA.body, "ferry_connected_agents"), 1);
    assert.equal(sample(textB.body, "ferry_connected_agents"), 7);
    const { register } = await import("prom-client");
    assert.equal(register.getSingleMetric("ferry_connected_agents"), undefined);
  });

  test("gauges read their sources on each scrape; every state is reported, zero included", async () => {
    const metrics = new ControlPlaneMetrics(log);
    let completed = 3;
    metrics.observe(fixedSources({ runsByState: async () => new Map([["COMPLETED", completed]]) }));
    let { body } = await metrics.render();
    assert.equal(sample(body, "ferry_flow_runs", { state: "COMPLETED" }), 3);
    assert.equal(sample(body, "ferry_flow_runs", { state: "FAILED" }), 0);
    assert.equal(sample(body, "ferry_dispatch_queue_depth"), 2);
    completed = 5;
    ({ body } = await metrics.render());
    assert.equal(sample(body, "ferry_flow_runs", { state: "COMPLETED" }), 5);
  });

  test("scrapes that arrive together share one database read", async () => {
    const metrics = new ControlPlaneMetrics(log);
    let reads = 0;
    metrics.observe(
      fixedSources({
        runsByState: async () => {
          reads++;
          await new Promise((r) => setTimeout(r, 20));
          return new Map();
        },
      }),
    );
    await Promise.all([metrics.render(), metrics.render(), metrics.render()]);
    assert.equal(reads, 1);
    await metrics.render();
    assert.equal(reads, 2, "a later scrape reads again");
  });

  test("a failing database read keeps the last figures, counts the failure, and the scrape still answers", async () => {
    const metrics = new ControlPlaneMetrics(log);
    let down = false;
    metrics.observe(fixedSources({ queueDepth: async () => (down ? Promise.reject(new Error("database down")) : 2) }));
    let { body } = await metrics.render();
    assert.equal(sample(body, "ferry_metrics_read_errors_total"), 0);
    down = true;
    const rendered = await metrics.render();
    body = rendered.body;
    assert.match(rendered.contentType, /^text\/plain; version=0\.0\.4/);
    assert.equal(sample(body, "ferry_flow_runs", { state: "COMPLETED" }), 3);
    assert.equal(sample(body, "ferry_dispatch_queue_depth"), 2);
    assert.equal(sample(body, "ferry_metrics_read_errors_total"), 1);
    assert.equal(sample(body, "ferry_connected_agents"), 1);
  });

  test("before the sources are set, scrapes answer with zero agents and no run series", async () => {
    const { body } = await new ControlPlaneMetrics(log).render();
    assert.equal(sample(body, "ferry_connected_agents"), 0);
    assert.equal(sample(body, "ferry_flow_runs", { state: "COMPLETED" }), undefined);
  });

  test("process metrics carry the ferry_ prefix", async () => {
    const { body } = await new ControlPlaneMetrics(log).render();
    for (const name of [
      "ferry_process_cpu_user_seconds_total",
      "ferry_process_resident_memory_bytes",
      "ferry_nodejs_eventloop_lag_seconds",
    ]) {
      assert.ok(sample(body, name) !== undefined, `${name} in:\n${body.slice(0, 500)}`);
    }
    assert.doesNotMatch(body, /^process_cpu/m);
  });
});

describe("metrics on a database", () => {
  let fixture: Awaited<ReturnType<typeof fixtureDatabase>>;
  let database: OpenDatabase;
  let metrics: ControlPlaneMetrics;
  let db: Db;
  const ws = FIXTURE.workspaceId;

  before(async () => {
    fixture = await fixtureDatabase("ferry-metrics-", { name: "f" });
    database = fixture.database;
  });

  after(async () => {
    await fixture.close();
  });

  beforeEach(async () => {
    await database.db.flowRun.deleteMany();
    metrics = new ControlPlaneMetrics(log);
    db = metrics.instrument(database.db);
  });

  let n = 0;
  async function run(
    stateType: string,
    extra: { expectedStartTime?: Date; stateTimestamp?: Date; parentFlowRunId?: string } = {},
  ): Promise<string> {
    const id = `run-${++n}`;
    await db.flowRun.create({
      data: {
        id,
        workspaceId: ws,
        flowId: "flow-1",
        deploymentId: "dep-1",
        name: id,
        parametersJson: "{}",
        tagsJson: "[]",
        workPool: "default",
        stateType,
        stateName: stateType,
        stateTimestamp: extra.stateTimestamp ?? new Date(),
        expectedStartTime: extra.expectedStartTime ?? new Date(),
        ...(extra.parentFlowRunId ? { parentFlowRunId: extra.parentFlowRunId } : {}),
      },
    });
    return id;
  }

  test("every operation is timed by model and operation: model queries, raw SQL, both kinds of transaction", async () => {
    await db.flowRun.findMany();
    await db.$queryRaw`SELECT 1`;
    await db.$transaction(async (tx) => {
      await tx.workspace.findUnique({ where: { id: ws } });
    });
    await db.$transaction([db.flow.count(), db.deployment.count()]);
    const { body } = await metrics.render();
    const count = (model: string, operation: string) =>
      sample(body, "ferry_db_query_duration_seconds_count", { model, operation }) ?? 0;
    assert.equal(count("FlowRun", "findMany"), 1);
    assert.equal(count("raw", "$queryRaw"), 1);
    assert.equal(count("Workspace", "findUnique"), 1, "inside an interactive transaction");
    assert.equal(count("Flow", "count"), 1, "inside a batch transaction");
    assert.equal(count("Deployment", "count"), 1, "inside a batch transaction");
    assert.ok((sample(body, "ferry_db_query_duration_seconds_sum", { model: "FlowRun", operation: "findMany" }) ?? -1) >= 0);
  });

  test("a failed query is timed too, and its error reaches the caller unchanged", async () => {
    await assert.rejects(db.workspace.create({ data: { id: ws, name: "again", slug: "w" } }), /Unique constraint/);
    const { body } = await metrics.render();
    assert.equal(sample(body, "ferry_db_query_duration_seconds_count", { model: "Workspace", operation: "create" }), 1);
  });

  test("runs by state and the queue: due root runs only", async () => {
    const parent = await run("RUNNING");
    await run("COMPLETED");
    await run("COMPLETED");
    await run("SCHEDULED"); // due
    await run("SCHEDULED", { expectedStartTime: new Date(Date.now() + 3_600_000) }); // not yet due
    await run("SCHEDULED", { parentFlowRunId: parent }); // a child run: runs inside its parent
    metrics.observe(databaseSources(db, () => 0));
    const { body } = await metrics.render();
    assert.equal(sample(body, "ferry_flow_runs", { state: "COMPLETED" }), 2);
    assert.equal(sample(body, "ferry_flow_runs", { state: "SCHEDULED" }), 3);
    assert.equal(sample(body, "ferry_flow_runs", { state: "RUNNING" }), 1);
    assert.equal(sample(body, "ferry_flow_runs", { state: "CRASHED" }), 0);
    assert.equal(sample(body, "ferry_dispatch_queue_depth"), 1);
    assert.equal(sample(body, "ferry_db_query_duration_seconds_count", { model: "FlowRun", operation: "groupBy" }), 1);
  });

  test("dispatch latency is observed on both dispatch paths: a pass's claim and the fast path", async () => {
    const sent: ServerMessage[] = [];
    const socket = { OPEN: 1, readyState: 1, send: (data: string) => sent.push(JSON.parse(data) as ServerMessage) };
    const agent = new AgentConnection(socket as unknown as WebSocket, "agent-1", ws, "token-1", "a", ["default"], 4);
    const assigned: { runId: string; latencyMs: number }[] = [];
    const dispatcher = new Dispatcher(db, log, {
      leaseMs: 15_000,
      onAssigned: (r, latencyMs) => {
        assigned.push({ runId: r.id, latencyMs });
        metrics.dispatchLatency.observe(latencyMs / 1000);
      },
    });
    try {
      // A pass: a run that has waited in the queue for about a second.
      const second = new Date(Date.now() - 1_000);
      const waiting = await run("SCHEDULED", { expectedStartTime: second, stateTimestamp: second });
      dispatcher.addAgent(agent);
      await waitFor(() => assigned.length === 1);
      assert.equal(assigned[0]?.runId, waiting);
      assert.ok((assigned[0]?.latencyMs ?? 0) >= 1_000, `latency from when it was due: ${assigned[0]?.latencyMs} ms`);
      // The fast path: reserve, create already assigned, settle.
      const deployment = await db.deployment.findUniqueOrThrow({ where: { id: "dep-1" } });
      const reservation = await dispatcher.reserve(ws, deployment);
      assert.ok(reservation, "a free agent was reserved");
      const outcome = await createFlowRun(db, new ParamsValidator(), {
        workspaceId: ws,
        deployment,
        parameters: {},
        assign: reservation.assignment,
      });
      dispatcher.settle(reservation, outcome, deployment);
      assert.equal(assigned.length, 2);
      assert.equal(assigned[1]?.runId, outcome.run.id);
      assert.ok((assigned[1]?.latencyMs ?? -1) >= 0 && (assigned[1]?.latencyMs ?? 0) < 1_000);
      assert.deepEqual(
        sent.map((m) => (m.type === "run.assign" ? m.flowRunId : m.type)),
        [waiting, outcome.run.id],
      );
      const { body } = await metrics.render();
      assert.equal(sample(body, "ferry_dispatch_latency_seconds_count"), 2);
      assert.equal(sample(body, "ferry_dispatch_latency_seconds_bucket", { le: "0.5" }), 1, "the fast one only");
    } finally {
      dispatcher.stop();
    }
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 10));
  }
}
