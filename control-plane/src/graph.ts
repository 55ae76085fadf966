import type { Db } from "@ferry/prisma";
import { STATE_DISPLAY_NAMES, type StateType } from "@ferry/sdk/protocol";

/**
 * The graph of one flow run as the web app draws it. Task runs of the same task (a `.map`
 * or a loop) are one group node with per-state counts unless the viewer expanded it, so a
 * 10,000-task run is a handful of nodes; edges between groups carry how many data edges
 * they stand for. Built from aggregate queries: the cost grows with the number of distinct
 * tasks, not with the number of task runs (except for expanded groups, which are capped).
 */
export interface GraphNode {
  /** A task run id, or `group:<taskKey>` for a collapsed group. */
  id: string;
  kind: "task" | "group";
  taskKey: string;
  label: string;
  /** For a task node: its state. For a group: the state that best sums it up (see `groupState`). */
  stateType: string;
  stateName: string;
  /** Per-state counts (groups; a task node has its own state counted once). */
  counts: Record<string, number>;
  total: number;
  /** Task node: the child flow run it stands for, if any. */
  childFlowRunId: string | null;
  startTime: string | null;
  endTime: string | null;
  /** Expanded group: how many members were left out (over the cap). */
  hidden: number;
}

export interface GraphEdge {
  id: string;
  source: string;
  target: string;
  /** How many task-run edges this edge stands for. */
  count: number;
}

export interface RunGraph {
  /** The flow-run attempt the graph shows (task runs of earlier attempts are kept but not drawn). */
  attempt: number | null;
  nodes: GraphNode[];
  edges: GraphEdge[];
  /** Task runs per state, whole run attempt. */
  counts: Record<string, number>;
  total: number;
}

/** Members an expanded group shows at most (the rest are listed in the group's table). */
export const EXPANDED_GROUP_CAP = 200;

/** What a group looks like at a glance: anything failing wins, then running, then waiting, then done. */
const GROUP_STATE_ORDER = [
  "FAILED",
  "CRASHED",
  "RUNNING",
  "CANCELLING",
  "PENDING",
  "SCHEDULED",
  "PAUSED",
  "CANCELLED",
  "COMPLETED",
];

export function groupState(counts: Record<string, number>): string {
  for (const s of GROUP_STATE_ORDER) if ((counts[s] ?? 0) > 0) return s;
  return "PENDING";
}

interface GroupRow {
  taskKey: string;
  stateType: string;
  count: number;
}
interface TaskRow {
  id: string;
  taskKey: string;
  name: string;
  stateType: string;
  stateName: string;
  childFlowRunId: string | null;
  startTime: Date | null;
  endTime: Date | null;
}
interface KeyEdgeRow {
  from: string;
  to: string;
  count: number;
}
interface IdEdgeRow {
  upstreamId: string;
  downstreamId: string;
  upKey: string;
  downKey: string;
}

/** Assembles the graph from aggregate rows (pure: unit-tested). */
export function assembleGraph(input: {
  attempt: number | null;
  groups: GroupRow[];
  /** Task runs drawn one by one: members of single-member groups and of expanded groups. */
  tasks: TaskRow[];
  keyEdges: KeyEdgeRow[];
  /** Edges touching a drawn task run. */
  idEdges: IdEdgeRow[];
  expanded: ReadonlySet<string>;
}): RunGraph {
  const sizes = new Map<string, Record<string, number>>();
  const counts: Record<string, number> = {};
  let total = 0;
  for (const g of input.groups) {
    const c = sizes.get(g.taskKey) ?? {};
    c[g.stateType] = (c[g.stateType] ?? 0) + g.count;
    sizes.set(g.taskKey, c);
    counts[g.stateType] = (counts[g.stateType] ?? 0) + g.count;
    total += g.count;
  }
  const sizeOf = (key: string) => Object.values(sizes.get(key) ?? {}).reduce((a, b) => a + b, 0);
  /** Keys drawn as individual task nodes. */
  const individual = (key: string) => sizeOf(key) === 1 || input.expanded.has(key);

  const nodes: GraphNode[] = [];
  const drawn = new Set<string>();
  const shown = new Map<string, number>();
  for (const t of input.tasks) {
    if (!individual(t.taskKey)) continue;
    drawn.add(t.id);
    shown.set(t.taskKey, (shown.get(t.taskKey) ?? 0) + 1);
    nodes.push({
      id: t.id,
      kind: "task",
      taskKey: t.taskKey,
      label: t.name,
      stateType: t.stateType,
      stateName: t.stateName,
      counts: { [t.stateType]: 1 },
      total: 1,
      childFlowRunId: t.childFlowRunId,
      startTime: t.startTime?.toISOString() ?? null,
      endTime: t.endTime?.toISOString() ?? null,
      hidden: 0,
    });
  }
  for (const [key, c] of sizes) {
    if (individual(key)) {
      const hidden = sizeOf(key) - (shown.get(key) ?? 0);
      // An expanded group over the cap: a group node holds the members not drawn.
      if (hidden <= 0) continue;
      const first = nodes.find((n) => n.taskKey === key);
      if (first) first.hidden = hidden;
      continue;
    }
    const state = groupState(c);
    nodes.push({
      id: `group:${key}`,
      kind: "group",
      taskKey: key,
      label: key,
      stateType: state,
      stateName: STATE_DISPLAY_NAMES[state as StateType] ?? state,
      counts: c,
      total: sizeOf(key),
      childFlowRunId: null,
      startTime: null,
      endTime: null,
      hidden: 0,
    });
  }

  const edges = new Map<string, GraphEdge>();
  const add = (source: string, target: string, count: number) => {
    if (source === target) return;
    const id = `${source}->${target}`;
    const e = edges.get(id);
    if (e) e.count += count;
    else edges.set(id, { id, source, target, count });
  };
  // Between two collapsed groups: the aggregate edge.
  for (const e of input.keyEdges) {
    if (individual(e.from) || individual(e.to)) continue;
    add(`group:${e.from}`, `group:${e.to}`, e.count);
  }
  // Anything touching a drawn task: per task run, the other end mapped to its node.
  const endpoint = (id: string, key: string) => (drawn.has(id) ? id : individual(key) ? undefined : `group:${key}`);
  for (const e of input.idEdges) {
    const source = endpoint(e.upstreamId, e.upKey);
    const target = endpoint(e.downstreamId, e.downKey);
    if (source && target && (drawn.has(e.upstreamId) || drawn.has(e.downstreamId))) add(source, target, 1);
  }
  return { attempt: input.attempt, nodes, edges: [...edges.values()], counts, total };
}

/** Loads and assembles the graph of a flow run (its latest attempt that has task runs). */
export async function loadRunGraph(db: Db, flowRunId: string, expand: readonly string[]): Promise<RunGraph> {
  const latest = await db.taskRun.aggregate({ where: { flowRunId }, _max: { flowRunAttempt: true } });
  const attempt = latest._max.flowRunAttempt;
  if (attempt === null) return { attempt: null, nodes: [], edges: [], counts: {}, total: 0 };
  const where = { flowRunId, flowRunAttempt: attempt };
  const grouped = await db.taskRun.groupBy({ by: ["taskKey", "stateType"], where, _count: { _all: true } });
  const groups = grouped.map((g) => ({ taskKey: g.taskKey, stateType: g.stateType, count: g._count._all }));
  const perKey = new Map<string, number>();
  for (const g of groups) perKey.set(g.taskKey, (perKey.get(g.taskKey) ?? 0) + g.count);
  const expanded = new Set(expand.filter((k) => perKey.has(k)));
  const singles = [...perKey].filter(([, n]) => n === 1).map(([k]) => k);

  const select = {
    id: true,
    taskKey: true,
    name: true,
    stateType: true,
    stateName: true,
    childFlowRunId: true,
    startTime: true,
    endTime: true,
  } as const;
  const tasks: TaskRow[] = [
    ...(singles.length ? await db.taskRun.findMany({ where: { ...where, taskKey: { in: singles } }, select }) : []),
  ];
  for (const key of expanded) {
    if (perKey.get(key) === 1) continue;
    tasks.push(
      ...(await db.taskRun.findMany({
        where: { ...where, taskKey: key },
        select,
        orderBy: { dynamicKey: "asc" },
        take: EXPANDED_GROUP_CAP,
      })),
    );
  }

  const keyEdges = (
    await db.$queryRaw<{ from: string; to: string; n: number | bigint }[]>`
      SELECT u."taskKey" AS "from", d."taskKey" AS "to", COUNT(*) AS "n"
      FROM "TaskRunEdge" e
      JOIN "TaskRun" u ON u."id" = e."upstreamId"
      JOIN "TaskRun" d ON d."id" = e."downstreamId"
      WHERE e."flowRunId" = ${flowRunId} AND d."flowRunAttempt" = ${attempt}
      GROUP BY u."taskKey", d."taskKey"`
  ).map((r) => ({ from: r.from, to: r.to, count: Number(r.n) }));

  const drawnIds = tasks.map((t) => t.id);
  const idEdges: IdEdgeRow[] = [];
  // Chunked: an expanded group can name a few hundred ids (SQLite allows 32k parameters; stay far below).
  for (let i = 0; i < drawnIds.length; i += 500) {
    const chunk = drawnIds.slice(i, i + 500);
    const rows = await db.taskRunEdge.findMany({
      where: { flowRunId, OR: [{ upstreamId: { in: chunk } }, { downstreamId: { in: chunk } }] },
      select: { upstreamId: true, downstreamId: true },
    });
    idEdges.push(...rows.map((r) => ({ ...r, upKey: "", downKey: "" })));
  }
  if (idEdges.length) {
    const ids = [...new Set(idEdges.flatMap((e) => [e.upstreamId, e.downstreamId]))];
    const keyOf = new Map<string, string>();
    for (let i = 0; i < ids.length; i += 500) {
      const rows = await db.taskRun.findMany({
        where: { id: { in: ids.slice(i, i + 500) } },
        select: { id: true, taskKey: true },
      });
      for (const r of rows) keyOf.set(r.id, r.taskKey);
    }
    for (const e of idEdges) {
      e.upKey = keyOf.get(e.upstreamId) ?? "";
      e.downKey = keyOf.get(e.downstreamId) ?? "";
    }
  }
  const unique = new Map(idEdges.map((e) => [`${e.upstreamId}>${e.downstreamId}`, e]));
  return assembleGraph({ attempt, groups, tasks, keyEdges, idEdges: [...unique.values()], expanded });
}
