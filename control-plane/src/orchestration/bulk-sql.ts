import type { SqlQueries, SqlScalar, SqlValue } from "@ferry/prisma";
import { TERMINAL_STATES } from "@ferry/sdk/protocol";

/**
 * Bulk writes of task runs, their edges, their states and log lines, on the direct SQL executor
 * (prisma/src/sql.ts), inside the caller's transaction. Every insert is `ON CONFLICT DO NOTHING`,
 * so a replayed batch writes nothing twice.
 *
 * The two databases get the shape that is fastest for each:
 * - SQLite runs in-process: one prepared single-row statement executed per row (a few µs each,
 *   no statement text to build, no parameter limit), all in the one transaction;
 * - PostgreSQL is a round trip away: one statement per chunk, the rows passed as one array per
 *   column and expanded with `unnest`, so the statement text is fixed and prepared once.
 */

/** Rows per PostgreSQL statement (arrays of this length per column). */
export const ROWS_PER_STATEMENT = 2000;

/** A column of a bulk write: its name and the PostgreSQL type of its `unnest` array. */
interface Column {
  name: string;
  pg: "text" | "integer" | "timestamp(3)";
}

const col = (name: string, pg: Column["pg"] = "text"): Column => ({ name, pg });

function chunks<T>(rows: readonly T[], size = ROWS_PER_STATEMENT): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < rows.length; i += size) out.push(rows.slice(i, i + size));
  return out;
}

/** PostgreSQL arrays: one per column. */
function columnArrays(columns: readonly Column[], rows: readonly SqlScalar[][]): SqlValue[] {
  return columns.map((_, i) => rows.map((r) => r[i] ?? null));
}

function unnest(columns: readonly Column[]): string {
  return `unnest(${columns.map((c) => `?::${c.pg}[]`).join(", ")}) AS v(${columns.map((c) => `"${c.name}"`).join(", ")})`;
}

/**
 * Inserts rows, skipping those that conflict with a stored row (or an earlier row of the batch).
 * Returns how many were inserted and, when `key` names a column, that column's values of the
 * rows inserted (on SQLite known from each row's change count, on PostgreSQL from RETURNING).
 */
async function insertRows(
  tx: SqlQueries,
  table: string,
  columns: readonly Column[],
  rows: readonly SqlScalar[][],
  key?: string,
): Promise<{ count: number; keys: Set<string> }> {
  const keys = new Set<string>();
  let count = 0;
  const names = columns.map((c) => `"${c.name}"`).join(", ");
  if (tx.provider === "sqlite") {
    const keyIndex = key === undefined ? -1 : columns.findIndex((c) => c.name === key);
    const text = `INSERT INTO "${table}" (${names}) VALUES (${columns.map(() => "?").join(", ")}) ON CONFLICT DO NOTHING`;
    for (const row of rows) {
      if ((await tx.run(text, row)) !== 1) continue;
      count++;
      if (keyIndex >= 0) keys.add(String(row[keyIndex]));
    }
    return { count, keys };
  }
  const text =
    `INSERT INTO "${table}" (${names}) SELECT * FROM ${unnest(columns)} ON CONFLICT DO NOTHING` +
    (key === undefined ? "" : ` RETURNING "${key}"`);
  for (const chunk of chunks(rows)) {
    if (key === undefined) {
      count += await tx.run(text, columnArrays(columns, chunk));
      continue;
    }
    const inserted = await tx.all<Record<string, string>>(text, columnArrays(columns, chunk));
    count += inserted.length;
    for (const r of inserted) keys.add(String(r[key]));
  }
  return { count, keys };
}

export interface TaskRunRow {
  id: string;
  workspaceId: string;
  flowRunId: string;
  flowRunAttempt: number;
  taskKey: string;
  dynamicKey: number;
  name: string;
  tagsJson: string;
  stateTimestamp: Date;
  maxRetries: number;
  childFlowRunId: string | null;
}

export interface EdgeRow {
  workspaceId: string;
  flowRunId: string;
  upstreamId: string;
  downstreamId: string;
}

export interface TaskRunStateRow {
  id: string;
  workspaceId: string;
  taskRunId: string;
  type: string;
  name: string;
  message: string | null;
  timestamp: Date;
  attempt: number;
}

/** The new current state of a task run (its latest new state in a batch). */
export interface TaskRunUpdate {
  id: string;
  stateType: string;
  stateName: string;
  stateMessage: string | null;
  stateTimestamp: Date;
  attempt: number;
  resultRef: string | null;
  cacheKey: string | null;
  /** Set from the first RUNNING state; kept if the task run already has one. */
  startTime: Date | null;
  /** Set when the state is terminal. */
  endTime: Date | null;
}

export interface LogRow {
  workspaceId: string;
  flowRunId: string;
  taskRunId: string | null;
  attempt: number;
  seq: number;
  level: string;
  message: string;
  timestamp: Date;
}

const TASK_RUN_COLUMNS = [
  col("id"),
  col("workspaceId"),
  col("flowRunId"),
  col("flowRunAttempt", "integer"),
  col("taskKey"),
  col("dynamicKey", "integer"),
  col("name"),
  col("tagsJson"),
  col("stateType"),
  col("stateName"),
  col("stateTimestamp", "timestamp(3)"),
  col("maxRetries", "integer"),
  col("childFlowRunId"),
  col("createdAt", "timestamp(3)"),
  col("updatedAt", "timestamp(3)"),
];

/** Inserts task runs; returns the ids actually inserted (not already stored by id or by call). */
export async function insertTaskRuns(tx: SqlQueries, rows: readonly TaskRunRow[], now: Date): Promise<Set<string>> {
  const { keys } = await insertRows(
    tx,
    "TaskRun",
    TASK_RUN_COLUMNS,
    rows.map((r) => [
      r.id,
      r.workspaceId,
      r.flowRunId,
      r.flowRunAttempt,
      r.taskKey,
      r.dynamicKey,
      r.name,
      r.tagsJson,
      "PENDING",
      "Pending",
      r.stateTimestamp,
      r.maxRetries,
      r.childFlowRunId,
      now,
      now,
    ]),
    "id",
  );
  return keys;
}

const EDGE_COLUMNS = [col("workspaceId"), col("flowRunId"), col("upstreamId"), col("downstreamId")];

export async function insertEdges(tx: SqlQueries, rows: readonly EdgeRow[]): Promise<void> {
  await insertRows(
    tx,
    "TaskRunEdge",
    EDGE_COLUMNS,
    rows.map((r) => [r.workspaceId, r.flowRunId, r.upstreamId, r.downstreamId]),
  );
}

const STATE_COLUMNS = [
  col("id"),
  col("workspaceId"),
  col("taskRunId"),
  col("type"),
  col("name"),
  col("message"),
  col("timestamp", "timestamp(3)"),
  col("attempt", "integer"),
];

/** Inserts state history rows; returns the ids (event ids) actually inserted. */
export async function insertTaskRunStates(tx: SqlQueries, rows: readonly TaskRunStateRow[]): Promise<Set<string>> {
  const { keys } = await insertRows(
    tx,
    "TaskRunState",
    STATE_COLUMNS,
    rows.map((r) => [r.id, r.workspaceId, r.taskRunId, r.type, r.name, r.message, r.timestamp, r.attempt]),
    "id",
  );
  return keys;
}

const UPDATE_COLUMNS = [
  col("id"),
  col("stateType"),
  col("stateName"),
  col("stateMessage"),
  col("stateTimestamp", "timestamp(3)"),
  col("attempt", "integer"),
  col("resultRef"),
  col("cacheKey"),
  col("startTime", "timestamp(3)"),
  col("endTime", "timestamp(3)"),
];

/** A task run that ended stays ended (the states come from the protocol's own list). */
const NOT_ENDED = `"TaskRun"."stateType" NOT IN (${[...TERMINAL_STATES].map((t) => `'${t}'`).join(", ")})`;

/**
 * Sets the current state of many task runs. A task run that already ended stays ended; a result
 * reference, cache key or start time already stored is kept unless the update brings one.
 */
export async function updateTaskRunStates(tx: SqlQueries, rows: readonly TaskRunUpdate[], now: Date): Promise<void> {
  const values = rows.map((r): SqlScalar[] => [
    r.id,
    r.stateType,
    r.stateName,
    r.stateMessage,
    r.stateTimestamp,
    r.attempt,
    r.resultRef,
    r.cacheKey,
    r.startTime,
    r.endTime,
  ]);
  if (tx.provider === "sqlite") {
    const text = `UPDATE "TaskRun" SET "stateType" = ?, "stateName" = ?, "stateMessage" = ?, "stateTimestamp" = ?, "attempt" = ?,
        "resultRef" = COALESCE(?, "resultRef"), "cacheKey" = COALESCE(?, "cacheKey"), "startTime" = COALESCE("startTime", ?),
        "endTime" = COALESCE(?, "endTime"), "updatedAt" = ?
      WHERE "id" = ? AND ${NOT_ENDED}`;
    for (const [id, ...rest] of values) await tx.run(text, [...rest, now, id ?? null]);
    return;
  }
  const text = `UPDATE "TaskRun" SET "stateType" = v."stateType", "stateName" = v."stateName", "stateMessage" = v."stateMessage",
      "stateTimestamp" = v."stateTimestamp", "attempt" = v."attempt",
      "resultRef" = COALESCE(v."resultRef", "TaskRun"."resultRef"), "cacheKey" = COALESCE(v."cacheKey", "TaskRun"."cacheKey"),
      "startTime" = COALESCE("TaskRun"."startTime", v."startTime"), "endTime" = COALESCE(v."endTime", "TaskRun"."endTime"),
      "updatedAt" = ?::timestamp(3)
    FROM ${unnest(UPDATE_COLUMNS)}
    WHERE "TaskRun"."id" = v."id" AND ${NOT_ENDED}`;
  for (const chunk of chunks(values)) await tx.run(text, [now, ...columnArrays(UPDATE_COLUMNS, chunk)]);
}

const LOG_COLUMNS = [
  col("workspaceId"),
  col("flowRunId"),
  col("taskRunId"),
  col("attempt", "integer"),
  col("seq", "integer"),
  col("level"),
  col("message"),
  col("timestamp", "timestamp(3)"),
];

/** Inserts log lines; a line whose (run, attempt, seq) is stored already is skipped. The number stored. */
export async function insertLogs(tx: SqlQueries, rows: readonly LogRow[]): Promise<number> {
  const { count } = await insertRows(
    tx,
    "Log",
    LOG_COLUMNS,
    rows.map((r) => [r.workspaceId, r.flowRunId, r.taskRunId, r.attempt, r.seq, r.level, r.message, r.timestamp]),
  );
  return count;
}
