import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type OpenDatabase, openDatabase, type Provider } from "@ferry/prisma";

/** What `fixtureDatabase` creates: workspace `ws-1`, its flow `flow-1` and that flow's deployment `dep-1`. */
export const FIXTURE = { workspaceId: "ws-1", flowId: "flow-1", deploymentId: "dep-1" } as const;

/**
 * For unit tests: a SQLite database in a temporary directory holding one workspace, one flow and
 * one deployment of it (named after the flow, entrypoint `flows/<flow>.ts`, pool `default`).
 * `close()` closes the database and deletes the directory.
 */
export async function fixtureDatabase(
  prefix: string,
  flow: { name: string; paramsSchemaJson?: string },
): Promise<{ database: OpenDatabase; close(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const database = await openDatabase(`file:${join(dir, "t.db")}`);
  const { db } = database;
  const { workspaceId, flowId, deploymentId } = FIXTURE;
  await db.workspace.create({ data: { id: workspaceId, name: "w", slug: "w" } });
  await db.flow.create({ data: { id: flowId, workspaceId, name: flow.name } });
  await db.deployment.create({
    data: {
      id: deploymentId,
      workspaceId,
      flowId,
      name: flow.name,
      entrypoint: `flows/${flow.name}.ts`,
      flowName: flow.name,
      paramsSchemaJson: flow.paramsSchemaJson ?? "{}",
      defaultParamsJson: "{}",
      workPool: "default",
      tagsJson: "[]",
    },
  });
  return {
    database,
    async close() {
      await database.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const PG_ADMIN_URL = process.env.FERRY_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

/** An empty, migrated database for a unit test; `close()` removes it. */
export interface TestDatabase {
  database: OpenDatabase;
  close(): Promise<void>;
}

/**
 * For unit tests on either database: SQLite on a temporary file, or a fresh PostgreSQL database
 * on FERRY_TEST_POSTGRES_URL's server (default postgres://postgres@127.0.0.1:5432/postgres).
 * When no PostgreSQL server answers, the reason (a string) to skip with, unless
 * FERRY_REQUIRE_POSTGRES=1, which makes that an error.
 */
export async function emptyDatabase(provider: Provider): Promise<TestDatabase | string> {
  if (provider === "sqlite") {
    const dir = mkdtempSync(join(tmpdir(), "ferry-unit-"));
    const database = await openDatabase(`file:${join(dir, "t.db")}`);
    return {
      database,
      async close() {
        await database.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  const admin = await openDatabase(PG_ADMIN_URL, { migrate: false });
  try {
    await Promise.race([
      admin.db.$queryRawUnsafe("SELECT 1"),
      new Promise((_, reject) => setTimeout(() => reject(new Error("connect timed out")), 5_000).unref()),
    ]);
  } catch (err) {
    await admin.close().catch(() => undefined);
    // Prisma's message ends with the driver's reason ("Can't reach database server at ...").
    const cause = (err instanceof Error ? err.message : String(err)).trim().split("\n").at(-1);
    const reason = `PostgreSQL not reachable at ${PG_ADMIN_URL}: ${cause}`;
    if (process.env.FERRY_REQUIRE_POSTGRES === "1") throw new Error(`${reason} (FERRY_REQUIRE_POSTGRES=1)`);
    return reason;
  }
  const name = `ferry_unit_${randomBytes(6).toString("hex")}`;
  await admin.db.$executeRawUnsafe(`CREATE DATABASE "${name}"`);
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  const drop = async () => {
    await admin.db.$executeRawUnsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await admin.close();
  };
  try {
    const database = await openDatabase(url.toString());
    return {
      database,
      async close() {
        await database.close();
        await drop();
      },
    };
  } catch (err) {
    await drop();
    throw err;
  }
}

/**
 * For unit tests on either database: runs `body` on an empty, migrated database holding workspace
 * `ws-1` and its flow `flow-1` (FIXTURE's ids), then removes the database. Without a PostgreSQL
 * server the test is skipped with the reason (see emptyDatabase).
 */
export async function withWorkspaceDatabase(
  provider: Provider,
  skip: (reason: string) => void,
  body: (database: OpenDatabase) => Promise<void>,
): Promise<void> {
  const opened = await emptyDatabase(provider);
  if (typeof opened === "string") return skip(opened);
  try {
    const { db } = opened.database;
    await db.workspace.create({ data: { id: FIXTURE.workspaceId, name: "w", slug: "w" } });
    await db.flow.create({ data: { id: FIXTURE.flowId, workspaceId: FIXTURE.workspaceId, name: "f" } });
    await body(opened.database);
  } finally {
    await opened.close();
  }
}
