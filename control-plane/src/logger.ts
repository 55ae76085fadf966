import { pino } from "pino";

/** The control plane's structured logger; components take a child (`logger.child({ component })`). */
export const logger = pino({
  level: process.env.FERRY_LOG_LEVEL ?? "info",
  base: { service: "control-plane" },
});
export type Logger = typeof logger;
