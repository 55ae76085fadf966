import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type OpenDatabase, openDatabase } from "@ferry/prisma";

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
