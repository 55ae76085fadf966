import { pino } from "pino";

export const logger = pino({ level: process.env.FERRY_LOG_LEVEL ?? "info", base: { service: "agent" } });
export type Logger = typeof logger;
