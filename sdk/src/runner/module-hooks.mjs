// Module loader hook of warm flow processes (plain JS: it runs in Node's loader thread).
// Reports every source file of the user's project that the process loads, stat'ed *before*
// it is read: if the file changes later, its stamp no longer matches and the agent knows the
// process holds old code. Files under node_modules and the SDK's own files are left out.
import { statSync } from "node:fs";
import { fileURLToPath } from "node:url";

let port;
let excluded = [];
const seen = new Set();

export function initialize(data) {
  port = data?.port;
  excluded = Array.isArray(data?.excludedPrefixes) ? data.excludedPrefixes : [];
  // The main thread asks for a barrier after an import: every file posted before it was loaded earlier.
  port?.on("message", (message) => {
    if (message?.type === "flush") port.postMessage({ type: "flushed", id: message.id });
  });
  port?.unref();
}

function userFile(url) {
  if (!url.startsWith("file:")) return undefined;
  const clean = url.replace(/[?#].*$/, "");
  if (clean.includes("/node_modules/") || excluded.some((prefix) => clean.startsWith(prefix))) return undefined;
  return clean;
}

export async function load(url, context, nextLoad) {
  const file = port ? userFile(url) : undefined;
  if (file && !seen.has(file)) {
    seen.add(file);
    try {
      const path = fileURLToPath(file);
      const s = statSync(path);
      port.postMessage({ type: "file", path, size: s.size, mtimeMs: s.mtimeMs, ctimeMs: s.ctimeMs, ino: s.ino });
    } catch {
      // not a plain file (or gone): the load below reports the real problem
    }
  }
  return nextLoad(url, context);
}
