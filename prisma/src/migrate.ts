// Applies the hand-written SQL migrations under prisma/migrations/<provider>/ at start-up.
//
// `prisma migrate deploy` needs the native schema engine, which cannot be downloaded on an
// air-gapped machine, so this module does its job with the plain drivers (better-sqlite3, pg).
// It records every migration in a `_prisma_migrations` table created with Prisma's own DDL and
// filled the way Prisma fills it (sha256 checksum of migration.sql, timestamps, one applied
// step), so `prisma migrate deploy` / `migrate status` agree with it wherever the engine exists.
//
// Guarantees:
// - each migration runs in its own transaction together with its bookkeeping row: it is
//   applied entirely or not at all;
// - re-running is a no-op;
// - two processes starting at once apply each migration once: PostgreSQL takes Prisma Migrate's
//   own advisory lock (so it also excludes a concurrent `prisma migrate deploy`), SQLite checks
//   and applies inside a `BEGIN IMMEDIATE` transaction (the file's write lock);
// - it refuses to start when an applied migration's file changed (checksum), when the database
//   holds a failed or unknown migration, or when migration_lock.toml names another provider.

import { createHash, randomUUID } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type BetterSqlite3 from "better-sqlite3";
import type { Client, Pool, PoolClient } from "pg";

export type MigrationProvider = "sqlite" | "postgresql";

/** Where to apply the migrations: a raw driver connection (not a Prisma client). */
export type MigrationTarget =
  | {
      provider: "sqlite";
      /** An open better-sqlite3 database; left open. */
      database: BetterSqlite3.Database;
      /** Defaults to prisma/migrations/sqlite. */
      migrationsDir?: string;
    }
  | {
      provider: "postgresql";
      /** A connected pg Client, or a Pool (one connection is borrowed and released); left open. */
      client: Client | Pool;
      /** Defaults to prisma/migrations/postgresql. */
      migrationsDir?: string;
      /** How long to wait for another process that is migrating the same database. Default 60 s. */
      lockTimeoutMs?: number;
    };

export interface MigrationResult {
  /** Names of the migrations applied by this call, in order; empty when the database was up to date. */
  applied: string[];
}

/** A migration directory on disk. */
export interface MigrationFile {
  name: string;
  sql: string;
  /** sha256 (hex) of migration.sql, as Prisma computes it. */
  checksum: string;
}

/** Thrown when the database and the migration files disagree; the process must not start. */
export class MigrationError extends Error {
  override name = "MigrationError";
}

/** Prisma Migrate's advisory lock key (schema-engine `postgres.rs`), so we also exclude `prisma migrate deploy`. */
export const PRISMA_MIGRATE_ADVISORY_LOCK = 72707369;

/** The `_prisma_migrations` DDL of Prisma's schema engine, per provider. */
export const MIGRATIONS_TABLE_DDL: Record<MigrationProvider, string> = {
  sqlite: `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    TEXT PRIMARY KEY NOT NULL,
    "checksum"              TEXT NOT NULL,
    "finished_at"           DATETIME,
    "migration_name"        TEXT NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        DATETIME,
    "started_at"            DATETIME NOT NULL DEFAULT current_timestamp,
    "applied_steps_count"   INTEGER UNSIGNED NOT NULL DEFAULT 0
)`,
  postgresql: `CREATE TABLE IF NOT EXISTS _prisma_migrations (
    id                      VARCHAR(36) PRIMARY KEY NOT NULL,
    checksum                VARCHAR(64) NOT NULL,
    finished_at             TIMESTAMPTZ,
    migration_name          VARCHAR(255) NOT NULL,
    logs                    TEXT,
    rolled_back_at          TIMESTAMPTZ,
    started_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    applied_steps_count     INTEGER NOT NULL DEFAULT 0
)`,
};

/** prisma/migrations/<provider>, found relative to this file. */
export function migrationsDirectory(provider: MigrationProvider): string {
  return fileURLToPath(new URL(`../migrations/${provider}/`, import.meta.url));
}

/** sha256 hex of a migration script: the value Prisma stores in `_prisma_migrations.checksum`. */
export function checksumOf(sql: string): string {
  return createHash("sha256").update(sql, "utf8").digest("hex");
}

/**
 * Whether a script matches a recorded checksum. Like Prisma, a script whose line endings were
 * converted (git autocrlf) still matches.
 */
export function checksumMatches(sql: string, checksum: string): boolean {
  const variants = [sql, sql.replace(/\r\n/g, "\n"), sql.replace(/\r?\n/g, "\r\n")];
  return variants.some((variant) => checksumOf(variant) === checksum);
}

/** The migrations of a directory, sorted by name (the timestamp prefix). */
export function readMigrations(dir: string, provider?: MigrationProvider): MigrationFile[] {
  if (!existsSync(dir)) throw new MigrationError(`Migrations directory not found: ${dir}`);
  const lockFile = join(dir, "migration_lock.toml");
  if (provider && existsSync(lockFile)) {
    const locked = /^\s*provider\s*=\s*"([^"]+)"/m.exec(readFileSync(lockFile, "utf8"))?.[1];
    if (locked && locked !== provider) {
      throw new MigrationError(`${lockFile} is for provider "${locked}", but the database is ${provider}.`);
    }
  }
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(join(dir, entry.name, "migration.sql")))
    .map((entry) => entry.name)
    .sort()
    .map((name) => {
      const sql = readFileSync(join(dir, name, "migration.sql"), "utf8");
      return { name, sql, checksum: checksumOf(sql) };
    });
}

/** A row of `_prisma_migrations`, reduced to what the checks need. */
interface AppliedRow {
  migration_name: string;
  checksum: string;
  finished_at: unknown;
  rolled_back_at: unknown;
}

/**
 * Checks the recorded migrations against the files and returns the pending ones, in order.
 * Throws a MigrationError when the process must not start.
 */
export function pendingMigrations(files: MigrationFile[], rows: AppliedRow[], where: string, dir: string): MigrationFile[] {
  const live = rows.filter((row) => row.rolled_back_at === null);
  const failed = live.filter((row) => row.finished_at === null).map((row) => row.migration_name);
  if (failed.length > 0) {
    throw new MigrationError(
      `${where}: migration(s) ${failed.join(", ")} started but did not finish (a failed \`prisma migrate deploy\`?). ` +
        "Repair the database, then mark them with `prisma migrate resolve --applied|--rolled-back <name>` " +
        "or delete their rows from _prisma_migrations.",
    );
  }
  const byName = new Map(files.map((file) => [file.name, file]));
  const unknown = live.filter((row) => !byName.has(row.migration_name)).map((row) => row.migration_name);
  if (unknown.length > 0) {
    throw new MigrationError(
      `${where}: the database has migration(s) ${unknown.join(", ")} that are not in ${dir}: ` +
        "it was migrated by a newer version of Ferry. Upgrade this installation.",
    );
  }
  const changed = live
    .filter((row) => {
      const file = byName.get(row.migration_name);
      return file !== undefined && !checksumMatches(file.sql, row.checksum);
    })
    .map((row) => row.migration_name);
  if (changed.length > 0) {
    throw new MigrationError(
      `${where}: migration(s) ${changed.join(", ")} were modified after they were applied ` +
        "(checksum of migration.sql differs from _prisma_migrations). Applied migrations must never change: " +
        "restore the original file and put the change in a new migration.",
    );
  }
  const applied = new Set(live.map((row) => row.migration_name));
  return files.filter((file) => !applied.has(file.name));
}

/** Applies the pending migrations; see the file comment for the guarantees. */
export async function migrate(target: MigrationTarget): Promise<MigrationResult> {
  const dir = target.migrationsDir ?? migrationsDirectory(target.provider);
  const files = readMigrations(dir, target.provider);
  if (target.provider === "sqlite") return migrateSqlite(target.database, files, dir);
  return migratePostgres(target.client, files, dir, target.lockTimeoutMs ?? 60_000);
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function migrateSqlite(db: BetterSqlite3.Database, files: MigrationFile[], dir: string): MigrationResult {
  const where = `SQLite database ${db.name}`;
  db.exec(MIGRATIONS_TABLE_DDL.sqlite);
  const readRows = db.prepare<[], AppliedRow>(
    `SELECT "migration_name", "checksum", "finished_at", "rolled_back_at" FROM "_prisma_migrations" ORDER BY "started_at"`,
  );
  const record = db.prepare(
    `INSERT INTO "_prisma_migrations" ("id", "checksum", "finished_at", "migration_name", "logs", "rolled_back_at", "started_at", "applied_steps_count")
     VALUES (?, ?, ?, ?, NULL, NULL, ?, 1)`,
  );
  const applied: string[] = [];
  // Foreign keys must be off while a migration rebuilds a table (Prisma's "RedefineTables"
  // drops and recreates it; with enforcement on, the DROP would cascade to child rows). The
  // pragma is a no-op inside a transaction, so it is set around it; the result is checked
  // with foreign_key_check before committing.
  const foreignKeys = db.pragma("foreign_keys", { simple: true }) === 1;
  db.pragma("foreign_keys = OFF");
  try {
    for (;;) {
      // BEGIN IMMEDIATE takes the write lock before reading: a second process waits (busy
      // timeout), then sees the rows written by the first and skips what it applied.
      db.exec("BEGIN IMMEDIATE");
      let next: MigrationFile | undefined;
      try {
        next = pendingMigrations(files, readRows.all(), where, dir)[0];
        if (next) {
          const startedAt = Date.now();
          try {
            db.exec(next.sql);
          } catch (error) {
            throw new MigrationError(`${where}: migration ${next.name} failed: ${errorMessage(error)} (${dir})`);
          }
          const violations = db.pragma("foreign_key_check") as unknown[];
          if (violations.length > 0) {
            throw new MigrationError(
              `${where}: migration ${next.name} leaves ${violations.length} foreign key violation(s): ${JSON.stringify(violations.slice(0, 5))}`,
            );
          }
          // Prisma's engine stores these DATETIME columns as Unix milliseconds on SQLite.
          record.run(randomUUID(), next.checksum, Date.now(), next.name, startedAt);
        }
        db.exec("COMMIT");
      } catch (error) {
        if (db.inTransaction) db.exec("ROLLBACK");
        throw error;
      }
      if (!next) break;
      applied.push(next.name);
    }
  } finally {
    db.pragma(`foreign_keys = ${foreignKeys ? "ON" : "OFF"}`);
  }
  return { applied };
}

function isPool(client: Client | Pool): client is Pool {
  return "totalCount" in client && "idleCount" in client;
}

async function migratePostgres(
  clientOrPool: Client | Pool,
  files: MigrationFile[],
  dir: string,
  lockTimeoutMs: number,
): Promise<MigrationResult> {
  // The advisory lock is per session: every statement must go through one connection.
  const pooled: PoolClient | undefined = isPool(clientOrPool) ? await clientOrPool.connect() : undefined;
  const client: Client | PoolClient = pooled ?? (clientOrPool as Client);
  let broken = false;
  try {
    const where = `PostgreSQL database ${client.database ?? "?"}`;
    // pg_advisory_lock waits for a process that is migrating right now. The session lock
    // outlives this transaction; SET LOCAL bounds the wait so a leaked lock cannot hang us.
    try {
      await client.query("BEGIN");
      await client.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.floor(lockTimeoutMs))}`);
      await client.query(`SELECT pg_advisory_lock(${PRISMA_MIGRATE_ADVISORY_LOCK})`);
      await client.query("COMMIT");
    } catch (error) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw new MigrationError(
        `${where}: could not take the migration lock (pg_advisory_lock(${PRISMA_MIGRATE_ADVISORY_LOCK})) within ${lockTimeoutMs} ms: ${errorMessage(error)}`,
      );
    }
    try {
      await client.query(MIGRATIONS_TABLE_DDL.postgresql);
      const { rows } = await client.query<AppliedRow>(
        "SELECT migration_name, checksum, finished_at, rolled_back_at FROM _prisma_migrations ORDER BY started_at",
      );
      const pending = pendingMigrations(files, rows, where, dir);
      const applied: string[] = [];
      for (const migration of pending) {
        await client.query("BEGIN");
        try {
          try {
            await client.query(migration.sql);
          } catch (error) {
            throw new MigrationError(`${where}: migration ${migration.name} failed: ${errorMessage(error)} (${dir})`);
          }
          // now() is the transaction's start, clock_timestamp() the present: started/finished.
          await client.query(
            `INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at, applied_steps_count)
             VALUES ($1, $2, clock_timestamp(), $3, NULL, NULL, now(), 1)`,
            [randomUUID(), migration.checksum, migration.name],
          );
          await client.query("COMMIT");
        } catch (error) {
          await client.query("ROLLBACK").catch(() => undefined);
          throw error;
        }
        applied.push(migration.name);
      }
      return { applied };
    } finally {
      await client.query(`SELECT pg_advisory_unlock(${PRISMA_MIGRATE_ADVISORY_LOCK})`).catch(() => {
        broken = true;
      });
    }
  } finally {
    // A connection whose unlock failed may still hold the lock: destroy it rather than reuse it.
    pooled?.release(broken);
  }
}
