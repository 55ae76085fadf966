/**
 * The low items that the API shows, as a hostile tenant would probe them: a pagination
 * cursor naming another workspace's row (an oracle), the installation's figures on /healthz, a
 * session minting a session that outlives its sign-out, and a cookie without Secure over HTTPS.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createFerryClient } from "@ferry/control-plane/client";
import { deployFixtures, ferry, PROVIDERS, postgresUnavailable, startAgent } from "../e2e/harness.ts";
import { useTenants } from "./tenants.ts";

for (const provider of PROVIDERS) {
  const skip = provider === "postgresql" ? await postgresUnavailable() : undefined;
  describe(`low-severity leaks between tenants (${provider})`, { skip }, () => {
    let victimRunId = "";
    let victimTaskRunId = "";
    const t = useTenants(provider, skip, async (t) => {
      await deployFixtures(t);
      await startAgent(t.server, { name: "victim-agent", workDir: t.project });
      const run = await ferry(["run", "fanout", "--param", "n=2", "--wait", "--json"], { cwd: t.project, env: t.victim.env });
      assert.equal(run.code, 0, run.output);
      const [latest] = (await t.victim.api.runs.list.query({ limit: 1 })).items;
      assert.ok(latest);
      victimRunId = latest.id;
      const tasks = await t.victim.api.taskRuns.list.query({ flowRunId: victimRunId });
      victimTaskRunId = tasks.items[0]?.id ?? "";
      assert.ok(victimTaskRunId, "the victim's run has task runs");
      // The attacker has runs of its own to page through (no agent: they wait, SCHEDULED).
      const deployed = await ferry(["deploy", "flows/train.ts"], { cwd: t.project, env: t.attacker.env });
      assert.equal(deployed.code, 0, deployed.output);
      for (let i = 0; i < 3; i++) await t.attacker.api.runs.create.mutate({ deployment: "fanout", parameters: { n: 1 } });
    });

    test("a cursor naming another workspace's run or task run is refused, not used to position the page", async () => {
      await assert.rejects(t.attacker.api.runs.list.query({ limit: 2, cursor: victimRunId }), /cursor names no row/);
      await assert.rejects(
        t.attacker.api.taskRuns.list.query({ flowRunId: victimRunId, cursor: victimTaskRunId }),
        /cursor names no row/,
      );
      // A cursor of one's own still pages.
      const first = await t.attacker.api.runs.list.query({ limit: 2 });
      assert.ok(first.nextCursor);
      const second = await t.attacker.api.runs.list.query({ limit: 2, cursor: first.nextCursor });
      assert.equal(second.items.length, 1);
    });

    test("/healthz tells anyone it is alive, and the installation's figures only to its operator", async () => {
      const url = new URL("/healthz", t.server.url);
      const anonymous = (await (await fetch(url)).json()) as Record<string, unknown>;
      assert.deepEqual(Object.keys(anonymous).sort(), ["ok", "version"]);
      const tenant = (await (await fetch(url, { headers: { authorization: `Bearer ${t.attacker.token}` } })).json()) as Record<
        string,
        unknown
      >;
      assert.deepEqual(Object.keys(tenant).sort(), ["ok", "version"], "another workspace's admin is not the operator");
      const operator = (await (await fetch(url, { headers: { authorization: `Bearer ${t.victim.token}` } })).json()) as Record<
        string,
        unknown
      >;
      assert.equal(operator.agents, 1);
      assert.equal(operator.leader, true);
    });

    test("a session cannot mint another session (it would outlive the first one's sign-out)", async () => {
      const { session } = await t.victim.api.auth.createSession.mutate({ ttlSeconds: 600 });
      const viaSession = createFerryClient(t.server.url, session);
      assert.ok(await viaSession.auth.whoami.query());
      await assert.rejects(viaSession.auth.createSession.mutate({ ttlSeconds: 600 }), /cannot create another session/);
    });

    test("the session cookie is Secure when the browser came over HTTPS (a TLS-terminating proxy)", async () => {
      const signIn = (headers: Record<string, string>) =>
        fetch(new URL("/trpc/auth.signIn", t.server.url), {
          method: "POST",
          headers: { "content-type": "application/json", ...headers },
          body: JSON.stringify({ token: t.victim.token }),
        });
      const plain = await signIn({});
      assert.equal(plain.status, 200);
      assert.doesNotMatch(plain.headers.get("set-cookie") ?? "", /Secure/);
      const proxied = await signIn({ "x-forwarded-proto": "https" });
      assert.equal(proxied.status, 200);
      assert.match(proxied.headers.get("set-cookie") ?? "", /;\s*Secure/);
    });
  });
}
