import { readFileSync, statSync } from "node:fs";
import { hostname } from "node:os";
import { join, resolve } from "node:path";
import { Agent, type FlowEnvOptions, flowEnvProblems } from "@ferry/agent";
import {
  DEFAULT_QUOTAS,
  defaultKeyFile,
  parseQuotaFlags,
  type Quotas,
  rotateKeyFile,
  Scope,
  SecretKeyring,
  secretKeySourcesFromEnv,
  startControlPlane,
} from "@ferry/control-plane";
import { createFerryClient } from "@ferry/control-plane/client";
import { openDatabase } from "@ferry/prisma";
import { toMs } from "@ferry/sdk";
import { StateType } from "@ferry/sdk/protocol";
import { Command, Option } from "commander";
import { z } from "zod";
import { followBackfill, progressLine } from "./commands/backfill.ts";
import { discoverDeployments } from "./commands/deploy.ts";
import { runDev } from "./commands/dev.ts";
import { describeSchedule, scheduleRows } from "./commands/schedule.ts";
import { EXIT_CODES, followRun } from "./commands/wait.ts";
import { agentApiConfig, apiConfig, CliError, databaseUrl, parseFlags } from "./config.ts";
import { formatLogLine, printJson, printTable } from "./output.ts";
import { buildWeb, startWebServer } from "./web.ts";

const collect = (value: string, previous: string[] = []) => [...previous, value];

const Port = z.coerce.number().int().min(0).max(65_535);
/** A duration flag ("30s", "5m", "2h", or milliseconds), parsed to milliseconds. */
const DurationFlag = z.string().transform((text, ctx) => {
  try {
    return toMs(text);
  } catch (err) {
    ctx.addIssue({ code: "custom", message: err instanceof Error ? err.message : "invalid duration" });
    return z.NEVER;
  }
});
/** `--retention`: how long finished runs are kept, or "0" to keep them forever; at least 1h, so "30m" is never meant as 30 days. */
const RetentionFlag = z.string().transform((text, ctx) => {
  if (text.trim() === "0") return 0;
  const parsed = DurationFlag.safeParse(text);
  if (parsed.success && parsed.data >= 3_600_000) return parsed.data;
  const problem = parsed.success ? "must be at least 1h" : (parsed.error.issues[0]?.message ?? "invalid duration");
  ctx.addIssue({ code: "custom", message: `${problem} (or 0 to keep finished runs forever)` });
  return z.NEVER;
});

/** `--retention` as both `ferry dev` and `ferry server start` take it. */
const RETENTION_OPTION = [
  "--retention <duration>",
  "delete finished runs, their states and logs this long after they end (0 keeps them)",
  "30d",
] as const;

function client(flags: { api?: string; token?: string; tokenFile?: string }) {
  const { apiUrl, token } = apiConfig({ api: flags.api, token: tokenOf(flags) });
  return createFerryClient(apiUrl, token);
}

/**
 * The token from `--token`, else `--token-file`, else the file FERRY_API_TOKEN_FILE names; undefined
 * lets FERRY_API_TOKEN and `.ferry/config.json` apply. A file keeps the token out of `ps` and
 * of shell history, which every user of the machine can read.
 */
export function tokenOf(flags: { token?: string | undefined; tokenFile?: string | undefined }): string | undefined {
  if (flags.token !== undefined && flags.tokenFile !== undefined) throw new CliError("pass --token or --token-file, not both");
  if (flags.token !== undefined) return flags.token;
  const file = flags.tokenFile ?? process.env.FERRY_API_TOKEN_FILE;
  return file === undefined ? undefined : readTokenFile(file);
}

/**
 * Reads a token file: it must be readable by its owner only (like ssh's private keys), so a
 * token written with the default umask is refused rather than silently shared with the machine.
 */
export function readTokenFile(path: string): string {
  let text: string;
  try {
    if (process.platform !== "win32") {
      const mode = statSync(path).mode;
      if (mode & 0o077) {
        throw new CliError(
          `token file ${path} is accessible by group or others (mode ${(mode & 0o777).toString(8)}): chmod 600 ${path}`,
        );
      }
    }
    text = readFileSync(path, "utf8");
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(`cannot read token file ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const token = text.trim();
  if (!token || /\s/.test(token)) throw new CliError(`token file ${path} must hold one token`);
  return token;
}

/** `--param k=v`: the value is JSON when it parses as JSON, else a string. */
export function parseParams(pairs: string[], json: string | undefined): Record<string, unknown> {
  let params: Record<string, unknown> = {};
  if (json) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(json);
    } catch {
      throw new CliError("--params-json is not valid JSON");
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
      throw new CliError("--params-json must be a JSON object");
    params = parsed as Record<string, unknown>;
  }
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new CliError(`--param expects key=value, got "${pair}"`);
    const key = pair.slice(0, eq);
    const raw = pair.slice(eq + 1);
    try {
      params[key] = JSON.parse(raw);
    } catch {
      params[key] = raw;
    }
  }
  return params;
}

/** `--env NAME` / `--env NAME=VALUE` and `--env-prefix P` as the agent's flow environment options, checked. */
function flowEnvOf(entries: string[], prefixes: string[]): FlowEnvOptions {
  const pass: string[] = [];
  const set: Record<string, string> = {};
  for (const entry of entries) {
    const eq = entry.indexOf("=");
    if (eq < 0) pass.push(entry);
    else set[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  const options = { pass, set, prefixes };
  const problems = flowEnvProblems(options);
  if (problems.length) throw new CliError(`invalid --env/--env-prefix:\n${problems.map((p) => `  ${p}`).join("\n")}`);
  return options;
}

function apiOptions(cmd: Command): Command {
  return cmd
    .option("--api <url>", "control plane URL (env FERRY_API_URL)")
    .option("--token <token>", "API token (env FERRY_API_TOKEN; visible in ps: prefer --token-file)")
    .option("--token-file <path>", "file holding the API token, mode 600 (env FERRY_API_TOKEN_FILE)")
    .option("--json", "machine-readable output");
}

export function buildProgram(): Command {
  const program = new Command("ferry").description("Ferry: workflow orchestration for AI and data pipelines").exitOverride();

  program
    .command("dev")
    .description("start a control plane on SQLite, a local agent, and deploy the example flows")
    .option("--port <port>", "API port", "4200")
    .option("--web-port <port>", "web app port (0 disables the web app)", "3000")
    .option("--database-url <url>", "database (env FERRY_DATABASE_URL; default .ferry/ferry.db)")
    .option("--no-examples", "do not deploy the example flows")
    .option(...RETENTION_OPTION)
    .action(async (flags) => {
      const f = parseFlags(
        z.object({
          port: Port,
          webPort: Port,
          databaseUrl: z.string().optional(),
          examples: z.boolean(),
          retention: RetentionFlag,
        }),
        flags,
      );
      const dev = {
        port: f.port,
        webPort: f.webPort,
        databaseUrl: databaseUrl(f.databaseUrl),
        examples: f.examples,
        retention: { maxAgeMs: f.retention },
      };
      await runDev(dev);
    });

  const server = program.command("server").description("the control plane");
  server
    .command("start")
    .description("start the control plane")
    .option("--port <port>", "port to listen on", "4200")
    .option("--host <host>", "interface to listen on", "127.0.0.1")
    .option("--database-url <url>", "database URL: file:<path> (SQLite) or postgres://… (env FERRY_DATABASE_URL)")
    .option("--heartbeat <duration>", "agent heartbeat interval", "5s")
    .option("--lease <duration>", "run lease duration", "15s")
    .option("--cors-origin <origin>", "allow browser calls from this origin (repeatable)", collect)
    .option(
      "--session-cookie <mode>",
      "web session cookie: lax (web app on the same site), none (another site; needs HTTPS), strict",
      "lax",
    )
    .option("--secure-cookies", "mark the session cookie Secure (serve over HTTPS)")
    .option("--web-url <url>", "the web app's URL, for links in notifications")
    .option("--metrics-public", "serve GET /metrics without a token (for a Prometheus scraper on a private network)")
    .option(
      "--allow-private-egress",
      "let notification channels reach loopback and private addresses (cloud metadata services stay refused)",
    )
    .option(
      "--egress-allow <cidr|host>",
      "let notification channels reach this CIDR, address or host name, e.g. 10.1.0.0/16 or hooks.internal (repeatable)",
      collect,
    )
    .option(
      "--secret-key-file <path>",
      "key file for secrets at rest, mode 600 (env FERRY_SECRET_KEY_FILE, or FERRY_SECRET_KEY; default: generated beside the SQLite file)",
    )
    .option("--scheduler-interval <duration>", "time between scheduler passes", "5s")
    .option("--scheduler-horizon <duration>", "how far ahead scheduled runs are created", "1h")
    .option("--trigger-max-depth <n>", "longest chain of runs started by triggers (a longer one is refused)", "10")
    .option("--trigger-rate <n>", "firings per trigger per minute (more are refused)", "60")
    .option(...RETENTION_OPTION)
    .option(
      "--quota <name=value>",
      `a per-workspace quota (repeatable): ${Object.keys(DEFAULT_QUOTAS).join(", ")}; see README, Security model`,
      collect,
    )
    .action(async (flags) => {
      const f = parseFlags(
        z.object({
          port: Port,
          host: z.string().min(1),
          databaseUrl: z.string().optional(),
          heartbeat: DurationFlag,
          lease: DurationFlag,
          corsOrigin: z.array(z.url()).optional(),
          sessionCookie: z.enum(["lax", "none", "strict"]),
          secureCookies: z.boolean().optional(),
          webUrl: z.url().optional(),
          metricsPublic: z.boolean().optional(),
          allowPrivateEgress: z.boolean().optional(),
          egressAllow: z.array(z.string().min(1).max(300)).optional(),
          schedulerInterval: DurationFlag,
          schedulerHorizon: DurationFlag,
          triggerMaxDepth: z.coerce.number().int().min(1).max(1000),
          triggerRate: z.coerce.number().int().min(1).max(1_000_000),
          retention: RetentionFlag,
          quota: z.array(z.string().max(200)).max(50).optional(),
          secretKeyFile: z.string().min(1).optional(),
        }),
        flags,
      );
      let quotas: Quotas;
      try {
        quotas = parseQuotaFlags(f.quota ?? []);
      } catch (err) {
        throw new CliError(err instanceof Error ? err.message : String(err));
      }
      const heartbeatIntervalMs = f.heartbeat;
      const leaseMs = f.lease;
      if (leaseMs <= heartbeatIntervalMs) throw new CliError("--lease must be longer than --heartbeat");
      const cp = await startControlPlane({
        databaseUrl: databaseUrl(f.databaseUrl),
        port: f.port,
        host: f.host,
        heartbeatIntervalMs,
        leaseMs,
        ...(f.corsOrigin ? { corsOrigins: f.corsOrigin } : {}),
        sessionCookie: {
          sameSite: f.sessionCookie === "none" ? "None" : f.sessionCookie === "strict" ? "Strict" : "Lax",
          secure: !!f.secureCookies,
        },
        retention: { maxAgeMs: f.retention },
        scheduler: { intervalMs: Math.max(100, f.schedulerInterval), horizonMs: f.schedulerHorizon },
        ...(f.webUrl ? { webUrl: f.webUrl } : {}),
        metricsPublic: !!f.metricsPublic,
        quotas,
        egress: { allowPrivate: !!f.allowPrivateEgress, allow: f.egressAllow ?? [] },
        secretKeys: {
          ...secretKeySourcesFromEnv(),
          ...(f.secretKeyFile ? { keyFile: resolve(f.secretKeyFile) } : {}),
        },
        triggerLimits: { maxDepth: f.triggerMaxDepth, perMinute: f.triggerRate },
      });
      process.stdout.write(`Ferry control plane listening on ${cp.url}\n`);
      if (cp.bootstrapToken) {
        process.stdout.write(
          `First start: admin token for the default workspace (shown once, keep it safe):\n  ${cp.bootstrapToken.secret}\n`,
        );
      }
      const shutdown = async () => {
        await cp.close();
        process.exit(0);
      };
      process.once("SIGINT", shutdown);
      process.once("SIGTERM", shutdown);
    });

  server
    .command("rotate-key")
    .description("start a new key for secrets at rest; the next start of the control plane re-encrypts with it")
    .option("--secret-key-file <path>", "the key file to rotate (env FERRY_SECRET_KEY_FILE; default: beside the SQLite file)")
    .option("--database-url <url>", "the database whose default key file to rotate (env FERRY_DATABASE_URL)")
    .action((flags) => {
      const f = parseFlags(z.object({ secretKeyFile: z.string().min(1).optional(), databaseUrl: z.string().optional() }), flags);
      const env = secretKeySourcesFromEnv();
      if (env.key && !f.secretKeyFile) {
        // The key lives in the environment: the operator sets the new one there, the old as previous.
        const key = Buffer.from(SecretKeyring.generateKey()).toString("base64");
        process.stdout.write(
          `New secret key (shown once). Restart every control plane with:\n  FERRY_SECRET_KEY=${key}\n  FERRY_SECRET_KEY_PREVIOUS=<the current FERRY_SECRET_KEY>${env.previous ? ",<the keys already there>" : ""}\n` +
            "At start, stored secrets are re-encrypted with the new key; then FERRY_SECRET_KEY_PREVIOUS can be removed.\n",
        );
        return;
      }
      const file = resolve(f.secretKeyFile ?? env.keyFile ?? defaultKeyFile(databaseUrl(f.databaseUrl)));
      const rotated = rotateKeyFile(file);
      process.stdout.write(
        `New secret key ${rotated.kid} written first in ${file} (older keys ${rotated.previousKids.join(", ")} kept to decrypt).\n` +
          "Restart every control plane: at start they re-encrypt stored secrets with the new key; then the older lines can be deleted.\n",
      );
    });

  const web = program.command("web").description("the monitoring web app");
  web
    .command("start")
    .description("build the web app if its sources changed, then serve it")
    .option("--api <url>", "the control plane's URL as browsers reach it (env FERRY_API_URL)")
    .option("--port <port>", "port to listen on", "3000")
    .option("--host <host>", "interface to listen on", "127.0.0.1")
    .action(async (flags) => {
      const f = parseFlags(z.object({ api: z.url().optional(), port: Port, host: z.string().min(1) }), {
        ...flags,
        api: flags.api ?? process.env.FERRY_API_URL,
      });
      const apiUrl = f.api ?? "http://127.0.0.1:4200";
      await buildWeb((line) => process.stdout.write(`${line}\n`));
      const server = await startWebServer({ apiUrl, port: f.port, host: f.host, stdio: "inherit" });
      process.stdout.write(
        `Ferry web app on ${server.url} (control plane ${apiUrl}; start it with --cors-origin ${server.url})\n`,
      );
      const shutdown = async () => {
        await server.stop();
        process.exit(0);
      };
      process.once("SIGINT", shutdown);
      process.once("SIGTERM", shutdown);
    });

  const agent = program.command("agent").description("run flow runs on this machine");
  agent
    .command("start")
    .description("connect to a control plane and run flow runs of the given pools")
    .option("--api <urls>", "control plane URL, or several replicas comma-separated to fail over between (env FERRY_API_URL)")
    .option("--token <token>", "API token with the agent scope (env FERRY_API_TOKEN; visible in ps: prefer --token-file)")
    .option("--token-file <path>", "file holding the agent's API token, mode 600 (env FERRY_API_TOKEN_FILE)")
    .option("--pool <pool>", "work pool to serve (repeatable; default: default)", collect)
    .option("--concurrency <n>", "flow runs at once", "4")
    .option("--name <name>", "agent name", hostname())
    .option("--label <key=value>", "label (repeatable)", collect)
    .option("--work-dir <dir>", "directory deployment entrypoints are relative to", ".")
    .option("--agent-id <id>", "agent id (default: kept in the state directory)")
    .option("--state-dir <dir>", "where the agent keeps its id and journal (default: <work-dir>/.ferry/agents/<name>)")
    .option("--drain-timeout <duration>", "on SIGTERM/SIGINT, time to let running flows finish", "30s")
    .option("--reconnect-max <duration>", "longest wait between reconnect attempts", "15s")
    .option("--result-dir <dir>", "where task results are kept for reuse (default: <work-dir>/.ferry/results)")
    .option("--warm-pool <n>", "idle flow processes kept loaded per entrypoint for warm starts (0: always cold)", "2")
    .option(
      "--env <name[=value]>",
      "give flow processes this variable: NAME passes the agent's value, NAME=VALUE sets one (repeatable)",
      collect,
    )
    .option("--env-prefix <prefix>", "give flow processes every agent variable whose name starts with this (repeatable)", collect)
    .option(
      "--max-runs-per-process <n>",
      "runs one warm process may serve (1: a fresh process per run; more lets user module state persist)",
      "1",
    )
    .action(async (flags) => {
      const f = parseFlags(
        z.object({
          pool: z.array(z.string().regex(/^[A-Za-z0-9_.:-]{1,200}$/, "letters, digits, _ . : -")).optional(),
          concurrency: z.coerce.number().int().min(1).max(1000),
          name: z.string().min(1).max(200),
          label: z.array(z.string().regex(/^[^=]+=.*$/, "expected key=value")).optional(),
          workDir: z.string(),
          agentId: z.string().min(1).max(100).optional(),
          stateDir: z.string().min(1).optional(),
          drainTimeout: DurationFlag,
          reconnectMax: DurationFlag,
          resultDir: z.string().min(1).optional(),
          warmPool: z.coerce.number().int().min(0).max(32),
          maxRunsPerProcess: z.coerce.number().int().min(1).max(10_000),
          api: z.string().optional(),
          token: z.string().optional(),
          tokenFile: z.string().min(1).optional(),
          env: z.array(z.string().min(1)).optional(),
          envPrefix: z.array(z.string()).optional(),
        }),
        flags,
      );
      if (f.token !== undefined) {
        // A long-running process keeps its command line visible to every user of the machine.
        process.stderr.write("agent: --token is visible in ps; use --token-file or FERRY_API_TOKEN instead\n");
      }
      const { apiUrls, token } = agentApiConfig({ api: f.api, token: tokenOf(f) });
      const flowEnv = flowEnvOf(f.env ?? [], f.envPrefix ?? []);
      const labels = Object.fromEntries((f.label ?? []).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
      const a = new Agent({
        apiUrl: apiUrls,
        token,
        name: f.name,
        pools: f.pool ?? ["default"],
        capacity: f.concurrency,
        labels,
        workDir: resolve(f.workDir),
        reconnectMaxMs: f.reconnectMax,
        resultDir: resolve(f.resultDir ?? join(f.workDir, ".ferry", "results")),
        warmPool: f.warmPool,
        maxRunsPerProcess: f.maxRunsPerProcess,
        flowEnv,
        stateDir: resolve(f.stateDir ?? join(f.workDir, ".ferry", "agents", f.name.replace(/[^A-Za-z0-9_.-]/g, "_"))),
        ...(f.agentId ? { agentId: f.agentId } : {}),
      });
      a.start();
      process.stdout.write(
        `Ferry agent ${f.name} serving pools ${(f.pool ?? ["default"]).join(", ")} (concurrency ${f.concurrency}, warm pool ${f.warmPool})\n`,
      );
      const drainMs = f.drainTimeout;
      const shutdown = async () => {
        process.stdout.write("agent: draining\n");
        await a.stop(drainMs);
        process.exit(0);
      };
      process.once("SIGINT", shutdown);
      process.once("SIGTERM", shutdown);
      await a.stopped();
      if (a.fatalError) throw new CliError(a.fatalError);
    });

  apiOptions(program.command("deploy <files...>"))
    .description("register the flows exported by TypeScript files as deployments")
    .option("--pool <pool>", "work pool (default: the flow's workPool option, else default)")
    .option("--tag <tag>", "tag (repeatable)", collect)
    .option("--work-dir <dir>", "directory agents resolve entrypoints against", ".")
    .action(async (files: string[], flags) => {
      const api = client(flags);
      const results = [];
      for (const file of files) {
        const specs = await discoverDeployments(file, { workDir: flags.workDir, pool: flags.pool, tags: flags.tag });
        for (const spec of specs) {
          const d = await api.deployments.upsert.mutate(spec);
          results.push(d);
          if (!flags.json) process.stdout.write(`deployed ${d.name} (${d.entrypoint}, pool ${d.workPool})\n`);
        }
      }
      if (flags.json) printJson(results);
    });

  apiOptions(program.command("run <deployment>"))
    .description("start a flow run of a deployment")
    .option("--param <key=value>", "parameter; the value is parsed as JSON when it can be (repeatable)", collect)
    .option("--params-json <json>", "all parameters as one JSON object")
    .option("--idempotency-key <key>", "return the existing run if this key was used before")
    .option("--wait", "follow the run to its end, streaming states and logs; exit code tells the outcome")
    .option("--no-logs", "with --wait, do not print logs")
    .action(async (deployment: string, flags) => {
      const api = client(flags);
      const parameters = parseParams(flags.param ?? [], flags.paramsJson);
      const run = await api.runs.create.mutate({
        deployment,
        parameters,
        ...(flags.idempotencyKey ? { idempotencyKey: flags.idempotencyKey } : {}),
      });
      if (flags.json && !flags.wait) return printJson(run);
      if (!flags.json) process.stdout.write(`${run.created ? "created" : "found existing"} run ${run.name} (${run.id})\n`);
      if (!flags.wait) return;
      const final = await followRun(api, run.id, { states: true, logs: flags.logs, json: !!flags.json });
      process.exitCode = final in EXIT_CODES ? EXIT_CODES[final as keyof typeof EXIT_CODES] : 1;
    });

  const runs = program.command("runs").description("flow runs");
  apiOptions(runs.command("list"))
    .option("--state <state>", "only runs in this state (repeatable)", collect)
    .option("--deployment <name>", "only runs of this deployment")
    .option("--limit <n>", "how many", "20")
    .action(async (flags) => {
      const f = parseFlags(
        z.object({
          limit: z.coerce.number().int().min(1).max(500),
          state: z.array(z.preprocess((v) => (typeof v === "string" ? v.toUpperCase() : v), StateType)).optional(),
        }),
        flags,
      );
      const page = await client(flags).runs.list.query({
        limit: f.limit,
        ...(f.state ? { state: f.state } : {}),
        ...(flags.deployment ? { deployment: flags.deployment } : {}),
      });
      if (flags.json) return printJson(page);
      printTable(
        page.items.map((r) => ({
          id: r.id,
          name: r.name,
          deployment: r.deployment?.name,
          state: r.stateName,
          attempt: r.attempt,
          created: r.createdAt,
        })),
        ["id", "name", "deployment", "state", "attempt", "created"],
      );
    });
  apiOptions(runs.command("get <id>")).action(async (id: string, flags) => {
    const api = client(flags);
    const run = await api.runs.get.query({ id });
    if (flags.json) {
      const taskRuns = await api.taskRuns.list.query({ flowRunId: id, limit: 5000 });
      const edges = await api.taskRuns.edges.query({ flowRunId: id });
      return printJson({ ...run, taskRuns: taskRuns.items, edges: edges.items });
    }
    process.stdout.write(
      `${run.name} (${run.id})\n  flow: ${run.flow.name}  deployment: ${run.deployment?.name ?? "-"}\n  state: ${run.stateName} (${run.stateType})${run.stateMessage ? `: ${run.stateMessage}` : ""}\n  attempt: ${run.attempt}  agent: ${run.agentName ?? "-"}\n  parameters: ${JSON.stringify(run.parameters)}\n  task runs: ${JSON.stringify(run.taskRunCounts)}\n  history:\n`,
    );
    for (const s of run.states) process.stdout.write(`    ${s.timestamp}  ${s.name.padEnd(14)} ${s.message ?? ""}\n`);
  });
  apiOptions(runs.command("cancel <id>")).action(async (id: string, flags) => {
    const result = await client(flags).runs.cancel.mutate({ id });
    if (flags.json) return printJson(result);
    process.stdout.write(`run ${id}: ${result.state.name}\n`);
  });

  apiOptions(program.command("logs <runId>"))
    .description("print the logs of a flow run")
    .option("--follow", "keep printing until the run ends")
    .action(async (runId: string, flags) => {
      const api = client(flags);
      if (flags.follow) {
        await followRun(api, runId, { states: false, logs: true, json: !!flags.json });
        return;
      }
      let afterId: number | undefined;
      const all = [];
      for (;;) {
        const page = await api.logs.list.query({ flowRunId: runId, limit: 5000, ...(afterId !== undefined ? { afterId } : {}) });
        all.push(...page.items);
        if (page.items.length < 5000 || page.lastId === null) break;
        afterId = page.lastId;
      }
      if (flags.json) return printJson(all);
      for (const l of all) process.stdout.write(`${formatLogLine(l)}\n`);
    });

  const schedule = program.command("schedule").description("schedules: when deployments run by time");
  apiOptions(schedule.command("add <deployment>"))
    .description("add a schedule: --cron (with --timezone) or --every (with --anchor)")
    .option("--cron <expression>", 'cron expression, 5 fields (or 6 with seconds first), e.g. "0 2 * * *"')
    .option("--timezone <tz>", "IANA time zone the cron expression is read in", "UTC")
    .option("--every <duration>", "fixed interval, e.g. 15m, 1h, 1d")
    .option("--anchor <time>", "ISO time the interval counts from (default: now)")
    .option("--param <key=value>", "parameter for the scheduled runs (repeatable)", collect)
    .option("--params-json <json>", "all parameters as one JSON object")
    .option("--catchup <policy>", "missed slots after an outage: all | latest | skip", "latest")
    .option("--grace <duration>", "a run not started this long after its slot is Late", "60s")
    .option("--paused", "create it paused")
    .action(async (deployment: string, flags) => {
      const f = parseFlags(
        z
          .object({
            cron: z.string().min(1).optional(),
            timezone: z.string().min(1),
            every: DurationFlag.optional(),
            anchor: z.iso.datetime({ offset: true }).optional(),
            catchup: z.preprocess((v) => (typeof v === "string" ? v.toUpperCase() : v), z.enum(["ALL", "LATEST", "SKIP"])),
            grace: DurationFlag,
            paused: z.boolean().optional(),
          })
          .refine((x) => (x.cron === undefined) !== (x.every === undefined), "give either --cron or --every")
          .refine((x) => x.every === undefined || x.every >= 1000, "--every must be at least 1s"),
        flags,
      );
      const created = await client(flags).schedules.create.mutate({
        deployment,
        schedule: {
          ...(f.cron ? { cron: f.cron, timezone: f.timezone } : {}),
          ...(f.every !== undefined ? { intervalSeconds: Math.max(1, Math.round(f.every / 1000)) } : {}),
          ...(f.anchor ? { anchor: f.anchor } : {}),
          parameters: parseParams(flags.param ?? [], flags.paramsJson),
          catchup: f.catchup,
          graceSeconds: Math.max(1, Math.round(f.grace / 1000)),
          active: !f.paused,
        },
      });
      if (flags.json) return printJson(created);
      process.stdout.write(
        `schedule ${created.id} for ${created.deployment}: ${describeSchedule(created)}${created.active ? "" : " (paused)"}\n  next: ${created.nextSlots.slice(0, 3).join(", ") || "-"}\n`,
      );
    });
  apiOptions(schedule.command("ls"))
    .description("list schedules with their next slot")
    .option("--deployment <name>", "only this deployment's")
    .action(async (flags) => {
      const list = await client(flags).schedules.list.query(flags.deployment ? { deployment: flags.deployment } : {});
      if (flags.json) return printJson(list);
      printTable(scheduleRows(list), ["id", "deployment", "when", "active", "catchup", "source", "next"]);
    });
  for (const [verb, what] of [
    ["pause", "stop making runs (runs not started yet are removed)"],
    ["resume", "make runs again, from now on"],
    ["rm", "delete a schedule (runs not started yet are removed)"],
  ] as const) {
    apiOptions(schedule.command(`${verb} <id>`))
      .description(what)
      .action(async (id: string, flags) => {
        const api = client(flags).schedules;
        const result =
          verb === "pause"
            ? await api.pause.mutate({ id })
            : verb === "resume"
              ? await api.resume.mutate({ id })
              : await api.delete.mutate({ id });
        if (flags.json) return printJson(result);
        process.stdout.write(`schedule ${id}: ${verb === "rm" ? "deleted" : verb === "pause" ? "paused" : "active"}\n`);
      });
  }

  const notify = program.command("notify").description("alerting: channels, rules, delivery history");
  apiOptions(notify.command("channel-add <kind> <name>"))
    .description("add a channel: slack (--url), pagerduty (--routing-key [--url]) or webhook (--url [--secret])")
    .option("--url <url>", "Slack incoming-webhook URL, webhook URL, or PagerDuty Events endpoint")
    .option("--routing-key <key>", "PagerDuty integration (routing) key")
    .option("--secret <secret>", "webhook signing secret (default: generated, shown once)")
    .action(async (kind: string, name: string, flags) => {
      const f = parseFlags(z.object({ kind: z.enum(["slack", "pagerduty", "webhook"]) }), { kind });
      const api = client(flags).notifications;
      const created =
        f.kind === "slack"
          ? await api.createChannel.mutate({ kind: "slack", name, url: String(flags.url ?? "") })
          : f.kind === "pagerduty"
            ? await api.createChannel.mutate({
                kind: "pagerduty",
                name,
                routingKey: String(flags.routingKey ?? ""),
                ...(flags.url ? { url: String(flags.url) } : {}),
              })
            : await api.createChannel.mutate({
                kind: "webhook",
                name,
                url: String(flags.url ?? ""),
                ...(flags.secret ? { secret: String(flags.secret) } : {}),
              });
      if (flags.json) return printJson(created);
      process.stdout.write(`channel ${created.name} (${created.kind}): ${created.target}\n`);
      if (created.secret) process.stdout.write(`  signing secret (shown once): ${created.secret}\n`);
    });
  apiOptions(notify.command("rule-add <channel>"))
    .description("send these events (of one deployment, or all) to a channel")
    .option("--on <event>", "FAILED | CRASHED | LATE | LONG_RUNNING | RECOVERED (repeatable)", collect)
    .option("--deployment <name>", "only this deployment's runs")
    .option("--longer-than <duration>", "for LONG_RUNNING: how long is too long")
    .action(async (channel: string, flags) => {
      const f = parseFlags(
        z.object({
          on: z
            .array(
              z.preprocess(
                (v) => (typeof v === "string" ? v.toUpperCase() : v),
                z.enum(["FAILED", "CRASHED", "LATE", "LONG_RUNNING", "RECOVERED"]),
              ),
            )
            .min(1, "give --on at least once"),
          longerThan: DurationFlag.optional(),
        }),
        { ...flags, on: flags.on ?? [] },
      );
      const rule = await client(flags).notifications.createRule.mutate({
        channel,
        events: f.on,
        ...(flags.deployment ? { deployment: String(flags.deployment) } : {}),
        ...(f.longerThan !== undefined ? { longRunningSeconds: Math.max(1, Math.round(f.longerThan / 1000)) } : {}),
      });
      if (flags.json) return printJson(rule);
      process.stdout.write(`rule ${rule.id}: ${rule.name}\n`);
    });
  apiOptions(notify.command("ls")).action(async (flags) => {
    const api = client(flags).notifications;
    const [channels, rules] = await Promise.all([api.channels.query(), api.rules.query()]);
    if (flags.json) return printJson({ channels, rules });
    printTable(
      channels.map((c) => ({ id: c.id, name: c.name, kind: c.kind, target: c.target })),
      ["id", "name", "kind", "target"],
    );
    process.stdout.write("\n");
    printTable(
      rules.map((r) => ({ id: r.id, name: r.name, active: r.active ? "yes" : "paused" })),
      ["id", "name", "active"],
    );
  });
  apiOptions(notify.command("history"))
    .option("--deployment <name>", "only this deployment's runs")
    .option("--status <status>", "PENDING | SENT | FAILED")
    .action(async (flags) => {
      const list = await client(flags).notifications.deliveries.query({
        ...(flags.deployment ? { deployment: String(flags.deployment) } : {}),
        ...(flags.status ? { status: String(flags.status).toUpperCase() as "PENDING" | "SENT" | "FAILED" } : {}),
      });
      if (flags.json) return printJson(list);
      printTable(
        list.map((d) => ({
          at: d.createdAt,
          event: d.event,
          run: d.runName ?? "-",
          channel: d.channel,
          status: d.status,
          tries: d.attempts,
          error: d.lastError ?? "",
        })),
        ["at", "event", "run", "channel", "status", "tries", "error"],
      );
    });
  apiOptions(notify.command("test <channelId>")).action(async (id: string, flags) => {
    const r = await client(flags).notifications.testChannel.mutate({ id });
    if (flags.json) return printJson(r);
    process.stdout.write(r.ok ? `sent (HTTP ${r.status})\n` : `failed: ${r.error}\n`);
    if (!r.ok) process.exitCode = 1;
  });

  const trigger = program.command("trigger").description("event triggers: run a deployment when something happens");
  apiOptions(trigger.command("add <deployment>"))
    .description("start <deployment> when a run of --on-run reaches --state, or on calls to a --webhook")
    .option("--on-run <deployment>", "the deployment whose runs trigger this one")
    .option("--state <state>", "state of those runs that triggers (repeatable; default COMPLETED)", collect)
    .option("--webhook", "trigger on POST /api/v1/hooks/<id> with the secret printed once")
    .option("--on-event <name>", "trigger on events flows publish with emitEvent(name, payload)")
    .option("--name <name>", "what the trigger is for")
    .option("--param <key=value>", "fixed parameter (repeatable)", collect)
    .option("--params-json <json>", "fixed parameters as one JSON object")
    .option("--map <param=path>", "parameter from the event: run.id, run.parameters.x, payload.field… (repeatable)", collect)
    .action(async (deployment: string, flags) => {
      const f = parseFlags(
        z
          .object({
            onRun: z.string().min(1).optional(),
            webhook: z.boolean().optional(),
            onEvent: z.string().min(1).optional(),
            state: z.array(z.preprocess((v) => (typeof v === "string" ? v.toUpperCase() : v), StateType)).optional(),
            map: z.array(z.string().regex(/^[^=]+=.+$/, "use --map param=path")).optional(),
          })
          .refine(
            (x) => [x.onRun, x.webhook, x.onEvent].filter(Boolean).length === 1,
            "give one of --on-run <deployment>, --on-event <name> or --webhook",
          ),
        flags,
      );
      const mapping = Object.fromEntries((f.map ?? []).map((m) => [m.slice(0, m.indexOf("=")), m.slice(m.indexOf("=") + 1)]));
      const parameters = parseParams(flags.param ?? [], flags.paramsJson);
      const created = await client(flags).triggers.create.mutate({
        deployment,
        trigger: f.onRun
          ? {
              kind: "run_state",
              source: f.onRun,
              states: f.state ?? ["COMPLETED"],
              parameters,
              mapping,
              ...(flags.name ? { name: flags.name } : {}),
            }
          : f.onEvent
            ? { kind: "event", event: f.onEvent, parameters, mapping, ...(flags.name ? { name: flags.name } : {}) }
            : { kind: "webhook", parameters, mapping, ...(flags.name ? { name: flags.name } : {}) },
      });
      if (flags.json) return printJson(created);
      process.stdout.write(`trigger ${created.id}: ${created.name} → ${created.deployment}\n`);
      if (created.secret) {
        const base = (flags.api ?? process.env.FERRY_API_URL ?? "").replace(/\/+$/, "");
        process.stdout.write(`  POST ${base}${created.path}\n  X-Ferry-Secret: ${created.secret}   (shown once)\n`);
      }
    });
  apiOptions(trigger.command("ls"))
    .option("--deployment <name>", "only triggers that run this deployment")
    .action(async (flags) => {
      const list = await client(flags).triggers.list.query(flags.deployment ? { deployment: flags.deployment } : {});
      if (flags.json) return printJson(list);
      printTable(
        list.map((t) => ({
          id: t.id,
          deployment: t.deployment,
          on:
            t.kind === "webhook"
              ? `webhook ${t.path}`
              : t.kind === "event"
                ? `event ${t.eventName}`
                : `${t.source} ${t.states.join("/")}`,
          active: t.active ? "yes" : "paused",
          "last fired": t.lastFiredAt ?? "-",
          "last refused": t.lastRefusedAt ? `${t.lastRefusedAt}: ${t.lastRefusal ?? ""}` : "-",
        })),
        ["id", "deployment", "on", "active", "last fired", "last refused"],
      );
    });
  for (const verb of ["pause", "resume", "rm"] as const) {
    apiOptions(trigger.command(`${verb} <id>`)).action(async (id: string, flags) => {
      const api = client(flags).triggers;
      const r =
        verb === "pause"
          ? await api.pause.mutate({ id })
          : verb === "resume"
            ? await api.resume.mutate({ id })
            : await api.delete.mutate({ id });
      if (flags.json) return printJson(r);
      process.stdout.write(`trigger ${id}: ${verb === "rm" ? "deleted" : verb === "pause" ? "paused" : "active"}\n`);
    });
  }

  apiOptions(program.command("backfill <deployment>"))
    .description("run a deployment for every slot of a past range (its schedule's, or --cron/--every)")
    .requiredOption("--from <time>", "start of the range (ISO time or date)")
    .requiredOption("--to <time>", "end of the range, included (ISO time or date)")
    .option("--max-active <n>", "runs of the backfill at once", "10")
    .option("--reprocess <which>", "slots that already have a run: none | failed | completed", "none")
    .option("--backwards", "newest slots first")
    .option("--dry-run", "say what would run, create nothing")
    .option("--cron <expression>", "slots from this cron expression instead of the deployment's schedule")
    .option("--timezone <tz>", "time zone of --cron", "UTC")
    .option("--every <duration>", "slots every this long from --from")
    .option("--schedule <id>", "which of the deployment's schedules gives the slots")
    .option("--param <key=value>", "parameter (repeatable)", collect)
    .option("--params-json <json>", "all parameters as one JSON object")
    .option("--no-wait", "return once the backfill is created")
    .action(async (deployment: string, flags) => {
      const Time = z.string().transform((text, ctx) => {
        const d = new Date(/^\d{4}-\d{2}-\d{2}$/.test(text) ? `${text}T00:00:00Z` : text);
        if (Number.isNaN(d.getTime())) {
          ctx.addIssue({ code: "custom", message: `not a time: "${text}" (use 2026-01-31 or 2026-01-31T12:00:00Z)` });
          return z.NEVER;
        }
        return d.toISOString();
      });
      const f = parseFlags(
        z.object({
          from: Time,
          to: Time,
          maxActive: z.coerce.number().int().min(1).max(10_000),
          reprocess: z.enum(["none", "failed", "completed"]),
          every: DurationFlag.optional(),
        }),
        flags,
      );
      const api = client(flags);
      const parameters = flags.param || flags.paramsJson ? parseParams(flags.param ?? [], flags.paramsJson) : undefined;
      const result = await api.backfills.create.mutate({
        deployment,
        from: f.from,
        to: f.to,
        maxActive: f.maxActive,
        reprocess: f.reprocess,
        backwards: !!flags.backwards,
        dryRun: !!flags.dryRun,
        ...(flags.cron ? { cron: flags.cron, timezone: flags.timezone } : {}),
        ...(f.every !== undefined ? { intervalSeconds: Math.max(1, Math.round(f.every / 1000)) } : {}),
        ...(flags.schedule ? { schedule: flags.schedule } : {}),
        ...(parameters ? { parameters } : {}),
      });
      if (result.dryRun || !result.backfill) {
        if (flags.json) return printJson(result);
        process.stdout.write(
          `dry run: ${result.total.toLocaleString("en-US")} slots from ${f.from} to ${f.to}; ${result.alreadyRun} already have a run (reprocess: ${f.reprocess})\n  first: ${result.firstSlots.join(", ")}\n`,
        );
        return;
      }
      const id = String(result.backfill.id);
      if (!flags.wait) {
        if (flags.json) return printJson(result.backfill);
        process.stdout.write(`backfill ${id}: ${result.total} slots of ${deployment}\n`);
        return;
      }
      if (!flags.json) process.stdout.write(`backfill ${id}: ${result.total.toLocaleString("en-US")} slots of ${deployment}\n`);
      const end = await followBackfill(api, id, flags.json ? process.stderr : process.stdout);
      if (flags.json) printJson(end);
      const failed = (end.runs.FAILED ?? 0) + (end.runs.CRASHED ?? 0);
      if (end.status === "CANCELLED") process.exitCode = 3;
      else if (failed) process.exitCode = 1;
    });
  const backfills = program.command("backfills").description("backfills: list, follow, pause, resume, cancel");
  apiOptions(backfills.command("ls"))
    .option("--deployment <name>", "only this deployment's")
    .action(async (flags) => {
      const list = await client(flags).backfills.list.query(flags.deployment ? { deployment: flags.deployment } : {});
      if (flags.json) return printJson(list);
      printTable(
        list.map((b) => ({ id: b.id, deployment: b.deployment, progress: progressLine(b, 20), created: b.createdAt })),
        ["id", "deployment", "progress", "created"],
      );
    });
  apiOptions(backfills.command("watch <id>")).action(async (id: string, flags) => {
    const end = await followBackfill(client(flags), id);
    if (flags.json) printJson(end);
  });
  for (const verb of ["pause", "resume", "cancel"] as const) {
    apiOptions(backfills.command(`${verb} <id>`)).action(async (id: string, flags) => {
      const api = client(flags).backfills;
      const r =
        verb === "pause"
          ? await api.pause.mutate({ id })
          : verb === "resume"
            ? await api.resume.mutate({ id })
            : await api.cancel.mutate({ id });
      if (flags.json) return printJson(r);
      process.stdout.write(`backfill ${id}: ${r.status.toLowerCase()}\n`);
    });
  }

  // An agent id is bound to the token that registered it; an admin frees it for another token.
  apiOptions(agent.command("release <id>"))
    .description("let another agent token of the workspace take this agent id (admin scope)")
    .action(async (id: string, flags) => {
      const result = await client(flags).agents.release.mutate({ agentId: id });
      if (flags.json) return printJson(result);
      process.stdout.write(`released agent id ${id}: the next agent token to connect with it takes it\n`);
    });

  const token = program.command("token").description("API tokens (admin scope)");
  apiOptions(token.command("create"))
    .requiredOption("--name <name>", "what the token is for")
    .addOption(new Option("--scope <scope>", "agent | read | write | admin (repeatable or comma-separated)").argParser(collect))
    .option("--expires-in <duration>", "lifetime, e.g. 30d")
    .action(async (flags) => {
      const f = parseFlags(
        z.object({
          name: z.string().min(1).max(100),
          scope: z
            .array(z.string())
            .default(["read"])
            .transform((v) => v.flatMap((s) => s.split(",")).map((s) => s.trim())),
          expiresIn: DurationFlag.optional(),
        }),
        flags,
      );
      const scopes = parseFlags(z.object({ scope: z.array(Scope).min(1) }), { scope: f.scope }).scope;
      const created = await client(flags).tokens.create.mutate({
        name: f.name,
        scopes,
        ...(f.expiresIn ? { expiresInSeconds: Math.ceil(f.expiresIn / 1000) } : {}),
      });
      if (flags.json) return printJson(created);
      process.stdout.write(
        `created token ${created.id} (${created.scopes.join(",")}); the secret is shown once:\n${created.secret}\n`,
      );
    });
  apiOptions(token.command("list")).action(async (flags) => {
    // Every page: a workspace's tokens, revoked ones included, are few enough to print.
    const api = client(flags);
    const rows = [];
    let cursor: string | undefined;
    do {
      const page = await api.tokens.list.query({ limit: 500, ...(cursor ? { cursor } : {}) });
      rows.push(...page.items);
      cursor = page.nextCursor;
    } while (cursor);
    if (flags.json) return printJson(rows);
    printTable(rows, ["id", "name", "prefix", "scopes", "expiresAt", "revokedAt", "lastUsedAt"]);
  });
  apiOptions(token.command("revoke <id>")).action(async (id: string, flags) => {
    const result = await client(flags).tokens.revoke.mutate({ id });
    if (flags.json) return printJson(result);
    process.stdout.write(`revoked token ${id}\n`);
  });

  const pool = program.command("pool").description("work pools");
  apiOptions(pool.command("set <name>"))
    .description("set a pool's concurrency limit (runs held by its agents at once)")
    .requiredOption("--concurrency-limit <n>", 'a number, or "none"')
    .action(async (name: string, flags) => {
      const f = parseFlags(z.object({ concurrencyLimit: z.union([z.literal("none"), z.coerce.number().int().min(1)]) }), flags);
      const result = await client(flags).workPools.set.mutate({
        name,
        concurrencyLimit: f.concurrencyLimit === "none" ? null : f.concurrencyLimit,
      });
      if (flags.json) return printJson(result);
      process.stdout.write(`pool ${name}: concurrency limit ${result.concurrencyLimit ?? "none"}\n`);
    });
  apiOptions(pool.command("ls")).action(async (flags) => {
    const rows = await client(flags).workPools.list.query();
    if (flags.json) return printJson(rows);
    printTable(rows, ["name", "concurrencyLimit", "updatedAt"]);
  });

  const limit = program.command("limit").description("concurrency limits per task tag, across all runs");
  apiOptions(limit.command("set <tag> <max>"))
    .description("allow at most <max> task runs tagged <tag> at once")
    .action(async (tag: string, max: string, flags) => {
      const f = parseFlags(z.object({ max: z.coerce.number().int().min(0).max(100_000) }), { max });
      const result = await client(flags).tagLimits.set.mutate({ tag, maxConcurrent: f.max });
      if (flags.json) return printJson(result);
      process.stdout.write(`tag ${tag}: at most ${result.maxConcurrent} at once\n`);
    });
  apiOptions(limit.command("ls")).action(async (flags) => {
    const rows = await client(flags).tagLimits.list.query();
    if (flags.json) return printJson(rows);
    printTable(rows, ["tag", "maxConcurrent", "inUse"]);
  });
  apiOptions(limit.command("rm <tag>")).action(async (tag: string, flags) => {
    const result = await client(flags).tagLimits.delete.mutate({ tag });
    if (flags.json) return printJson(result);
    process.stdout.write(`removed the limit of tag ${tag}\n`);
  });

  const workspace = program.command("workspace").description("workspaces (talks to the database directly)");
  workspace
    .command("create <slug>")
    .option("--database-url <url>", "database URL (env FERRY_DATABASE_URL)")
    .option("--json", "machine-readable output")
    .action(async (slug: string, flags) => {
      const f = parseFlags(z.object({ slug: z.string().regex(/^[a-z0-9-]{1,60}$/, "lowercase letters, digits and -") }), {
        slug,
      });
      const { createWorkspace } = await import("@ferry/control-plane");
      const database = await openDatabase(databaseUrl(flags.databaseUrl));
      try {
        const created = await createWorkspace(database.db, f.slug);
        if (flags.json) return printJson(created);
        process.stdout.write(`created workspace ${f.slug}; admin token (shown once):\n${created.admin.secret}\n`);
      } finally {
        await database.close();
      }
    });

  return program;
}
