import { agentsRouter } from "./routers/agents.ts";
import { authRouter } from "./routers/auth.ts";
import { backfillsRouter } from "./routers/backfills.ts";
import { deploymentsRouter } from "./routers/deployments.ts";
import { flowsRouter } from "./routers/flows.ts";
import { tagLimitsRouter, workPoolsRouter } from "./routers/limits.ts";
import { liveRouter } from "./routers/live.ts";
import { logsRouter } from "./routers/logs.ts";
import { notificationsRouter } from "./routers/notifications.ts";
import { runsRouter } from "./routers/runs.ts";
import { schedulesRouter } from "./routers/schedules.ts";
import { taskRunsRouter } from "./routers/task-runs.ts";
import { tokensRouter } from "./routers/tokens.ts";
import { triggersRouter } from "./routers/triggers.ts";
import { router } from "./trpc.ts";

export const appRouter = router({
  auth: authRouter,
  flows: flowsRouter,
  deployments: deploymentsRouter,
  runs: runsRouter,
  taskRuns: taskRunsRouter,
  logs: logsRouter,
  agents: agentsRouter,
  tokens: tokensRouter,
  workPools: workPoolsRouter,
  tagLimits: tagLimitsRouter,
  live: liveRouter,
  schedules: schedulesRouter,
  backfills: backfillsRouter,
  triggers: triggersRouter,
  notifications: notificationsRouter,
});

/** The API's type: import it type-only in clients (`import type { AppRouter } from "@ferry/control-plane"`). */
export type AppRouter = typeof appRouter;
