#!/usr/bin/env node
// The `ferry` command. Ferry ships TypeScript sources; tsx compiles them (and the user's
// flow modules) on the fly, so there is no build step between editing a flow and running it.
import { register } from "tsx/esm/api";

register();
await import("../src/main.ts");
