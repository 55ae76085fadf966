/**
 * End-to-end harness: runs `ferry` as a user would, as separate processes over real
 * sockets, against a real SQLite file or a fresh PostgreSQL database.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { type AddressInfo, connect, createServer, type Server as NetServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, before } from "node:test";
import { fileURLToPath } from "node:url";
import { createFerryClient, type FerryClient } from "@ferry/control-plane/client";
import pg from "pg";

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const FERRY_BIN = join(REPO, "cli/bin/ferry.js");
export const PG_ADMIN_URL = process.env.FERRY_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

export type Provider = "sqlite" | "postgresql";

export interface Proc {
  child: ChildProcess;
  output(): string;
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

const live = new Set<Proc>();

/** FERRY_CPU_PROF_DIR=<dir>: every `ferry` process started here writes a V8 CPU profile there when it exits. */
const PROFILE = process.env.FERRY_CPU_PROF_DIR ? ["--cpu-prof", `--cpu-prof-dir=${process.env.FERRY_CPU_PROF_DIR}`] : [];

export function spawnFerry(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}): Proc {
  const child = spawn(process.execPath, [...PROFILE, FERRY_BIN, ...args], {
    cwd: options.cwd ?? REPO,
    env: { ...process.env, FERRY_LOG_LEVEL: "info", ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  const listeners = new Set<() => void>();
  const onData = (chunk: Buffer) => {
    out += chunk.toString();
    for (const l of listeners) l();
  };
  child.stdout?.on("data", onData);
  child.stderr?.on("data", onData);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
    child.on("exit", (code, signal) => {
      for (const l of listeners) l();
      res({ code, signal });
    }),
  );
  const proc: Proc = {
    child,
    output: () => out,
    waitFor(pattern, timeoutMs = 30_000) {
      return new Promise((res, rej) => {
        const check = () => {
          const m = out.match(pattern);
          if (m) {
            cleanup();
            res(m);
          } else if (child.exitCode !== null || child.signalCode !== null) {
            cleanup();
            rej(new Error(`process exited before printing ${pattern}:\n${out}`));
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          rej(new Error(`timed out waiting for ${pattern}:\n${out}`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        listeners.add(check);
        check();
      });
    },
    exited,
    async stop(signal = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill(signal);
        const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
        await exited;
        clearTimeout(timer);
      }
      live.delete(proc);
    },
  };
  live.add(proc);
  return proc;
}

/** Runs a ferry command to completion. */
export async function ferry(
  args: string[],
  options: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<{ code: number | null; output: string }> {
  const proc = spawnFerry(args, options);
  const timer = setTimeout(() => proc.child.kill("SIGKILL"), options.timeoutMs ?? 120_000);
  const { code } = await proc.exited;
  clearTimeout(timer);
  live.delete(proc);
  return { code, output: proc.output() };
}

export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((p) => p.stop()));
}

export interface TestDatabase {
  url: string;
  drop(): Promise<void>;
}

/** Whether a PostgreSQL server answers; CI sets FERRY_REQUIRE_POSTGRES=1 so a missing server fails instead of skipping. */
export async function postgresUnavailable(): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: 3_000 });
  try {
    await client.connect();
    await client.end();
    return undefined;
  } catch (err) {
    const reason = `PostgreSQL not reachable at ${PG_ADMIN_URL}: ${err instanceof Error ? err.message : String(err)}`;
    if (process.env.FERRY_REQUIRE_POSTGRES === "1") throw new Error(`${reason} (FERRY_REQUIRE_POSTGRES=1)`);
    return reason;
  }
}

export async function createDatabase(provider: Provider, dir: string): Promise<TestDatabase> {
  if (provider === "sqlite") return { url: `file:${join(dir, "ferry.db")}`, drop: async () => {} };
  const name = `ferry_e2e_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${name}"`);
  await admin.end();
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: PG_ADMIN_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await c.end();
    },
  };
}

/** A temporary project directory holding the fixture flows (under flows/). */
export function makeProject(fixtures = join(REPO, "tests/e2e/fixtures")): string {
  const dir = mkdtempSync(join(tmpdir(), "ferry-e2e-"));
  cpSync(fixtures, join(dir, "flows"), { recursive: true });
  // Flow modules are ES modules, as in any TypeScript project of today.
  writeFileSync(join(dir, "package.json"), `${JSON.stringify({ name: "e2e-project", private: true, type: "module" })}\n`);
  return dir;
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export interface Server {
  url: string;
  port: number;
  adminToken: string;
  proc: Proc;
  api: FerryClient;
  env: Record<string, string>;
  databaseUrl: string;
  args: string[];
}

export async function startServer(databaseUrl: string, extra: string[] = []): Promise<Server> {
  const proc = spawnFerry(["server", "start", "--port", "0", "--database-url", databaseUrl, ...extra]);
  const [, url] = (await proc.waitFor(/listening on (http:\/\/\S+)/)) as unknown as [string, string];
  const [, adminToken] = (await proc.waitFor(/shown once, keep it safe\):\n\s+(fry_\S+)/)) as unknown as [string, string];
  return {
    url,
    port: Number(new URL(url).port),
    adminToken,
    proc,
    api: createFerryClient(url, adminToken),
    env: { FERRY_API_URL: url, FERRY_API_TOKEN: adminToken },
    databaseUrl,
    args: extra,
  };
}

/** Another control-plane process on an initialised database (it prints no admin token; it uses `first`'s). */
export async function startReplica(
  first: Server,
  extra: string[] = first.args,
): Promise<{ proc: Proc; url: string; api: FerryClient }> {
  const proc = spawnFerry(["server", "start", "--port", "0", "--database-url", first.databaseUrl, ...extra]);
  const [, url] = (await proc.waitFor(/listening on (http:\/\/\S+)/)) as unknown as [string, string];
  return { proc, url, api: createFerryClient(url, first.adminToken) };
}

/** Starts the control plane again on the same port and database (after a kill). */
export async function restartServer(server: Server): Promise<Server> {
  const proc = spawnFerry([
    "server",
    "start",
    "--port",
    String(server.port),
    "--database-url",
    server.databaseUrl,
    ...server.args,
  ]);
  await proc.waitFor(/listening on (http:\/\/\S+)/);
  server.proc = proc;
  return server;
}

/**
 * A TCP proxy between an agent and the control plane whose connections a test can cut,
 * refusing new ones for a while: a network partition on one machine.
 */
export class TcpProxy {
  private readonly sockets = new Set<Socket>();
  private readonly server: NetServer;
  private refuseUntil = 0;
  port = 0;

  constructor(private readonly targetPort: number) {
    this.server = createServer((client) => {
      if (Date.now() < this.refuseUntil) {
        client.destroy();
        return;
      }
      const upstream = connect(this.targetPort, "127.0.0.1");
      for (const [a, b] of [
        [client, upstream],
        [upstream, client],
      ] as const) {
        this.sockets.add(a);
        a.on("error", () => b.destroy());
        a.on("close", () => {
          this.sockets.delete(a);
          b.destroy();
        });
        a.pipe(b);
      }
    });
  }

  async start(): Promise<string> {
    await new Promise<void>((res) => this.server.listen(0, "127.0.0.1", () => res()));
    this.port = (this.server.address() as AddressInfo).port;
    return `http://127.0.0.1:${this.port}`;
  }

  /** Drops every open connection and refuses new ones for `ms`. */
  cut(ms: number): void {
    this.refuseUntil = Date.now() + ms;
    for (const s of this.sockets) s.destroy();
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((res) => this.server.close(() => res()));
  }
}

export interface FlowProcessInfo {
  pid: number;
  /** The run it runs; undefined for a warm process waiting in its agent's pool. */
  flowRunId: string | undefined;
  /** Started by the warm pool (ahead of its run). */
  warm: boolean;
  /** A warm process prepared and waiting for a run (`ferry-flow loading <agent>` while it prepares). */
  idle: boolean;
  /** The agent that started it (FERRY_AGENT_NAME). */
  agent: string | undefined;
}

/**
 * Flow processes alive on this machine: cold ones carry FERRY_FLOW_RUN_ID in their environment,
 * warm ones FERRY_FLOW_WARM; the runner sets the title `ferry-flow run <id>` while it runs a
 * run and `ferry-flow warm <agent>` while it waits in an agent's pool (flowRunId undefined).
 */
export function flowProcesses(): FlowProcessInfo[] {
  const found: FlowProcessInfo[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const env = readFileSync(`/proc/${entry}/environ`, "utf8");
      const fromEnv = /(?:^|\0)FERRY_FLOW_RUN_ID=([^\0]+)/.exec(env)?.[1];
      const warm = /(?:^|\0)FERRY_FLOW_WARM=1(?:\0|$)/.test(env);
      if (!fromEnv && !warm) continue;
      const title = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0")[0] ?? "";
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      if (/ Z /.test(stat.slice(stat.lastIndexOf(")")))) continue; // a zombie has ended
      const running = /^ferry-flow run (\S+)/.exec(title)?.[1];
      const agent = /(?:^|\0)FERRY_AGENT_NAME=([^\0]+)/.exec(env)?.[1];
      const idle = warm && title.startsWith("ferry-flow warm ");
      found.push({ pid: Number(entry), flowRunId: running ?? fromEnv, warm, idle, agent });
    } catch {
      // the process ended while we looked
    }
  }
  return found;
}

export async function createToken(server: Server, scopes: ("agent" | "read" | "write" | "admin")[], name = scopes.join("-")) {
  return server.api.tokens.create.mutate({ name, scopes });
}

export async function startAgent(
  server: Server,
  options: {
    name: string;
    pools?: string[];
    workDir: string;
    concurrency?: number;
    token?: string;
    /** Connect here instead of the server's URL (e.g. through a TcpProxy). */
    apiUrl?: string;
    extra?: string[];
  },
): Promise<Proc> {
  const token = options.token ?? (await createToken(server, ["agent"], `agent-${options.name}`)).secret;
  const api = options.apiUrl ?? server.url;
  // As an operator would: the token in a file only its owner reads, not on the command line (ps).
  const tokenFile = join(mkdtempSync(join(tmpdir(), "ferry-token-")), "agent.token");
  writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
  const args = [
    "agent",
    "start",
    "--api",
    api,
    "--token-file",
    tokenFile,
    "--name",
    options.name,
    "--work-dir",
    options.workDir,
    ...(options.extra ?? []),
  ];
  for (const p of options.pools ?? ["default"]) args.push("--pool", p);
  args.push("--concurrency", String(options.concurrency ?? 4));
  const proc = spawnFerry(args);
  await proc.waitFor(/connected to the control plane/);
  return proc;
}

export async function waitUntil<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export const PROVIDERS: Provider[] = ["sqlite", "postgresql"];

export interface Suite {
  project: string;
  database: TestDatabase;
  server: Server;
}

/**
 * Registers before/after hooks that give a suite a temporary project, a fresh database of
 * `provider` and a control plane on it, then run `setup` (agents, deployments). Everything
 * is stopped and deleted afterwards. The returned object is filled in by the before hook.
 */
export function useServer(
  provider: Provider,
  skip: string | undefined,
  setup?: (suite: Suite) => Promise<void>,
  options: { fixtures?: string; serverArgs?: string[] } = {},
): Suite {
  const suite = {} as Suite;
  before(async () => {
    if (skip) return;
    suite.project = makeProject(options.fixtures);
    suite.database = await createDatabase(provider, suite.project);
    suite.server = await startServer(suite.database.url, options.serverArgs);
    await setup?.(suite);
  });
  after(async () => {
    await stopAll();
    if (skip) return;
    await suite.database.drop();
    removeDir(suite.project);
  });
  return suite;
}

/** Deploys fixture flows of a suite's project (default flows/train.ts). */
export async function deployFixtures(suite: Suite, extra: string[] = [], file = "flows/train.ts"): Promise<void> {
  const deployed = await ferry(["deploy", file, ...extra], { cwd: suite.project, env: suite.server.env });
  if (deployed.code !== 0) throw new Error(`ferry deploy failed:\n${deployed.output}`);
}
