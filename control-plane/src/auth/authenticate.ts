import { type Db, sqlOf } from "@ferry/prisma";
import type { ApiToken } from "@ferry/prisma/sqlite";
import { jwtVerify, SignJWT } from "jose";
import { newId } from "../ids.ts";
import { hashSecret, parseScopes, type Scope, TOKEN_PREFIX } from "./tokens.ts";

/** Who is calling: every request is scoped to this workspace. */
export interface Principal {
  workspaceId: string;
  tokenId: string;
  scopes: Scope[];
  /** "token" for an API token, "session" for a web session derived from one. */
  via: "token" | "session";
  /** The web session, when the caller used one. */
  sessionId?: string;
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

  /** A session cookie: only a session credential counts (an API token does not belong in a cookie). */
  async fromSessionCookie(value: string): Promise<AuthResult> {
    if (value.startsWith(TOKEN_PREFIX)) return { ok: false, reason: "invalid session" };
    return this.fromSession(value);
  }

  private async fromToken(secret: string): Promise<AuthResult> {
    if (secret.length > 200) return { ok: false, reason: "invalid token" };
    // Direct SQL: every API call and agent connection authenticates (see prisma/src/sql.ts).
    const token = (await sqlOf(this.db).get<ApiToken>(`SELECT * FROM "ApiToken" WHERE "hash" = ?`, [hashSecret(secret)])) ?? null;
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
    if (jwt.length > 2000) return { ok: false, reason: "invalid session" };
    let claims: { sub: string; jti: string };
    try {
      const { payload } = await jwtVerify(jwt, this.sessionKey, { issuer: SESSION_ISSUER, algorithms: ["HS256"] });
      if (typeof payload.sub !== "string" || typeof payload.jti !== "string") return { ok: false, reason: "invalid session" };
      claims = { sub: payload.sub, jti: payload.jti };
    } catch {
      return { ok: false, reason: "invalid or expired session: sign in again" };
    }
    const session = await this.db.webSession.findUnique({ where: { id: claims.jti }, include: { token: true } });
    if (!session || session.tokenId !== claims.sub) return { ok: false, reason: "invalid session" };
    if (session.endedAt) return { ok: false, reason: "signed out: sign in again" };
    const token = session.token;
    const problem = tokenProblem(token);
    if (problem) return { ok: false, reason: problem };
    return {
      ok: true,
      principal: {
        workspaceId: token.workspaceId,
        tokenId: token.id,
        scopes: parseScopes(token.scopes),
        via: "session",
        sessionId: session.id,
      },
    };
  }

  /**
   * A session credential for the web app, valid for `ttlSeconds` and never longer than the
   * token. Each is recorded, so signing out ends it on the server, not only in the browser.
   */
  async createSession(principal: Principal, ttlSeconds: number): Promise<{ session: string; expiresAt: Date }> {
    const token = await this.db.apiToken.findUnique({ where: { id: principal.tokenId } });
    let expiresAt = new Date(Date.now() + ttlSeconds * 1000);
    if (token?.expiresAt && token.expiresAt < expiresAt) expiresAt = token.expiresAt;
    const id = newId();
    await this.db.webSession.create({ data: { id, tokenId: principal.tokenId, expiresAt } });
    const session = await new SignJWT({})
      .setProtectedHeader({ alg: "HS256" })
      .setSubject(principal.tokenId)
      .setJti(id)
      .setIssuer(SESSION_ISSUER)
      .setIssuedAt()
      .setExpirationTime(Math.floor(expiresAt.getTime() / 1000))
      .sign(this.sessionKey);
    return { session, expiresAt };
  }

  /** Ends a web session (sign-out); later requests with it get 401. */
  async endSession(sessionId: string): Promise<void> {
    await this.db.webSession.updateMany({ where: { id: sessionId, endedAt: null }, data: { endedAt: new Date() } });
  }

  /** Forgets sessions that ended or expired more than a day ago. */
  async pruneSessions(now = new Date()): Promise<number> {
    const before = new Date(now.getTime() - 86_400_000);
    const { count } = await this.db.webSession.deleteMany({
      where: { OR: [{ expiresAt: { lt: before } }, { endedAt: { lt: before } }] },
    });
    return count;
  }
}

function tokenProblem(token: { revokedAt: Date | null; expiresAt: Date | null } | null): string | undefined {
  if (!token) return "invalid token";
  if (token.revokedAt) return "token revoked";
  if (token.expiresAt && token.expiresAt.getTime() <= Date.now()) return "token expired";
  return undefined;
}
