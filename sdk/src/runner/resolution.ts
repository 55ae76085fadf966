import { register } from "node:module";

let registered = false;

/**
 * Lets flow modules outside a Node project (no node_modules of their own) import
 * `@ferry/sdk` and its dependencies from this installation. Used by the flow process and
 * by `ferry deploy`, which both import user modules.
 */
export function registerFallbackResolution(): void {
  if (registered) return;
  registered = true;
  register(new URL("./fallback-resolve.mjs", import.meta.url), {
    data: { fallbackParent: new URL("../index.ts", import.meta.url).href },
  });
}
