import { randomBytes } from "node:crypto";
import { z } from "zod";
import { changesOf } from "../changes.ts";
import { checkUrl, type EgressPolicy, shownReason } from "../egress.ts";
import { DomainError } from "../errors.ts";
import { newId } from "../ids.ts";
import { DELIVERY_REASONS } from "../notifications/notifier.ts";
import { ALERT_EVENTS, type AlertEvent } from "../notifications/payloads.ts";
import { quotaExceeded } from "../quotas.ts";
import { channelTarget, sealChannelConfig, storedChannelTarget } from "../secrets.ts";
import { router, scoped } from "../trpc.ts";
import { IdInput, parseJson } from "./shared.ts";

const HttpUrl = z.url({ protocol: /^https?$/, error: "an http(s) URL" }).max(2000);

const ChannelInput = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("slack"), name: z.string().min(1).max(100), url: HttpUrl }),
  z.object({
    kind: z.literal("pagerduty"),
    name: z.string().min(1).max(100),
    routingKey: z.string().min(1).max(200),
    /** The Events API endpoint (default PagerDuty's; a proxy or a test receiver otherwise). */
    url: HttpUrl.optional(),
  }),
  z.object({
    kind: z.literal("webhook"),
    name: z.string().min(1).max(100),
    url: HttpUrl,
    /** Signs every delivery (HMAC-SHA256); generated when omitted and shown once. */
    secret: z.string().min(16).max(200).optional(),
  }),
]);

/**
 * Refuses, when a channel is saved, what the egress policy refuses without DNS (a literal private
 * address in any encoding, localhost), so a tenant learns early; sending checks again after
 * resolving, which is the check that counts.
 */
function checkChannelUrl(policy: EgressPolicy, url: string | undefined): void {
  if (url === undefined) return;
  const checked = checkUrl(policy, url);
  if (!checked.ok)
    throw new DomainError(
      "INVALID_PARAMETERS",
      `the channel URL is ${checked.reason} (outbound calls go to public addresses only unless the operator allows more)`,
    );
}

const AlertEventSchema = z.enum(ALERT_EVENTS as [AlertEvent, ...AlertEvent[]]);

export const notificationsRouter = router({
  createChannel: scoped("admin")
    .input(ChannelInput)
    .mutation(async ({ ctx, input }) => {
      const workspaceId = ctx.principal.workspaceId;
      checkChannelUrl(ctx.notifier.egress, input.url);
      const channels = await ctx.db.notificationChannel.count({ where: { workspaceId } });
      if (channels >= ctx.quotas.maxNotificationChannels) {
        throw quotaExceeded(
          "maxNotificationChannels",
          ctx.quotas.maxNotificationChannels,
          `this workspace has ${channels} channels`,
        );
      }
      const secret = input.kind === "webhook" ? (input.secret ?? `fns_${randomBytes(24).toString("base64url")}`) : undefined;
      const config =
        input.kind === "slack"
          ? { url: input.url }
          : input.kind === "pagerduty"
            ? { routingKey: input.routingKey, ...(input.url ? { url: input.url } : {}) }
            : { url: input.url, secret };
      // Stored sealed with the operator's key (secrets.ts): the database never holds the URL or secret in clear.
      const id = newId();
      const configJson = await sealChannelConfig(ctx.secrets, id, input.kind, config);
      try {
        const row = await ctx.db.notificationChannel.create({
          data: { id, workspaceId, name: input.name, kind: input.kind, configJson },
        });
        return {
          id: row.id,
          name: row.name,
          kind: row.kind,
          target: channelTarget(row.kind, config),
          ...(secret ? { secret } : {}),
        };
      } catch (err) {
        if ((err as { code?: string }).code === "P2002")
          throw new DomainError("CONFLICT", `a channel named "${input.name}" exists`);
        throw err;
      }
    }),

  channels: scoped("read").query(async ({ ctx }) => {
    // Bounded by the channels quota (checked on create): one page holds them all.
    const rows = await ctx.db.notificationChannel.findMany({
      where: { workspaceId: ctx.principal.workspaceId },
      orderBy: { createdAt: "asc" },
      take: ctx.quotas.maxNotificationChannels,
    });
    // Never the settings: only where the channel goes (scheme and host), kept in clear for this.
    return rows.map((r) => ({
      id: r.id,
      name: r.name,
      kind: r.kind,
      active: r.active,
      createdAt: r.createdAt,
      target: storedChannelTarget(r.kind, r.configJson),
    }));
  }),

  deleteChannel: scoped("admin")
    .input(IdInput)
    .mutation(async ({ ctx, input }) => {
      const { count } = await ctx.db.notificationChannel.deleteMany({
        where: { id: input.id, workspaceId: ctx.principal.workspaceId },
      });
      if (!count) throw new DomainError("NOT_FOUND", `no channel ${input.id}`);
      return { deleted: input.id };
    }),

  createRule: scoped("write")
    .input(
      z
        .object({
          name: z.string().min(1).max(200).optional(),
          channel: z.string().min(1).max(100),
          /** Only this deployment's runs (default: all of the workspace). */
          deployment: z.string().min(1).max(200).optional(),
          events: z.array(AlertEventSchema).min(1).max(5),
          longRunningSeconds: z
            .number()
            .int()
            .min(1)
            .max(30 * 86_400)
            .optional(),
        })
        .refine((r) => !r.events.includes("LONG_RUNNING") || r.longRunningSeconds !== undefined, {
          message: "LONG_RUNNING needs longRunningSeconds",
          path: ["longRunningSeconds"],
        }),
    )
    .mutation(async ({ ctx, input }) => {
      const workspaceId = ctx.principal.workspaceId;
      const rules = await ctx.db.notificationRule.count({ where: { workspaceId } });
      if (rules >= ctx.quotas.maxNotificationRules) {
        throw quotaExceeded("maxNotificationRules", ctx.quotas.maxNotificationRules, `this workspace has ${rules} rules`);
      }
      const channel = await ctx.db.notificationChannel.findFirst({
        where: { workspaceId, OR: [{ id: input.channel }, { name: input.channel }] },
      });
      if (!channel) throw new DomainError("NOT_FOUND", `no notification channel "${input.channel}"`);
      let deploymentId: string | null = null;
      if (input.deployment) {
        const d = await ctx.db.deployment.findUnique({ where: { workspaceId_name: { workspaceId, name: input.deployment } } });
        if (!d) throw new DomainError("NOT_FOUND", `no deployment named "${input.deployment}"`);
        deploymentId = d.id;
      }
      const row = await ctx.db.notificationRule.create({
        data: {
          id: newId(),
          workspaceId,
          name: input.name ?? `${input.events.join("/")} of ${input.deployment ?? "all deployments"} → ${channel.name}`,
          channelId: channel.id,
          deploymentId,
          eventsJson: JSON.stringify(input.events),
          longRunningSeconds: input.longRunningSeconds ?? null,
        },
      });
      return { id: row.id, name: row.name };
    }),

  rules: scoped("read").query(async ({ ctx }) => {
    const rows = await ctx.db.notificationRule.findMany({
      where: { workspaceId: ctx.principal.workspaceId },
      include: { channel: { select: { name: true, kind: true } } },
      orderBy: { createdAt: "asc" },
      // Bounded by the rules quota (checked on create): one page holds them all.
      take: ctx.quotas.maxNotificationRules,
    });
    return rows.map(({ eventsJson, channel, ...r }) => ({
      ...r,
      events: parseJson<string[]>(eventsJson, []),
      channel: channel.name,
      channelKind: channel.kind,
    }));
  }),

  setRuleActive: scoped("write")
    .input(IdInput.extend({ active: z.boolean() }))
    .mutation(async ({ ctx, input }) => {
      const { count } = await ctx.db.notificationRule.updateMany({
        where: { id: input.id, workspaceId: ctx.principal.workspaceId },
        data: { active: input.active },
      });
      if (!count) throw new DomainError("NOT_FOUND", `no rule ${input.id}`);
      return { id: input.id, active: input.active };
    }),

  deleteRule: scoped("write")
    .input(IdInput)
    .mutation(async ({ ctx, input }) => {
      const { count } = await ctx.db.notificationRule.deleteMany({
        where: { id: input.id, workspaceId: ctx.principal.workspaceId },
      });
      if (!count) throw new DomainError("NOT_FOUND", `no rule ${input.id}`);
      return { deleted: input.id };
    }),

  /** Delivery history, newest first: what was sent where, how it went, retries. */
  deliveries: scoped("read")
    .input(
      z
        .object({
          flowRunId: z.string().max(100).optional(),
          deployment: z.string().max(200).optional(),
          status: z.enum(["PENDING", "SENT", "FAILED"]).optional(),
          limit: z.number().int().min(1).max(500).default(50),
        })
        .default({ limit: 50 }),
    )
    .query(async ({ ctx, input }) => {
      const workspaceId = ctx.principal.workspaceId;
      let runIds: string[] | undefined;
      if (input.deployment) {
        const runs = await ctx.db.flowRun.findMany({
          where: { workspaceId, deployment: { name: input.deployment } },
          select: { id: true },
          orderBy: { createdAt: "desc" },
          take: 1000,
        });
        runIds = runs.map((r) => r.id);
      }
      const rows = await ctx.db.notificationDelivery.findMany({
        where: {
          workspaceId,
          ...(input.flowRunId ? { flowRunId: input.flowRunId } : {}),
          ...(runIds ? { flowRunId: { in: runIds } } : {}),
          ...(input.status ? { status: input.status } : {}),
        },
        include: { channel: { select: { name: true, kind: true } }, rule: { select: { name: true } } },
        orderBy: { createdAt: "desc" },
        take: input.limit,
      });
      return rows.map(({ alertJson, channel, rule, lastError, ...d }) => {
        const alert = parseJson<{ summary?: string; run?: { name?: string } }>(alertJson, {});
        return {
          ...d,
          // Never what a receiver answered: the status and a fixed reason (older rows are reduced to that too).
          lastError: shownReason(lastError, Object.values(DELIVERY_REASONS)),
          channel: channel.name,
          channelKind: channel.kind,
          rule: rule.name,
          runName: alert.run?.name ?? null,
        };
      });
    }),

  /** Sends a test notification through a channel now (and records it). */
  testChannel: scoped("admin")
    .input(IdInput)
    .mutation(async ({ ctx, input }) => {
      const channel = await ctx.db.notificationChannel.findFirst({
        where: { id: input.id, workspaceId: ctx.principal.workspaceId },
      });
      if (!channel) throw new DomainError("NOT_FOUND", `no channel ${input.id}`);
      const result = await ctx.notifier.test(channel);
      changesOf(ctx.db).publish({ kind: "deployments", workspaceId: ctx.principal.workspaceId });
      return result;
    }),
});
