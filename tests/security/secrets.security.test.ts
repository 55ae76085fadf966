/**
 * Secrets stay where they belong (DESIGN.md invariant 11): flow processes never see the agent's
 * credentials, tokens need not be on a command line, secrets at rest are encrypted with the
 * operator's key and list APIs return none of them.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { createFerryClient } from "@ferry/control-plane/client";
import Database from "better-sqlite3";
import pg from "pg";
import {
  deployFixtures,
  ferry,
  PROVIDERS,
  type Provider,
  postgresUnavailable,
  REPO,
  restartServer,
  spawnFerry,
  waitUntil,
} from "../e2e/harness.ts";
import { type Tenants, useTenants } from "./tenants.ts";

const FIXTURES = join(REPO, "tests/security/fixtures-secrets");
const AWS_SECRET = "aws-secret-0123456789-do-not-print";
const SLACK_PATH = "/services/T000/B000/slack-path-secret-123";
const WEBHOOK_SECRET = "webhook-signing-secret-0123456789";
const ROUTING_KEY = "pagerduty-routing-key-0123456789-zQxW";

/** A local receiver that counts the requests it gets per path. */
async function receiver(): Promise<{ url: string; hits: string[]; close(): Promise<void> }> {
  const hits: string[] = [];
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      hits.push(req.url ?? "/");
      res.writeHead(req.url === "/pd" ? 202 : 200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    hits,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** Every text column of the rows that hold secrets, read straight from the database (no API). */
async function storedText(provider: Provider, databaseUrl: string): Promise<{ channels: string[]; sessionKey: string }> {
  const query = async (sql: string): Promise<Record<string, string>[]> => {
    if (provider === "sqlite") {
      const db = new Database(databaseUrl.slice("file:".length), { readonly: true });
      try {
        return db.prepare(sql).all() as Record<string, string>[];
      } finally {
        db.close();
      }
    }
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      return (await client.query(sql)).rows as Record<string, string>[];
    } finally {
      await client.end();
    }
  };
  const channels = (await query(`SELECT "configJson" FROM "NotificationChannel"`)).map((r) => String(r.configJson));
  const setting = await query(`SELECT "value" FROM "Setting" WHERE "key" = 'session.signingKey'`);
  return { channels, sessionKey: String(setting[0]?.value ?? "") };
}

for (const provider of PROVIDERS) {
  const skip = provider === "postgresql" ? await postgresUnavailable() : undefined;
  describe(`secrets (${provider})`, { skip }, () => {
    let agentToken = "";
    let rx: Awaited<ReturnType<typeof receiver>>;
    // The operator's key in a file of its own (rotated below); fresh per suite.
    const keyDir = mkdtempSync(join(tmpdir(), "ferry-key-"));
    const keyFile = join(keyDir, "secret.key");
    writeFileSync(keyFile, `${randomBytes(32).toString("base64")}\n`, { mode: 0o600 });
    before(async () => {
      rx = await receiver();
    });
    after(async () => {
      await rx?.close();
      rmSync(keyDir, { recursive: true, force: true });
    });
    const t: Tenants = useTenants(
      provider,
      skip,
      async (s) => {
        await deployFixtures(s, [], "flows/env.ts");
        await s.victim.api.deployments.upsert.mutate({
          name: "print-env-extras",
          flowName: "print-env",
          entrypoint: "flows/env.ts",
          paramsSchema: { type: "object" },
          workPool: "extras",
        });
        agentToken = (await s.victim.api.tokens.create.mutate({ name: "agent", scopes: ["agent"] })).secret;
        // The agents' environment holds their token and another credential, as on a real server.
        const env = { FERRY_API_TOKEN: agentToken, AWS_SECRET_ACCESS_KEY: AWS_SECRET, PIPELINE_BUCKET: "s3://bucket" };
        const common = ["agent", "start", "--api", s.server.url, "--work-dir", s.project, "--warm-pool", "1"];
        const plain = spawnFerry([...common, "--name", "env-agent"], { env });
        // The operator adds variables by value and by prefix.
        const extras = spawnFerry(
          [...common, "--name", "env-extras", "--pool", "extras", "--env", "STAGE=prod", "--env-prefix", "PIPELINE_"],
          { env },
        );
        await plain.waitFor(/connected to the control plane/);
        await extras.waitFor(/connected to the control plane/);
      },
      // The channel tests deliver to a receiver on this machine: private egress is the operator's opt-in.
      { fixtures: FIXTURES, serverArgs: ["--secret-key-file", keyFile, "--allow-private-egress"] },
    );

    /** Runs a deployment of print-env and returns its logs. */
    async function logsOfRun(deployment: string): Promise<string> {
      const run = await t.victim.api.runs.create.mutate({ deployment });
      const done = await waitUntil("the run ends", async () => {
        const r = await t.victim.api.runs.get.query({ id: run.id });
        return ["COMPLETED", "FAILED", "CRASHED"].includes(r.stateType) ? r : undefined;
      });
      assert.equal(done.stateType, "COMPLETED");
      const { items } = await t.victim.api.logs.list.query({ flowRunId: run.id });
      return items.map((l) => l.message).join("\n");
    }

    test("a flow process gets no FERRY_* credential and no other agent variable (cold and warm)", async () => {
      for (let i = 0; i < 2; i++) {
        const text = await logsOfRun("print-env");
        assert.ok(!text.includes(agentToken), "the agent's token is not in the run's logs");
        assert.ok(!text.includes(AWS_SECRET), "the agent's other credentials are not in the run's logs");
        assert.match(text, /token=\(none\)/);
        assert.match(text, /stage=\(none\) bucket=\(none\)/);
        const ferryVars = /ferry-vars=(.*)/.exec(text)?.[1]?.split(",") ?? [];
        for (const name of ferryVars) assert.match(name, /^FERRY_(FLOW_RUN_ID|ATTEMPT|AGENT_NAME|FLOW_WARM)$/);
      }
    });

    test("a token file keeps the agent's token off its command line; an open file is refused", async () => {
      const dir = mkdtempSync(join(tmpdir(), "ferry-token-"));
      const file = join(dir, "agent.token");
      writeFileSync(file, `${agentToken}\n`, { mode: 0o600 });
      const agent = spawnFerry([
        "agent",
        "start",
        "--api",
        t.server.url,
        "--token-file",
        file,
        "--name",
        "file-agent",
        "--pool",
        "none",
        "--work-dir",
        t.project,
      ]);
      await agent.waitFor(/connected to the control plane/);
      const cmdline = readFileSync(`/proc/${agent.child.pid}/cmdline`, "utf8");
      assert.ok(cmdline.includes("--token-file") && !cmdline.includes(agentToken), "the token is not in ps");
      await agent.stop();

      const cli = await ferry(["token", "list", "--json", "--api", t.server.url, "--token-file", join(dir, "admin.token")], {
        env: { FERRY_API_TOKEN: "" },
      });
      assert.notEqual(cli.code, 0, "a missing file is an error");
      writeFileSync(join(dir, "admin.token"), t.victim.token, { mode: 0o600 });
      const listed = await ferry(["token", "list", "--json", "--api", t.server.url, "--token-file", join(dir, "admin.token")]);
      assert.equal(listed.code, 0, listed.output);

      chmodSync(file, 0o644);
      const open = await ferry(["agent", "start", "--api", t.server.url, "--token-file", file, "--name", "open-file"]);
      assert.notEqual(open.code, 0);
      assert.match(open.output, /accessible by group or others/);
      rmSync(dir, { recursive: true, force: true });
    });

    test("what the operator adds with --env and --env-prefix arrives, and still no credential", async () => {
      const text = await logsOfRun("print-env-extras");
      assert.match(text, /stage=prod bucket=s3:\/\/bucket/);
      assert.ok(!text.includes(agentToken));
      assert.ok(!text.includes(AWS_SECRET));
    });

    test("write-only parameters reach the flow but no API answer shows them", async () => {
      const apiKey = "param-api-key-0123456789-secret";
      const run = await t.victim.api.runs.create.mutate({ deployment: "secret-param", parameters: { table: "events", apiKey } });
      const reader = createFerryClient(
        t.server.url,
        (await t.victim.api.tokens.create.mutate({ name: "reader", scopes: ["read"] })).secret,
      );
      const done = await waitUntil("the run ends", async () => {
        const r = await reader.runs.get.query({ id: run.id });
        return ["COMPLETED", "FAILED", "CRASHED"].includes(r.stateType) ? r : undefined;
      });
      assert.equal(done.stateType, "COMPLETED");
      assert.deepEqual(done.parameters, { table: "events", apiKey: "[redacted]" });
      const { items } = await reader.logs.list.query({ flowRunId: run.id });
      assert.match(items.map((l) => l.message).join("\n"), /table=events apiKey-received=true/);
      const answers = [
        run,
        done,
        await reader.runs.list.query({ deployment: "secret-param" }),
        await t.victim.api.runs.list.query({}),
        await t.victim.api.runs.get.query({ id: run.id }),
      ];
      assert.ok(!JSON.stringify(answers).includes(apiKey), "no answer holds the value");
    });

    const channelIds: string[] = [];
    test("channel secrets and the session key are encrypted in the database", async () => {
      const slack = await t.victim.api.notifications.createChannel.mutate({
        kind: "slack",
        name: "slack",
        url: `${rx.url}${SLACK_PATH}`,
      });
      const hook = await t.victim.api.notifications.createChannel.mutate({
        kind: "webhook",
        name: "hook",
        url: `${rx.url}/hook`,
        secret: WEBHOOK_SECRET,
      });
      const pd = await t.victim.api.notifications.createChannel.mutate({
        kind: "pagerduty",
        name: "pd",
        routingKey: ROUTING_KEY,
        url: `${rx.url}/pd`,
      });
      channelIds.push(slack.id, hook.id, pd.id);
      for (const created of [slack, hook, pd]) assert.ok(!JSON.stringify(created.target).includes("secret"));

      const stored = await storedText(provider, t.server.databaseUrl);
      assert.equal(stored.channels.length, 3);
      const all = stored.channels.join("\n");
      for (const secret of [SLACK_PATH, "slack-path-secret", WEBHOOK_SECRET, ROUTING_KEY])
        assert.ok(!all.includes(secret), secret);
      // The session key: a JWE (five parts), not the base64 key itself.
      assert.equal(stored.sessionKey.split(".").length, 5, stored.sessionKey);

      // Sending still works: the notifier decrypts where it reads the channel.
      for (const id of channelIds) assert.equal((await t.victim.api.notifications.testChannel.mutate({ id })).ok, true);
      assert.deepEqual([...rx.hits].sort(), ["/hook", "/pd", SLACK_PATH].sort());
    });

    test("list APIs return no channel secret", async () => {
      const channels = await t.victim.api.notifications.channels.query();
      const answers = [
        channels,
        await t.victim.api.notifications.rules.query(),
        await t.victim.api.notifications.deliveries.query(),
      ];
      const text = JSON.stringify(answers);
      for (const secret of ["slack-path-secret", "/hook", WEBHOOK_SECRET, ROUTING_KEY.slice(-4)])
        assert.ok(!text.includes(secret), secret);
      assert.equal(channels.length, 3);
    });

    test("a key rotation re-encrypts at the next start; channels and sessions keep working", async () => {
      const { session } = await t.victim.api.auth.createSession.mutate({});
      const before = await storedText(provider, t.server.databaseUrl);
      await t.server.proc.stop();
      const rotated = await ferry(["server", "rotate-key", "--secret-key-file", keyFile]);
      assert.equal(rotated.code, 0, rotated.output);
      assert.equal(
        readFileSync(keyFile, "utf8")
          .trim()
          .split("\n")
          .filter((l) => !l.startsWith("#")).length,
        2,
      );
      await restartServer(t.server);
      const after = await storedText(provider, t.server.databaseUrl);
      const kid = (jwe: string) =>
        (JSON.parse(Buffer.from(jwe.split(".")[0] ?? "", "base64url").toString()) as { kid: string }).kid;
      assert.notEqual(kid(after.sessionKey), kid(before.sessionKey), "the session key is sealed with the new key");
      for (const [i, configJson] of after.channels.entries()) {
        const sealed = (JSON.parse(configJson) as { sealed: string }).sealed;
        assert.notEqual(kid(sealed), kid((JSON.parse(before.channels[i] ?? "{}") as { sealed: string }).sealed));
      }
      rx.hits.length = 0;
      for (const id of channelIds) assert.equal((await t.victim.api.notifications.testChannel.mutate({ id })).ok, true);
      assert.equal(rx.hits.length, 3);
      // Same signing key, only re-encrypted: a session from before the rotation still works.
      const me = await createFerryClient(t.server.url, session).auth.whoami.query();
      assert.equal(me.via, "session");

      // Without the old key, the control plane refuses to start rather than lose the secrets.
      await t.server.proc.stop();
      const lines = readFileSync(keyFile, "utf8").split("\n");
      writeFileSync(keyFile, `${randomBytes(32).toString("base64")}\n`, { mode: 0o600 });
      const refused = await ferry([
        "server",
        "start",
        "--port",
        "0",
        "--database-url",
        t.server.databaseUrl,
        "--secret-key-file",
        keyFile,
      ]);
      assert.notEqual(refused.code, 0);
      assert.match(refused.output, /not configured/);
      writeFileSync(keyFile, lines.join("\n"), { mode: 0o600 });
      await restartServer(t.server);
    });
  });
}
