import type { Db } from "@ferry/prisma";
import { jwtVerify, SignJWT } from "jose";
import { hashSecret, parseScopes, type Scope, TOKEN_PREFIX } from "./tokens.ts";

/** Who is calling: every request is scoped to this workspace. */
export interface Principal {
  workspaceId: string;
  tokenId: string;
  scopes: Scope[];
  /** "token" for an API token, "session" for a web session derived from one. */
  via: "token" | "session";
}

export type AuthResult = { ok: true; principal: Principal } | { ok: false; reason: string };

const LAST_USED_RESOLUTION_MS = 60_000;
const SESSION_ISSUER = "ferry-control-plane";

/**
 * Verifies API tokens (stored hashed) and short-lived web sessions (JWTs signed with
 * `jose`). A session names the token it came from, so revoking the token ends its sessions.
 */
export class Authenticator {
  constructor(
    private readonly db: Db,
    private readonly sessionKey: Uint8Array,
  ) {}

  async fromHeader(header: string | null | undefined): Promise<AuthResult> {
    if (!header) return { ok: false, reason: "missing Authorization header (expected: Bearer <token>)" };
    const match = /^Bearer\s+(\S+)$/i.exec(header.trim());
    if (!match?.[1]) return { ok: false, reason: "malformed Authorization header (expected: Bearer <token>)" };
    return this.fromCredential(match[1]);
  }

  async fromCredential(credential: string): Promise<AuthResult> {
    if (credential.startsWith(TOKEN_PREFIX)) return this.fromToken(credential);
    return this.fromSession(credential);
  }

  private async fromToken(secret: string): Promise<AuthResult> {
    if (secret.length > 200) return { ok: false, reason: "invalid token" };
    const token = await this.db.apiToken.findUnique({ where: { hash: hashSecret(secret) } });
    const problem = tokenProblem(token);
    if (problem || !token) return { ok: false, reason: problem ?? "invalid token" };
    const now = Date.now();
    if (!token.lastUsedAt || now - token.lastUsedAt.getTime() > LAST_USED_RESOLUTION_MS) {
      await this.db.apiToken.update({ where: { id: token.id }, data: { lastUsedAt: new Date(now) } });
    }
    return {
      ok: true,
      principal: { workspaceId: token.workspaceId, tokenId: token.id, scopes: parseScopes(token.scopes), via: "token" },
    };
  }

  private async fromSession(jwt: string): Promise<AuthResult> {
    let tokenId: string;
    try {
      const { payload } = await jwtVerify(jwt, this.sessionKey, { issuer: SESSION_ISSUER });
      if (typeof payload.sub !== "string") return { ok: false, reason: "invalid session" };
      tokenId = payload.sub;
    } catch {
      return { ok: false, reason: "invalid or expired credential" };
    }
    const token = await this.db.apiToken.findUnique({ where: { id: tokenId } });
    const problem = tokenProblem(token);
    if (problem || !token) return { ok: false, reason: problem ?? "invalid session" };
    return {
      ok: true,
      principal: { workspaceId: token.workspaceId, tokenId: token.id, scopes: parseScopes(token.scopes), via: "session" },
    };
  }

  /** A session credential for the web app, valid for `ttlSeconds` and never longer than the token. */
  async createSession(principal: Principal, ttlSeconds: number): Promise<{ session: string; expiresAt: Date }> {
    const token = await this.db.apiToken.findUnique({ where: { id: principal.tokenId } });
    let expiresAt = new Date(Date.now() + ttlSeconds * 1000);
    if (token?.expiresAt && token.expiresAt < expiresAt) expiresAt = token.expiresAt;
    const session = await new SignJWT({})
      .setProtectedHeader({ alg: "HS256" })
      .setSubject(principal.tokenId)
      .setIssuer(SESSION_ISSUER)
      .setIssuedAt()
      .setExpirationTime(Math.floor(expiresAt.getTime() / 1000))
      .sign(this.sessionKey);
    return { session, expiresAt };
  }
}

function tokenProblem(token: { revokedAt: Date | null; expiresAt: Date | null } | null): string | undefined {
  if (!token) return "invalid token";
  if (token.revokedAt) return "token revoked";
  if (token.expiresAt && token.expiresAt.getTime() <= Date.now()) return "token expired";
  return undefined;
}
