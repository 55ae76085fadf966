import { z } from "zod";
import { DomainError } from "../errors.ts";

export const Limit = z.number().int().min(1).max(500).default(50);
export const IdInput = z.object({ id: z.string().min(1).max(100) });

export { parseJson } from "../json.ts";

/** A model that can be asked whether a row of a workspace exists (flow runs, task runs). */
interface OwnedRows {
  findFirst(args: { where: { id: string; workspaceId: string }; select: { id: true } }): Promise<{ id: string } | null>;
}

/**
 * Refuses a pagination cursor that names no row of the caller's workspace. Prisma positions a
 * cursor by that row's own sort values, found by id alone, so a foreign id would otherwise leak
 * whether it exists and when it was made.
 */
export async function requireOwnRow(rows: OwnedRows, workspaceId: string, id: string): Promise<void> {
  const row = await rows.findFirst({ where: { id, workspaceId }, select: { id: true } });
  if (!row)
    throw new DomainError(
      "INVALID_PARAMETERS",
      "the cursor names no row of this workspace: pass the nextCursor of the previous page",
    );
}
