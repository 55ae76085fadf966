// Opens the control plane's database from a URL: SQLite (`file:`) or PostgreSQL
// (`postgres://`, `postgresql://`). Applies pending migrations first (see migrate.ts), then
// returns a Prisma client that talks to the database through the matching driver adapter.

import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { PrismaClient as SqlitePrismaClient } from "../generated/sqlite/client.ts";
import { migrate } from "./migrate.ts";
import { attachSql, PostgresSql, SqliteSql } from "./sql.ts";

export type Provider = "sqlite" | "postgresql";

/**
 * The Prisma client type the application codes against: the SQLite client's type. Both
 * providers are generated from the one schema.prisma, so their model APIs are identical; see
 * openDatabase for why the PostgreSQL client may be used through this type.
 */
export type Db = SqlitePrismaClient;

export interface OpenDatabase {
  db: Db;
  provider: Provider;
  url: string;
  /** Disconnects the Prisma client (and its connection pool). */
  close(): Promise<void>;
}

export interface OpenDatabaseOptions {
  /** Apply pending migrations before returning (default true). */
  migrate?: boolean;
}

/** How long a SQLite connection waits for another process's write lock before failing (SQLITE_BUSY). */
export const SQLITE_BUSY_TIMEOUT_MS = 5000;

/** Hides the password of a URL for error messages. */
function redact(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@]*):[^@/]*@/i, "$1:***@");
}

/**
 * The provider a database URL is for: `file:./x.db`, `file:/abs/x.db` (and `file:///abs/x.db`)
 * are SQLite; `postgres://` and `postgresql://` are PostgreSQL. Anything else throws.
 */
export function providerOf(url: string): Provider {
  if (/^file:./.test(url)) return "sqlite";
  if (/^postgres(ql)?:\/\/./.test(url)) return "postgresql";
  throw new Error(
    `Unsupported database URL "${redact(url)}": expected file:./path/to/ferry.db or file:/absolute/path.db (SQLite), ` +
      "or postgres://user:password@host:5432/database (PostgreSQL; postgresql:// also accepted).",
  );
}

/**
 * The file of a SQLite URL, as an absolute path. A relative path (`file:./x.db`) is resolved
 * against the current working directory; a query string (`?connection_limit=1`) is ignored.
 */
export function sqliteFilePath(url: string): string {
  if (providerOf(url) !== "sqlite") throw new Error(`Not a SQLite URL: "${redact(url)}"`);
  const withoutQuery = url.replace(/\?.*$/, "");
  if (withoutQuery.startsWith("file://")) return fileURLToPath(withoutQuery);
  const path = withoutQuery.slice("file:".length);
  if (path === "" || path === ":memory:") {
    throw new Error(`SQLite URL "${url}" has no file: the control plane needs a database file (file:./ferry.db).`);
  }
  return resolve(path);
}

/** The `schema` parameter of a PostgreSQL URL (Prisma's convention), if any. */
function postgresSchemaOf(url: string): string | undefined {
  const query = url.split("?")[1];
  const schema = query === undefined ? null : new URLSearchParams(query).get("schema");
  return schema || undefined;
}

/**
 * Opens the database at `url`: runs the pending migrations (unless `migrate: false`), then
 * builds a Prisma client with the driver adapter of the provider.
 *
 * SQLite: the parent directory of the file is created if missing, the file is switched to WAL
 * journal mode (persistent, so readers never block the writer) and connections wait up to
 * SQLITE_BUSY_TIMEOUT_MS for a lock, so the control plane and a CLI can share the file.
 */
export async function openDatabase(url: string, options: OpenDatabaseOptions = {}): Promise<OpenDatabase> {
  const provider = providerOf(url);
  const runMigrations = options.migrate ?? true;

  if (provider === "sqlite") {
    const file = sqliteFilePath(url);
    mkdirSync(dirname(file), { recursive: true });
    const { default: Database } = await import("better-sqlite3");
    const raw = new Database(file, { timeout: SQLITE_BUSY_TIMEOUT_MS });
    try {
      raw.pragma("journal_mode = WAL");
      if (runMigrations) await migrate({ provider: "sqlite", database: raw });
    } finally {
      raw.close();
    }
    const [{ PrismaBetterSqlite3 }, { PrismaClient }] = await Promise.all([
      import("@prisma/adapter-better-sqlite3"),
      import("../generated/sqlite/client.ts"),
    ]);
    // DateTime values are written as ISO-8601 text (the adapter's default "iso8601" format).
    const adapter = new PrismaBetterSqlite3({ url: file, timeout: SQLITE_BUSY_TIMEOUT_MS });
    const sql = new SqliteSql();
    // The connection Prisma opens becomes the direct-SQL executor's too (see sql.ts for why one).
    const connect = adapter.connect.bind(adapter);
    adapter.connect = async () => {
      const connected = await connect();
      sql.attach(connected as unknown as Parameters<SqliteSql["attach"]>[0]);
      return connected;
    };
    const db = new PrismaClient({ adapter });
    // Durable commits: better-sqlite3 builds with NORMAL as WAL's default, which can lose the last
    // transactions on power loss. FULL syncs the WAL at every commit (the adapter holds one
    // connection, so the setting holds for every query). Bulk event writes keep commits few.
    await db.$executeRawUnsafe("PRAGMA synchronous = FULL");
    // 64 MiB of page cache instead of 2: the indexes of a 100,000-task run stay in memory.
    await db.$executeRawUnsafe("PRAGMA cache_size = -65536");
    attachSql(db, sql);
    return { db, provider, url, close: () => db.$disconnect() };
  }

  const schema = postgresSchemaOf(url);
  if (runMigrations) {
    const { default: pg } = await import("pg");
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      if (schema) {
        const quoted = `"${schema.replace(/"/g, '""')}"`;
        await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoted}`);
        await client.query(`SET search_path TO ${quoted}`);
      }
      await migrate({ provider: "postgresql", client });
    } finally {
      await client.end();
    }
  }
  const [{ PrismaPg }, { PrismaClient }, { default: pg }] = await Promise.all([
    import("@prisma/adapter-pg"),
    import("../generated/postgresql/client.ts"),
    import("pg"),
  ]);
  // One pool for Prisma and for direct SQL; a `schema` URL parameter becomes the search path.
  const pool = new pg.Pool({
    connectionString: url,
    ...(schema ? { options: `-c search_path="${schema.replace(/"/g, '""')}"` } : {}),
  });
  const sql = new PostgresSql(pool, pg.types);
  const client = new PrismaClient({
    adapter: new PrismaPg(pool, { ...(schema ? { schema } : {}), disposeExternalPool: true }),
  });
  // The PostgreSQL client is generated from the same schema.prisma as the SQLite one (only the
  // datasource provider line differs), so it has the same models, fields and methods; its type
  // is nominally distinct only because each generated client declares its own classes. The
  // application uses nothing provider-specific (no native types, no provider-only features), so
  // one `Db` type serves both. schema-match.test.ts exercises every model through both clients.
  const db = client as unknown as Db;
  attachSql(db, sql);
  return { db, provider, url, close: () => client.$disconnect() };
}
