import { inList, type SqlQueries, sqlOf } from "@ferry/prisma";
import type { Log } from "@ferry/prisma/sqlite";
import { LogLevel } from "@ferry/sdk/protocol";
import { z } from "zod";
import { flowRunTree } from "../orchestration/flow-runs.ts";
import { containsFilter, containsText, exactPage } from "../text-match.ts";
import { router, scoped } from "../trpc.ts";

export const logsRouter = router({
  /** Log lines of a flow run and all its child flow runs, in order; page with `afterId`. */
  list: scoped("read")
    .input(
      z.object({
        flowRunId: z.string().min(1).max(100),
        afterId: z.number().int().nonnegative().optional(),
        /** Lines before this id, newest first (scrolling back); without afterId/beforeId: the first lines. */
        beforeId: z.number().int().nonnegative().optional(),
        /** The newest lines (the end of the log), returned in order. */
        tail: z.boolean().optional(),
        /** Only lines containing this text (ignoring case). */
        search: z.string().max(200).optional(),
        limit: z.number().int().min(1).max(5000).default(1000),
        level: z.array(LogLevel).optional(),
        taskRunId: z.string().max(100).optional(),
      }),
    )
    .query(async ({ ctx, input }) => {
      const workspaceId = ctx.principal.workspaceId;
      const runIds = await flowRunTree(ctx.db, workspaceId, input.flowRunId);
      // Scrolling back or reading the end: newest first, then put in order.
      const backwards = input.beforeId !== undefined || !!input.tail;
      const search = input.search || undefined;
      const page = await exactPage(
        (after: number | undefined, n) => {
          const gt = backwards ? input.afterId : (after ?? input.afterId);
          const lt = backwards ? (after ?? input.beforeId) : input.beforeId;
          // SQLite through Prisma cannot escape LIKE's wildcards: a search holding `%` or `_`
          // would match nearly every line there and page through them all; direct SQL can.
          if (search && ctx.provider === "sqlite" && /[%_\\]/.test(search)) {
            return searchSqlite(sqlOf(ctx.db), {
              workspaceId,
              runIds,
              gt,
              lt,
              level: input.level,
              taskRunId: input.taskRunId,
              search,
              backwards,
              limit: n,
            });
          }
          return ctx.db.log.findMany({
            where: {
              workspaceId,
              flowRunId: { in: runIds },
              ...(gt !== undefined || lt !== undefined
                ? { id: { ...(gt !== undefined ? { gt } : {}), ...(lt !== undefined ? { lt } : {}) } }
                : {}),
              ...(input.level ? { level: { in: input.level } } : {}),
              ...(input.taskRunId ? { taskRunId: input.taskRunId } : {}),
              ...(search ? { message: containsFilter(ctx.provider, search) } : {}),
            },
            orderBy: { id: backwards ? "desc" : "asc" },
            take: n,
          });
        },
        (line) => line.id,
        (line) => !search || containsText(line.message, search),
        input.limit,
      );
      const items = page.rows;
      if (backwards) items.reverse();
      return { items, lastId: items.at(-1)?.id ?? input.afterId ?? null, firstId: items[0]?.id ?? null };
    }),
});

/**
 * One page of a run tree's log lines whose message contains `search` literally (ASCII case
 * ignored, as SQLite's LIKE does), on SQLite: LIKE with an ESCAPE character, which Prisma's
 * `contains` does not write there.
 */
export async function searchSqlite(
  q: SqlQueries,
  f: {
    workspaceId: string;
    runIds: readonly string[];
    gt: number | undefined;
    lt: number | undefined;
    level: readonly string[] | undefined;
    taskRunId: string | undefined;
    search: string;
    backwards: boolean;
    limit: number;
  },
): Promise<Log[]> {
  const runs = inList(f.runIds);
  const levels = f.level?.length ? inList(f.level) : undefined;
  const params = [
    f.workspaceId,
    ...runs.params,
    ...(f.gt !== undefined ? [f.gt] : []),
    ...(f.lt !== undefined ? [f.lt] : []),
    ...(levels ? levels.params : []),
    ...(f.taskRunId ? [f.taskRunId] : []),
    `%${f.search.replace(/[\\%_]/g, (c) => `\\${c}`)}%`,
    f.limit,
  ];
  return q.all<Log>(
    `SELECT * FROM "Log" WHERE "workspaceId" = ? AND "flowRunId" IN (${runs.placeholders})` +
      (f.gt !== undefined ? ` AND "id" > ?` : "") +
      (f.lt !== undefined ? ` AND "id" < ?` : "") +
      (levels ? ` AND "level" IN (${levels.placeholders})` : "") +
      (f.taskRunId ? ` AND "taskRunId" = ?` : "") +
      ` AND "message" LIKE ? ESCAPE '\\' ORDER BY "id" ${f.backwards ? "DESC" : "ASC"} LIMIT ?`,
    params,
  );
}
