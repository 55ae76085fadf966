import type { AddressInfo } from "node:net";
import { type Db, type OpenDatabase, openDatabase } from "@ferry/prisma";
import { AGENT_WS_PATH, LIMITS } from "@ferry/sdk/protocol";
import { createAdaptorServer } from "@hono/node-server";
import { fetchRequestHandler } from "@trpc/server/adapters/fetch";
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { getCookie } from "hono/cookie";
import { cors } from "hono/cors";
import { AgentHub } from "./agents/hub.ts";
import { Authenticator, type AuthResult } from "./auth/authenticate.ts";
import { sessionKey } from "./auth/session-key.ts";
import { scopeAllows } from "./auth/tokens.ts";
import { Backfiller } from "./backfills.ts";
import { changesOf } from "./changes.ts";
import { ChangeRelay, Leadership, newReplicaId } from "./cluster.ts";
import type { Context, Services, SessionCookieOptions } from "./context.ts";
import { Dispatcher } from "./dispatcher.ts";
import { egressPolicy } from "./egress.ts";
import { DomainError } from "./errors.ts";
import { unhandledHttpError } from "./http-errors.ts";
import { LeaseReaper } from "./leases.ts";
import { logger } from "./logger.ts";
import { ControlPlaneMetrics, databaseSources } from "./metrics.ts";
import { Notifier } from "./notifications/notifier.ts";
import { ParamsValidator } from "./params.ts";
import { DEFAULT_QUOTAS, type Quotas, RateLimiter } from "./quotas.ts";
import { RetentionJob } from "./retention.ts";
import { appRouter } from "./router.ts";
import { SESSION_COOKIE } from "./routers/auth.ts";
import { HOOK_PATH } from "./routers/triggers.ts";
import { Scheduler, type SchedulerOptions } from "./scheduler.ts";
import {
  defaultKeyFile,
  loadSecretKeyring,
  type SecretKeySources,
  sealStoredSecrets,
  secretKeySourcesFromEnv,
} from "./secrets.ts";
import { TagSlots } from "./slots.ts";
import { TriggerEngine, type TriggerLimits } from "./triggers.ts";
import { type CreatedToken, createWorkspace } from "./workspace.ts";

export const SERVER_VERSION = "0.1.0";
/** Largest webhook body accepted. */
const HOOK_BODY_BYTES = 256 * 1024;
/** On close, the longest wait for queued alerts to become deliveries (the rest waits in the outbox for the next start). */
const ALERT_DRAIN_MS = 5_000;

export interface ControlPlaneOptions {
  databaseUrl: string;
  port?: number;
  host?: string;
  heartbeatIntervalMs?: number;
  leaseMs?: number;
  /** How often expired leases are looked for. */
  leaseSweepMs?: number;
  /** Origins allowed to call the API from a browser (the web app), with its session cookie. */
  corsOrigins?: string[];
  /** The web session cookie: `SameSite=Lax` (default) suits a web app on the same site; `None` (implies Secure) another site. */
  sessionCookie?: Partial<SessionCookieOptions>;
  /** Where the web app is, for links in notifications (e.g. https://ferry.example.com). */
  webUrl?: string;
  /** The scheduler's horizon and pass interval (tests shorten them). */
  scheduler?: SchedulerOptions;
  /** Deletion of finished runs (with their states and logs) older than `maxAgeMs` (default 30 days; 0 keeps them forever). */
  retention?: { maxAgeMs?: number; periodMs?: number };
  /**
   * `GET /metrics` without a token (for a Prometheus scraper on a private network). By default
   * it needs a bearer token with the read scope of the default workspace: the figures cover
   * every workspace of the installation, which only its operator may see.
   */
  metricsPublic?: boolean;
  /** Per-workspace quotas (see quotas.ts); what is not given keeps its default. */
  quotas?: Partial<Quotas>;
  /**
   * Where outbound calls made for tenants (notification channels) may go. Default: public
   * addresses only. `allowPrivate` opens loopback and private ranges (not cloud metadata
   * services); `allow` lists CIDRs, addresses or host names ("*.corp.example") to open.
   */
  egress?: { allowPrivate?: boolean; allow?: string[] };
  /**
   * The operator's keys for secrets at rest (default: FERRY_SECRET_KEY, FERRY_SECRET_KEY_PREVIOUS,
   * FERRY_SECRET_KEY_FILE; without any, a key file generated next to the SQLite database, or in
   * `.ferry/` on PostgreSQL). See secrets.ts.
   */
  secretKeys?: SecretKeySources;
  /** Bounds on chains of triggered runs and on each trigger's firings (defaults: DEFAULT_TRIGGER_LIMITS). */
  triggerLimits?: Partial<TriggerLimits>;
}

export interface ControlPlane {
  url: string;
  port: number;
  services: Services;
  database: OpenDatabase;
  /** Set on the very first start: the admin token of the default workspace (shown once). */
  bootstrapToken: CreatedToken | undefined;
  close(): Promise<void>;
}

export async function startControlPlane(options: ControlPlaneOptions): Promise<ControlPlane> {
  const opened = await openDatabase(options.databaseUrl);
  // One registry per control plane; every query of this process goes through the timed client.
  const metrics = new ControlPlaneMetrics(logger.child({ component: "metrics" }));
  const database: OpenDatabase = { ...opened, db: metrics.instrument(opened.db) };
  try {
    return await start(database, metrics, options);
  } catch (err) {
    await database.close(); // e.g. the port is taken: do not leave the database open
    throw err;
  }
}

async function start(database: OpenDatabase, metrics: ControlPlaneMetrics, options: ControlPlaneOptions): Promise<ControlPlane> {
  const log = logger.child({ component: "server" });
  const { db } = database;
  const heartbeatIntervalMs = options.heartbeatIntervalMs ?? 5_000;
  const leaseMs = options.leaseMs ?? 15_000;

  // The keys first: a start that cannot read the stored secrets stops here, before serving anything.
  const keys = loadSecretKeyring(options.secretKeys ?? secretKeySourcesFromEnv(), defaultKeyFile(database.url));
  const secrets = keys.keyring;
  if (keys.generated) {
    const shared =
      database.provider === "postgresql" ? "; every replica must use the same key (FERRY_SECRET_KEY or --secret-key-file)" : "";
    log.warn({ file: keys.generated }, `generated a secret key for secrets at rest; keep it with backups${shared}`);
  }
  const migrated = await sealStoredSecrets(db, secrets);
  if (migrated.sealed || migrated.resealed)
    log.info({ ...migrated, kid: secrets.currentKid }, "stored secrets encrypted with the current key");

  let bootstrapToken: CreatedToken | undefined;
  if ((await db.workspace.count()) === 0) {
    bootstrapToken = (await createWorkspace(db, "default", "Default")).admin;
  }

  const replicaId = newReplicaId();
  const quotas: Quotas = { ...DEFAULT_QUOTAS, ...options.quotas };
  const auth = new Authenticator(db, await sessionKey(db, secrets));
  const dispatcher = new Dispatcher(db, logger.child({ component: "dispatcher" }), {
    leaseMs,
    onAssigned: (_run, latencyMs) => metrics.dispatchLatency.observe(latencyMs / 1000),
  });
  const slots = new TagSlots(db, logger.child({ component: "slots" }), database.provider);
  const hub = new AgentHub(db, auth, dispatcher, slots, logger.child({ component: "agents" }), {
    heartbeatIntervalMs,
    leaseMs,
    serverVersion: SERVER_VERSION,
    onPublished: (workspaceId, events) => triggers.onPublished(workspaceId, events),
    onMessage: (direction, type) => metrics.agentMessages.inc({ direction, type }),
    onIngested: (kind, count) => (kind === "events" ? metrics.runEvents : metrics.logLines).inc(count),
    quotas,
  });
  metrics.observe(databaseSources(db, () => hub.connectedCount()));
  const params = new ParamsValidator({ maxParametersBytes: quotas.maxParametersBytes });
  const scheduler = new Scheduler(
    db,
    params,
    () => dispatcher.kick(),
    logger.child({ component: "scheduler" }),
    options.scheduler,
  );
  const backfiller = new Backfiller(db, params, () => dispatcher.kick(), logger.child({ component: "backfills" }));
  const triggers = new TriggerEngine(db, params, () => dispatcher.kick(), logger.child({ component: "triggers" }), {
    ...(options.triggerLimits ? { limits: options.triggerLimits } : {}),
  });
  const egress = egressPolicy(options.egress);
  if (egress.allowPrivate || egress.allowCidrs.length || egress.allowHosts.length)
    log.warn(
      { allowPrivate: egress.allowPrivate, allow: options.egress?.allow ?? [] },
      "outbound calls for tenants (notification channels) may reach private addresses",
    );
  const notifier = new Notifier(db, logger.child({ component: "notifications" }), {
    ...(options.webUrl ? { webUrl: options.webUrl } : {}),
    egress,
    onDelivery: (outcome) => metrics.notificationDeliveries.inc({ outcome }),
    secrets,
  });
  const services: Services = {
    db,
    provider: database.provider,
    quotas,
    runCreates: new RateLimiter(quotas.runCreatesPerSecond, quotas.runCreateBurst),
    auth,
    dispatcher,
    hub,
    slots,
    params,
    scheduler,
    backfiller,
    triggers,
    notifier,
    metrics,
    secrets,
  };
  const reaper = new LeaseReaper(db, dispatcher, slots, logger.child({ component: "leases" }), options.leaseSweepMs ?? 1_000);
  const retention = new RetentionJob(db, logger.child({ component: "retention" }), options.retention);

  const corsOrigins = new Set((options.corsOrigins ?? []).map((o) => new URL(o).origin));
  const sessionCookie: SessionCookieOptions = { sameSite: "Lax", secure: false, ...options.sessionCookie };
  const app = new Hono();
  app.use("/trpc/*", cors({ origin: [...corsOrigins], credentials: true, maxAge: 600 }));
  app.use(
    "/trpc/*",
    bodyLimit({ maxSize: LIMITS.maxFrameBytes, onError: (c) => c.json({ error: "request body too large" }, 413) }),
  );
  // Inbound webhooks: a trigger's secret (X-Ferry-Secret or Authorization: Bearer), a JSON object body.
  app.post(
    `${HOOK_PATH}:id`,
    bodyLimit({ maxSize: HOOK_BODY_BYTES, onError: (c) => c.json({ error: "request body too large" }, 413) }),
    async (c) => {
      const secret = c.req.header("x-ferry-secret") ?? /^Bearer\s+(\S+)$/i.exec(c.req.header("authorization") ?? "")?.[1];
      if (!secret) return c.json({ error: "missing secret (X-Ferry-Secret header)" }, 401);
      const text = await c.req.text();
      let payload: unknown = {};
      if (text.trim()) {
        try {
          payload = JSON.parse(text);
        } catch {
          return c.json({ error: "the body is not valid JSON" }, 400);
        }
      }
      if (payload === null || typeof payload !== "object" || Array.isArray(payload)) {
        return c.json({ error: "the body must be a JSON object" }, 400);
      }
      const key = c.req.header("idempotency-key");
      if (key !== undefined && (key.length < 1 || key.length > 100))
        return c.json({ error: "Idempotency-Key must be 1–100 characters" }, 400);
      try {
        const result = await triggers.webhook(c.req.param("id"), secret, payload, key);
        if (result.status === "unknown") return c.json({ error: "unknown webhook or wrong secret" }, 401);
        if (result.status === "paused") return c.json({ error: "this trigger is paused" }, 409);
        if (result.status === "refused") return c.json({ error: `refused: ${result.reason}` }, 429);
        return c.json({ runId: result.run?.id ?? null, created: result.created }, result.created ? 201 : 200);
      } catch (err) {
        if (err instanceof DomainError) {
          return c.json({ error: err.message, issues: err.issues }, err.code === "QUOTA_EXCEEDED" ? 429 : 422);
        }
        throw err;
      }
    },
  );
  const metricsAccess = options.metricsPublic ? undefined : new MetricsAccess(db, auth);
  // Liveness for anyone (load balancers send no token); the installation's figures (agents
  // connected across all workspaces, replica, leadership) only to those who may read /metrics.
  app.get("/healthz", async (c) => {
    const header = c.req.header("authorization");
    const operator = !metricsAccess || (header !== undefined && !(await metricsAccess.check(header)));
    if (!operator) return c.json({ ok: true, version: SERVER_VERSION });
    return c.json({
      ok: true,
      version: SERVER_VERSION,
      agents: dispatcher.connected().length,
      replicaId,
      leader: leadership.isLeader,
    });
  });
  app.get("/metrics", async (c) => {
    const denied = await metricsAccess?.check(c.req.header("authorization"));
    if (denied) return c.json({ error: denied.error }, denied.status);
    const { contentType, body } = await metrics.render();
    return c.body(body, 200, { "content-type": contentType });
  });
  app.onError(unhandledHttpError(log));
  app.all("/trpc/*", (c) =>
    fetchRequestHandler({
      endpoint: "/trpc",
      req: c.req.raw,
      // A batch of 100 heavy reads would hold the database for every other tenant (quotas.ts).
      maxBatchSize: quotas.maxBatchSize,
      router: appRouter,
      createContext: async ({ resHeaders }): Promise<Context> => {
        const origin = c.req.header("origin");
        const trustedOrigin = !origin || corsOrigins.has(origin) || origin === new URL(c.req.url).origin;
        const result = await authenticate(auth, c.req.header("authorization"), getCookie(c, SESSION_COOKIE), {
          trustedOrigin,
          safeMethod: c.req.method === "GET" || c.req.method === "HEAD",
        });
        return {
          ...services,
          principal: result.ok ? result.principal : undefined,
          authError: result.ok ? undefined : result.reason,
          resHeaders,
          trustedOrigin,
          // Served over HTTPS (directly or behind a TLS-terminating proxy): the cookie is Secure.
          sessionCookie: sessionCookie.secure || !servedOverHttps(c.req.raw) ? sessionCookie : { ...sessionCookie, secure: true },
        };
      },
      onError: ({ error, path }) => {
        if (error.code === "INTERNAL_SERVER_ERROR") log.error({ err: error, path }, "API error");
      },
    }),
  );

  const server = createAdaptorServer({ fetch: app.fetch });
  server.on("upgrade", (req, socket, head) => {
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    if (path !== AGENT_WS_PATH) {
      socket.end("HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n");
      return;
    }
    hub.handleUpgrade(req, socket, head);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 4200, options.host ?? "127.0.0.1", () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = options.host && options.host !== "0.0.0.0" && options.host !== "::" ? options.host : "127.0.0.1";
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${address.port}`;
  // With PostgreSQL, replicas share changes through the database (a run created here may be
  // taken by an agent connected to another replica) and elect one to run the background loops.
  const relay =
    database.provider === "postgresql"
      ? new ChangeRelay(database.url, changesOf(db), replicaId, logger.child({ component: "cluster" }), () => {
          // Notifications missed while the relay was down: wake what they would have woken.
          dispatcher.kick();
          scheduler.kick();
          backfiller.kick();
        })
      : undefined;
  await relay?.start();
  triggers.start();
  notifier.startRules();
  let sessionPruner: NodeJS.Timeout | undefined;
  // Background loops run on one replica at a time; on SQLite, this process.
  const leadership = new Leadership(
    database.provider,
    database.url,
    logger.child({ component: "cluster" }),
    () => {
      // After a takeover, agents get one lease to reconnect before their runs count as lost.
      reaper.start(leaseMs);
      scheduler.start();
      backfiller.start();
      notifier.startDelivery();
      triggers.startSweep();
      retention.start();
      sessionPruner = setInterval(() => {
        auth.pruneSessions().catch((err: unknown) => log.warn({ err }, "could not prune web sessions"));
      }, 3_600_000);
      sessionPruner.unref();
    },
    () => {
      reaper.stop();
      scheduler.stop();
      backfiller.stop();
      notifier.stopDelivery();
      triggers.stopSweep();
      void retention.stop();
      clearInterval(sessionPruner);
    },
  );
  leadership.start();
  dispatcher.kick();
  log.info({ url, database: database.provider, replicaId }, "control plane listening");

  return {
    url,
    port: address.port,
    services,
    database,
    bootstrapToken,
    async close() {
      await leadership.stop();
      triggers.stop();
      notifier.stopRules();
      dispatcher.stop();
      await retention.stop();
      await hub.close();
      // No agent reports any more: the alerts of the states already written become deliveries.
      await notifier.drain(ALERT_DRAIN_MS);
      await relay?.stop();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        if ("closeAllConnections" in server) server.closeAllConnections();
      });
      await database.close();
    },
  };
}

/**
 * The caller's credential: an `Authorization: Bearer` header (API token or session) wins;
 * else the web session cookie. A cookie is sent by the browser whoever made the page, so
 * a state-changing request with it must come from a trusted origin (no cross-site request
 * forgery); reads are protected by CORS, which never lets another origin see the answer.
 */
async function authenticate(
  auth: Authenticator,
  header: string | undefined,
  cookie: string | undefined,
  request: { trustedOrigin: boolean; safeMethod: boolean },
): Promise<AuthResult> {
  if (header) return auth.fromHeader(header);
  if (!cookie) return { ok: false, reason: "not signed in: send Authorization: Bearer <token> or sign in to the web app" };
  if (!request.trustedOrigin && !request.safeMethod) {
    return { ok: false, reason: "the session cookie is not accepted from this origin" };
  }
  return auth.fromSessionCookie(cookie);
}

/**
 * Who may read `/metrics`: a bearer credential with the read scope of the default workspace
 * (401 without one or with a bad one, 403 for another workspace or a narrower scope).
 */
/**
 * Whether the browser reached us over HTTPS: the request's own scheme, the first hop of
 * `X-Forwarded-Proto` (a TLS-terminating proxy), or an `https:` Origin. Used only to *add*
 * the Secure flag, so a forged header can make a cookie stricter, never weaker.
 */
export function servedOverHttps(req: Request): boolean {
  if (new URL(req.url).protocol === "https:") return true;
  const forwarded = req.headers.get("x-forwarded-proto")?.split(",")[0]?.trim().toLowerCase();
  return forwarded === "https" || (req.headers.get("origin")?.startsWith("https://") ?? false);
}

class MetricsAccess {
  private defaultWorkspaceId: string | undefined;

  constructor(
    private readonly db: Db,
    private readonly auth: Authenticator,
  ) {}

  async check(header: string | undefined): Promise<{ status: 401 | 403; error: string } | undefined> {
    const result = await this.auth.fromHeader(header);
    if (!result.ok) return { status: 401, error: result.reason };
    this.defaultWorkspaceId ??= (await this.db.workspace.findUnique({ where: { slug: "default" }, select: { id: true } }))?.id;
    if (result.principal.workspaceId !== this.defaultWorkspaceId) {
      return { status: 403, error: "metrics cover the whole installation: use a token of the default workspace" };
    }
    if (!scopeAllows(result.principal.scopes, "read")) return { status: 403, error: "metrics need a token with the read scope" };
    return undefined;
  }
}
