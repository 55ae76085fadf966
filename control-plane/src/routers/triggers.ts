import { JsonObject, StateType } from "@ferry/sdk/protocol";
import { z } from "zod";
import { changesOf } from "../changes.ts";
import { DomainError } from "../errors.ts";
import { newId } from "../ids.ts";
import { newHookSecret } from "../triggers.ts";
import { router, scoped } from "../trpc.ts";
import { IdInput, parseJson } from "./shared.ts";

/** Where a webhook trigger is called (relative to the control plane's URL). */
export const HOOK_PATH = "/api/v1/hooks/";

const Mapping = z.record(
  z.string().min(1).max(200),
  z
    .string()
    .min(1)
    .max(500)
    .regex(/^[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*$/, "a path such as payload.table or run.parameters.grid"),
);

const TriggerInput = z.discriminatedUnion("kind", [
  z.object({
    kind: z.literal("run_state"),
    name: z.string().min(1).max(200).optional(),
    /** Whose runs: a deployment name. */
    source: z.string().min(1).max(200),
    states: z.array(StateType).min(1).max(9).default(["COMPLETED"]),
    parameters: JsonObject.default({}),
    /** {param: "run.id" | "run.parameters.x" | "run.scheduledFor" | …} */
    mapping: Mapping.default({}),
  }),
  z.object({
    kind: z.literal("event"),
    name: z.string().min(1).max(200).optional(),
    /** The name flows publish with emitEvent(name, payload). */
    event: z
      .string()
      .min(1)
      .max(200)
      .regex(/^[A-Za-z0-9_.:/-]+$/, "use letters, digits and _ . : / -"),
    parameters: JsonObject.default({}),
    /** {param: "event.payload.x" | "run.id" (the publishing run) | …} */
    mapping: Mapping.default({}),
  }),
  z.object({
    kind: z.literal("webhook"),
    name: z.string().min(1).max(200).optional(),
    parameters: JsonObject.default({}),
    /** {param: "payload.field.path"} */
    mapping: Mapping.default({}),
  }),
]);

/**
 * A trigger as the API shows it: `lastRefusal`/`lastRefusedAt` say why its last firing was
 * refused (a chain too deep, a cycle, the rate limit); the rate limit's window stays internal.
 */
function present<
  T extends {
    statesJson: string;
    parametersJson: string;
    mappingJson: string;
    secretHash: string | null;
    windowStartedAt: Date | null;
    windowFirings: number;
  },
>(t: T) {
  const {
    statesJson,
    parametersJson,
    mappingJson,
    secretHash: _secretHash,
    windowStartedAt: _windowStartedAt,
    windowFirings: _windowFirings,
    ...rest
  } = t;
  return {
    ...rest,
    states: parseJson<string[]>(statesJson, []),
    parameters: parseJson<Record<string, unknown>>(parametersJson, {}),
    mapping: parseJson<Record<string, string>>(mappingJson, {}),
  };
}

export const triggersRouter = router({
  /** Creates a trigger; a webhook's secret is in the answer and never again. */
  create: scoped("write")
    .input(z.object({ deployment: z.string().min(1).max(200), trigger: TriggerInput }))
    .mutation(async ({ ctx, input }) => {
      const workspaceId = ctx.principal.workspaceId;
      const byName = (name: string) => ctx.db.deployment.findUnique({ where: { workspaceId_name: { workspaceId, name } } });
      const deployment = await byName(input.deployment);
      if (!deployment) throw new DomainError("NOT_FOUND", `no deployment named "${input.deployment}"`);
      const t = input.trigger;
      let sourceDeploymentId: string | null = null;
      let hook: { secret: string; hash: string } | undefined;
      if (t.kind === "run_state") {
        const source = await byName(t.source);
        if (!source) throw new DomainError("NOT_FOUND", `no deployment named "${t.source}"`);
        if (source.id === deployment.id) {
          throw new DomainError(
            "INVALID_PARAMETERS",
            "a deployment cannot be triggered by its own runs (it would start itself forever)",
          );
        }
        sourceDeploymentId = source.id;
      } else {
        hook = newHookSecret();
      }
      const row = await ctx.db.trigger.create({
        data: {
          id: newId(),
          workspaceId,
          deploymentId: deployment.id,
          kind: t.kind,
          name:
            t.name ??
            (t.kind === "run_state"
              ? `after ${t.source} ${t.states.join("/")}`
              : t.kind === "event"
                ? `on event ${t.event}`
                : "webhook"),
          eventName: t.kind === "event" ? t.event : null,
          sourceDeploymentId,
          statesJson: JSON.stringify(t.kind === "run_state" ? t.states : []),
          secretHash: hook?.hash ?? null,
          parametersJson: JSON.stringify(t.parameters),
          mappingJson: JSON.stringify(t.mapping),
        },
      });
      changesOf(ctx.db).publish({ kind: "deployments", workspaceId });
      return {
        ...present(row),
        deployment: deployment.name,
        ...(hook ? { secret: hook.secret, path: `${HOOK_PATH}${row.id}` } : {}),
      };
    }),

  list: scoped("read")
    .input(z.object({ deployment: z.string().max(200).optional() }).default({}))
    .query(async ({ ctx, input }) => {
      const workspaceId = ctx.principal.workspaceId;
      const rows = await ctx.db.trigger.findMany({
        where: { workspaceId, ...(input.deployment ? { deployment: { name: input.deployment } } : {}) },
        include: { deployment: { select: { name: true } } },
        orderBy: { createdAt: "asc" },
        take: 1000,
      });
      const sources = await ctx.db.deployment.findMany({
        where: { id: { in: rows.flatMap((r) => (r.sourceDeploymentId ? [r.sourceDeploymentId] : [])) } },
        select: { id: true, name: true },
      });
      const sourceName = new Map(sources.map((s) => [s.id, s.name]));
      return rows.map(({ deployment, ...t }) => ({
        ...present(t),
        deployment: deployment.name,
        source: t.sourceDeploymentId ? (sourceName.get(t.sourceDeploymentId) ?? null) : null,
        path: t.kind === "webhook" ? `${HOOK_PATH}${t.id}` : null,
      }));
    }),

  pause: scoped("write")
    .input(IdInput)
    .mutation(async ({ ctx, input }) => {
      const { count } = await ctx.db.trigger.updateMany({
        where: { id: input.id, workspaceId: ctx.principal.workspaceId },
        data: { active: false },
      });
      if (!count) throw new DomainError("NOT_FOUND", `no trigger ${input.id}`);
      changesOf(ctx.db).publish({ kind: "deployments", workspaceId: ctx.principal.workspaceId });
      return { id: input.id, active: false };
    }),

  resume: scoped("write")
    .input(IdInput)
    .mutation(async ({ ctx, input }) => {
      const { count } = await ctx.db.trigger.updateMany({
        where: { id: input.id, workspaceId: ctx.principal.workspaceId },
        data: { active: true },
      });
      if (!count) throw new DomainError("NOT_FOUND", `no trigger ${input.id}`);
      changesOf(ctx.db).publish({ kind: "deployments", workspaceId: ctx.principal.workspaceId });
      return { id: input.id, active: true };
    }),

  delete: scoped("write")
    .input(IdInput)
    .mutation(async ({ ctx, input }) => {
      const { count } = await ctx.db.trigger.deleteMany({ where: { id: input.id, workspaceId: ctx.principal.workspaceId } });
      if (!count) throw new DomainError("NOT_FOUND", `no trigger ${input.id}`);
      changesOf(ctx.db).publish({ kind: "deployments", workspaceId: ctx.principal.workspaceId });
      return { deleted: input.id };
    }),
});
