import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createFerryClient } from "@ferry/control-plane/client";
import { AGENT_WS_PATH, CloseCode, PROTOCOL_VERSION } from "@ferry/sdk/protocol";
import WebSocket from "ws";
import {
  createToken,
  deployFixtures,
  ferry,
  PROVIDERS,
  postgresUnavailable,
  type Server,
  startAgent,
  useServer,
  waitUntil,
} from "./harness.ts";

async function trpcStatus(
  server: Server,
  path: string,
  token: string | undefined,
  body?: unknown,
): Promise<{ status: number; text: string }> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${server.url}/trpc/${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers,
    ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
  });
  return { status: res.status, text: await res.text() };
}

interface Socket {
  ws: WebSocket;
  messages: Record<string, unknown>[];
  closed: Promise<{ code: number; reason: string }>;
  next(type: string, timeoutMs?: number): Promise<Record<string, unknown>>;
}

function connect(server: Server, token: string | undefined): Promise<Socket> {
  const ws = new WebSocket(new URL(AGENT_WS_PATH, server.url.replace("http", "ws")), {
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  const messages: Record<string, unknown>[] = [];
  const closed = new Promise<{ code: number; reason: string }>((res) =>
    ws.on("close", (code, reason) => res({ code, reason: reason.toString() })),
  );
  ws.on("message", (data) => messages.push(JSON.parse(data.toString()) as Record<string, unknown>));
  ws.on("error", () => {});
  const socket: Socket = {
    ws,
    messages,
    closed,
    async next(type, timeoutMs = 10_000) {
      return waitUntil(
        `a ${type} message`,
        async () => {
          const i = messages.findIndex((m) => m.type === type);
          return i >= 0 ? messages.splice(i, 1)[0] : undefined;
        },
        timeoutMs,
      );
    },
  };
  return new Promise((res, rej) => {
    ws.once("open", () => res(socket));
    ws.once("unexpected-response", () => rej(new Error("upgrade refused")));
  });
}

const hello = (agentId: string) => ({
  type: "hello",
  v: PROTOCOL_VERSION,
  agentId,
  name: `raw-${agentId}`,
  pools: ["raw-pool"],
  capacity: 1,
  labels: {},
  version: "test",
  inFlight: [],
});

for (const provider of PROVIDERS) {
  describe(`bad input gets a clear error and loses nothing (${provider})`, async () => {
    const skip = provider === "postgresql" ? await postgresUnavailable() : undefined;
    const suite = useServer(provider, skip, async (s) => {
      await startAgent(s.server, { name: "agent-main", workDir: s.project });
      await deployFixtures(s);
    });
    const project = () => suite.project;
    const server = () => suite.server;

    test("a missing, wrong or expired token gets 401 and nothing happens", { skip }, async () => {
      assert.equal((await trpcStatus(server(), "runs.list", undefined)).status, 401);
      const wrong = await trpcStatus(server(), "runs.list", "fry_not-a-real-token");
      assert.equal(wrong.status, 401);
      assert.match(wrong.text, /invalid token/);
      assert.equal((await trpcStatus(server(), "runs.list", "garbage.jwt.value")).status, 401);
      const shortLived = await server().api.tokens.create.mutate({ name: "short", scopes: ["read"], expiresInSeconds: 1 });
      assert.equal((await trpcStatus(server(), "runs.list", shortLived.secret)).status, 200);
      await new Promise((r) => setTimeout(r, 1_200));
      const expired = await trpcStatus(server(), "runs.list", shortLived.secret);
      assert.equal(expired.status, 401);
      assert.match(expired.text, /token expired/);
      const cli = await ferry(["runs", "list"], {
        cwd: project(),
        env: { FERRY_API_URL: server().url, FERRY_API_TOKEN: "fry_wrong" },
      });
      assert.notEqual(cli.code, 0);
      assert.match(cli.output, /invalid token/);
      const before = await server().api.runs.list.query({ limit: 500 });
      await trpcStatus(server(), "runs.create", "fry_wrong", { deployment: "train", parameters: { grid: [0.1] } });
      assert.equal((await server().api.runs.list.query({ limit: 500 })).items.length, before.items.length);
    });

    test("a token with too narrow a scope gets 403", { skip }, async () => {
      const read = await createToken(server(), ["read"]);
      const agent = await createToken(server(), ["agent"]);
      const write = await createToken(server(), ["write"]);
      assert.equal((await trpcStatus(server(), "runs.list", read.secret)).status, 200);
      const denied = await trpcStatus(server(), "runs.create", read.secret, { deployment: "train", parameters: { grid: [0.1] } });
      assert.equal(denied.status, 403);
      assert.match(denied.text, /write scope/);
      assert.equal((await trpcStatus(server(), "runs.list", agent.secret)).status, 403);
      assert.equal((await trpcStatus(server(), "tokens.create", write.secret, { name: "x", scopes: ["admin"] })).status, 403);
      assert.equal((await trpcStatus(server(), "tokens.list", read.secret)).status, 403);
    });

    test("a revoked token is refused and its agent is disconnected for good", { skip }, async () => {
      const token = await createToken(server(), ["agent"], "soon-revoked");
      const agent = await startAgent(server(), {
        name: "doomed",
        pools: ["doomed-pool"],
        workDir: project(),
        token: token.secret,
      });
      const revoke = await ferry(["token", "revoke", token.id], { cwd: project(), env: server().env });
      assert.equal(revoke.code, 0, revoke.output);
      const exit = await agent.exited;
      assert.notEqual(exit.code, 0);
      assert.match(agent.output(), /4008/);
      const revokedApi = createFerryClient(server().url, token.secret);
      await assert.rejects(revokedApi.agents.list.query(), /token revoked|scope/);
      const socket = await connect(server(), token.secret);
      const closed = await socket.closed;
      assert.equal(closed.code, CloseCode.unauthorized);
      assert.match(closed.reason, /revoked/);
    });

    test("ferry token create makes a scoped token; web sessions signed from it end with it", { skip }, async () => {
      const created = await ferry(["token", "create", "--name", "ci", "--scope", "read", "--json"], {
        cwd: project(),
        env: server().env,
      });
      assert.equal(created.code, 0, created.output);
      const token = JSON.parse(created.output) as { id: string; secret: string; scopes: string[] };
      assert.deepEqual(token.scopes, ["read"]);
      const api = createFerryClient(server().url, token.secret);
      const { session } = await api.auth.createSession.mutate({ ttlSeconds: 600 });
      assert.ok(!session.startsWith("fry_"));
      const viaSession = createFerryClient(server().url, session);
      assert.equal((await viaSession.auth.whoami.query()).via, "session");
      await assert.rejects(viaSession.runs.create.mutate({ deployment: "train", parameters: { grid: [0.1] } }), /write scope/);
      const tampered = `${session.slice(0, -4)}AAAA`;
      assert.equal((await trpcStatus(server(), "runs.list", tampered)).status, 401);
      await server().api.tokens.revoke.mutate({ id: token.id });
      await assert.rejects(viaSession.runs.list.query(), /token revoked/);
      const badScope = await ferry(["token", "create", "--name", "x", "--scope", "root"], { cwd: project(), env: server().env });
      assert.notEqual(badScope.code, 0);
      assert.match(badScope.output, /--scope/);
    });

    test("parameters that fail the schema create no run; the CLI prints the issues", { skip }, async () => {
      const before = (await server().api.runs.list.query({ limit: 500 })).items.length;
      const result = await ferry(["run", "train", "--param", "grid=[]", "--wait"], { cwd: project(), env: server().env });
      assert.notEqual(result.code, 0);
      assert.match(result.output, /invalid parameters for deployment "train"/);
      assert.match(result.output, /grid: must NOT have fewer than 1 items/);
      const wrongType = await ferry(["run", "train", "--param", 'grid=["a"]'], { cwd: project(), env: server().env });
      assert.notEqual(wrongType.code, 0);
      assert.match(wrongType.output, /grid\.0: must be number/);
      const missing = await ferry(["run", "train"], { cwd: project(), env: server().env });
      assert.match(missing.output, /must have required property 'grid'/);
      assert.equal((await server().api.runs.list.query({ limit: 500 })).items.length, before);
      const badFlag = await ferry(["run", "train", "--param", "novalue"], { cwd: project(), env: server().env });
      assert.notEqual(badFlag.code, 0);
      assert.match(badFlag.output, /--param expects key=value/);
      const badAgentFlags = await ferry(["agent", "start", "--api", server().url, "--token", "fry_x", "--concurrency", "0"]);
      assert.notEqual(badAgentFlags.code, 0);
      assert.match(badAgentFlags.output, /--concurrency: Too small/i);
    });

    test("an entrypoint that does not exist or throws at import ends FAILED with the error in its logs", { skip }, async () => {
      for (const [name, entrypoint, expected] of [
        ["missing-module", "flows/does-not-exist.ts", /could not import .*does-not-exist\.ts/],
        ["broken-module", "flows/broken.ts", /broken module: failed at import time/],
        ["missing-flow", "flows/train.ts", /no flow named "nope"/],
      ] as const) {
        await server().api.deployments.upsert.mutate({
          name,
          flowName: name === "missing-flow" ? "nope" : name,
          entrypoint,
          paramsSchema: { type: "object" },
        });
        const result = await ferry(["run", name, "--wait"], { cwd: project(), env: server().env });
        assert.equal(result.code, 1, result.output);
        const run = (await server().api.runs.list.query({ deployment: name, limit: 1 })).items[0];
        assert.equal(run?.stateType, "FAILED");
        assert.match(run?.stateMessage ?? "", expected);
        const { items: logs } = await server().api.logs.list.query({ flowRunId: run?.id ?? "" });
        assert.ok(
          logs.some((l) => l.level === "error" && expected.test(l.message)),
          JSON.stringify(logs),
        );
      }
    });

    test("a flow process that breaks the IPC protocol ends its run CRASHED, saying why", { skip }, async () => {
      await server().api.deployments.upsert.mutate({
        name: "bad-ipc",
        flowName: "bad-ipc",
        entrypoint: "flows/bad-ipc.ts",
        paramsSchema: { type: "object" },
      });
      const created = await server().api.runs.create.mutate({ deployment: "bad-ipc" });
      const run = await waitUntil("the run to end", async () => {
        const r = await server().api.runs.get.query({ id: created.id });
        return r.stateType === "CRASHED" || r.stateType === "COMPLETED" || r.stateType === "FAILED" ? r : undefined;
      });
      assert.equal(run.stateType, "CRASHED");
      assert.match(run.stateMessage ?? "", /sent a bad message/);
    });

    test("deployments with an entrypoint outside the agent's directory are refused", { skip }, async () => {
      const res = await trpcStatus(server(), "deployments.upsert", server().adminToken, {
        name: "escape",
        flowName: "x",
        entrypoint: "../../etc/passwd",
        paramsSchema: {},
      });
      assert.equal(res.status, 400);
      assert.match(res.text, /relative path inside/);
    });

    test("an oversized API body gets 413 and malformed JSON gets 400", { skip }, async () => {
      const huge = JSON.stringify({ deployment: "train", parameters: { blob: "x".repeat(5 * 1024 * 1024) } });
      assert.equal((await trpcStatus(server(), "runs.create", server().adminToken, huge)).status, 413);
      assert.equal((await trpcStatus(server(), "runs.create", server().adminToken, "{not json")).status, 400);
    });

    test("the agent WebSocket refuses bad handshakes with documented close codes", { skip }, async () => {
      const noToken = await connect(server(), undefined);
      assert.equal((await noToken.closed).code, CloseCode.unauthorized);
      const read = await createToken(server(), ["read"]);
      const wrongScope = await connect(server(), read.secret);
      assert.equal((await wrongScope.closed).code, CloseCode.forbidden);
      const agentToken = (await createToken(server(), ["agent"])).secret;
      const garbage = await connect(server(), agentToken);
      garbage.ws.send("hello?");
      assert.equal((await garbage.closed).code, CloseCode.badHandshake);
      // A hello that fails validation is refused at once (its long, non-ASCII error text is cut to a valid close reason).
      const started = Date.now();
      const incomplete = await connect(server(), agentToken);
      incomplete.ws.send(JSON.stringify({ type: "hello", v: PROTOCOL_VERSION, agentId: "x", pools: [], capacity: -1 }));
      const refused = await incomplete.closed;
      assert.equal(refused.code, CloseCode.badHandshake);
      assert.match(refused.reason, /^expected hello/);
      assert.ok(Date.now() - started < 3_000, "closed without waiting for the hello timeout");
      const future = await connect(server(), agentToken);
      future.ws.send(JSON.stringify({ ...hello("v2-agent"), v: 2 }));
      const closed = await future.closed;
      assert.equal(closed.code, CloseCode.versionMismatch);
      assert.match(closed.reason, /version 2 is not supported/);
    });

    test("malformed frames get error frames; the connection and the control plane keep serving", { skip }, async () => {
      const agentToken = (await createToken(server(), ["agent"])).secret;
      const s = await connect(server(), agentToken);
      s.ws.send(JSON.stringify(hello("raw-agent-1")));
      await s.next("welcome");
      s.ws.send("{not json");
      assert.match(String((await s.next("error")).message), /not valid JSON/);
      s.ws.send(Buffer.from([1, 2, 3]), { binary: true });
      assert.match(String((await s.next("error")).message), /binary frames/);
      s.ws.send(JSON.stringify({ type: "launch-missiles", v: PROTOCOL_VERSION }));
      assert.equal((await s.next("error")).code, "BAD_MESSAGE");
      s.ws.send(JSON.stringify({ type: "logs", v: PROTOCOL_VERSION, msgId: 7, flowRunId: "x", attempt: 1, lines: "nope" }));
      const ack = await s.next("ack");
      assert.equal(ack.msgId, 7);
      assert.equal(ack.ok, false);
      s.ws.send(
        JSON.stringify({
          type: "logs",
          v: PROTOCOL_VERSION,
          msgId: 8,
          flowRunId: "not-a-run",
          attempt: 1,
          lines: [{ seq: 0, timestamp: new Date().toISOString(), level: "info", message: "x" }],
        }),
      );
      assert.equal(((await s.next("ack")).error as { code: string }).code, "UNKNOWN_RUN");
      s.ws.send(JSON.stringify({ type: "heartbeat", v: PROTOCOL_VERSION, runs: [{ flowRunId: "not-mine", attempt: 1 }] }));
      const hb = await s.next("heartbeat.ack");
      assert.deepEqual(hb.revoked, [{ flowRunId: "not-mine", attempt: 1 }]);
      // An oversized frame closes the connection cleanly with 1009.
      s.ws.send("x".repeat(5 * 1024 * 1024));
      assert.equal((await s.closed).code, CloseCode.tooBig);
      // Everything else keeps working: health, API, and the real agent running flows.
      const health = await fetch(`${server().url}/healthz`);
      assert.equal(health.status, 200);
      const result = await ferry(["run", "fanout", "--param", "n=3", "--wait"], { cwd: project(), env: server().env });
      assert.equal(result.code, 0, result.output);
    });

    test("an agent can only write into the runs it holds", { skip }, async () => {
      const created = await server().api.runs.create.mutate({ deployment: "fanout", parameters: { n: 2 } });
      const victim = await waitUntil("the victim run completes", async () => {
        const r = await server().api.runs.get.query({ id: created.id });
        return r.stateType === "COMPLETED" ? r : undefined;
      });
      const victimTasks = (await server().api.taskRuns.list.query({ flowRunId: victim.id })).items.length;
      await server().api.deployments.upsert.mutate({
        name: "raw",
        flowName: "raw",
        entrypoint: "x.ts",
        paramsSchema: { type: "object" },
        workPool: "raw-pool",
      });
      const s = await connect(server(), (await createToken(server(), ["agent"])).secret);
      s.ws.send(JSON.stringify(hello("raw-agent-2")));
      await s.next("welcome");
      const own = await server().api.runs.create.mutate({ deployment: "raw" });
      const assign = await s.next("run.assign");
      assert.equal(assign.flowRunId, own.id);
      const now = new Date().toISOString();
      s.ws.send(
        JSON.stringify({
          type: "run.events",
          v: PROTOCOL_VERSION,
          msgId: 1,
          flowRunId: own.id,
          attempt: assign.attempt,
          events: [
            {
              kind: "task_run.created",
              id: "intruder-task",
              flowRunId: victim.id,
              taskKey: "x",
              dynamicKey: 0,
              name: "x",
              tags: [],
              maxRetries: 0,
              upstream: [],
              timestamp: now,
            },
            {
              kind: "flow_run.state",
              eventId: "intruder-state",
              flowRunId: victim.id,
              state: { type: "SCHEDULED", name: "Scheduled" },
              timestamp: now,
            },
          ],
        }),
      );
      assert.equal((await s.next("ack")).ok, true);
      // Reports about a run this agent does not hold are refused outright.
      s.ws.send(
        JSON.stringify({
          type: "state.propose",
          v: PROTOCOL_VERSION,
          msgId: 2,
          eventId: "x-2",
          flowRunId: victim.id,
          attempt: victim.attempt,
          state: { type: "RUNNING", name: "Running" },
          timestamp: now,
        }),
      );
      assert.equal(((await s.next("ack")).orchestration as { status: string }).status, "REJECT");
      const after = await server().api.runs.get.query({ id: victim.id });
      assert.equal(after.stateType, "COMPLETED");
      assert.equal((await server().api.taskRuns.list.query({ flowRunId: victim.id })).items.length, victimTasks);
      s.ws.close();
    });

    test("a token of one workspace sees nothing of another", { skip }, async () => {
      const created = await ferry(["workspace", "create", "other", "--database-url", suite.database.url, "--json"]);
      assert.equal(created.code, 0, created.output);
      const other = JSON.parse(created.output) as { admin: { secret: string } };
      const otherApi = createFerryClient(server().url, other.admin.secret);
      const mine = await server().api.runs.list.query({ limit: 5 });
      const someRun = mine.items[0];
      assert.ok(someRun);
      assert.deepEqual((await otherApi.runs.list.query()).items, []);
      assert.deepEqual(await otherApi.deployments.list.query(), []);
      assert.deepEqual(await otherApi.agents.list.query(), []);
      await assert.rejects(otherApi.runs.get.query({ id: someRun.id }), /no flow run/);
      await assert.rejects(otherApi.runs.cancel.mutate({ id: someRun.id }), /no flow run/);
      await assert.rejects(
        otherApi.logs.list
          .query({ flowRunId: someRun.id })
          .then((r) => (r.items.length ? r : Promise.reject(new Error("no logs visible")))),
        /no logs visible/,
      );
      const ownTokens = await otherApi.tokens.list.query();
      assert.equal(ownTokens.items.length, 1);
    });
  });
}
