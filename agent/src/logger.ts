import { logLevelFromEnv } from "@ferry/sdk/protocol";
import { pino } from "pino";

const setting = logLevelFromEnv();

/** The agent's structured logger: one JSON object per line, every line naming the agent (agent.ts). */
export const logger = pino({ level: setting.level, base: { service: "agent" } });
export type Logger = typeof logger;

if (setting.warning) logger.warn(setting.warning);
