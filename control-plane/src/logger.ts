import { logLevelFromEnv } from "@ferry/sdk/protocol";
import { pino } from "pino";

const setting = logLevelFromEnv();

/**
 * The control plane's structured logger: one JSON object per line (`level`, `time`, `msg`,
 * `service` and the context of the line: component, run, agent, workspace). Components take a
 * child (`logger.child({ component })`).
 */
export const logger = pino({ level: setting.level, base: { service: "control-plane" } });
export type Logger = typeof logger;

if (setting.warning) logger.warn(setting.warning);
