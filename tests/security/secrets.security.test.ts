/**
 * Secrets stay where they belong (DESIGN.md invariant 11): flow processes never see the agent's
 * credentials, tokens need not be on a command line, secrets at rest are encrypted with the
 * operator's key and list APIs return none of them.
 */
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { deployFixtures, ferry, PROVIDERS, postgresUnavailable, REPO, spawnFerry, waitUntil } from "../e2e/harness.ts";
import { type Tenants, useTenants } from "./tenants.ts";

const FIXTURES = join(REPO, "tests/security/fixtures-secrets");
const AWS_SECRET = "aws-secret-0123456789-do-not-print";

for (const provider of PROVIDERS) {
  const skip = provider === "postgresql" ? await postgresUnavailable() : undefined;
  describe(`secrets (${provider})`, { skip }, () => {
    let agentToken = "";
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
      { fixtures: FIXTURES },
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
  });
}
