// Proves that the hand-written migrations create exactly the schema of schema.prisma, on each
// provider, and that the migrator and openDatabase behave. The expected side comes from the
// DMMF that Prisma computes from schema.prisma (src/dmmf.ts), never from a hand-kept list.
//
// Run from the repository root: node --import tsx --test prisma/src/schema-match.test.ts
// PostgreSQL: FERRY_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres) must
// reach a server whose user may CREATE DATABASE; each test uses its own ferry_test_* database,
// dropped afterwards. Without a server the PostgreSQL tests are skipped, with the reason, unless
// FERRY_REQUIRE_POSTGRES=1 (set it in CI), which makes them fail instead.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import Database from "better-sqlite3";
import pg from "pg";
import { type Db, openDatabase, type Provider, providerOf, sqliteFilePath } from "./database.ts";
import { type DmmfDatamodel, loadDatamodel, schemaForProvider } from "./dmmf.ts";
import {
  checksumMatches,
  checksumOf,
  MIGRATIONS_TABLE_DDL,
  MigrationError,
  migrate,
  migrationsDirectory,
  pendingMigrations,
  readMigrations,
} from "./migrate.ts";
import {
  defaultConstraintName,
  describePostgres,
  describeSqlite,
  diffShapes,
  expectedShape,
  type SchemaShape,
} from "./schema-shape.ts";

const PG_ADMIN_URL = process.env.FERRY_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const REQUIRE_POSTGRES = process.env.FERRY_REQUIRE_POSTGRES === "1";
const INIT = "20261126000000_init";
/** Every migration, in order; both providers must have the same ones. */
const ALL = readMigrations(migrationsDirectory("sqlite")).map((m) => m.name);

const scratch = mkdtempSync(join(tmpdir(), "ferry-prisma-test-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

function tempPath(name: string): string {
  return join(scratch, `${randomBytes(4).toString("hex")}-${name}`);
}

/** A copy of the provider's migrations plus extra migration files, for failure scenarios. */
function migrationsWith(provider: Provider, extra: Record<string, string>): string {
  const dir = tempPath(`migrations-${provider}`);
  cpSync(migrationsDirectory(provider), dir, { recursive: true });
  for (const [name, sql] of Object.entries(extra)) {
    mkdirSync(join(dir, name), { recursive: true });
    writeFileSync(join(dir, name, "migration.sql"), sql);
  }
  return dir;
}

// ---------------------------------------------------------------------------------------------
// Pure functions.
// ---------------------------------------------------------------------------------------------

describe("providerOf / sqliteFilePath", () => {
  test("accepts the supported URL forms", () => {
    assert.equal(providerOf("file:./ferry.db"), "sqlite");
    assert.equal(providerOf("file:/var/lib/ferry/ferry.db"), "sqlite");
    assert.equal(providerOf("postgres://u:p@localhost:5432/ferry"), "postgresql");
    assert.equal(providerOf("postgresql://localhost/ferry?schema=x"), "postgresql");
  });

  test("rejects anything else with a clear message that hides the password", () => {
    for (const url of ["mysql://root:secret@localhost/ferry", "ferry.db", "", "file:", "postgres://", "sqlite:./x.db"]) {
      assert.throws(
        () => providerOf(url),
        (error: Error) => {
          assert.match(error.message, /Unsupported database URL/);
          assert.match(error.message, /file:\.\/path\/to\/ferry\.db/);
          assert.doesNotMatch(error.message, /secret/);
          return true;
        },
      );
    }
  });

  test("resolves SQLite paths", () => {
    assert.equal(sqliteFilePath("file:/abs/dir/x.db"), "/abs/dir/x.db");
    assert.equal(sqliteFilePath("file:./rel/x.db?connection_limit=1"), join(process.cwd(), "rel/x.db"));
    assert.equal(sqliteFilePath("file:///abs/x.db"), "/abs/x.db");
    assert.throws(() => sqliteFilePath("file::memory:"), /needs a database file/);
  });
});

describe("migration bookkeeping", () => {
  const files = [
    { name: "1_a", sql: "A;\n", checksum: checksumOf("A;\n") },
    { name: "2_b", sql: "B;\n", checksum: checksumOf("B;\n") },
  ];
  const row = (name: string, checksum: string, finished: unknown = 1, rolledBack: unknown = null) => ({
    migration_name: name,
    checksum,
    finished_at: finished,
    rolled_back_at: rolledBack,
  });

  test("checksum is the sha256 hex of migration.sql; CRLF conversions still match", () => {
    assert.equal(checksumOf(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert.ok(checksumMatches("A;\r\nB;\r\n", checksumOf("A;\nB;\n")));
    assert.ok(checksumMatches("A;\nB;\n", checksumOf("A;\r\nB;\r\n")));
    assert.ok(!checksumMatches("A;\nB;\n", checksumOf("A;\nC;\n")));
  });

  test("pending = files not applied; rolled-back rows do not count", () => {
    assert.deepEqual(
      pendingMigrations(files, [], "db", "dir").map((f) => f.name),
      ["1_a", "2_b"],
    );
    assert.deepEqual(
      pendingMigrations(files, [row("1_a", files[0]?.checksum ?? "")], "db", "dir").map((f) => f.name),
      ["2_b"],
    );
    assert.deepEqual(
      pendingMigrations(files, [row("1_a", "x", null, 1), row("1_a", files[0]?.checksum ?? "")], "db", "dir").map((f) => f.name),
      ["2_b"],
    );
  });

  test("refuses modified, failed and unknown migrations", () => {
    assert.throws(
      () => pendingMigrations(files, [row("1_a", "0".repeat(64))], "db", "dir"),
      /1_a were modified after they were applied/,
    );
    assert.throws(() => pendingMigrations(files, [row("1_a", files[0]?.checksum ?? "", null)], "db", "dir"), /did not finish/);
    assert.throws(() => pendingMigrations(files, [row("3_c", "x")], "db", "dir"), /not in dir.*newer version/);
  });

  test("the repository's migrations are complete for both providers", () => {
    for (const provider of ["sqlite", "postgresql"] as const) {
      const names = readMigrations(migrationsDirectory(provider), provider).map((m) => m.name);
      assert.ok(names.includes(INIT), `${provider}: ${INIT} missing`);
    }
    assert.deepEqual(
      readMigrations(migrationsDirectory("sqlite")).map((m) => m.name),
      readMigrations(migrationsDirectory("postgresql")).map((m) => m.name),
      "every migration must exist for both providers, with the same name",
    );
    assert.throws(
      () => readMigrations(migrationsDirectory("sqlite"), "postgresql"),
      /migration_lock\.toml is for provider "sqlite"/,
    );
  });
});

describe("DMMF and naming helpers", () => {
  test("schemaForProvider rewrites the provider and replaces the generators", () => {
    const schema =
      'generator client {\n  provider = "prisma-client"\n}\n\ndatasource db {\n  provider = "sqlite"\n}\n\nmodel A {\n  id Int @id\n}\n';
    const out = schemaForProvider(schema, "postgresql", 'generator x {\n  provider = "y"\n}\n');
    assert.match(out, /datasource db \{\n {2}provider = "postgresql"\n\}/);
    assert.doesNotMatch(out, /prisma-client/);
    assert.match(out, /generator x/);
    assert.match(out, /model A/);
  });

  test("defaultConstraintName follows Prisma's naming, truncated to 63 characters on PostgreSQL", () => {
    assert.equal(
      defaultConstraintName("postgresql", "Log", ["flowRunId", "attempt", "seq"], "key"),
      "Log_flowRunId_attempt_seq_key",
    );
    assert.equal(
      defaultConstraintName("sqlite", "FlowRun", ["workspaceId", "createdAt"], "idx"),
      "FlowRun_workspaceId_createdAt_idx",
    );
    assert.equal(defaultConstraintName("postgresql", "TaskRunEdge", ["upstreamId", "downstreamId"], "pkey"), "TaskRunEdge_pkey");
    const long = defaultConstraintName("postgresql", "T".repeat(40), ["c".repeat(40)], "idx");
    assert.equal(long.length, 63);
    assert.ok(long.endsWith("_idx"));
    assert.equal(defaultConstraintName("sqlite", "T".repeat(40), ["c".repeat(40)], "idx").length, 85);
  });
});

// ---------------------------------------------------------------------------------------------
// Shared scenarios, run against each provider.
// ---------------------------------------------------------------------------------------------

/** Creates and reads back a row of every model through the Prisma client; returns the models used. */
async function roundTripEveryModel(db: Db): Promise<string[]> {
  const at = new Date("2026-11-26T10:20:30.456Z");
  const before = Date.now();
  const workspaceId = "ws_1";
  const common = { workspaceId };

  const workspace = await db.workspace.create({ data: { id: workspaceId, name: "Acme", slug: "acme" } });
  await db.apiToken.create({
    data: { id: "tok_1", ...common, name: "ci", prefix: "fy_ab", hash: "h".repeat(64), scopes: "[]", expiresAt: at },
  });
  await db.webSession.create({ data: { id: "ses_1", tokenId: "tok_1", expiresAt: at } });
  await db.setting.create({ data: { key: "session.key", value: "secret" } });
  await db.flow.create({ data: { id: "flow_1", ...common, name: "etl" } });
  await db.deployment.create({
    data: {
      id: "dep_1",
      ...common,
      flowId: "flow_1",
      name: "nightly",
      entrypoint: "flows/etl.ts:etl",
      flowName: "etl",
      paramsSchemaJson: "{}",
      defaultParamsJson: "{}",
      workPool: "default",
      tagsJson: '["a"]',
      timeoutMs: 60_000,
    },
  });
  await db.schedule.create({
    data: { id: "sch_1", ...common, deploymentId: "dep_1", kind: "cron", cron: "0 * * * *", timezone: "Europe/Paris" },
  });
  await db.notificationChannel.create({
    data: { id: "ch_1", ...common, name: "ops", kind: "slack", configJson: '{"url":"https://hooks.example/x"}' },
  });
  await db.notificationRule.create({
    data: { id: "rule_1", ...common, name: "failures", channelId: "ch_1", eventsJson: '["FAILED"]' },
  });
  await db.notificationDelivery.create({
    data: {
      id: "del_1",
      ...common,
      ruleId: "rule_1",
      channelId: "ch_1",
      event: "FAILED",
      eventKey: "FAILED:run_1:1",
      alertJson: "{}",
      nextAttemptAt: at,
    },
  });
  await db.trigger.create({
    data: {
      id: "trg_1",
      ...common,
      deploymentId: "dep_1",
      kind: "run_state",
      name: "after ingest",
      sourceDeploymentId: "dep_1",
      statesJson: '["COMPLETED"]',
    },
  });
  await db.backfill.create({
    data: {
      id: "bf_1",
      ...common,
      deploymentId: "dep_1",
      kind: "interval",
      intervalSeconds: 3600,
      anchor: at,
      rangeStart: at,
      rangeEnd: new Date(at.getTime() + 86_400_000),
      total: 25,
    },
  });
  await db.flowRun.create({
    data: {
      id: "run_1",
      ...common,
      flowId: "flow_1",
      deploymentId: "dep_1",
      name: "brave-otter",
      parametersJson: '{"n":1}',
      tagsJson: "[]",
      workPool: "default",
      stateType: "SCHEDULED",
      stateName: "Scheduled",
      stateTimestamp: at,
      expectedStartTime: at,
      idempotencyKey: "idem-1",
      scheduleId: "sch_1",
      scheduledFor: at,
      dataIntervalStart: new Date(at.getTime() - 3_600_000),
      dataIntervalEnd: at,
    },
  });
  await db.flowRunState.create({
    data: {
      id: "frs_1",
      ...common,
      flowRunId: "run_1",
      type: "SCHEDULED",
      name: "Scheduled",
      timestamp: at,
      attempt: 0,
      eventId: "ev_1",
    },
  });
  await db.taskRun.create({
    data: {
      id: "task_1",
      ...common,
      flowRunId: "run_1",
      taskKey: "extract",
      dynamicKey: 0,
      name: "extract-0",
      tagsJson: "[]",
      stateType: "PENDING",
      stateName: "Pending",
      stateTimestamp: at,
    },
  });
  await db.taskRunState.create({
    data: { id: "trs_1", ...common, taskRunId: "task_1", type: "PENDING", name: "Pending", timestamp: at, attempt: 0 },
  });
  await db.taskRunEdge.create({ data: { ...common, flowRunId: "run_1", upstreamId: "task_0", downstreamId: "task_1" } });
  const log1 = await db.log.create({
    data: { ...common, flowRunId: "run_1", attempt: 0, seq: 0, level: "INFO", message: "hello", timestamp: at },
  });
  const log2 = await db.log.create({
    data: { ...common, flowRunId: "run_1", attempt: 0, seq: 1, level: "INFO", message: "world", timestamp: at },
  });
  await db.agent.create({
    data: {
      id: "agent_1",
      ...common,
      externalId: "box-1",
      name: "box",
      tokenId: "tok_1",
      poolsJson: '["default"]',
      labelsJson: "{}",
      capacity: 4,
      version: "0.1.0",
      status: "ONLINE",
      connectedAt: at,
    },
  });
  await db.workPool.create({ data: { id: "pool_1", ...common, name: "gpu", concurrencyLimit: 2 } });
  await db.tagLimit.create({ data: { id: "limit_1", ...common, tag: "gpu", maxConcurrent: 2 } });
  await db.concurrencySlot.create({
    data: { id: "slot_1", ...common, tag: "gpu", taskRunId: "task_1", flowRunId: "run_1", attempt: 1 },
  });

  // Defaults and DateTime mapping.
  assert.ok(workspace.createdAt instanceof Date);
  const readWorkspace = await db.workspace.findUniqueOrThrow({ where: { slug: "acme" } });
  assert.ok(Math.abs(readWorkspace.createdAt.getTime() - before) < 60_000, `createdAt ${readWorkspace.createdAt.toISOString()}`);
  const token = await db.apiToken.findUniqueOrThrow({ where: { hash: "h".repeat(64) } });
  assert.equal(token.expiresAt?.toISOString(), at.toISOString());
  assert.equal(token.revokedAt, null);
  const delivery = await db.notificationDelivery.findUniqueOrThrow({
    where: { ruleId_eventKey: { ruleId: "rule_1", eventKey: "FAILED:run_1:1" } },
    include: { channel: true, rule: true },
  });
  assert.deepEqual(
    [delivery.status, delivery.attempts, delivery.channel.active, delivery.rule.active, delivery.nextAttemptAt.getTime()],
    ["PENDING", 0, true, true, at.getTime()],
  );
  const trigger = await db.trigger.findUniqueOrThrow({ where: { id: "trg_1" } });
  assert.deepEqual([trigger.active, trigger.parametersJson, trigger.mappingJson, trigger.secretHash], [true, "{}", "{}", null]);
  const backfill = await db.backfill.findUniqueOrThrow({ where: { id: "bf_1" } });
  assert.deepEqual(
    [backfill.status, backfill.maxActive, backfill.reprocess, backfill.backwards, backfill.skipped, backfill.cursor],
    ["RUNNING", 10, "none", false, 0, null],
  );
  const schedule = await db.schedule.findUniqueOrThrow({ where: { id: "sch_1" }, include: { runs: true } });
  assert.deepEqual(
    [schedule.active, schedule.catchup, schedule.graceSeconds, schedule.source, schedule.lastSlotAt, schedule.runs.length],
    [true, "LATEST", 60, "user", null, 1],
  );
  // One run per schedule and slot.
  assert.equal(
    (await db.flowRun.findUniqueOrThrow({ where: { scheduleId_scheduledFor: { scheduleId: "sch_1", scheduledFor: at } } })).id,
    "run_1",
  );
  const session = await db.webSession.findUniqueOrThrow({ where: { id: "ses_1" }, include: { token: true } });
  assert.deepEqual([session.token.name, session.endedAt, session.expiresAt.getTime()], ["ci", null, at.getTime()]);
  assert.equal((await db.setting.findUniqueOrThrow({ where: { key: "session.key" } })).value, "secret");
  const flow = await db.flow.findUniqueOrThrow({ where: { workspaceId_name: { workspaceId, name: "etl" } } });
  assert.ok(flow.updatedAt instanceof Date);
  const deployment = await db.deployment.findUniqueOrThrow({ where: { workspaceId_name: { workspaceId, name: "nightly" } } });
  assert.deepEqual(
    [deployment.retries, deployment.retryDelayMs, deployment.timeoutMs, deployment.description],
    [0, 0, 60_000, null],
  );
  const run = await db.flowRun.findUniqueOrThrow({
    where: { workspaceId_idempotencyKey: { workspaceId, idempotencyKey: "idem-1" } },
    include: { states: true, taskRuns: { include: { states: true } }, edges: true, logs: { orderBy: { seq: "asc" } } },
  });
  assert.equal(run.stateTimestamp.toISOString(), at.toISOString());
  assert.equal(run.expectedStartTime.getTime(), at.getTime());
  assert.deepEqual([run.attempt, run.maxRetries, run.startTime], [0, 0, null]);
  assert.equal(run.states[0]?.eventId, "ev_1");
  assert.equal(run.taskRuns[0]?.states[0]?.timestamp.toISOString(), at.toISOString());
  assert.deepEqual(
    run.edges.map((edge) => [edge.upstreamId, edge.downstreamId]),
    [["task_0", "task_1"]],
  );
  assert.deepEqual(
    run.logs.map((log) => log.message),
    ["hello", "world"],
  );
  // Autoincrement ids are plain numbers that increase.
  assert.equal(typeof log1.id, "number");
  assert.equal(log2.id, log1.id + 1);
  assert.equal((await db.log.findUniqueOrThrow({ where: { id: log2.id } })).message, "world");
  assert.equal(
    (
      await db.taskRunEdge.findUniqueOrThrow({
        where: { upstreamId_downstreamId: { upstreamId: "task_0", downstreamId: "task_1" } },
      })
    ).flowRunId,
    "run_1",
  );
  assert.equal((await db.deployment.findUniqueOrThrow({ where: { id: "dep_1" } })).collisionStrategy, "ENQUEUE");
  assert.equal(
    (await db.workPool.findUniqueOrThrow({ where: { workspaceId_name: { workspaceId, name: "gpu" } } })).concurrencyLimit,
    2,
  );
  assert.equal(
    (await db.tagLimit.findUniqueOrThrow({ where: { workspaceId_tag: { workspaceId, tag: "gpu" } } })).maxConcurrent,
    2,
  );
  await assert.rejects(
    db.concurrencySlot.create({
      data: { id: "slot_2", ...common, tag: "gpu", taskRunId: "task_1", flowRunId: "run_1", attempt: 1 },
    }),
    (error: { code?: string }) => error.code === "P2002",
  );
  const agent = await db.agent.findUniqueOrThrow({ where: { id: "agent_1" } });
  assert.equal(agent.connectedAt?.getTime(), at.getTime());
  assert.equal(agent.capacity, 4);

  // Unique indexes are enforced: a replayed log line is rejected.
  await assert.rejects(
    db.log.create({ data: { ...common, flowRunId: "run_1", attempt: 0, seq: 1, level: "INFO", message: "dup", timestamp: at } }),
    (error: { code?: string }) => error.code === "P2002",
  );
  // The alert outbox has no foreign keys (it is written on the state-change hot path): a row
  // lives until the notifier has turned it into deliveries.
  await db.notificationOutbox.create({
    data: {
      id: "outbox_1",
      ...common,
      flowRunId: "run_1",
      deploymentId: null,
      stateType: "FAILED",
      stateName: "Failed",
      attempt: 1,
      createdAt: at,
    },
  });
  assert.equal((await db.notificationOutbox.findUniqueOrThrow({ where: { id: "outbox_1" } })).createdAt.getTime(), at.getTime());
  await db.notificationOutbox.delete({ where: { id: "outbox_1" } });
  // Foreign keys: SET NULL, then CASCADE from the workspace down to every dependent row.
  await db.deployment.delete({ where: { id: "dep_1" } });
  const orphan = await db.flowRun.findUniqueOrThrow({ where: { id: "run_1" } });
  assert.deepEqual([orphan.deploymentId, orphan.scheduleId], [null, null], "the schedule went with its deployment");
  await db.workspace.delete({ where: { id: workspaceId } });
  const counts = await Promise.all([
    db.apiToken.count(),
    db.flow.count(),
    db.flowRun.count(),
    db.flowRunState.count(),
    db.taskRun.count(),
    db.taskRunState.count(),
    db.taskRunEdge.count(),
    db.log.count(),
    db.agent.count(),
    db.workPool.count(),
    db.tagLimit.count(),
    db.concurrencySlot.count(),
    db.webSession.count(),
    db.schedule.count(),
    db.backfill.count(),
    db.trigger.count(),
    db.notificationChannel.count(),
    db.notificationRule.count(),
    db.notificationDelivery.count(),
  ]);
  assert.deepEqual(counts, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.equal(await db.setting.count(), 1);

  return [
    "NotificationOutbox",
    "NotificationChannel",
    "NotificationRule",
    "NotificationDelivery",
    "Trigger",
    "Backfill",
    "Schedule",
    "WebSession",
    "WorkPool",
    "TagLimit",
    "ConcurrencySlot",
    "Workspace",
    "ApiToken",
    "Setting",
    "Flow",
    "Deployment",
    "FlowRun",
    "FlowRunState",
    "TaskRun",
    "TaskRunState",
    "TaskRunEdge",
    "Log",
    "Agent",
  ];
}

function assertMatches(actual: SchemaShape, expected: SchemaShape): void {
  assert.deepEqual(diffShapes(expected, actual), [], "the migrated database differs from schema.prisma");
  // Belt and braces: the shapes are identical in every field diffShapes looks at, and more.
  assert.deepEqual(actual, expected);
}

const tsxImport = import.meta.resolve("tsx");

/** Runs `source` (an ES module) in a separate Node process with the tsx loader; returns stdout. */
async function runInProcess(source: string, args: string[]): Promise<string> {
  const file = `${tempPath("script")}.mjs`;
  writeFileSync(file, source);
  const { stdout } = await promisify(execFile)(process.execPath, ["--import", tsxImport, file, ...args], { timeout: 60_000 });
  return stdout;
}

const migrateModule = pathToFileURL(join(import.meta.dirname, "migrate.ts")).href;

// ---------------------------------------------------------------------------------------------
// SQLite.
// ---------------------------------------------------------------------------------------------

describe("SQLite", () => {
  let datamodel: DmmfDatamodel;
  before(async () => {
    datamodel = await loadDatamodel("sqlite");
  });

  function freshDatabase(): Database.Database {
    return new Database(`${tempPath("sqlite")}.db`);
  }

  test("the migrated database matches schema.prisma", async () => {
    const db = freshDatabase();
    try {
      assert.deepEqual(await migrate({ provider: "sqlite", database: db }), { applied: ALL });
      const expected = expectedShape(datamodel, "sqlite");
      assert.equal(expected.length, datamodel.models.length);
      assertMatches(describeSqlite(db), expected);
    } finally {
      db.close();
    }
  });

  test("_prisma_migrations has Prisma's layout and a Prisma-style row", async () => {
    const db = freshDatabase();
    try {
      await migrate({ provider: "sqlite", database: db });
      const reference = new Database(":memory:");
      reference.exec(MIGRATIONS_TABLE_DDL.sqlite);
      const columns = (d: Database.Database) => d.pragma('table_info("_prisma_migrations")');
      assert.deepEqual(columns(db), columns(reference));
      reference.close();
      const rows = db.prepare("SELECT * FROM _prisma_migrations").all() as Record<string, unknown>[];
      assert.equal(rows.length, ALL.length);
      const row = rows.find((r) => r.migration_name === INIT) ?? {};
      const file = readMigrations(migrationsDirectory("sqlite")).find((m) => m.name === INIT);
      assert.equal(row.migration_name, INIT);
      assert.equal(row.checksum, file?.checksum);
      assert.match(String(row.id), /^[0-9a-f-]{36}$/);
      assert.equal(row.applied_steps_count, 1);
      assert.equal(row.logs, null);
      assert.equal(row.rolled_back_at, null);
      assert.equal(typeof row.finished_at, "number", "Prisma stores these timestamps as Unix ms on SQLite");
      assert.ok(Number(row.finished_at) >= Number(row.started_at));
    } finally {
      db.close();
    }
  });

  test("applying the migrations twice is a no-op", async () => {
    const db = freshDatabase();
    try {
      await migrate({ provider: "sqlite", database: db });
      const shape = describeSqlite(db);
      assert.deepEqual(await migrate({ provider: "sqlite", database: db }), { applied: [] });
      assert.equal(db.prepare("SELECT count(*) AS n FROM _prisma_migrations").pluck().get(), ALL.length);
      assert.deepEqual(describeSqlite(db), shape);
    } finally {
      db.close();
    }
  });

  test("a tampered checksum is refused", async () => {
    const db = freshDatabase();
    try {
      await migrate({ provider: "sqlite", database: db });
      db.prepare("UPDATE _prisma_migrations SET checksum = ? WHERE migration_name = ?").run("0".repeat(64), INIT);
      await assert.rejects(migrate({ provider: "sqlite", database: db }), (error: Error) => {
        assert.ok(error instanceof MigrationError);
        assert.match(error.message, new RegExp(`${INIT} were modified after they were applied`));
        return true;
      });
    } finally {
      db.close();
    }
  });

  test("a failing migration is rolled back, not recorded, and blocks start-up until fixed", async () => {
    // The broken migration sorts after every real one, so they all apply before it fails.
    const db = freshDatabase();
    try {
      const broken = "99991231000000_broken";
      const dir = migrationsWith("sqlite", {
        [broken]: 'CREATE TABLE "Half" ("id" TEXT NOT NULL PRIMARY KEY);\nINSERT INTO "NoSuchTable" VALUES (1);\n',
      });
      await assert.rejects(
        migrate({ provider: "sqlite", database: db, migrationsDir: dir }),
        /99991231000000_broken failed: no such table/,
      );
      assert.equal(db.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'Half'").pluck().get(), 0);
      assert.deepEqual(db.prepare("SELECT migration_name FROM _prisma_migrations").pluck().all(), ALL);
      writeFileSync(join(dir, broken, "migration.sql"), 'CREATE TABLE "Half" ("id" TEXT NOT NULL PRIMARY KEY);\n');
      assert.deepEqual(await migrate({ provider: "sqlite", database: db, migrationsDir: dir }), { applied: [broken] });
      assert.equal(db.pragma("foreign_keys", { simple: true }), 1, "foreign key enforcement is restored");
    } finally {
      db.close();
    }
  });

  test("two processes migrating the same file at once apply each migration once", async () => {
    const file = `${tempPath("concurrent")}.db`;
    const betterSqlite = import.meta.resolve("better-sqlite3");
    const script = `
      import Database from ${JSON.stringify(betterSqlite)};
      import { migrate } from ${JSON.stringify(migrateModule)};
      const db = new Database(process.argv[2], { timeout: 10000 });
      const result = await migrate({ provider: "sqlite", database: db });
      db.close();
      process.stdout.write(JSON.stringify(result));
    `;
    const results = await Promise.all([runInProcess(script, [file]), runInProcess(script, [file])]);
    const applied = results.map((out) => (JSON.parse(out) as { applied: string[] }).applied);
    assert.deepEqual(applied.flat(), ALL, `applied: ${JSON.stringify(applied)}`);
    const db = new Database(file);
    try {
      assertMatches(describeSqlite(db), expectedShape(datamodel, "sqlite"));
    } finally {
      db.close();
    }
  });

  test("openDatabase: creates the directory, WAL mode, and the Prisma client works for every model", async () => {
    const file = join(tempPath("nested"), "deeper", "ferry.db");
    const url = `file:${file}`;
    const opened = await openDatabase(url);
    try {
      assert.equal(opened.provider, "sqlite");
      assert.equal(opened.url, url);
      const models = await roundTripEveryModel(opened.db);
      assert.deepEqual([...models].sort(), datamodel.models.map((m) => m.name).sort(), "round trip must cover every model");
    } finally {
      await opened.close();
    }
    const raw = new Database(file);
    try {
      assert.equal(raw.pragma("journal_mode", { simple: true }), "wal");
      // A row written with SQL, so the column gets the database's DEFAULT CURRENT_TIMESTAMP.
      raw.prepare(`INSERT INTO "Workspace" ("id", "name", "slug") VALUES ('w2', 'n', 's')`).run();
      const reopened = await openDatabase(url, { migrate: false });
      try {
        // How the adapter stores DateTime in SQLite: ISO-8601 text with an explicit UTC offset.
        await reopened.db.flow.create({
          data: { id: "f2", workspaceId: "w2", name: "n", createdAt: new Date("2026-01-02T03:04:05.678Z") },
        });
        const stored = raw.prepare(`SELECT "createdAt", typeof("createdAt") AS t FROM "Flow" WHERE "id" = 'f2'`).get() as {
          createdAt: string;
          t: string;
        };
        assert.deepEqual(stored, { createdAt: "2026-01-02T03:04:05.678+00:00", t: "text" });
        const dbDefault = raw.prepare(`SELECT "createdAt" FROM "Workspace" WHERE "id" = 'w2'`).pluck().get();
        assert.match(String(dbDefault), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/, "SQL DEFAULT CURRENT_TIMESTAMP format");
        const read = await reopened.db.workspace.findUniqueOrThrow({ where: { id: "w2" } });
        assert.ok(Math.abs(read.createdAt.getTime() - Date.now()) < 60_000, "the adapter reads CURRENT_TIMESTAMP text as UTC");
      } finally {
        await reopened.close();
      }
    } finally {
      raw.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// PostgreSQL.
// ---------------------------------------------------------------------------------------------

function databaseUrl(name: string): string {
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  url.search = "";
  return url.toString();
}

describe("PostgreSQL", () => {
  let datamodel: DmmfDatamodel;
  let unreachable: string | undefined;
  let admin: pg.Client | undefined;
  const created: string[] = [];

  before(async () => {
    const client = new pg.Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: 3000 });
    try {
      await client.connect();
      await client.query("SELECT 1");
      admin = client;
    } catch (error) {
      unreachable = `PostgreSQL not reachable at ${PG_ADMIN_URL}: ${error instanceof Error ? error.message || error.name : String(error)}`;
      await client.end().catch(() => undefined);
      return;
    }
    datamodel = await loadDatamodel("postgresql");
  });

  after(async () => {
    for (const name of created) await admin?.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await admin?.end();
  });

  /** A new, empty database; its URL. Dropped after the suite. */
  async function freshDatabase(): Promise<string> {
    if (!admin) throw new Error("unreachable");
    const name = `ferry_test_${randomBytes(6).toString("hex")}`;
    await admin.query(`CREATE DATABASE "${name}"`);
    created.push(name);
    return databaseUrl(name);
  }

  async function connect(url: string): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    return client;
  }

  /** Skips the test (with the reason) when no server answers; otherwise a fresh database URL. */
  async function requireServer(t: { skip(message: string): void }): Promise<string | undefined> {
    if (unreachable !== undefined) {
      if (REQUIRE_POSTGRES) throw new Error(`${unreachable} (FERRY_REQUIRE_POSTGRES=1)`);
      t.skip(unreachable);
      return undefined;
    }
    return freshDatabase();
  }

  test("the migrated database matches schema.prisma", async (t) => {
    const url = await requireServer(t);
    if (!url) return;
    const client = await connect(url);
    try {
      assert.deepEqual(await migrate({ provider: "postgresql", client }), { applied: ALL });
      const expected = expectedShape(datamodel, "postgresql");
      assert.equal(expected.length, datamodel.models.length);
      assertMatches(await describePostgres(client), expected);
    } finally {
      await client.end();
    }
  });

  test("_prisma_migrations has Prisma's layout and a Prisma-style row", async (t) => {
    const url = await requireServer(t);
    if (!url) return;
    const client = await connect(url);
    try {
      await migrate({ provider: "postgresql", client });
      const { rows: columns } = await client.query(
        `SELECT column_name, data_type, character_maximum_length, is_nullable, column_default
         FROM information_schema.columns WHERE table_name = '_prisma_migrations' ORDER BY ordinal_position`,
      );
      assert.deepEqual(
        columns.map((c) => [c.column_name, c.data_type, c.character_maximum_length, c.is_nullable]),
        [
          ["id", "character varying", 36, "NO"],
          ["checksum", "character varying", 64, "NO"],
          ["finished_at", "timestamp with time zone", null, "YES"],
          ["migration_name", "character varying", 255, "NO"],
          ["logs", "text", null, "YES"],
          ["rolled_back_at", "timestamp with time zone", null, "YES"],
          ["started_at", "timestamp with time zone", null, "NO"],
          ["applied_steps_count", "integer", null, "NO"],
        ],
      );
      const { rows } = await client.query("SELECT * FROM _prisma_migrations");
      const file = readMigrations(migrationsDirectory("postgresql")).find((m) => m.name === INIT);
      assert.equal(rows.length, ALL.length);
      const initRow = rows.find((r: { migration_name: string }) => r.migration_name === INIT);
      assert.equal(initRow?.migration_name, INIT);
      assert.equal(initRow?.checksum, file?.checksum);
      assert.equal(rows[0].applied_steps_count, 1);
      assert.ok(rows[0].finished_at instanceof Date && rows[0].finished_at >= rows[0].started_at);
    } finally {
      await client.end();
    }
  });

  test("applying the migrations twice is a no-op (Client and Pool)", async (t) => {
    const url = await requireServer(t);
    if (!url) return;
    const client = await connect(url);
    // Named, so the lock check below sees only this test's sessions (other test files run at the same time).
    const poolName = `ferry-migrate-twice-${randomBytes(4).toString("hex")}`;
    const pool = new pg.Pool({ connectionString: url, max: 2, application_name: poolName });
    try {
      await migrate({ provider: "postgresql", client });
      const shape = await describePostgres(client);
      assert.deepEqual(await migrate({ provider: "postgresql", client }), { applied: [] });
      assert.deepEqual(await migrate({ provider: "postgresql", client: pool }), { applied: [] });
      assert.equal(pool.idleCount, pool.totalCount, "the pool connection was released");
      assert.equal((await client.query("SELECT count(*)::int AS n FROM _prisma_migrations")).rows[0].n, ALL.length);
      assert.deepEqual(await describePostgres(client), shape);
      const locks = await client.query(
        `SELECT count(*)::int AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE l.locktype = 'advisory' AND (a.pid = pg_backend_pid() OR a.application_name = $1)`,
        [poolName],
      );
      assert.equal(locks.rows[0].n, 0, "the advisory lock was released");
    } finally {
      await client.end();
      await pool.end();
    }
  });

  test("a tampered checksum is refused", async (t) => {
    const url = await requireServer(t);
    if (!url) return;
    const client = await connect(url);
    try {
      await migrate({ provider: "postgresql", client });
      await client.query("UPDATE _prisma_migrations SET checksum = $1 WHERE migration_name = $2", ["0".repeat(64), INIT]);
      await assert.rejects(migrate({ provider: "postgresql", client }), (error: Error) => {
        assert.ok(error instanceof MigrationError);
        assert.match(error.message, new RegExp(`${INIT} were modified after they were applied`));
        return true;
      });
    } finally {
      await client.end();
    }
  });

  test("a failing migration is rolled back, not recorded, and blocks start-up until fixed", async (t) => {
    const url = await requireServer(t);
    if (!url) return;
    const client = await connect(url);
    try {
      const broken = "99991231000000_broken";
      const dir = migrationsWith("postgresql", {
        [broken]: 'CREATE TABLE "Half" ("id" TEXT NOT NULL);\nINSERT INTO "NoSuchTable" VALUES (1);\n',
      });
      await assert.rejects(
        migrate({ provider: "postgresql", client, migrationsDir: dir }),
        /99991231000000_broken failed: relation "NoSuchTable" does not exist/,
      );
      assert.equal((await client.query("SELECT to_regclass('\"Half\"') AS t")).rows[0].t, null);
      assert.deepEqual(
        (await client.query("SELECT migration_name FROM _prisma_migrations ORDER BY started_at")).rows,
        ALL.map((migration_name) => ({ migration_name })),
      );
      writeFileSync(join(dir, broken, "migration.sql"), 'CREATE TABLE "Half" ("id" TEXT NOT NULL);\n');
      assert.deepEqual(await migrate({ provider: "postgresql", client, migrationsDir: dir }), { applied: [broken] });
    } finally {
      await client.end();
    }
  });

  test("two processes migrating at once apply each migration once (advisory lock)", async (t) => {
    const url = await requireServer(t);
    if (!url) return;
    const pgModule = import.meta.resolve("pg");
    const script = `
      import pg from ${JSON.stringify(pgModule)};
      import { migrate } from ${JSON.stringify(migrateModule)};
      const client = new pg.Client({ connectionString: process.argv[2] });
      await client.connect();
      const result = await migrate({ provider: "postgresql", client });
      await client.end();
      process.stdout.write(JSON.stringify(result));
    `;
    const results = await Promise.all([runInProcess(script, [url]), runInProcess(script, [url]), runInProcess(script, [url])]);
    const applied = results.map((out) => (JSON.parse(out) as { applied: string[] }).applied);
    assert.deepEqual(applied.flat(), ALL, `applied: ${JSON.stringify(applied)}`);
    const client = await connect(url);
    try {
      assertMatches(await describePostgres(client), expectedShape(datamodel, "postgresql"));
    } finally {
      await client.end();
    }
  });

  test("a held migration lock makes migrate wait, then time out with a clear error", async (t) => {
    const url = await requireServer(t);
    if (!url) return;
    const holder = await connect(url);
    const client = await connect(url);
    try {
      await holder.query("SELECT pg_advisory_lock(72707369)");
      await assert.rejects(migrate({ provider: "postgresql", client, lockTimeoutMs: 300 }), /could not take the migration lock/);
      await holder.query("SELECT pg_advisory_unlock(72707369)");
      assert.deepEqual(await migrate({ provider: "postgresql", client }), { applied: ALL });
    } finally {
      await holder.end();
      await client.end();
    }
  });

  test("openDatabase: the Prisma client works for every model", async (t) => {
    const url = await requireServer(t);
    if (!url) return;
    const opened = await openDatabase(url);
    try {
      assert.equal(opened.provider, "postgresql");
      const models = await roundTripEveryModel(opened.db);
      assert.deepEqual([...models].sort(), datamodel.models.map((m) => m.name).sort(), "round trip must cover every model");
    } finally {
      await opened.close();
    }
    // How DateTime is stored: TIMESTAMP(3) without time zone, holding the UTC wall-clock time.
    const reopened = await openDatabase(url, { migrate: false });
    const client = await connect(url);
    try {
      await reopened.db.workspace.create({
        data: { id: "w2", name: "n", slug: "s", createdAt: new Date("2026-01-02T03:04:05.678Z") },
      });
      const { rows } = await client.query(`SELECT "createdAt"::text AS created FROM "Workspace" WHERE id = 'w2'`);
      assert.deepEqual(rows, [{ created: "2026-01-02 03:04:05.678" }]);
      assert.equal(
        (await reopened.db.workspace.findUniqueOrThrow({ where: { id: "w2" } })).createdAt.toISOString(),
        "2026-01-02T03:04:05.678Z",
      );
    } finally {
      await reopened.close();
      await client.end();
    }
  });

  test("openDatabase honours ?schema= (Prisma's URL convention)", async (t) => {
    const url = await requireServer(t);
    if (!url) return;
    const opened = await openDatabase(`${url}?schema=ferry`);
    try {
      await opened.db.setting.create({ data: { key: "k", value: "v" } });
      assert.equal((await opened.db.setting.findUniqueOrThrow({ where: { key: "k" } })).value, "v");
    } finally {
      await opened.close();
    }
    const client = await connect(url);
    try {
      const { rows } = await client.query(
        "SELECT table_schema, count(*)::int AS n FROM information_schema.tables WHERE table_schema IN ('public', 'ferry') GROUP BY 1",
      );
      assert.deepEqual(rows, [{ table_schema: "ferry", n: datamodel.models.length + 1 }]);
    } finally {
      await client.end();
    }
  });
});
