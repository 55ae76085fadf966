import type { Db } from "@ferry/prisma";
import { newSecret, type Scope } from "./auth/tokens.ts";
import { newId } from "./ids.ts";

export interface CreatedToken {
  id: string;
  name: string;
  scopes: Scope[];
  /** The secret: shown once, stored only as a hash. */
  secret: string;
  expiresAt: Date | null;
}

export async function createToken(
  db: Db,
  workspaceId: string,
  input: { name: string; scopes: Scope[]; expiresInSeconds?: number | undefined },
): Promise<CreatedToken> {
  const { secret, hash, prefix } = newSecret();
  const scopes = [...new Set(input.scopes)];
  const expiresAt = input.expiresInSeconds ? new Date(Date.now() + input.expiresInSeconds * 1000) : null;
  const token = await db.apiToken.create({
    data: { id: newId(), workspaceId, name: input.name, prefix, hash, scopes: scopes.join(","), expiresAt },
  });
  return { id: token.id, name: token.name, scopes, secret, expiresAt };
}

/** Creates a workspace with an admin token (the way into a new workspace). */
export async function createWorkspace(db: Db, slug: string, name = slug): Promise<{ workspaceId: string; admin: CreatedToken }> {
  const workspace = await db.workspace.create({ data: { id: newId(), slug, name } });
  const admin = await createToken(db, workspace.id, { name: "admin", scopes: ["admin", "write", "read"] });
  return { workspaceId: workspace.id, admin };
}
