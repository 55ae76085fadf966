// Direct SQL on the connection Prisma uses, for the control plane's hot paths (task-run and log
// ingestion, claims, state changes). Prisma's client costs 0.2–0.7 ms of CPU per query on this
// machine; a prepared better-sqlite3 statement costs a few microseconds and a prepared
// PostgreSQL statement one round trip. Prisma stays for everything else.
//
// SQLite: one connection is shared with Prisma (better-sqlite3 is synchronous, and a second
// connection would wait on Prisma's write lock with the event loop blocked). A single mutex
// orders Prisma's transactions and ours, and Prisma's plain queries wait while one of ours is
// open, so nothing of Prisma's can land inside our transaction or ours inside Prisma's.
//
// PostgreSQL: one pg.Pool is shared with Prisma's adapter; a transaction holds one pooled client.

import type BetterSqlite3 from "better-sqlite3";
import type pg from "pg";

export type SqlScalar = string | number | boolean | null | Date;
/** Arrays are for PostgreSQL (`?::text[]`, e.g. with `unnest`); SQLite has none. */
export type SqlValue = SqlScalar | readonly SqlScalar[];
export type SqlRow = Record<string, unknown>;

/** Statements inside one transaction, or outside any (each statement on its own). */
export interface SqlQueries {
  /** Which database: the few statements whose best shape differs (bulk writes) pick theirs by it. */
  readonly provider: "sqlite" | "postgresql";
  /**
   * Rows of a query; `?` placeholders. Columns read straight from a table come back as Prisma
   * returns them on both databases (DateTime as Date, Boolean as boolean); computed ones as the
   * driver gives them.
   */
  all<T extends SqlRow>(text: string, params?: readonly SqlValue[]): Promise<T[]>;
  /** The first row of a query, if any. */
  get<T extends SqlRow>(text: string, params?: readonly SqlValue[]): Promise<T | undefined>;
  /** Runs a statement; the number of rows it changed. */
  run(text: string, params?: readonly SqlValue[]): Promise<number>;
}

export interface Sql extends SqlQueries {
  /** Runs `fn` in one transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(fn: (tx: SqlQueries) => Promise<T>): Promise<T>;
  /**
   * Told how long each statement outside a transaction and each whole transaction took
   * (seconds), for metrics. Statements inside a transaction are not timed one by one: a bulk
   * write runs thousands of them, and timing each would cost more than some of them do.
   */
  onQuery: ((seconds: number, kind: "statement" | "transaction") => void) | undefined;
}

/** A tiny FIFO mutex: Prisma's transactions and ours take turns on SQLite's one connection. */
export class Mutex {
  private tail: Promise<void> = Promise.resolve();
  private holders = 0;

  get locked(): boolean {
    return this.holders > 0;
  }

  async acquire(): Promise<() => void> {
    this.holders++;
    let release!: () => void;
    const next = new Promise<void>((resolve) => {
      release = resolve;
    });
    const previous = this.tail;
    this.tail = previous.then(() => next);
    await previous;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.holders--;
      release();
    };
  }
}

// ---- SQLite -------------------------------------------------------------------------------

/** Prisma's SQLite adapter writes DateTime values as ISO-8601 text with a `+00:00` offset; ours match. */
function sqliteValue(v: SqlValue): string | number | null {
  if (v instanceof Date) return `${v.toISOString().slice(0, -1)}+00:00`;
  if (typeof v === "boolean") return v ? 1 : 0;
  if (typeof v === "object" && v !== null) throw new TypeError("SQLite has no array parameters");
  return v;
}

/** A prepared statement and the result columns to convert (by their declared type in the schema). */
interface Prepared {
  stmt: BetterSqlite3.Statement;
  /** DATETIME columns: ISO-8601 text → Date, as Prisma reads them. */
  dates: string[];
  /** BOOLEAN columns: 0/1 → false/true. */
  booleans: string[];
}

function convertRow<T>(prepared: Prepared, row: Record<string, unknown>): T {
  for (const c of prepared.dates) {
    const v = row[c];
    if (typeof v === "string") row[c] = new Date(v);
  }
  for (const c of prepared.booleans) {
    const v = row[c];
    if (typeof v === "number") row[c] = v !== 0;
  }
  return row as T;
}

const MAX_CACHED_STATEMENTS = 500;

/** The minimal surface of Prisma's better-sqlite3 adapter that the lock hooks into. */
interface SqliteAdapter {
  client: BetterSqlite3.Database;
  startTransaction(isolationLevel?: string): Promise<{ commit(): Promise<void>; rollback(): Promise<void> }>;
  queryRaw(query: unknown): Promise<unknown>;
  executeRaw(query: unknown): Promise<unknown>;
}

export class SqliteSql implements Sql {
  readonly provider = "sqlite" as const;
  onQuery: Sql["onQuery"];
  private readonly statements = new Map<string, Prepared>();
  private readonly mutex = new Mutex();
  /** One of our transactions is open: Prisma's plain queries wait for it. */
  private ours = false;
  private db: BetterSqlite3.Database | undefined;

  /**
   * Takes over the adapter Prisma just connected (see openDatabase): its connection becomes ours
   * too, and its transactions and queries are ordered with ours.
   */
  attach(adapter: SqliteAdapter): void {
    this.db = adapter.client;
    const startTransaction = adapter.startTransaction.bind(adapter);
    adapter.startTransaction = async (isolationLevel) => {
      const release = await this.mutex.acquire();
      try {
        const tx = await startTransaction(isolationLevel);
        const { commit, rollback } = tx;
        tx.commit = () => commit.call(tx).finally(release);
        tx.rollback = () => rollback.call(tx).finally(release);
        return tx;
      } catch (err) {
        release();
        throw err;
      }
    };
    for (const method of ["queryRaw", "executeRaw"] as const) {
      const original = adapter[method].bind(adapter);
      adapter[method] = async (query) => {
        // While one of our transactions is open, a plain Prisma query queues for its turn (FIFO,
        // so a stream of our transactions cannot starve it). While one of Prisma's own is open it
        // runs as before: Prisma code inside a Prisma transaction must not wait on that transaction.
        if (!this.ours) return original(query);
        const release = await this.mutex.acquire();
        try {
          return await original(query);
        } finally {
          release();
        }
      };
    }
  }

  private statement(text: string): Prepared {
    let prepared = this.statements.get(text);
    if (!prepared) {
      if (!this.db) throw new Error("the SQL executor has no connection yet");
      if (this.statements.size >= MAX_CACHED_STATEMENTS) this.statements.clear();
      const stmt = this.db.prepare(text);
      stmt.safeIntegers(false);
      // Result columns read straight from a table carry its declared type; computed ones do not.
      const columns = stmt.reader ? stmt.columns() : [];
      prepared = {
        stmt,
        dates: columns.filter((c) => c.type?.toUpperCase() === "DATETIME").map((c) => c.name),
        booleans: columns.filter((c) => c.type?.toUpperCase() === "BOOLEAN").map((c) => c.name),
      };
      this.statements.set(text, prepared);
    }
    return prepared;
  }

  private readonly direct: SqlQueries = {
    provider: "sqlite",
    all: async <T extends SqlRow>(text: string, params: readonly SqlValue[] = []) => {
      const prepared = this.statement(text);
      return (prepared.stmt.all(...params.map(sqliteValue)) as Record<string, unknown>[]).map((r) => convertRow<T>(prepared, r));
    },
    get: async <T extends SqlRow>(text: string, params: readonly SqlValue[] = []) => {
      const prepared = this.statement(text);
      const row = prepared.stmt.get(...params.map(sqliteValue)) as Record<string, unknown> | undefined;
      return row ? convertRow<T>(prepared, row) : undefined;
    },
    run: async (text: string, params: readonly SqlValue[] = []) =>
      this.statement(text).stmt.run(...params.map(sqliteValue)).changes,
  };

  /** Outside a transaction a statement waits for any open one, so it never becomes part of it. */
  private async outside<T>(fn: () => Promise<T>): Promise<T> {
    const release = this.mutex.locked ? await this.mutex.acquire() : undefined;
    const started = this.onQuery ? performance.now() : 0;
    try {
      return await fn();
    } finally {
      this.onQuery?.((performance.now() - started) / 1000, "statement");
      release?.();
    }
  }

  all<T extends SqlRow>(text: string, params?: readonly SqlValue[]): Promise<T[]> {
    return this.outside(() => this.direct.all<T>(text, params));
  }

  get<T extends SqlRow>(text: string, params?: readonly SqlValue[]): Promise<T | undefined> {
    return this.outside(() => this.direct.get<T>(text, params));
  }

  run(text: string, params?: readonly SqlValue[]): Promise<number> {
    return this.outside(() => this.direct.run(text, params));
  }

  async transaction<T>(fn: (tx: SqlQueries) => Promise<T>): Promise<T> {
    const release = await this.mutex.acquire();
    this.ours = true;
    const started = this.onQuery ? performance.now() : 0;
    try {
      this.statement("BEGIN IMMEDIATE").stmt.run();
      try {
        const out = await fn(this.direct);
        this.statement("COMMIT").stmt.run();
        return out;
      } catch (err) {
        if (this.db?.inTransaction) this.statement("ROLLBACK").stmt.run();
        throw err;
      }
    } finally {
      this.onQuery?.((performance.now() - started) / 1000, "transaction");
      this.ours = false;
      release();
    }
  }
}

// ---- PostgreSQL ---------------------------------------------------------------------------

const TIMESTAMP_OID = 1114;
const TIMESTAMPTZ_OID = 1184;
const INT8_OID = 20;

/**
 * Column parsers: `timestamp(3)` columns hold UTC wall time (what Prisma writes), so they are read
 * as UTC whatever the process's time zone; counts (bigint) become numbers.
 */
function pgTypes(base: typeof pg.types): pg.CustomTypesConfig {
  return {
    getTypeParser: ((oid: number, format?: "text" | "binary") => {
      if (oid === TIMESTAMP_OID) return (v: string) => new Date(`${v.replace(" ", "T")}Z`);
      if (oid === TIMESTAMPTZ_OID) return (v: string) => new Date(v);
      if (oid === INT8_OID) return (v: string) => Number(v);
      return base.getTypeParser(oid, format ?? "text");
    }) as pg.CustomTypesConfig["getTypeParser"],
  };
}

/** `?` placeholders become `$1…$n` (our SQL never holds a `?` inside a literal). */
function numbered(text: string): string {
  let n = 0;
  return text.replace(/\?/g, () => `$${++n}`);
}

/** A Date goes as UTC text: a `timestamp` column ignores the offset and keeps UTC wall time. */
function pgValue(v: SqlValue): unknown {
  if (Array.isArray(v)) return v.map((x: SqlScalar) => (x instanceof Date ? x.toISOString() : x));
  return v instanceof Date ? v.toISOString() : v;
}

const MAX_NAMED_STATEMENT_CHARS = 4000;
const MAX_NAMED_STATEMENTS = 1000;

export class PostgresSql implements Sql {
  readonly provider = "postgresql" as const;
  onQuery: Sql["onQuery"];
  private readonly names = new Map<string, { name: string | undefined; text: string }>();
  private readonly types: pg.CustomTypesConfig;
  private readonly direct: SqlQueries;

  constructor(
    private readonly pool: pg.Pool,
    pgTypesBase: typeof pg.types,
  ) {
    this.types = pgTypes(pgTypesBase);
    this.direct = this.queries(pool);
  }

  /** Short statements are prepared once per connection (named); long ones are parsed each time. */
  private config(text: string, params: readonly SqlValue[]): pg.QueryConfig {
    let entry = this.names.get(text);
    if (!entry) {
      // Past MAX_NAMED_STATEMENTS texts (a caller building statements it should not), new ones
      // are sent unnamed: each connection's prepared statements stay bounded.
      const named = text.length <= MAX_NAMED_STATEMENT_CHARS && this.names.size < MAX_NAMED_STATEMENTS;
      entry = { name: named ? `ferry_${this.names.size + 1}` : undefined, text: numbered(text) };
      if (this.names.size < MAX_NAMED_STATEMENTS * 2) this.names.set(text, entry);
    }
    return {
      text: entry.text,
      values: params.map(pgValue),
      types: this.types,
      ...(entry.name ? { name: entry.name } : {}),
    };
  }

  private queries(client: pg.Pool | pg.PoolClient): SqlQueries {
    const timed = client === this.pool;
    const query = async (text: string, params: readonly SqlValue[] = []) => {
      const started = timed && this.onQuery ? performance.now() : 0;
      try {
        return await client.query(this.config(text, params));
      } finally {
        if (timed) this.onQuery?.((performance.now() - started) / 1000, "statement");
      }
    };
    return {
      provider: "postgresql",
      all: async <T extends SqlRow>(text: string, params?: readonly SqlValue[]) => (await query(text, params)).rows as T[],
      get: async <T extends SqlRow>(text: string, params?: readonly SqlValue[]) =>
        (await query(text, params)).rows[0] as T | undefined,
      run: async (text: string, params?: readonly SqlValue[]) => (await query(text, params)).rowCount ?? 0,
    };
  }

  all<T extends SqlRow>(text: string, params?: readonly SqlValue[]): Promise<T[]> {
    return this.direct.all<T>(text, params);
  }

  get<T extends SqlRow>(text: string, params?: readonly SqlValue[]): Promise<T | undefined> {
    return this.direct.get<T>(text, params);
  }

  run(text: string, params?: readonly SqlValue[]): Promise<number> {
    return this.direct.run(text, params);
  }

  async transaction<T>(fn: (tx: SqlQueries) => Promise<T>): Promise<T> {
    const started = this.onQuery ? performance.now() : 0;
    const client = await this.pool.connect();
    let broken: Error | undefined;
    try {
      await client.query("BEGIN").catch((err: Error) => {
        broken = err; // a connection that cannot begin goes, rather than back to the pool
        throw err;
      });
      try {
        const out = await fn(this.queries(client));
        await client.query("COMMIT");
        return out;
      } catch (err) {
        await client.query("ROLLBACK").catch((e: Error) => {
          broken = e;
        });
        throw err;
      }
    } finally {
      client.release(broken);
      this.onQuery?.((performance.now() - started) / 1000, "transaction");
    }
  }
}

// ---- IN lists -----------------------------------------------------------------------------

/** The sizes an IN list is padded to (then multiples of the last): each statement text is one of a few. */
const IN_LIST_SIZES = [1, 4, 16, 64, 256, 500];

/**
 * Placeholders and values for `"col" IN (…)`. The list is padded to the next of a few sizes by
 * repeating its last value (which changes no result), so lists of 1 to 500 values make six
 * statement texts, not five hundred: the statement caches (better-sqlite3's prepared statements,
 * PostgreSQL's named statements per connection) stay small.
 */
export function inList(values: readonly SqlScalar[]): { placeholders: string; params: SqlScalar[] } {
  if (!values.length) throw new Error("an IN list needs at least one value");
  const last = IN_LIST_SIZES[IN_LIST_SIZES.length - 1] ?? 1;
  const size = IN_LIST_SIZES.find((n) => n >= values.length) ?? Math.ceil(values.length / last) * last;
  const params = [...values];
  while (params.length < size) params.push(values[values.length - 1] ?? null);
  return { placeholders: params.map(() => "?").join(", "), params };
}

/** Most values one IN list holds: `allIn` splits longer lists into several statements. */
const IN_CHUNK = IN_LIST_SIZES[IN_LIST_SIZES.length - 1] ?? 500;

/**
 * Rows of `query(placeholders)` for the values, IN_CHUNK values per statement (each padded with
 * inList): one way to look many rows up by key without long or ever-new statement texts.
 *
 * @example allIn(q, (ids) => `SELECT "id" FROM "TaskRun" WHERE "id" IN (${ids})`, taskRunIds)
 */
export async function allIn<T extends SqlRow>(
  q: SqlQueries,
  query: (placeholders: string) => string,
  values: readonly SqlScalar[],
): Promise<T[]> {
  const rows: T[] = [];
  for (let i = 0; i < values.length; i += IN_CHUNK) {
    const list = inList(values.slice(i, i + IN_CHUNK));
    rows.push(...(await q.all<T>(query(list.placeholders), list.params)));
  }
  return rows;
}

// ---- registry -----------------------------------------------------------------------------

const executors = new WeakMap<object, Sql>();

/** Makes `sql` the executor of a database client (and of clients derived from it, e.g. instrumented). */
export function attachSql(db: object, sql: Sql): void {
  executors.set(db, sql);
}

/** The direct-SQL executor of a database client opened by openDatabase. */
export function sqlOf(db: object): Sql {
  const sql = executors.get(db);
  if (!sql) throw new Error("this database client was not opened by openDatabase: it has no SQL executor");
  return sql;
}
