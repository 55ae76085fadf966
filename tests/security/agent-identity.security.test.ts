/**
 * Agents are semi-trusted within their workspace, tenants are adversaries. A raw agent socket
 * (the fuzzer's client) reports ids that name another workspace's runs and another agent's runs
 * of the same workspace: nothing of them is written, and no published event carries another
 * run's context into a trigger. Agent ids are scoped by workspace and bound to the token that
 * registered them: another token of the workspace is refused (the real agent keeps its socket
 * and runs), another workspace's hello with the same id gets an identity of its own, and an
 * admin's `ferry agent release` lets a new token take the id.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, describe, test } from "node:test";
import type { FerryClient } from "@ferry/control-plane/client";
import { type Db, openDatabase } from "@ferry/prisma";
import {
  AGENT_WS_PATH,
  AgentMessage,
  CloseCode,
  type LogLine,
  PROTOCOL_VERSION,
  type RunEvent,
  type RunRef,
  ServerMessage,
} from "@ferry/sdk/protocol";
import { ferry, PROVIDERS, postgresUnavailable, waitUntil } from "../e2e/harness.ts";
import { FuzzSocket } from "../fuzz/agent-socket.ts";
import { RAW_AGENT_POOL, RawAgent } from "./raw-agent.ts";
import { type Tenant, type Tenants, useTenants } from "./tenants.ts";

const POOL = RAW_AGENT_POOL;
const DEPLOYMENT = "sec-agents";
const SINK = "sec-sink";
const SECRET = "victim-secret-parameter";
const now = () => new Date().toISOString();

const taskCreated = (id: string, flowRunId: string, extra: Partial<RunEvent> = {}): RunEvent =>
  ({
    kind: "task_run.created",
    id,
    flowRunId,
    taskKey: `k-${id}`,
    dynamicKey: 0,
    name: id,
    tags: [],
    maxRetries: 0,
    upstream: [],
    timestamp: now(),
    ...extra,
  }) as RunEvent;

const taskState = (taskRunId: string, type: "RUNNING" | "COMPLETED" | "FAILED"): RunEvent => ({
  kind: "task_run.state",
  eventId: randomUUID(),
  taskRunId,
  attempt: 1,
  state: { type, name: type === "RUNNING" ? "Running" : type === "COMPLETED" ? "Completed" : "Failed" },
  timestamp: now(),
});

const published = (flowRunId: string, taskRunId?: string): RunEvent => ({
  kind: "event.published",
  eventId: randomUUID(),
  flowRunId,
  ...(taskRunId ? { taskRunId } : {}),
  name: "leak",
  payload: {},
  timestamp: now(),
});

const line = (seq: number, message: string, extra: Partial<LogLine> = {}): LogLine => ({
  seq,
  level: "info",
  message,
  timestamp: now(),
  ...extra,
});

async function agentToken(tenant: Tenant, name: string): Promise<string> {
  return (await tenant.api.tokens.create.mutate({ name, scopes: ["agent"] })).secret;
}

async function deploy(api: FerryClient, name: string, pool: string): Promise<void> {
  await api.deployments.upsert.mutate({
    name,
    flowName: name,
    entrypoint: "flows/never-run.ts",
    paramsSchema: { type: "object" },
    workPool: pool,
  });
}

for (const provider of PROVIDERS) {
  const skip = provider === "postgresql" ? await postgresUnavailable() : undefined;
  describe(`agent reports and agent identity across tenants (${provider})`, { skip }, () => {
    const agents: RawAgent[] = [];
    const tokens = { victimA: "", victimB: "", attacker: "" };
    let db: Db | undefined;
    let closeDb: (() => Promise<void>) | undefined;
    let wsUrl = "";
    const setup = async (t: Tenants) => {
      wsUrl = new URL(AGENT_WS_PATH, t.server.url.replace("http", "ws")).toString();
      await deploy(t.victim.api, DEPLOYMENT, POOL);
      await deploy(t.attacker.api, DEPLOYMENT, POOL);
      // The attacker's event trigger copies the publishing run's parameters into a run it can read.
      await deploy(t.attacker.api, SINK, "nobody-serves-this");
      await t.attacker.api.triggers.create.mutate({
        deployment: SINK,
        trigger: { kind: "event", event: "leak", mapping: { stolen: "run.parameters.secret" } },
      });
      // The same trigger in the victim's workspace: its other agent must not fire it with the victim run's context.
      await deploy(t.victim.api, SINK, "nobody-serves-this");
      await t.victim.api.triggers.create.mutate({
        deployment: SINK,
        trigger: { kind: "event", event: "leak", mapping: { stolen: "run.parameters.secret" } },
      });
      await t.victim.api.tagLimits.set.mutate({ tag: "gpu", maxConcurrent: 1 });
      tokens.victimA = await agentToken(t.victim, "victim-agent-a");
      tokens.victimB = await agentToken(t.victim, "victim-agent-b");
      tokens.attacker = await agentToken(t.attacker, "attacker-agent");
      const opened = await openDatabase(t.server.databaseUrl, { migrate: false });
      db = opened.db;
      closeDb = () => opened.close();
    };
    const t = useTenants(provider, skip, setup);
    after(async () => {
      for (const a of agents) a.close();
      await closeDb?.();
    });
    const connect = async (token: string, agentId: string) => {
      const a = await RawAgent.connect(wsUrl, token, agentId);
      agents.push(a);
      return a;
    };
    const database = () => {
      assert.ok(db, "the test database is open");
      return db;
    };

    // Shared by the tests below (they run in order).
    let victimAgent: RawAgent;
    let victimRun: RunRef;
    const victimTask = randomUUID();

    test("ids naming another workspace's runs or another agent's runs are dropped; nothing of the victim is written", async () => {
      victimAgent = await connect(tokens.victimA, "victim-box");
      const created = await t.victim.api.runs.create.mutate({ deployment: DEPLOYMENT, parameters: { secret: SECRET } });
      victimRun = await victimAgent.assigned(created.id);
      const own = await victimAgent.events(victimRun, [
        taskCreated(victimTask, victimRun.flowRunId),
        taskState(victimTask, "RUNNING"),
      ]);
      assert.equal(own.ok, true, JSON.stringify(own));
      assert.equal((await victimAgent.logs(victimRun, [line(0, "victim line", { taskRunId: victimTask })])).ok, true);
      // The victim's task run holds the only `gpu` slot.
      victimAgent.send({ type: "slots.acquire", v: PROTOCOL_VERSION, ...victimRun, taskRunId: victimTask, tags: ["gpu"] });
      await waitUntil("the victim's slot", async () => victimAgent.frames.some((f) => f.type === "slots.granted"));

      // Another tenant's agent, and another agent of the victim's own workspace, each with a run of their own.
      const attacker = await connect(tokens.attacker, "attacker-box");
      const attackerRun = await attacker.assigned(
        (await t.attacker.api.runs.create.mutate({ deployment: DEPLOYMENT, parameters: { secret: "attacker's own" } })).id,
      );
      const neighbour = await connect(tokens.victimB, "victim-neighbour");
      const neighbourRun = await neighbour.assigned(
        (await t.victim.api.runs.create.mutate({ deployment: DEPLOYMENT, parameters: { secret: "neighbour's" } })).id,
      );

      for (const [who, agent, ref] of [
        ["attacker", attacker, attackerRun],
        ["neighbour", neighbour, neighbourRun],
      ] as const) {
        const ownTask = randomUUID();
        const events = await agent.events(ref, [
          taskCreated(randomUUID(), victimRun.flowRunId),
          taskCreated(ownTask, ref.flowRunId, { upstream: [victimTask] } as Partial<RunEvent>),
          taskState(victimTask, "FAILED"),
          published(victimRun.flowRunId),
          published(ref.flowRunId, victimTask),
        ]);
        assert.equal(events.ok, true, `${who}: ${JSON.stringify(events)}`);
        const logs = await agent.logs(ref, [
          line(0, `${who} line in the victim's run`, { flowRunId: victimRun.flowRunId }),
          line(1, `${who} line in the victim's task run`, { taskRunId: victimTask }),
        ]);
        assert.equal(logs.ok, true, `${who}: ${JSON.stringify(logs)}`);
        // A slot request for the victim's task run is refused; its slot is not freed by the FAILED state above.
        agent.send({ type: "slots.acquire", v: PROTOCOL_VERSION, ...ref, taskRunId: victimTask, tags: ["gpu"] });
        const refusal = await waitUntil(`${who}: the slot refusal`, async () =>
          agent.frames.find((f) => f.type === "error" || f.type === "slots.granted"),
        );
        assert.equal(refusal.type === "error" && refusal.code, "UNKNOWN_RUN", `${who}: ${JSON.stringify(refusal)}`);
        assert.equal(await database().taskRunEdge.count({ where: { upstreamId: victimTask } }), 0, `${who}: no lineage edge`);
        // The agent's own task run (and its events after the dropped ones) still went through.
        assert.equal(await database().taskRun.count({ where: { id: ownTask } }), 1, `${who}: its own task run is stored`);
      }
      // The attacker's own event (its own run) does fire its trigger; the one naming the victim's run does not.
      await attacker.events(attackerRun, [published(attackerRun.flowRunId)]);
      const sinkRuns = await waitUntil("the attacker's own event starts its sink run", async () => {
        const page = await t.attacker.api.runs.list.query({ deployment: SINK, limit: 10 });
        return page.items.length ? page.items : undefined;
      });
      await new Promise((r) => setTimeout(r, 500));
      const stolen = (await t.attacker.api.runs.list.query({ deployment: SINK, limit: 10 })).items;
      assert.equal(stolen.length, 1, JSON.stringify(stolen.map((r) => r.parameters)));
      assert.deepEqual(sinkRuns[0]?.parameters, { stolen: "attacker's own" });
      assert.deepEqual((await t.victim.api.runs.list.query({ deployment: SINK, limit: 10 })).items, []);

      // The victim's data, through the victim's API.
      const tasks = await t.victim.api.taskRuns.list.query({ flowRunId: victimRun.flowRunId, limit: 100 });
      assert.deepEqual(
        tasks.items.map((task) => [task.id, task.stateType]),
        [[victimTask, "RUNNING"]],
      );
      const logs = await t.victim.api.logs.list.query({ flowRunId: victimRun.flowRunId });
      assert.deepEqual(
        logs.items.map((l) => l.message),
        ["victim line"],
      );
      const [gpu] = await t.victim.api.tagLimits.list.query();
      assert.equal(gpu?.inUse, 1, "the victim's task run still holds its slot");
      assert.equal(await database().taskRunState.count({ where: { taskRunId: victimTask } }), 1);
      neighbour.close();
      attacker.close();
    });

    test("a hello with another agent's id from a second agent token of the workspace is refused; the agent keeps its socket and runs", async () => {
      const impostor = await RawAgent.open(wsUrl, tokens.victimB, "victim-box", [victimRun]);
      agents.push(impostor);
      await waitUntil("the impostor's close", async () => impostor.closed);
      assert.equal(impostor.closed?.code, CloseCode.forbidden);
      assert.match(impostor.closed?.reason ?? "", /ferry agent release victim-box/);
      assert.ok(!impostor.frames.some((f) => f.type === "run.cancel" || f.type === "welcome"));
      assert.ok(victimAgent.open, "the real agent keeps its connection");
      assert.deepEqual(await victimAgent.heartbeat([victimRun]), [], "and its run");
      const run = await t.victim.api.runs.get.query({ id: victimRun.flowRunId });
      assert.equal(run.stateType, "RUNNING");
    });

    test("a hello with another workspace's agent id gets an identity of its own; the victim's agent is unaffected", async () => {
      const other = await connect(tokens.attacker, "victim-box");
      assert.ok(other.welcomed);
      assert.ok(victimAgent.open, "the victim's agent keeps its connection");
      assert.deepEqual(await victimAgent.heartbeat([victimRun]), []);
      // A new victim run goes to the victim's agent, never to the attacker's namesake.
      const next = await t.victim.api.runs.create.mutate({ deployment: DEPLOYMENT, parameters: { secret: SECRET } });
      await victimAgent.assigned(next.id);
      assert.ok(!other.frames.some((f) => f.type === "run.assign" && f.flowRunId === next.id));
      const mine = await t.victim.api.agents.list.query();
      const theirs = await t.attacker.api.agents.list.query();
      assert.ok(mine.some((a) => a.id === "victim-box" && a.connected));
      assert.ok(theirs.some((a) => a.id === "victim-box" && a.connected));
      other.close();
    });

    test("after `ferry agent release`, another token of the workspace takes the id; the old token is refused", async () => {
      const unknown = await ferry(["agent", "release", "no-such-agent"], { env: t.victim.env });
      assert.notEqual(unknown.code, 0, unknown.output);
      const released = await ferry(["agent", "release", "victim-box"], { env: t.victim.env });
      assert.equal(released.code, 0, released.output);
      const successor = await connect(tokens.victimB, "victim-box");
      assert.ok(successor.welcomed);
      await waitUntil("the old connection is replaced", async () => victimAgent.closed);
      assert.equal(victimAgent.closed?.code, CloseCode.normal);
      const back = await RawAgent.open(wsUrl, tokens.victimA, "victim-box");
      agents.push(back);
      await waitUntil("the old token's close", async () => back.closed);
      assert.equal(back.closed?.code, CloseCode.forbidden);
      assert.ok(successor.open, "the new holder keeps the id");
    });

    test("a revoked token's agent id can be taken by another token of the workspace (token rotation)", async () => {
      const holder = (await t.victim.api.tokens.list.query()).items.find((k) => k.name === "victim-agent-b");
      assert.ok(holder);
      await t.victim.api.tokens.revoke.mutate({ id: holder.id });
      const rotated = await connect(tokens.victimA, "victim-box");
      assert.ok(rotated.welcomed, "the id's token can no longer connect: the new token takes it");
    });
  });
}
