import type { Db, Provider } from "@ferry/prisma";
import { Prisma } from "@ferry/prisma/sqlite";

/**
 * Multi-row writes of task runs, their edges and states: one statement per chunk of rows
 * instead of one per row, so a batch of 1,000 events costs a handful of statements. Every
 * insert is `ON CONFLICT DO NOTHING`, so a replayed batch writes nothing twice. The SQL is
 * the same on SQLite (≥ 3.35) and PostgreSQL except for casts, which `provider` picks.
 */

/** Rows per statement: 14 columns × 400 rows stays far below SQLite's 32,766 parameters. */
export const ROWS_PER_STATEMENT = 400;

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

/** A transaction client: what `db.$transaction(async (tx) => …)` hands over. */
export type Tx = Pick<Db, "$queryRaw" | "$executeRaw">;

function chunks<T>(rows: readonly T[], size = ROWS_PER_STATEMENT): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < rows.length; i += size) out.push(rows.slice(i, i + size));
  return out;
}

/** Inserts task runs; returns the ids actually inserted (not already stored by id or by call). */
export async function insertTaskRuns(tx: Tx, rows: readonly TaskRunRow[], now: Date): Promise<Set<string>> {
  const inserted = new Set<string>();
  for (const chunk of chunks(rows)) {
    const values = chunk.map(
      (r) =>
        Prisma.sql`(${r.id}, ${r.workspaceId}, ${r.flowRunId}, ${r.flowRunAttempt}, ${r.taskKey}, ${r.dynamicKey}, ${r.name}, ${r.tagsJson}, 'PENDING', 'Pending', ${r.stateTimestamp}, ${r.maxRetries}, ${r.childFlowRunId}, ${now}, ${now})`,
    );
    const got = await tx.$queryRaw<{ id: string }[]>`
      INSERT INTO "TaskRun" ("id", "workspaceId", "flowRunId", "flowRunAttempt", "taskKey", "dynamicKey", "name", "tagsJson",
        "stateType", "stateName", "stateTimestamp", "maxRetries", "childFlowRunId", "createdAt", "updatedAt")
      VALUES ${Prisma.join(values)}
      ON CONFLICT DO NOTHING
      RETURNING "id"`;
    for (const { id } of got) inserted.add(id);
  }
  return inserted;
}

export async function insertEdges(tx: Tx, rows: readonly EdgeRow[]): Promise<void> {
  for (const chunk of chunks(rows, 1000)) {
    const values = chunk.map((r) => Prisma.sql`(${r.workspaceId}, ${r.flowRunId}, ${r.upstreamId}, ${r.downstreamId})`);
    await tx.$executeRaw`
      INSERT INTO "TaskRunEdge" ("workspaceId", "flowRunId", "upstreamId", "downstreamId")
      VALUES ${Prisma.join(values)}
      ON CONFLICT DO NOTHING`;
  }
}

/** Inserts state history rows; returns the ids (event ids) actually inserted. */
export async function insertTaskRunStates(tx: Tx, rows: readonly TaskRunStateRow[]): Promise<Set<string>> {
  const inserted = new Set<string>();
  for (const chunk of chunks(rows)) {
    const values = chunk.map(
      (r) =>
        Prisma.sql`(${r.id}, ${r.workspaceId}, ${r.taskRunId}, ${r.type}, ${r.name}, ${r.message}, ${r.timestamp}, ${r.attempt})`,
    );
    const got = await tx.$queryRaw<{ id: string }[]>`
      INSERT INTO "TaskRunState" ("id", "workspaceId", "taskRunId", "type", "name", "message", "timestamp", "attempt")
      VALUES ${Prisma.join(values)}
      ON CONFLICT DO NOTHING
      RETURNING "id"`;
    for (const { id } of got) inserted.add(id);
  }
  return inserted;
}

/**
 * Sets the current state of many task runs in one statement per chunk (UPDATE … FROM VALUES).
 * A task run that already ended stays ended. VALUES columns are column1…column10 on both
 * databases; PostgreSQL sees untyped parameters there, hence the casts.
 */
export async function updateTaskRunStates(
  tx: Tx,
  provider: Provider,
  rows: readonly TaskRunUpdate[],
  terminal: Iterable<string>,
  now: Date,
): Promise<void> {
  const ts = (col: string) => Prisma.raw(provider === "postgresql" ? `CAST(v.${col} AS TIMESTAMP(3))` : `v.${col}`);
  const int = (col: string) => Prisma.raw(`CAST(v.${col} AS INTEGER)`);
  for (const chunk of chunks(rows)) {
    const values = chunk.map(
      (r) =>
        Prisma.sql`(${r.id}, ${r.stateType}, ${r.stateName}, ${r.stateMessage}, ${r.stateTimestamp}, ${r.attempt}, ${r.resultRef}, ${r.cacheKey}, ${r.startTime}, ${r.endTime})`,
    );
    await tx.$executeRaw`
      UPDATE "TaskRun" SET
        "stateType" = v.column2,
        "stateName" = v.column3,
        "stateMessage" = v.column4,
        "stateTimestamp" = ${ts("column5")},
        "attempt" = ${int("column6")},
        "resultRef" = COALESCE(v.column7, "TaskRun"."resultRef"),
        "cacheKey" = COALESCE(v.column8, "TaskRun"."cacheKey"),
        "startTime" = COALESCE("TaskRun"."startTime", ${ts("column9")}),
        "endTime" = COALESCE(${ts("column10")}, "TaskRun"."endTime"),
        "updatedAt" = ${now}
      FROM (VALUES ${Prisma.join(values)}) AS v
      WHERE "TaskRun"."id" = v.column1 AND "TaskRun"."stateType" NOT IN (${Prisma.join([...terminal])})`;
  }
}
