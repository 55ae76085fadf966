/**
 * The web app as the CLI runs it: a production build (`next build`, redone only when the
 * sources changed) served by `next start`, told where the control plane is through
 * FERRY_API_URL at request time. Used by `ferry dev`, `ferry web start` and the browser tests.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const WEB_DIR = join(REPO_ROOT, "web");
const STAMP = join(WEB_DIR, ".next", "ferry-source-hash");
/** Not sources: build output, dependencies, screenshots, and files `next build` itself (re)writes. */
const HASH_SKIP = new Set([".next", "node_modules", "test-results", "next-env.d.ts"]);

export function nextBin(): string | undefined {
  try {
    return createRequire(join(WEB_DIR, "package.json")).resolve("next/dist/bin/next");
  } catch {
    return undefined;
  }
}

function listFiles(dir: string, keep: (name: string) => boolean, out: string[] = []): string[] {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (HASH_SKIP.has(entry.name) || entry.name.endsWith(".tsbuildinfo")) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) listFiles(path, keep, out);
    else if (entry.isFile() && keep(entry.name)) out.push(path);
  }
  return out;
}

/** A sha256 over web/ and the control plane's sources (whose AppRouter type the web app compiles against). */
export function webSourceHash(): string {
  const files = [
    ...listFiles(WEB_DIR, () => true),
    ...listFiles(join(REPO_ROOT, "control-plane/src"), (name) => name.endsWith(".ts")),
  ].sort();
  const hash = createHash("sha256");
  for (const file of files) {
    hash.update(relative(REPO_ROOT, file));
    hash.update("\0");
    hash.update(readFileSync(file));
    hash.update("\0");
  }
  return hash.digest("hex");
}

/**
 * `next build` in web/, unless web/.next holds a build of exactly the current sources.
 * Resolves to the seconds it took (0: up to date). Asynchronous: `ferry dev` builds while its
 * control plane and agent keep serving in the same process.
 */
export async function buildWeb(log: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): Promise<number> {
  const bin = nextBin();
  if (!bin) throw new Error("the web app's dependencies are not installed (npm install)");
  const sourceHash = webSourceHash();
  if (existsSync(join(WEB_DIR, ".next/BUILD_ID")) && existsSync(STAMP) && readFileSync(STAMP, "utf8").trim() === sourceHash) {
    return 0;
  }
  // A failed or interrupted build leaves no stamp that a later, equal source tree could match.
  rmSync(STAMP, { force: true });
  log("web app: building (next build; only after its sources change)…");
  const started = Date.now();
  const child = spawn(process.execPath, [bin, "build"], {
    cwd: WEB_DIR,
    env: { ...process.env, NEXT_TELEMETRY_DISABLED: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (c: Buffer) => {
    output += c.toString();
  });
  child.stderr?.on("data", (c: Buffer) => {
    output += c.toString();
  });
  const { code, signal, error } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>(
    (resolve) => {
      child.once("error", (err) => resolve({ code: null, signal: null, error: err }));
      child.once("close", (c, s) => resolve({ code: c, signal: s }));
    },
  );
  const seconds = (Date.now() - started) / 1000;
  if (code !== 0) {
    const why = error ? String(error) : `exit ${code ?? signal}`;
    throw new Error(`next build failed (${why}, ${seconds.toFixed(1)}s):\n${output}`);
  }
  // The hash taken before the build: an edit made while it ran makes the next call build again.
  writeFileSync(STAMP, `${sourceHash}\n`);
  log(`web app: built in ${seconds.toFixed(1)} s`);
  return seconds;
}

export interface WebServer {
  url: string;
  port: number;
  child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

/** `next start` on host:port with the control plane at `apiUrl`; resolves once it answers. */
export async function startWebServer(options: {
  apiUrl: string;
  port: number;
  host?: string;
  /** Where its output goes: "pipe" keeps it for output(); "inherit" shows it. */
  stdio?: "pipe" | "inherit";
  timeoutMs?: number;
}): Promise<WebServer> {
  const bin = nextBin();
  if (!bin) throw new Error("the web app's dependencies are not installed (npm install)");
  const host = options.host ?? "127.0.0.1";
  const child = spawn(process.execPath, [bin, "start", "-p", String(options.port), "-H", host], {
    cwd: WEB_DIR,
    env: { ...process.env, FERRY_API_URL: options.apiUrl, NEXT_TELEMETRY_DISABLED: "1" },
    stdio: ["ignore", options.stdio === "inherit" ? "ignore" : "pipe", options.stdio === "inherit" ? "inherit" : "pipe"],
    // Its own process group, so stop() also ends any worker it starts.
    detached: true,
  });
  let out = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    out += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    out += chunk.toString();
  });
  const running = () => child.exitCode === null && child.signalCode === null;
  const exited = new Promise<void>((res) => child.once("exit", () => res()));
  const signal = (sig: NodeJS.Signals) => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, sig);
    } catch {
      // already gone
    }
  };
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${options.port}`;
  const web: WebServer = {
    url,
    port: options.port,
    child,
    output: () => out,
    async stop() {
      if (running()) {
        signal("SIGTERM");
        const timer = setTimeout(() => signal("SIGKILL"), 10_000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  for (;;) {
    if (!running()) throw new Error(`next start exited before answering:\n${out}`);
    try {
      await fetch(`${url}/sign-in`, { redirect: "manual", signal: AbortSignal.timeout(5_000) });
      return web;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await web.stop();
      throw new Error(`next start did not answer on ${url} in time:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
