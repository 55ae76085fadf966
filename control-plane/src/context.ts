import type { Db, Provider } from "@ferry/prisma";
import type { AgentHub } from "./agents/hub.ts";
import type { Authenticator, Principal } from "./auth/authenticate.ts";
import type { Backfiller } from "./backfills.ts";
import type { Dispatcher } from "./dispatcher.ts";
import type { ControlPlaneMetrics } from "./metrics.ts";
import type { Notifier } from "./notifications/notifier.ts";
import type { ParamsValidator } from "./params.ts";
import type { Quotas, RateLimiter } from "./quotas.ts";
import type { Scheduler } from "./scheduler.ts";
import type { SecretKeyring } from "./secrets.ts";
import type { TagSlots } from "./slots.ts";
import type { TriggerEngine } from "./triggers.ts";

/** The long-lived parts of a control plane that request handlers use. */
export interface Services {
  db: Db;
  /** Which database `db` talks to (a few filters differ between them). */
  provider: Provider;
  /** Per-workspace quotas, as the operator set them. */
  quotas: Quotas;
  /** The run-creation rate of each workspace (API and webhooks). */
  runCreates: RateLimiter;
  auth: Authenticator;
  dispatcher: Dispatcher;
  hub: AgentHub;
  slots: TagSlots;
  params: ParamsValidator;
  scheduler: Scheduler;
  backfiller: Backfiller;
  triggers: TriggerEngine;
  notifier: Notifier;
  metrics: ControlPlaneMetrics;
  /** The operator's keys for secrets at rest (notification channel settings, the session key). */
  secrets: SecretKeyring;
}

/** How the web session cookie is set: `SameSite=None; Secure` lets a web app on another site use it. */
export interface SessionCookieOptions {
  sameSite: "Lax" | "Strict" | "None";
  secure: boolean;
}

export interface Context extends Services {
  principal: Principal | undefined;
  /** Why authentication failed, when it did (for a precise 401 message). */
  authError: string | undefined;
  /** Headers of the answer (a sign-in sets its cookie here). */
  resHeaders: Headers;
  /** The browser origin of the request is one the control plane trusts (or the request has none). */
  trustedOrigin: boolean;
  sessionCookie: SessionCookieOptions;
}
