/**
 * Leases are renewed by a run's own reports, and heartbeats are handled on arrival: a raw
 * WebSocket agent that never heartbeats keeps its run as long as it reports events, and a
 * heartbeat sent behind a burst of log batches is still answered. The control plane runs with
 * short timings (heartbeat 1 s, lease 3 s) so that several leases pass within a test.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, describe, test } from "node:test";
import {
  AGENT_WS_PATH,
  AgentMessage,
  type Heartbeat,
  type LogBatch,
  PROTOCOL_VERSION,
  type ProposeState,
  type RunEventBatch,
  type RunRef,
  ServerMessage,
} from "@ferry/sdk/protocol";
import WebSocket from "ws";
import { createToken, PROVIDERS, postgresUnavailable, type Server, useServer, waitUntil } from "./harness.ts";

const POOL = "lease-pool";
const DEPLOYMENT = "lease-renewal";
const REPORT_EVERY_MS = 700;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const now = () => new Date().toISOString();

type Ack = Extract<ServerMessage, { type: "ack" }>;
type Assign = Extract<ServerMessage, { type: "run.assign" }>;

/**
 * A protocol-level agent: says hello, accepts every assignment and proposes RUNNING for it,
 * then does only what the test asks. It never sends a heartbeat on its own.
 */
class RawAgent {
  private nextMsgId = 1;
  private readonly acks = new Map<number, Ack>();
  /** Frames received so far: orders acks and heartbeat answers by arrival. */
  private received = 0;
  /** The arrival number of each ack. */
  readonly ackedAt = new Map<number, number>();
  private readonly assigns = new Map<string, Assign>();
  /** The RUNNING proposal's msgId per flow run. */
  private readonly running = new Map<string, number>();
  /** Heartbeat answers, with their arrival number. */
  readonly heartbeatAcks: { at: number; revoked: RunRef[] }[] = [];
  welcomed = false;

  private constructor(readonly ws: WebSocket) {
    ws.on("error", () => {});
    ws.on("message", (data) => {
      this.received++;
      const msg = ServerMessage.parse(JSON.parse(data.toString()));
      if (msg.type === "welcome") this.welcomed = true;
      else if (msg.type === "ack") {
        this.acks.set(msg.msgId, msg);
        this.ackedAt.set(msg.msgId, this.received);
      } else if (msg.type === "heartbeat.ack") this.heartbeatAcks.push({ at: this.received, revoked: msg.revoked });
      else if (msg.type === "run.assign") {
        this.assigns.set(msg.flowRunId, msg);
        this.send({ type: "run.accept", v: PROTOCOL_VERSION, flowRunId: msg.flowRunId, attempt: msg.attempt });
        const propose: ProposeState = {
          type: "state.propose",
          v: PROTOCOL_VERSION,
          msgId: this.msgId(),
          eventId: randomUUID(),
          flowRunId: msg.flowRunId,
          attempt: msg.attempt,
          state: { type: "RUNNING", name: "Running" },
          timestamp: now(),
        };
        this.running.set(msg.flowRunId, propose.msgId);
        this.send(propose);
      }
    });
  }

  static async connect(server: Server, token: string, agentId: string): Promise<RawAgent> {
    const ws = new WebSocket(new URL(AGENT_WS_PATH, server.url.replace("http", "ws")), {
      headers: { authorization: `Bearer ${token}` },
    });
    const agent = new RawAgent(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("unexpected-response", () => reject(new Error("agent upgrade refused")));
    });
    agent.send({
      type: "hello",
      v: PROTOCOL_VERSION,
      agentId,
      name: agentId,
      pools: [POOL],
      capacity: 4,
      labels: {},
      version: "test",
      inFlight: [],
    });
    await waitUntil("welcome", async () => agent.welcomed, 10_000);
    return agent;
  }

  msgId(): number {
    return this.nextMsgId++;
  }

  /** Sends one agent message, checked against the protocol's schema first. */
  send(msg: AgentMessage): void {
    assert.equal(this.ws.readyState, WebSocket.OPEN, "the agent socket is open");
    this.ws.send(JSON.stringify(AgentMessage.parse(msg)));
  }

  ack(msgId: number, timeoutMs = 10_000): Promise<Ack> {
    return waitUntil(`ack of message ${msgId}`, async () => this.acks.get(msgId), timeoutMs);
  }

  /** Waits for the run's assignment and for its RUNNING proposal to be accepted. */
  async started(flowRunId: string): Promise<Assign> {
    const assign = await waitUntil(`run.assign of ${flowRunId}`, async () => this.assigns.get(flowRunId), 15_000);
    const msgId = await waitUntil("the RUNNING proposal", async () => this.running.get(flowRunId), 5_000);
    const ack = await this.ack(msgId);
    assert.equal(ack.ok, true, JSON.stringify(ack));
    assert.equal(ack.orchestration?.status, "ACCEPT", JSON.stringify(ack));
    return assign;
  }

  close(): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
  }
}

/** A fresh task run that starts and completes, as one events batch of the run. */
function taskBatch(agent: RawAgent, ref: RunRef, index: number): RunEventBatch {
  const taskRunId = randomUUID();
  return {
    type: "run.events",
    v: PROTOCOL_VERSION,
    msgId: agent.msgId(),
    ...ref,
    events: [
      {
        kind: "task_run.created",
        id: taskRunId,
        flowRunId: ref.flowRunId,
        taskKey: "beat",
        dynamicKey: index,
        name: `beat-${index}`,
        tags: [],
        maxRetries: 0,
        upstream: [],
        timestamp: now(),
      },
      {
        kind: "task_run.state",
        eventId: randomUUID(),
        taskRunId,
        attempt: 1,
        state: { type: "RUNNING", name: "Running" },
        timestamp: now(),
      },
      {
        kind: "task_run.state",
        eventId: randomUUID(),
        taskRunId,
        attempt: 1,
        state: { type: "COMPLETED", name: "Completed" },
        timestamp: now(),
      },
    ],
  };
}

for (const provider of PROVIDERS) {
  describe(`run leases without heartbeats (${provider})`, async () => {
    const skip = provider === "postgresql" ? await postgresUnavailable() : undefined;
    let agent: RawAgent | undefined;
    const suite = useServer(
      provider,
      skip,
      async (s) => {
        await s.server.api.deployments.upsert.mutate({
          name: DEPLOYMENT,
          flowName: DEPLOYMENT,
          entrypoint: "flows/never-run.ts",
          paramsSchema: { type: "object" },
          workPool: POOL,
        });
        const token = await createToken(s.server, ["agent"], "raw-lease-agent");
        agent = await RawAgent.connect(s.server, token.secret, `raw-lease-agent-${provider}`);
      },
      { serverArgs: ["--heartbeat", "1s", "--lease", "3s"] },
    );
    after(() => agent?.close());
    const server = () => suite.server;
    const raw = () => {
      assert.ok(agent, "the raw agent is connected");
      return agent;
    };

    test("a run whose agent keeps reporting (but sends no heartbeat) keeps its lease", { skip }, async (t) => {
      const run = await server().api.runs.create.mutate({ deployment: DEPLOYMENT });
      const assign = await raw().started(run.id);
      const ref = { flowRunId: run.id, attempt: assign.attempt };
      const firstLease = Date.parse(assign.leaseExpiresAt);

      // Three leases' worth of reports, and not one heartbeat.
      const until = Date.now() + 9_000;
      let batches = 0;
      let lastReport = Date.now();
      while (Date.now() < until) {
        const batch = taskBatch(raw(), ref, batches++);
        raw().send(batch);
        const ack = await raw().ack(batch.msgId);
        assert.equal(ack.ok, true, JSON.stringify(ack));
        lastReport = Date.now();
        await sleep(REPORT_EVERY_MS);
      }
      const alive = await server().api.runs.get.query({ id: run.id });
      assert.equal(alive.stateType, "RUNNING", `${alive.stateType}: ${alive.stateMessage}`);
      assert.ok(!alive.states.some((s) => s.type === "CRASHED"), JSON.stringify(alive.states.map((s) => s.type)));
      assert.ok(alive.leaseExpiresAt, "the run still holds a lease");
      assert.ok(new Date(alive.leaseExpiresAt).getTime() > firstLease + 3_000, "the lease was extended by the reports");
      const { items: tasks } = await server().api.taskRuns.list.query({ flowRunId: run.id, limit: 500 });
      assert.equal(tasks.length, batches);
      assert.ok(tasks.every((task) => task.stateType === "COMPLETED"));
      t.diagnostic(`${batches} events batches kept the run alive for 9 s`);

      // Silence: the lease runs out and the sweeper ends the run.
      const crashed = await waitUntil(
        "the silent run crashes",
        async () => {
          const r = await server().api.runs.get.query({ id: run.id });
          return r.stateType === "CRASHED" ? r : undefined;
        },
        10_000,
      );
      assert.match(crashed.stateMessage ?? "", /lease expired/);
      t.diagnostic(`crashed at most ${Date.now() - lastReport} ms after the last report was acknowledged`);
    });

    test("heartbeats after a burst of queued reports are answered in the connection's order; the run keeps its lease", {
      skip,
    }, async (t) => {
      const run = await server().api.runs.create.mutate({ deployment: DEPLOYMENT });
      const assign = await raw().started(run.id);
      const ref = { flowRunId: run.id, attempt: assign.attempt };
      const heartbeat: Heartbeat = { type: "heartbeat", v: PROTOCOL_VERSION, runs: [ref], draining: false };
      const answeredBefore = raw().heartbeatAcks.length;

      // A burst of small log batches, sent without waiting: they queue on the control plane.
      const burst: number[] = [];
      for (let seq = 0; seq < 200; seq++) {
        const logs: LogBatch = {
          type: "logs",
          v: PROTOCOL_VERSION,
          msgId: raw().msgId(),
          ...ref,
          lines: [{ seq, level: "info", message: `line ${seq}`, timestamp: now() }],
        };
        burst.push(logs.msgId);
        raw().send(logs);
      }
      // Then heartbeats only, for two leases.
      let sent = 0;
      const until = Date.now() + 6_000;
      while (Date.now() < until) {
        raw().send(heartbeat);
        sent++;
        await sleep(REPORT_EVERY_MS);
      }

      await waitUntil("every heartbeat is answered", async () => raw().heartbeatAcks.length - answeredBefore >= sent, 5_000);
      const answers = raw().heartbeatAcks.slice(answeredBefore);
      assert.equal(answers.length, sent);
      assert.ok(
        answers.every((a) => a.revoked.length === 0),
        JSON.stringify(answers.map((a) => a.revoked)),
      );
      for (const msgId of burst) {
        const ack = await raw().ack(msgId);
        assert.equal(ack.ok, true, JSON.stringify(ack));
      }
      // Messages of a connection are handled in order (the protocol promises it): the first
      // heartbeat is answered after every batch sent before it.
      const firstAnswer = answers[0]?.at ?? 0;
      const pending = burst.filter((id) => (raw().ackedAt.get(id) ?? 0) > firstAnswer).length;
      t.diagnostic(`the first heartbeat was answered while ${pending} of ${burst.length} log batches were unacknowledged`);
      assert.equal(pending, 0, "a heartbeat overtook reports sent before it");

      const alive = await server().api.runs.get.query({ id: run.id });
      assert.equal(alive.stateType, "RUNNING", `${alive.stateType}: ${alive.stateMessage}`);
      assert.ok(!alive.states.some((s) => s.type === "CRASHED"), JSON.stringify(alive.states.map((s) => s.type)));
      const { items: logs } = await server().api.logs.list.query({ flowRunId: run.id, limit: 500 });
      assert.equal(logs.length, 200);
    });
  });
}
