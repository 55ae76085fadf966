import { allIn, inList, type Sql, type SqlQueries, type SqlScalar } from "@ferry/prisma";
import type { Deployment, FlowRun } from "@ferry/prisma/sqlite";

/**
 * Flow runs and their state history on the direct SQL executor (prisma/src/sql.ts): the
 * statements a run's life costs on the hot path (create, claim, state changes), each a
 * prepared statement instead of a Prisma query. Rows read here have the shape Prisma returns.
 */

/** Every column of FlowRun, in schema order (schema-match.test.ts keeps the schema honest). */
export const FLOW_RUN_COLUMNS = [
  "id",
  "workspaceId",
  "flowId",
  "deploymentId",
  "parentFlowRunId",
  "parentTaskRunId",
  "name",
  "parametersJson",
  "tagsJson",
  "workPool",
  "stateType",
  "stateName",
  "stateMessage",
  "stateTimestamp",
  "attempt",
  "maxRetries",
  "retryCount",
  "retryDelayMs",
  "timeoutMs",
  "agentId",
  "leaseExpiresAt",
  "expectedStartTime",
  "startTime",
  "endTime",
  "idempotencyKey",
  "scheduleId",
  "backfillId",
  "scheduledFor",
  "dataIntervalStart",
  "dataIntervalEnd",
  "triggeredById",
  "triggeringRunId",
  "triggerChainJson",
  "createdAt",
  "updatedAt",
] as const satisfies readonly (keyof FlowRun)[];

// Fails to compile when FlowRun gains a column this list lacks.
const everyColumn: Record<Exclude<keyof FlowRun, (typeof FLOW_RUN_COLUMNS)[number]>, never> = {};
void everyColumn;

const RUN_COLUMNS = FLOW_RUN_COLUMNS.map((c) => `"${c}"`).join(", ");
const RUN_PLACEHOLDERS = FLOW_RUN_COLUMNS.map(() => "?").join(", ");
const SELECT_RUN = `SELECT ${RUN_COLUMNS} FROM "FlowRun"`;

/** A flow run of the workspace, or undefined. */
export function readFlowRun(q: SqlQueries, flowRunId: string, workspaceId: string): Promise<FlowRun | undefined> {
  return q.get<FlowRun>(`${SELECT_RUN} WHERE "id" = ? AND "workspaceId" = ?`, [flowRunId, workspaceId]);
}

/** Inserts a complete flow-run row. */
async function insertFlowRun(q: SqlQueries, run: FlowRun): Promise<void> {
  await q.run(`INSERT INTO "FlowRun" (${RUN_COLUMNS}) VALUES (${RUN_PLACEHOLDERS})`, runValues(run));
}

const runValues = (run: FlowRun): SqlScalar[] => FLOW_RUN_COLUMNS.map((c) => run[c]);

export interface FlowRunStateRow {
  id: string;
  workspaceId: string;
  flowRunId: string;
  type: string;
  name: string;
  message: string | null;
  timestamp: Date;
  attempt: number;
  eventId?: string | null;
}

const STATE_COLUMNS = `"id", "workspaceId", "flowRunId", "type", "name", "message", "timestamp", "attempt", "eventId"`;
const STATE_PLACEHOLDERS = "?, ?, ?, ?, ?, ?, ?, ?, ?";
/** The same placeholders typed, where PostgreSQL cannot infer them (a SELECT list). */
const STATE_CASTS = "?::text, ?::text, ?::text, ?::text, ?::text, ?::text, ?::timestamp(3), ?::integer, ?::text";
const stateValues = (s: FlowRunStateRow): SqlScalar[] => [
  s.id,
  s.workspaceId,
  s.flowRunId,
  s.type,
  s.name,
  s.message,
  s.timestamp,
  s.attempt,
  s.eventId ?? null,
];

async function insertFlowRunState(q: SqlQueries, s: FlowRunStateRow): Promise<void> {
  await q.run(`INSERT INTO "FlowRunState" (${STATE_COLUMNS}) VALUES (${STATE_PLACEHOLDERS})`, stateValues(s));
}

/** Columns a flow-run update may set. */
export type FlowRunChanges = Partial<Omit<FlowRun, "id" | "workspaceId" | "createdAt">>;

/** What an update checks of the row as read (optimistic concurrency). */
type Expected = Partial<Pick<FlowRun, "stateType" | "attempt" | "stateTimestamp">>;

/**
 * `UPDATE "FlowRun" SET … WHERE "id" = ? AND …expected` and its parameters (`updatedAt` set
 * unless given); `extraWhere` and its parameters go at the end of the WHERE clause. The text
 * depends only on which columns are set and checked, so it is prepared once per combination.
 */
function updateOf(
  flowRunId: string,
  expected: Expected,
  changes: FlowRunChanges,
  incrementRetryCount = false,
  extraWhere: { text: string; params: SqlScalar[] } = { text: "", params: [] },
): { text: string; params: SqlScalar[] } {
  const set = Object.entries({ ...changes, updatedAt: changes.updatedAt ?? new Date() }).filter(([, v]) => v !== undefined);
  const where = Object.entries(expected).filter(([, v]) => v !== undefined);
  return {
    text:
      `UPDATE "FlowRun" SET ${set.map(([k]) => `"${k}" = ?`).join(", ")}` +
      `${incrementRetryCount ? `, "retryCount" = "retryCount" + 1` : ""}` +
      ` WHERE "id" = ?${where.map(([k]) => ` AND "${k}" = ?`).join("")}${extraWhere.text}`,
    params: [...set.map(([, v]) => v as SqlScalar), flowRunId, ...where.map(([, v]) => v as SqlScalar), ...extraWhere.params],
  };
}

/** A deployment of the workspace by name (every column, as Prisma returns it). */
export function readDeployment(q: SqlQueries, workspaceId: string, name: string): Promise<Deployment | undefined> {
  return q.get<Deployment>(`SELECT * FROM "Deployment" WHERE "workspaceId" = ? AND "name" = ?`, [workspaceId, name]);
}

/** Deployments by id (for the dispatcher's due runs). */
export async function readDeployments(q: SqlQueries, ids: readonly string[]): Promise<Map<string, Deployment>> {
  const rows = await allIn<Deployment>(q, (list) => `SELECT * FROM "Deployment" WHERE "id" IN (${list})`, ids);
  return new Map(rows.map((d) => [d.id, d]));
}

/**
 * Root runs due now in the given pools, oldest first. `workPool` and `stateType` lead the
 * index the query uses (FlowRun(stateType, workPool, expectedStartTime)).
 */
export function readDueRuns(
  q: SqlQueries,
  workspaceId: string,
  pools: readonly string[],
  now: Date,
  limit: number,
): Promise<FlowRun[]> {
  if (!pools.length) return Promise.resolve([]);
  const list = inList(pools);
  return q.all<FlowRun>(
    `${SELECT_RUN} WHERE "stateType" = 'SCHEDULED' AND "workPool" IN (${list.placeholders})
       AND "expectedStartTime" <= ? AND "workspaceId" = ? AND "parentFlowRunId" IS NULL
     ORDER BY "expectedStartTime" ASC LIMIT ?`,
    [...list.params, now, workspaceId, limit],
  );
}

/** When the next root run of these pools is due after `now`, if any is scheduled. */
export async function nextDueTime(
  q: SqlQueries,
  workspaceId: string,
  pools: readonly string[],
  now: Date,
): Promise<Date | undefined> {
  if (!pools.length) return undefined;
  const list = inList(pools);
  const row = await q.get<{ expectedStartTime: Date }>(
    `SELECT "expectedStartTime" FROM "FlowRun" WHERE "stateType" = 'SCHEDULED' AND "workPool" IN (${list.placeholders})
       AND "expectedStartTime" > ? AND "workspaceId" = ? AND "parentFlowRunId" IS NULL
     ORDER BY "expectedStartTime" ASC LIMIT 1`,
    [...list.params, now, workspaceId],
  );
  return row?.expectedStartTime;
}

/**
 * Writes a new flow run and its first states, atomically. PostgreSQL: one statement (the run in
 * a data-modifying CTE), one round trip instead of five; SQLite: one transaction.
 */
export async function insertRunWithStates(sql: Sql, run: FlowRun, states: readonly FlowRunStateRow[]): Promise<void> {
  if (sql.provider === "postgresql") {
    await sql.run(
      `WITH "run" AS (INSERT INTO "FlowRun" (${RUN_COLUMNS}) VALUES (${RUN_PLACEHOLDERS}))
       INSERT INTO "FlowRunState" (${STATE_COLUMNS}) VALUES ${states.map(() => `(${STATE_PLACEHOLDERS})`).join(", ")}`,
      [...runValues(run), ...states.flatMap(stateValues)],
    );
    return;
  }
  await sql.transaction(async (tx) => {
    await insertFlowRun(tx, run);
    for (const s of states) await insertFlowRunState(tx, s);
  });
}

export interface Transition {
  flowRunId: string;
  /** The row must still be as read (optimistic concurrency). */
  expected: Expected;
  changes: FlowRunChanges;
  /** Recorded in the history when the change is made. */
  state: FlowRunStateRow;
  /** The attempt is over: free the concurrency slots its task runs held. */
  freeSlots?: boolean;
  /** PostgreSQL: skip a row another replica has locked instead of waiting for it (claims). */
  skipLocked?: boolean;
  /** A retry uses one up. */
  incrementRetryCount?: boolean;
  /**
   * The new state may alert (the notifier's event for it, e.g. FAILED): a NotificationOutbox row
   * is written in the same transaction when an active rule of the workspace wants that event.
   */
  alert?: { event: string; deploymentId: string | null };
}

const OUTBOX_COLUMNS = `"id", "workspaceId", "flowRunId", "deploymentId", "stateType", "stateName", "attempt", "createdAt"`;
const OUTBOX_PLACEHOLDERS = "?, ?, ?, ?, ?, ?, ?, ?";
/** Typed for PostgreSQL, which cannot infer a SELECT list's parameters. */
const OUTBOX_CASTS = "?::text, ?::text, ?::text, ?::text, ?::text, ?::text, ?::integer, ?::timestamp(3)";
/**
 * Only when a rule wants the event: a workspace without one pays an indexed probe
 * (NotificationRule(workspaceId)), never a write. `eventsJson` is a JSON array of names, so
 * the quoted name matches exactly one of them.
 */
const OUTBOX_WHEN = `WHERE EXISTS (SELECT 1 FROM "NotificationRule" WHERE "workspaceId" = ? AND "active" = ? AND "eventsJson" LIKE ?)`;
const outboxValues = (t: Transition, alert: NonNullable<Transition["alert"]>): SqlScalar[] => [
  t.state.id,
  t.state.workspaceId,
  t.state.flowRunId,
  alert.deploymentId,
  t.state.type,
  t.state.name,
  t.state.attempt,
  t.state.timestamp,
  t.state.workspaceId,
  true,
  `%"${alert.event}"%`,
];

/**
 * Changes a flow run's state if it is still as expected, with its history row (and freed slots),
 * atomically; false if the run had changed. PostgreSQL: one statement (`UPDATE … RETURNING` in a
 * CTE feeding the history insert), one round trip; SQLite: one transaction.
 */
export async function transitionRun(sql: Sql, t: Transition): Promise<boolean> {
  if (sql.provider === "sqlite") return sql.transaction((tx) => applyTransition(tx, t));
  const update = updateOf(
    t.flowRunId,
    t.expected,
    t.changes,
    t.incrementRetryCount,
    t.skipLocked
      ? { text: ` AND "id" IN (SELECT "id" FROM "FlowRun" WHERE "id" = ? FOR UPDATE SKIP LOCKED)`, params: [t.flowRunId] }
      : undefined,
  );
  const text =
    `WITH "changed" AS (${update.text} RETURNING "id")` +
    (t.freeSlots ? `, "freed" AS (DELETE FROM "ConcurrencySlot" WHERE "flowRunId" IN (SELECT "id" FROM "changed"))` : "") +
    // The alert's outbox row in the same statement: it exists if and only if the change does.
    (t.alert
      ? `, "alerted" AS (INSERT INTO "NotificationOutbox" (${OUTBOX_COLUMNS}) SELECT ${OUTBOX_CASTS} FROM "changed" ${OUTBOX_WHEN})`
      : "") +
    ` INSERT INTO "FlowRunState" (${STATE_COLUMNS}) SELECT ${STATE_CASTS} FROM "changed"`;
  const params = [...update.params, ...(t.alert ? outboxValues(t, t.alert) : []), ...stateValues(t.state)];
  return (await sql.run(text, params)) === 1;
}

/**
 * The same change as statements inside the caller's transaction (either database), for a
 * transaction that does more after it (a retry puts the run back in the queue).
 */
export async function applyTransition(tx: SqlQueries, t: Transition): Promise<boolean> {
  const update = updateOf(t.flowRunId, t.expected, t.changes, t.incrementRetryCount);
  if ((await tx.run(update.text, update.params)) !== 1) return false;
  if (t.freeSlots) await tx.run(`DELETE FROM "ConcurrencySlot" WHERE "flowRunId" = ?`, [t.flowRunId]);
  await insertFlowRunState(tx, t.state);
  if (t.alert) {
    await tx.run(
      `INSERT INTO "NotificationOutbox" (${OUTBOX_COLUMNS}) SELECT ${tx.provider === "postgresql" ? OUTBOX_CASTS : OUTBOX_PLACEHOLDERS} ${OUTBOX_WHEN}`,
      outboxValues(t, t.alert),
    );
  }
  return true;
}
