import { randomBytes } from "node:crypto";
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

const SESSION_KEY = "session.signingKey";

/** The installation's key for signing web sessions, created on first use. */
export async function sessionKey(db: Db): Promise<Uint8Array> {
  const existing = await db.setting.findUnique({ where: { key: SESSION_KEY } });
  if (existing) return Buffer.from(existing.value, "base64url");
  const value = randomBytes(32).toString("base64url");
  await db.setting.upsert({ where: { key: SESSION_KEY }, create: { key: SESSION_KEY, value }, update: {} });
  const stored = await db.setting.findUniqueOrThrow({ where: { key: SESSION_KEY } });
  return Buffer.from(stored.value, "base64url");
}
