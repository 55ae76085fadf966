/**
 * Event triggers end to end: a deployment started by another deployment's run reaching a
 * state (with its parameters mapped), and by an inbound webhook with a secret. Real processes.
 */
import assert from "node:assert/strict";
import { cpSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { deployFixtures, ferry, PROVIDERS, postgresUnavailable, REPO, startAgent, useServer, waitUntil } from "./harness.ts";

for (const provider of PROVIDERS) {
  const skip = provider === "postgresql" ? await postgresUnavailable() : undefined;
  describe(`event triggers on ${provider}`, () => {
    const suite = useServer(provider, skip, async (s) => {
      await startAgent(s.server, { name: "agent-triggers", workDir: s.project, concurrency: 4 });
      await deployFixtures(s);
      cpSync(join(REPO, "tests/e2e/fixtures-events/announce.ts"), join(s.project, "flows/announce.ts"));
      await deployFixtures(s, [], "flows/announce.ts");
    });
    const cli = (args: string[]) => ferry(args, { cwd: suite.project, env: suite.server.env });
    const api = () => suite.server.api;
    const sleepyRuns = async () => (await api().runs.list.query({ deployment: "sleepy", limit: 200 })).items;

    test("a run reaching a state starts another deployment, with its parameters mapped, once", { skip }, async () => {
      const added = await cli([
        "trigger",
        "add",
        "sleepy",
        "--on-run",
        "fanout",
        "--state",
        "completed",
        "--map",
        "ms=run.parameters.n",
        "--json",
      ]);
      assert.equal(added.code, 0, added.output);
      const trigger = JSON.parse(added.output) as { id: string; states: string[]; mapping: Record<string, string> };
      assert.deepEqual(trigger.states, ["COMPLETED"]);
      const before = (await sleepyRuns()).length;
      const source = await api().runs.create.mutate({ deployment: "fanout", parameters: { n: 7 } });
      const started = await waitUntil("the triggered run", async () => {
        const runs = await sleepyRuns();
        return runs.length > before ? runs : undefined;
      });
      assert.equal(started.length, before + 1);
      const triggered = started[0];
      assert.deepEqual(triggered?.parameters, { ms: 7 });
      assert.equal((await api().runs.get.query({ id: source.id })).stateType, "COMPLETED");
      await waitUntil(
        "the triggered run completes",
        async () => (await api().runs.get.query({ id: String(triggered?.id) })).stateType === "COMPLETED",
      );
      // Exactly once: nothing more appears (the key is trigger, run, state, attempt).
      await new Promise((r) => setTimeout(r, 1_000));
      assert.equal((await sleepyRuns()).length, before + 1);
      const listed = await cli(["trigger", "ls", "--json"]);
      const mine = (JSON.parse(listed.output) as { id: string; lastFiredAt: string | null; source: string }[]).find(
        (t) => t.id === trigger.id,
      );
      assert.equal(mine?.source, "fanout");
      assert.ok(mine?.lastFiredAt);
      // Paused: a completed source run starts nothing.
      assert.equal((await cli(["trigger", "pause", trigger.id])).code, 0);
      const again = await api().runs.create.mutate({ deployment: "fanout", parameters: { n: 2 } });
      await waitUntil(
        "the source completes",
        async () => (await api().runs.get.query({ id: again.id })).stateType === "COMPLETED",
      );
      await new Promise((r) => setTimeout(r, 1_000));
      assert.equal((await sleepyRuns()).length, before + 1);
      assert.equal((await cli(["trigger", "rm", trigger.id])).code, 0);
    });

    test("a failure can trigger too; a deployment cannot trigger itself; an unknown source is refused", { skip }, async () => {
      const added = await cli([
        "trigger",
        "add",
        "sleepy",
        "--on-run",
        "failing",
        "--state",
        "FAILED",
        "--param",
        "ms=1",
        "--json",
      ]);
      assert.equal(added.code, 0, added.output);
      const before = (await sleepyRuns()).length;
      await api().runs.create.mutate({ deployment: "failing" });
      const runs = await waitUntil("a run after the failure", async () => {
        const list = await sleepyRuns();
        return list.length > before ? list : undefined;
      });
      assert.deepEqual(runs[0]?.parameters, { ms: 1 });
      const self = await cli(["trigger", "add", "sleepy", "--on-run", "sleepy"]);
      assert.notEqual(self.code, 0);
      assert.match(self.output, /cannot be triggered by its own runs/);
      const unknown = await cli(["trigger", "add", "sleepy", "--on-run", "nope"]);
      assert.notEqual(unknown.code, 0);
      assert.match(unknown.output, /no deployment named "nope"/);
      const both = await cli(["trigger", "add", "sleepy", "--on-run", "fanout", "--webhook"]);
      assert.notEqual(both.code, 0);
      assert.match(both.output, /one of --on-run/);
    });

    test("an event published inside a flow starts a deployment, its payload mapped, once per event", { skip }, async () => {
      const added = await cli([
        "trigger",
        "add",
        "sleepy",
        "--on-event",
        "dataset.ready",
        "--map",
        "ms=event.payload.rows",
        "--json",
      ]);
      assert.equal(added.code, 0, added.output);
      const trigger = JSON.parse(added.output) as { id: string; eventName: string };
      assert.equal(trigger.eventName, "dataset.ready");
      const before = (await sleepyRuns()).length;
      const source = await api().runs.create.mutate({ deployment: "announce", parameters: { rows: 4 } });
      const runs = await waitUntil("the run the event started", async () => {
        const list = await sleepyRuns();
        return list.length > before ? list : undefined;
      });
      assert.deepEqual(runs[0]?.parameters, { ms: 4 });
      await waitUntil(
        "the source completes",
        async () => (await api().runs.get.query({ id: source.id })).stateType === "COMPLETED",
      );
      await new Promise((r) => setTimeout(r, 1_000));
      assert.equal((await sleepyRuns()).length, before + 1, "one run per event");
      const listed = await cli(["trigger", "ls"]);
      assert.match(listed.output, /event dataset\.ready/);
      const bad = await cli(["trigger", "add", "sleepy", "--on-event", "no spaces allowed"]);
      assert.notEqual(bad.code, 0);
      assert.match(bad.output, /letters, digits/);
      assert.equal((await cli(["trigger", "rm", trigger.id])).code, 0);
    });

    test("a webhook with its secret starts a run with the payload mapped; bad calls get clear answers", { skip }, async () => {
      const added = await cli(["trigger", "add", "sleepy", "--webhook", "--map", "ms=payload.delay", "--json"]);
      assert.equal(added.code, 0, added.output);
      const hook = JSON.parse(added.output) as { id: string; secret: string; path: string };
      assert.match(hook.secret, /^fwh_/);
      const url = `${suite.server.url}${hook.path}`;
      const post = (body: string, headers: Record<string, string> = {}) =>
        fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });
      const ok = await post(JSON.stringify({ delay: 3, extra: "ignored" }), {
        "x-ferry-secret": hook.secret,
        "idempotency-key": "evt-1",
      });
      assert.equal(ok.status, 201);
      const { runId } = (await ok.json()) as { runId: string };
      assert.deepEqual((await api().runs.get.query({ id: runId })).parameters, { ms: 3 });
      // The same event again: the same run.
      const replay = await post(JSON.stringify({ delay: 3 }), {
        authorization: `Bearer ${hook.secret}`,
        "idempotency-key": "evt-1",
      });
      assert.equal(replay.status, 200);
      assert.equal(((await replay.json()) as { runId: string; created: boolean }).runId, runId);

      const before = (await sleepyRuns()).length;
      assert.equal((await post("{}", { "x-ferry-secret": "fwh_wrong" })).status, 401);
      assert.equal((await post("{}")).status, 401);
      assert.equal(
        (
          await fetch(`${suite.server.url}/api/v1/hooks/unknown-id`, {
            method: "POST",
            headers: { "x-ferry-secret": hook.secret },
            body: "{}",
          })
        ).status,
        401,
      );
      assert.equal((await post("{not json", { "x-ferry-secret": hook.secret })).status, 400);
      assert.equal((await post("[1,2]", { "x-ferry-secret": hook.secret })).status, 400);
      assert.equal((await post(JSON.stringify({ pad: "x".repeat(300 * 1024) }), { "x-ferry-secret": hook.secret })).status, 413);
      const invalid = await post(JSON.stringify({ delay: "soon" }), { "x-ferry-secret": hook.secret });
      assert.equal(invalid.status, 422);
      assert.match(JSON.stringify(await invalid.json()), /ms/);
      assert.equal((await cli(["trigger", "pause", hook.id])).code, 0);
      assert.equal((await post(JSON.stringify({ delay: 1 }), { "x-ferry-secret": hook.secret })).status, 409);
      assert.equal((await sleepyRuns()).length, before, "no bad call started a run");
    });
  });
}
