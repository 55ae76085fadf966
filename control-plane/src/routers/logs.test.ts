import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { sqlOf } from "@ferry/prisma";
import { createFlowRun } from "../orchestration/create-run.ts";
import { ParamsValidator } from "../params.ts";
import { FIXTURE, fixtureDatabase } from "../test-database.ts";
import { searchSqlite } from "./logs.ts";

describe("log search on SQLite", () => {
  it("matches % and _ literally, so a wildcard search does not page through every line", async () => {
    const { database, close } = await fixtureDatabase("log-search-", { name: "work" });
    try {
      const { db } = database;
      const deployment = await db.deployment.findUniqueOrThrow({ where: { id: FIXTURE.deploymentId } });
      const { run } = await createFlowRun(db, new ParamsValidator(), {
        workspaceId: FIXTURE.workspaceId,
        deployment,
        parameters: {},
      });
      // 3,000 lines LIKE '%a_b%' would match as a wildcard, then the one that holds "a_b".
      const rows = Array.from({ length: 3_001 }, (_, i) => ({
        workspaceId: FIXTURE.workspaceId,
        flowRunId: run.id,
        attempt: 1,
        seq: i,
        level: "info",
        message: i === 3_000 ? "done: a_b at 100%" : `step a${i % 10}b at ${i}0%`,
        timestamp: new Date(),
      }));
      await db.log.createMany({ data: rows });
      const page = (search: string, extra: Partial<Parameters<typeof searchSqlite>[1]> = {}) =>
        searchSqlite(sqlOf(db), {
          workspaceId: FIXTURE.workspaceId,
          runIds: [run.id],
          gt: undefined,
          lt: undefined,
          level: undefined,
          taskRunId: undefined,
          search,
          backwards: false,
          limit: 10,
          ...extra,
        });
      assert.deepEqual(
        (await page("a_b")).map((l) => l.message),
        ["done: a_b at 100%"],
      );
      assert.deepEqual(
        (await page("A_B AT 100%")).map((l) => l.seq),
        [3_000],
        "ASCII case is ignored",
      );
      assert.equal((await page("\\")).length, 0, "a backslash is literal too");
      assert.equal((await page("0%", { limit: 5 })).length, 5);
      assert.deepEqual(
        (await page("0%", { backwards: true, limit: 2 })).map((l) => l.seq),
        [3_000, 2_999],
      );
      assert.equal((await page("a_b", { level: ["error"] })).length, 0);
      assert.equal((await page("a_b", { gt: 100_000 })).length, 0);
    } finally {
      await close();
    }
  });
});
