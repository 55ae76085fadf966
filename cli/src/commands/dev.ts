import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { Agent } from "@ferry/agent";
import { type ControlPlaneOptions, createToken, startControlPlane } from "@ferry/control-plane";
import { createFerryClient } from "@ferry/control-plane/client";
import { readLocalConfig, stateDir, writeLocalConfig } from "../config.ts";
import { buildWeb, nextBin, startWebServer, type WebServer } from "../web.ts";
import { discoverDeployments } from "./deploy.ts";

export interface DevOptions {
  port: number;
  webPort: number;
  databaseUrl: string;
  examples: boolean;
  retention?: ControlPlaneOptions["retention"];
}

const EXAMPLES = ["examples/ml-pipeline/pipeline.ts"];

/**
 * `npm start`: the whole system on one machine. A control plane on SQLite, one agent in
 * this process (flow runs still get their own processes), the example flows deployed,
 * and the web app. Tokens are kept in `.ferry/` so restarts reuse them.
 */
export async function runDev(options: DevOptions): Promise<void> {
  const cwd = process.cwd();
  const cp = await startControlPlane({
    databaseUrl: options.databaseUrl,
    port: options.port,
    corsOrigins: [`http://127.0.0.1:${options.webPort}`, `http://localhost:${options.webPort}`],
    ...(options.webPort ? { webUrl: `http://127.0.0.1:${options.webPort}` } : {}),
    ...(options.retention ? { retention: options.retention } : {}),
    // One user on their own machine, API on 127.0.0.1, flows already running their code locally:
    // nothing to protect from a tenant, and a local receiver is what one tests alerts with.
    egress: { allowPrivate: true },
  });
  const { db } = cp.services;
  const workspace = await db.workspace.findUniqueOrThrow({ where: { slug: "default" } });

  // The admin token: created on the very first start and printed once; kept in .ferry/config.json.
  let adminSecret = cp.bootstrapToken?.secret;
  const local = readLocalConfig(cwd);
  if (!adminSecret && local.token && (await cp.services.auth.fromCredential(local.token)).ok) adminSecret = local.token;
  let printToken = !!cp.bootstrapToken;
  if (!adminSecret) {
    adminSecret = (await createToken(db, workspace.id, { name: "dev admin", scopes: ["admin", "write", "read"] })).secret;
    printToken = true;
  }
  writeLocalConfig({ apiUrl: cp.url, token: adminSecret }, cwd);

  const agentTokenFile = join(stateDir(cwd), "agent-token");
  let agentToken = existsSync(agentTokenFile) ? readFileSync(agentTokenFile, "utf8").trim() : "";
  if (!agentToken || !(await cp.services.auth.fromCredential(agentToken)).ok) {
    agentToken = (await createToken(db, workspace.id, { name: "local agent", scopes: ["agent"] })).secret;
    writeFileSync(agentTokenFile, `${agentToken}\n`, { mode: 0o600 });
  }
  const agent = new Agent({
    apiUrl: cp.url,
    token: agentToken,
    name: "local",
    pools: ["default"],
    capacity: 4,
    warmPool: 2,
    workDir: cwd,
    stateDir: join(stateDir(cwd), "agents", "local"),
    resultDir: join(stateDir(cwd), "results"),
  });
  agent.start();

  const deployed: string[] = [];
  if (options.examples) {
    const api = createFerryClient(cp.url, adminSecret);
    for (const file of EXAMPLES) {
      if (!existsSync(resolve(cwd, file))) continue;
      for (const spec of await discoverDeployments(file, { workDir: cwd })) {
        await api.deployments.upsert.mutate(spec);
        deployed.push(spec.name);
      }
    }
  }

  const web = options.webPort ? await startWeb(options.webPort, cp.url) : undefined;

  const lines = [
    "",
    "Ferry is running.",
    `  API:         ${cp.url}  (database: ${cp.database.provider})`,
    ...(web ? [`  Web app:     ${web.url}  (sign in with an API token, e.g. the admin token in .ferry/config.json)`] : []),
    "  Agent:       local (pool default, concurrency 4, warm pool 2)",
    `  Deployments: ${deployed.join(", ") || "(none)"}`,
    ...(printToken
      ? ["", "Admin token (shown once; saved in .ferry/config.json for the ferry CLI here):", `  ${adminSecret}`]
      : []),
    "",
    "Try:  npx ferry run ml-pipeline --param grid='[0.1,0.01,0.001]' --wait",
    "",
  ];
  process.stdout.write(`${lines.join("\n")}\n`);

  const shutdown = async () => {
    await web?.stop();
    await agent.stop(5_000);
    await cp.close();
    process.exit(0);
  };
  process.once("SIGINT", shutdown);
  process.once("SIGTERM", shutdown);
}

async function startWeb(port: number, apiUrl: string): Promise<WebServer | undefined> {
  if (!nextBin()) {
    process.stderr.write("web app: next is not installed; skipping\n");
    return undefined;
  }
  try {
    await buildWeb((line) => process.stdout.write(`${line}\n`));
    return await startWebServer({ apiUrl, port, stdio: "inherit" });
  } catch (err) {
    process.stderr.write(`web app: ${err instanceof Error ? err.message : String(err)}\n`);
    return undefined;
  }
}
