import { attachSql, type Db, sqlOf } from "@ferry/prisma";
import { StateType } from "@ferry/sdk/protocol";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { Logger } from "./logger.ts";

/** Every metric of the control plane starts with this (Prometheus convention: one prefix per application). */
const PREFIX = "ferry_";

/** Run created or due → `run.assign` sent: about a millisecond on an idle control plane, seconds under load. */
const DISPATCH_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];
/** One database statement: tens of microseconds (SQLite) to seconds (a big sweep). */
const DB_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** The `model` label of raw SQL (`$queryRaw`, `$executeRaw`): Prisma model names are PascalCase, so this never collides. */
export const RAW_MODEL = "raw";
/** The label of statements on the direct SQL executor (prisma/src/sql.ts). */
export const DIRECT_MODEL = "direct";

/** What the gauges read when Prometheus scrapes (nothing is counted in between). */
export interface MetricsSources {
  /** Flow runs per state type in the whole database. */
  runsByState(): Promise<ReadonlyMap<string, number>>;
  /** Root flow runs SCHEDULED and due, that no agent has taken yet. */
  queueDepth(): Promise<number>;
  /** Agents connected to this process (after their hello). */
  connectedAgents(): number;
}

/** How a notification delivery attempt ended. */
export type DeliveryOutcome = "sent" | "retry" | "failed";

/**
 * The control plane's own metrics, in Prometheus' text format (prom-client). One registry per
 * control-plane process rather than prom-client's global one, so that several control planes in
 * one process (tests) each report their own.
 *
 * Counters and histograms are updated where things happen (dispatcher, agent hub, tRPC
 * middleware, notifier); the gauges of database state are read on each scrape with one grouped
 * query, so their cost is bounded by the number of states, not of runs, and is paid only when
 * someone looks. With several replicas on one database every replica reports the same run counts
 * (aggregate them with `max`, not `sum`); agents, dispatches and API calls are per replica.
 *
 * @example
 * const metrics = new ControlPlaneMetrics(log);
 * const db = metrics.instrument(database.db); // every query timed
 * metrics.observe(databaseSources(db, () => hub.connectedCount()));
 * const { contentType, body } = await metrics.render();
 */
export class ControlPlaneMetrics {
  readonly registry = new Registry();
  readonly dispatchLatency: Histogram;
  readonly dbQueryDuration: Histogram<"model" | "operation">;
  readonly agentMessages: Counter<"direction" | "type">;
  readonly apiRequests: Counter<"procedure" | "outcome">;
  readonly runEvents: Counter;
  readonly logLines: Counter;
  readonly notificationDeliveries: Counter<"outcome">;
  private readonly readErrors: Counter;
  private sources: MetricsSources | undefined;
  /** The last successful database read (a failed one keeps it: the failure is counted instead). */
  private latest: { byState: ReadonlyMap<string, number>; queued: number } | undefined;
  /** One database read shared by scrapes that arrive together. */
  private reading: Promise<void> | undefined;

  constructor(private readonly log: Logger) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: PREFIX });
    const self = this;
    new Gauge({
      name: `${PREFIX}flow_runs`,
      help: "Flow runs in the database, by state type",
      labelNames: ["state"],
      registers,
      collect() {
        const read = self.latest;
        if (!read) return;
        this.reset();
        // Every state is reported, zero included, so a series does not vanish when its last run moves on.
        for (const state of StateType.options) this.set({ state }, 0);
        for (const [state, count] of read.byState) this.set({ state }, count);
      },
    });
    new Gauge({
      name: `${PREFIX}dispatch_queue_depth`,
      help: "Flow runs scheduled and due, waiting for an agent",
      registers,
      collect() {
        if (self.latest) this.set(self.latest.queued);
      },
    });
    new Gauge({
      name: `${PREFIX}connected_agents`,
      help: "Agents connected to this control-plane process",
      registers,
      collect() {
        this.set(self.sources?.connectedAgents() ?? 0);
      },
    });
    this.dispatchLatency = new Histogram({
      name: `${PREFIX}dispatch_latency_seconds`,
      help: "Time from a run being created or becoming due to its run.assign being sent to an agent",
      buckets: DISPATCH_BUCKETS,
      registers,
    });
    this.dbQueryDuration = new Histogram({
      name: `${PREFIX}db_query_duration_seconds`,
      help: `Duration of database operations, by model (${RAW_MODEL} for raw SQL through Prisma, ${DIRECT_MODEL} for the hot paths' direct SQL) and operation`,
      labelNames: ["model", "operation"],
      buckets: DB_BUCKETS,
      registers,
    });
    this.agentMessages = new Counter({
      name: `${PREFIX}agent_messages_total`,
      help: "Agent WebSocket messages, by direction (in, out) and message type (invalid: failed validation)",
      labelNames: ["direction", "type"],
      registers,
    });
    this.apiRequests = new Counter({
      name: `${PREFIX}api_requests_total`,
      help: "tRPC API calls, by procedure and outcome (ok or the tRPC error code)",
      labelNames: ["procedure", "outcome"],
      registers,
    });
    this.runEvents = new Counter({
      name: `${PREFIX}run_events_ingested_total`,
      help: "Run events (task-run states, edges, published events…) received from agents",
      registers,
    });
    this.logLines = new Counter({
      name: `${PREFIX}log_lines_ingested_total`,
      help: "Run log lines received from agents",
      registers,
    });
    this.notificationDeliveries = new Counter({
      name: `${PREFIX}notification_deliveries_total`,
      help: "Notification delivery attempts, by outcome (sent, retry: failed and will be retried, failed: given up)",
      labelNames: ["outcome"],
      registers,
    });
    this.readErrors = new Counter({
      name: `${PREFIX}metrics_read_errors_total`,
      help: "Scrapes whose database read failed (ferry_flow_runs and ferry_dispatch_queue_depth then keep their last values)",
      registers,
    });
  }

  /** Where the gauges read from; set once the database and the agent hub exist. */
  observe(sources: MetricsSources): void {
    this.sources = sources;
  }

  /**
   * The database client with every operation timed into `ferry_db_query_duration_seconds`:
   * model operations and raw SQL alike, inside transactions too (a Prisma query extension,
   * applied to the whole client). Use the returned client everywhere.
   */
  instrument(db: Db): Db {
    const histogram = this.dbQueryDuration;
    const sql = sqlOf(db);
    sql.onQuery = (seconds, kind) => histogram.observe({ model: DIRECT_MODEL, operation: kind }, seconds);
    const extended = db.$extends({
      query: {
        async $allOperations({ model, operation, args, query }) {
          const end = histogram.startTimer({ model: model ?? RAW_MODEL, operation });
          try {
            return await query(args);
          } finally {
            end();
          }
        },
      },
    });
    // A query extension changes no model's API; only the client's nominal type differs.
    attachSql(extended, sql);
    return extended as unknown as Db;
  }

  /** The exposition text and its Content-Type, for `GET /metrics`. */
  async render(): Promise<{ contentType: string; body: string }> {
    // Read first, so that the figures, the read's own query timings and its errors all show in this scrape.
    await this.readDatabase();
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  private readDatabase(): Promise<void> {
    const sources = this.sources;
    if (!sources) return Promise.resolve();
    this.reading ??= Promise.all([sources.runsByState(), sources.queueDepth()])
      .then(([byState, queued]) => {
        this.latest = { byState, queued };
      })
      .catch((err: unknown) => {
        // A scrape while the database is unreachable still answers.
        this.readErrors.inc();
        this.log.warn({ err }, "could not read run counts for /metrics");
      })
      .finally(() => {
        this.reading = undefined;
      });
    return this.reading;
  }
}

/**
 * The gauges' sources on a database: one grouped count of all flow runs by state, one count of
 * due root runs (what the dispatcher would hand out; child runs execute inside their parent).
 */
export function databaseSources(db: Db, connectedAgents: () => number): MetricsSources {
  return {
    async runsByState() {
      const groups = await db.flowRun.groupBy({ by: ["stateType"], _count: { _all: true } });
      return new Map(groups.map((g) => [g.stateType, g._count._all]));
    },
    queueDepth: () =>
      db.flowRun.count({ where: { stateType: "SCHEDULED", parentFlowRunId: null, expectedStartTime: { lte: new Date() } } }),
    connectedAgents,
  };
}
