/**
 * Trigger loops are bounded (issue 12, item 6): runs carry their trigger lineage, a cycle
 * (ping→pong→ping, an event trigger that starts its own publisher) or a chain deeper than the
 * limit is refused with the reason on the trigger, and each trigger's firings are rate-limited.
 * The server runs with `--trigger-max-depth 3 --trigger-rate 5` so every limit is reached with a
 * few real runs. Real processes, both databases.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, test } from "node:test";
import { deployFixtures, ferry, PROVIDERS, postgresUnavailable, REPO, startAgent, waitUntil } from "../e2e/harness.ts";
import { useTenants } from "./tenants.ts";

const MAX_DEPTH = 3;
const RATE = 5;
/** How long a loop that was not stopped would need to show itself (several more runs). */
const QUIET_MS = 4_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const provider of PROVIDERS) {
  const skip = provider === "postgresql" ? await postgresUnavailable() : undefined;
  describe(`trigger loops are bounded (${provider})`, { skip }, () => {
    const t = useTenants(
      provider,
      skip,
      async (s) => {
        await startAgent(s.server, { name: "agent-loops", workDir: s.project, concurrency: 4 });
        await deployFixtures(s, [], "flows/loops.ts");
        await s.victim.api.deployments.upsert.mutate({
          name: "parked",
          flowName: "sink",
          entrypoint: "flows/loops.ts",
          paramsSchema: { type: "object" },
          workPool: "parked",
        });
      },
      {
        fixtures: join(REPO, "tests/security/fixtures-triggers"),
        serverArgs: ["--trigger-max-depth", String(MAX_DEPTH), "--trigger-rate", String(RATE)],
      },
    );
    const api = () => t.victim.api;
    const cli = (args: string[]) => ferry(args, { cwd: t.project, env: t.victim.env });
    const runsOf = async (deployment: string) => (await api().runs.list.query({ deployment, limit: 100 })).items;
    const addTrigger = async (args: string[]) => {
      const added = await cli(["trigger", "add", ...args, "--json"]);
      assert.equal(added.code, 0, added.output);
      return JSON.parse(added.output) as { id: string };
    };
    const triggerById = async (id: string) => {
      const found = (await api().triggers.list.query()).find((x) => x.id === id);
      assert.ok(found, `trigger ${id} is listed`);
      return found;
    };
    const allDone = async (deployments: string[]) => {
      for (const d of deployments) {
        if ((await runsOf(d)).some((r) => r.stateType !== "COMPLETED")) return false;
      }
      return true;
    };

    test("a ping→pong run-state cycle stops where it would repeat a trigger, and says why", async () => {
      const toPong = await addTrigger(["pong", "--on-run", "ping", "--state", "COMPLETED"]);
      const toPing = await addTrigger(["ping", "--on-run", "pong", "--state", "COMPLETED"]);
      await api().runs.create.mutate({ deployment: "ping" });
      // ping (by hand) → pong [toPong] → ping [toPong, toPing] → toPong again: refused.
      const refused = await waitUntil(
        "the cycle is refused",
        async () => {
          const trigger = await triggerById(toPong.id);
          return trigger.lastRefusal ? trigger : undefined;
        },
        90_000,
      );
      assert.match(refused.lastRefusal ?? "", /a cycle/);
      assert.ok(refused.lastRefusedAt);
      await waitUntil("the last runs end", () => allDone(["ping", "pong"]), 60_000);
      await sleep(QUIET_MS);
      const pings = await runsOf("ping");
      const pongs = await runsOf("pong");
      assert.equal(pings.length, 2, "ping ran by hand, then once from pong");
      assert.equal(pongs.length, 1, "pong ran once");
      // The lineage each run carries.
      const [pong] = pongs;
      const second = pings.find((r) => r.triggeredById === toPing.id);
      assert.ok(pong && second, "the triggered runs are there");
      assert.equal(pong.triggeredById, toPong.id);
      assert.deepEqual(JSON.parse(pong.triggerChainJson), [toPong.id]);
      assert.equal(second.triggeringRunId, pong.id);
      assert.deepEqual(JSON.parse(second.triggerChainJson), [toPong.id, toPing.id]);
      // The refusal is where the user looks: `ferry trigger ls`.
      const listed = await cli(["trigger", "ls"]);
      assert.equal(listed.code, 0, listed.output);
      assert.match(listed.output, /last refused/i);
      assert.match(listed.output, /a cycle/);
      // The other workspace sees none of it.
      assert.deepEqual(await t.attacker.api.triggers.list.query(), []);
      for (const id of [toPong.id, toPing.id]) assert.equal((await cli(["trigger", "rm", id])).code, 0);
    });

    test("an event trigger that starts the flow publishing its event runs once more, not forever", async () => {
      const again = await addTrigger(["echo", "--on-event", "echo.again"]);
      await api().runs.create.mutate({ deployment: "echo" });
      // echo (by hand) publishes → echo [again] publishes → again is in its own chain: refused.
      const refused = await waitUntil(
        "the self-feeding trigger is refused",
        async () => {
          const trigger = await triggerById(again.id);
          return trigger.lastRefusal ? trigger : undefined;
        },
        90_000,
      );
      assert.match(refused.lastRefusal ?? "", /a cycle/);
      await waitUntil("the last run ends", () => allDone(["echo"]), 60_000);
      await sleep(QUIET_MS);
      const echoes = await runsOf("echo");
      assert.equal(echoes.length, 2, "the first run and the one its event started");
      const started = echoes.find((r) => r.triggeredById === again.id);
      assert.ok(started, "one run was started by the event trigger");
      assert.deepEqual(JSON.parse(started.triggerChainJson), [again.id], "depth 1: the publisher was started by hand");
      assert.equal((await cli(["trigger", "rm", again.id])).code, 0);
    });

    test(`a chain deeper than --trigger-max-depth ${MAX_DEPTH} is refused`, async () => {
      // A ring hop1 → hop2 → hop3 → hop4 → hop1: no trigger repeats before the depth limit.
      const ring: { id: string }[] = [];
      for (const [from, to] of [
        ["hop1", "hop2"],
        ["hop2", "hop3"],
        ["hop3", "hop4"],
        ["hop4", "hop1"],
      ] as const) {
        ring.push(await addTrigger([to, "--on-run", from]));
      }
      const closing = ring[3];
      assert.ok(closing);
      await api().runs.create.mutate({ deployment: "hop1" });
      const refused = await waitUntil(
        "the fourth link is refused",
        async () => {
          const trigger = await triggerById(closing.id);
          return trigger.lastRefusal ? trigger : undefined;
        },
        120_000,
      );
      assert.match(refused.lastRefusal ?? "", /chain too deep/);
      assert.match(refused.lastRefusal ?? "", new RegExp(`limit is ${MAX_DEPTH}`));
      await waitUntil("the last runs end", () => allDone(["hop1", "hop2", "hop3", "hop4"]), 60_000);
      await sleep(QUIET_MS);
      for (const d of ["hop1", "hop2", "hop3", "hop4"]) assert.equal((await runsOf(d)).length, 1, `${d} ran once`);
      const [last] = await runsOf("hop4");
      assert.equal(JSON.parse(last?.triggerChainJson ?? "[]").length, MAX_DEPTH);
      for (const r of ring) assert.equal((await cli(["trigger", "rm", r.id])).code, 0);
    });

    test(`a trigger fires at most ${RATE} times a minute; more calls are refused with the reason`, async () => {
      const created = await api().triggers.create.mutate({
        deployment: "parked",
        trigger: { kind: "webhook", parameters: {}, mapping: {} },
      });
      assert.ok(created.secret && created.path);
      const call = (key: string) =>
        fetch(`${t.server.url}${created.path}`, {
          method: "POST",
          headers: { "content-type": "application/json", "x-ferry-secret": String(created.secret), "idempotency-key": key },
          body: "{}",
        });
      const statuses: number[] = [];
      let refusal = "";
      for (let i = 0; i < RATE + 3; i++) {
        const res = await call(`call-${i}`);
        statuses.push(res.status);
        const body = (await res.json()) as { error?: string };
        if (res.status === 429) refusal = body.error ?? "";
      }
      assert.deepEqual(statuses, [...Array(RATE).fill(201), 429, 429, 429]);
      assert.match(refusal, /rate limit/);
      assert.match(refusal, new RegExp(`${RATE} times this minute`));
      // A replay of an accepted call is no new firing: it gets its run back, limit or not.
      assert.equal((await call("call-0")).status, 200);
      const trigger = await triggerById(created.id);
      assert.match(trigger.lastRefusal ?? "", /rate limit/);
      assert.equal((await runsOf("parked")).length, RATE);
      // A webhook starts a new lineage: its runs are at depth 1.
      for (const run of await runsOf("parked")) assert.deepEqual(JSON.parse(run.triggerChainJson), [created.id]);
      assert.equal((await cli(["trigger", "rm", created.id])).code, 0);
    });
  });
}
