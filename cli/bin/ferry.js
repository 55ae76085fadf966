#!/usr/bin/env node
// The `ferry` command. Ferry ships TypeScript sources; tsx compiles them (and the user's
// flow modules) on the fly, so there is no build step between editing a flow and running it.
import { register } from "tsx/esm/api";

// `ferry dev` prints its own summary; keep the components' JSON logs to warnings unless asked.
if (process.argv[2] === "dev") process.env.FERRY_LOG_LEVEL ??= "warn";

register();
await import("../src/main.ts");
