export * from "./agent.ts";
export * from "./common.ts";
export * from "./events.ts";
export * from "./ipc.ts";
export * from "./parse.ts";
