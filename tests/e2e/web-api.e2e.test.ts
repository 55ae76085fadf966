import assert from "node:assert/strict";
import { cpSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { TRPCClientError } from "@ferry/control-plane/client";
import {
  createToken,
  deployFixtures,
  PROVIDERS,
  postgresUnavailable,
  REPO,
  type Server,
  startAgent,
  useServer,
  waitUntil,
} from "./harness.ts";

// The control-plane API the web app uses, over real HTTP: cookie sessions and their origin
// checks, CORS, live views over server-sent events, the grouped run graph, task-run pages and
// lineage, log tail/search/paging, user retry, run statistics and filters.

const WEB_ORIGIN = "http://127.0.0.1:3999";
const EVIL_ORIGIN = "http://evil.example";

interface Answer {
  status: number;
  body: { result?: { data: unknown }; error?: { message: string; data?: { code?: string; httpStatus?: number } } };
  headers: Headers;
  setCookies: string[];
}

/** One tRPC call over plain HTTP: GET for a query (input in the URL), POST with a JSON body for a mutation. */
async function call(
  server: Server,
  path: string,
  options: { input?: unknown; method?: "GET" | "POST"; cookie?: string; origin?: string; token?: string } = {},
): Promise<Answer> {
  const method = options.method ?? "GET";
  const headers: Record<string, string> = {};
  if (options.cookie) headers.cookie = options.cookie;
  if (options.origin) headers.origin = options.origin;
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  let url = `${server.url}/trpc/${path}`;
  let body: string | undefined;
  if (method === "GET") {
    if (options.input !== undefined) url += `?input=${encodeURIComponent(JSON.stringify(options.input))}`;
  } else {
    headers["content-type"] = "application/json";
    body = JSON.stringify(options.input ?? {});
  }
  const res = await fetch(url, { method, headers, ...(body === undefined ? {} : { body }) });
  return {
    status: res.status,
    body: (await res.json()) as Answer["body"],
    headers: res.headers,
    setCookies: res.headers.getSetCookie(),
  };
}

/** The result of a successful call. */
function data<T>(answer: Answer): T {
  assert.ok(answer.body.result, `expected a result, got ${JSON.stringify(answer.body)}`);
  return answer.body.result.data as T;
}

/** Signs in with `token` from the web app's origin; the `name=value` of the session cookie. */
async function signIn(server: Server, token: string): Promise<string> {
  const answer = await call(server, "auth.signIn", { method: "POST", input: { token }, origin: WEB_ORIGIN });
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  const cookie = answer.setCookies.find((c) => c.startsWith("ferry_session="));
  assert.ok(cookie, `no session cookie in ${answer.setCookies.join(" | ")}`);
  return cookie.split(";")[0] as string;
}

interface EventStream {
  /** The data events, parsed, in order. */
  events: unknown[];
  /** `serialized-error` events. */
  errors: unknown[];
  /** Resolves with the events once `predicate` holds for them. */
  until(what: string, predicate: (events: unknown[]) => boolean, timeoutMs?: number): Promise<unknown[]>;
  close(): void;
}

/** Opens a subscription as the web app does: GET with `Accept: text/event-stream`, read as it arrives. */
async function subscribe(
  server: Server,
  path: string,
  input: unknown,
  auth: { token?: string; cookie?: string },
): Promise<EventStream> {
  const controller = new AbortController();
  const headers: Record<string, string> = { accept: "text/event-stream" };
  if (auth.token) headers.authorization = `Bearer ${auth.token}`;
  if (auth.cookie) headers.cookie = auth.cookie;
  const res = await fetch(`${server.url}/trpc/${path}?input=${encodeURIComponent(JSON.stringify(input))}`, {
    headers,
    signal: controller.signal,
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/event-stream/);
  const stream: EventStream = {
    events: [],
    errors: [],
    until: (what, predicate, timeoutMs = 20_000) =>
      waitUntil(what, async () => (predicate(stream.events) ? stream.events : undefined), timeoutMs),
    close: () => controller.abort(),
  };
  const body = res.body;
  assert.ok(body);
  void (async () => {
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for await (const chunk of body) {
        buffer += decoder.decode(chunk as Uint8Array, { stream: true });
        for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let event = "message";
          const data: string[] = [];
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) event = line.slice(6).trim();
            else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
          }
          if (!data.length) continue; // a comment (keep-alive ping)
          const parsed = JSON.parse(data.join("\n")) as unknown;
          if (event === "message") stream.events.push(parsed);
          else if (event === "serialized-error") stream.errors.push(parsed);
        }
      }
    } catch {
      // closed by the test
    }
  })();
  return stream;
}

const partsOf = (events: unknown[]) => new Set(events.flatMap((e) => (e as { parts: string[] }).parts));

async function trpcCode(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof TRPCClientError) return (err.data as { code?: string } | undefined)?.code;
    throw err;
  }
  assert.fail("expected the call to be refused");
}

for (const provider of PROVIDERS) {
  describe(`the web app's API (${provider})`, async () => {
    const skip = provider === "postgresql" ? await postgresUnavailable() : undefined;
    const suite = useServer(
      provider,
      skip,
      async (s) => {
        cpSync(join(REPO, "tests/e2e/web-fixtures/pipeline.ts"), join(s.project, "flows/pipeline.ts"));
        await startAgent(s.server, { name: "agent-web", workDir: s.project });
        await deployFixtures(s);
        await deployFixtures(s, [], "flows/pipeline.ts");
      },
      { serverArgs: ["--cors-origin", WEB_ORIGIN] },
    );
    const server = () => suite.server;
    const api = () => suite.server.api;

    async function finished(id: string, timeoutMs = 30_000) {
      return waitUntil(
        `run ${id} is finished`,
        async () => {
          const run = await api().runs.get.query({ id });
          return ["COMPLETED", "FAILED", "CRASHED", "CANCELLED"].includes(run.stateType) ? run : undefined;
        },
        timeoutMs,
      );
    }

    async function runToEnd(deployment: string, parameters: Record<string, unknown> = {}, tags?: string[]) {
      const run = await api().runs.create.mutate({ deployment, parameters, ...(tags ? { tags } : {}) });
      return finished(run.id);
    }

    test("sign-in sets an httpOnly SameSite=Lax session cookie that authenticates on its own", { skip }, async () => {
      const answer = await call(server(), "auth.signIn", {
        method: "POST",
        input: { token: server().adminToken },
        origin: WEB_ORIGIN,
      });
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      assert.deepEqual(data<{ scopes: string[] }>(answer).scopes.sort(), ["admin", "read", "write"]);
      assert.equal(data<{ tokenName: string }>(answer).tokenName, "admin");
      assert.equal(answer.headers.get("access-control-allow-origin"), WEB_ORIGIN);
      assert.equal(answer.headers.get("access-control-allow-credentials"), "true");
      assert.equal(answer.setCookies.length, 1);
      const setCookie = answer.setCookies[0] ?? "";
      assert.match(setCookie, /^ferry_session=[\w-]+\.[\w-]+\.[\w-]+;/);
      assert.match(setCookie, /;\s*HttpOnly/i);
      assert.match(setCookie, /;\s*SameSite=Lax/i);
      assert.match(setCookie, /;\s*Path=\//);
      assert.match(setCookie, /;\s*Max-Age=\d+/);
      assert.doesNotMatch(setCookie, /fry_/, "the API token itself never goes into the cookie");

      const cookie = setCookie.split(";")[0] as string;
      const whoami = await call(server(), "auth.whoami", { cookie });
      assert.equal(whoami.status, 200, JSON.stringify(whoami.body));
      const me = data<{ via: string; tokenName: string; sessionId?: string }>(whoami);
      assert.equal(me.via, "session");
      assert.equal(me.tokenName, "admin");
      assert.ok(me.sessionId);
      // The typed queries work with the cookie alone, too.
      assert.equal((await call(server(), "runs.list", { cookie, input: { limit: 1 } })).status, 200);
      // Without any credential: 401.
      assert.equal((await call(server(), "auth.whoami")).status, 401);
      // An API token in the cookie is not a session.
      const tokenCookie = await call(server(), "auth.whoami", { cookie: `ferry_session=${server().adminToken}` });
      assert.equal(tokenCookie.status, 401);
    });

    test("sign-in refuses a wrong token (401), an agent token (403), a session (400) and another origin (403)", {
      skip,
    }, async () => {
      const wrong = await call(server(), "auth.signIn", {
        method: "POST",
        input: { token: "fry_not-a-real-token" },
        origin: WEB_ORIGIN,
      });
      assert.equal(wrong.status, 401);
      assert.match(wrong.body.error?.message ?? "", /invalid token/);
      assert.deepEqual(wrong.setCookies, []);

      const agent = await createToken(server(), ["agent"], "web-agent-only");
      const agentAnswer = await call(server(), "auth.signIn", {
        method: "POST",
        input: { token: agent.secret },
        origin: WEB_ORIGIN,
      });
      assert.equal(agentAnswer.status, 403);
      assert.match(agentAnswer.body.error?.message ?? "", /agent token cannot sign in/);
      assert.deepEqual(agentAnswer.setCookies, []);

      const { session } = await api().auth.createSession.mutate({ ttlSeconds: 600 });
      // A session is no API token (and longer than any): refused before it is even checked.
      const bySession = await call(server(), "auth.signIn", { method: "POST", input: { token: session }, origin: WEB_ORIGIN });
      assert.equal(bySession.status, 400);
      assert.match(bySession.body.error?.message ?? "", /not a Ferry API token/);
      assert.deepEqual(bySession.setCookies, []);

      const evil = await call(server(), "auth.signIn", {
        method: "POST",
        input: { token: server().adminToken },
        origin: EVIL_ORIGIN,
      });
      assert.equal(evil.status, 403);
      assert.deepEqual(evil.setCookies, []);
      assert.equal(evil.headers.get("access-control-allow-origin"), null);

      const empty = await call(server(), "auth.signIn", { method: "POST", input: { token: "  " }, origin: WEB_ORIGIN });
      assert.equal(empty.status, 400);
    });

    test("a cookie-authenticated change from another origin is refused and changes nothing; from the web app it works", {
      skip,
    }, async () => {
      const cookie = await signIn(server(), server().adminToken);
      const input = { deployment: "sleepy", parameters: { ms: 0 }, tags: [`csrf-${provider}`] };
      const evil = await call(server(), "runs.create", { method: "POST", input, cookie, origin: EVIL_ORIGIN });
      assert.equal(evil.status, 401);
      assert.match(evil.body.error?.message ?? "", /not accepted from this origin/);
      assert.equal(evil.headers.get("access-control-allow-origin"), null);
      assert.equal((await api().runs.list.query({ tag: `csrf-${provider}` })).items.length, 0);

      const ok = await call(server(), "runs.create", { method: "POST", input, cookie, origin: WEB_ORIGIN });
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
      assert.equal(ok.headers.get("access-control-allow-origin"), WEB_ORIGIN);
      const created = data<{ id: string }>(ok);
      const listed = await api().runs.list.query({ tag: `csrf-${provider}` });
      assert.deepEqual(
        listed.items.map((r) => r.id),
        [created.id],
      );
      // A bearer token is no cookie: it is not subject to the origin check.
      const bearer = await call(server(), "auth.whoami", { token: server().adminToken, origin: EVIL_ORIGIN });
      assert.equal(bearer.status, 200);
      await finished(created.id);
    });

    test("CORS: a preflight from the web app's origin is allowed with credentials; from another origin it is not", {
      skip,
    }, async () => {
      const preflight = (origin: string) =>
        fetch(`${server().url}/trpc/runs.create`, {
          method: "OPTIONS",
          headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "content-type" },
        });
      const allowed = await preflight(WEB_ORIGIN);
      assert.ok(allowed.status === 204 || allowed.status === 200, String(allowed.status));
      assert.equal(allowed.headers.get("access-control-allow-origin"), WEB_ORIGIN);
      assert.equal(allowed.headers.get("access-control-allow-credentials"), "true");
      assert.match(allowed.headers.get("access-control-allow-methods") ?? "", /POST/);
      assert.match(allowed.headers.get("access-control-allow-headers") ?? "", /content-type/i);

      const evil = await preflight(EVIL_ORIGIN);
      assert.equal(evil.headers.get("access-control-allow-origin"), null);
      assert.notEqual(evil.headers.get("access-control-allow-origin"), "*");
    });

    test("sign-out ends the session on the server: the old cookie gets 401", { skip }, async () => {
      const cookie = await signIn(server(), server().adminToken);
      assert.equal((await call(server(), "auth.whoami", { cookie })).status, 200);
      // Another site cannot sign the user out.
      const evil = await call(server(), "auth.signOut", { method: "POST", cookie, origin: EVIL_ORIGIN });
      assert.equal(evil.status, 403);
      assert.deepEqual(evil.setCookies, []);
      assert.equal((await call(server(), "auth.whoami", { cookie })).status, 200);

      const out = await call(server(), "auth.signOut", { method: "POST", cookie, origin: WEB_ORIGIN });
      assert.equal(out.status, 200, JSON.stringify(out.body));
      assert.equal(out.setCookies.length, 1);
      assert.match(out.setCookies[0] ?? "", /^ferry_session=;.*Max-Age=0/);
      const after = await call(server(), "auth.whoami", { cookie });
      assert.equal(after.status, 401);
      assert.match(after.body.error?.message ?? "", /signed out/);
      // Other sessions of the same token are not affected.
      const other = await signIn(server(), server().adminToken);
      assert.equal((await call(server(), "auth.whoami", { cookie: other })).status, 200);
    });

    test("revoking the token ends its web sessions", { skip }, async () => {
      const token = await createToken(server(), ["read"], "web-reader");
      const cookie = await signIn(server(), token.secret);
      const me = await call(server(), "auth.whoami", { cookie });
      assert.equal(me.status, 200);
      assert.deepEqual(data<{ scopes: string[] }>(me).scopes, ["read"]);
      // A read-only session cannot change anything.
      const create = await call(server(), "runs.create", {
        method: "POST",
        input: { deployment: "sleepy", parameters: { ms: 0 } },
        cookie,
        origin: WEB_ORIGIN,
      });
      assert.equal(create.status, 403);

      await api().tokens.revoke.mutate({ id: token.id });
      const after = await call(server(), "auth.whoami", { cookie });
      assert.equal(after.status, 401);
      assert.match(after.body.error?.message ?? "", /token revoked/);
      const again = await call(server(), "auth.signIn", { method: "POST", input: { token: token.secret }, origin: WEB_ORIGIN });
      assert.equal(again.status, 401);
    });

    test("live.run streams changes of a run as it progresses (state, tasks, logs)", { skip }, async () => {
      const run = await api().runs.create.mutate({ deployment: "pipeline", parameters: { n: 20, lines: 3, pauseMs: 300 } });
      const stream = await subscribe(server(), "live.run", { id: run.id }, { token: server().adminToken });
      try {
        const [first] = await stream.until("the first event", (e) => e.length >= 1, 5_000);
        assert.deepEqual(first, { parts: ["state", "tasks", "logs"] });
        await finished(run.id);
        const events = await stream.until("events naming state, tasks and logs after the first", (e) => {
          const later = partsOf(e.slice(1));
          return later.has("state") && later.has("tasks") && later.has("logs");
        });
        assert.ok(events.length >= 2, JSON.stringify(events));
        for (const e of events.slice(1)) {
          const parts = (e as { parts: string[] }).parts;
          assert.ok(parts.length > 0 && parts.every((p) => ["state", "tasks", "logs"].includes(p)), JSON.stringify(e));
        }
        assert.deepEqual(stream.errors, []);
      } finally {
        stream.close();
      }

      // A child flow run's stream hears its root's batches; an unknown run is NOT_FOUND.
      const missing = await subscribe(server(), "live.run", { id: "no-such-run" }, { token: server().adminToken });
      try {
        await waitUntil("an error event", async () => missing.errors.length > 0, 5_000);
        assert.equal((missing.errors[0] as { data?: { code?: string } }).data?.code, "NOT_FOUND");
        assert.deepEqual(missing.events, []);
      } finally {
        missing.close();
      }
    });

    test("live.workspace({kinds: [runs]}) emits when a run is created, over the session cookie", { skip }, async () => {
      const cookie = await signIn(server(), server().adminToken);
      const stream = await subscribe(server(), "live.workspace", { kinds: ["runs"] }, { cookie });
      try {
        const [first] = await stream.until("the first event", (e) => e.length >= 1, 5_000);
        assert.deepEqual(first, { kinds: ["runs"] });
        // Let anything of earlier tests settle, then create a run.
        await new Promise((r) => setTimeout(r, 400));
        const seen = stream.events.length;
        const run = await api().runs.create.mutate({ deployment: "sleepy", parameters: { ms: 0 } });
        await stream.until("an event after the run was created", (e) => e.length > seen, 5_000);
        assert.deepEqual(stream.events[seen], { kinds: ["runs"] });
        await finished(run.id);
        assert.deepEqual(stream.errors, []);
      } finally {
        stream.close();
      }
      // Without a credential the stream only carries the refusal.
      const anonymous = await subscribe(server(), "live.workspace", { kinds: ["runs"] }, {});
      try {
        await waitUntil("an error event", async () => anonymous.errors.length > 0, 5_000);
        assert.equal((anonymous.errors[0] as { data?: { code?: string } }).data?.code, "UNAUTHORIZED");
        assert.deepEqual(anonymous.events, []);
      } finally {
        anonymous.close();
      }
    });

    test("runs.graph groups mapped task runs, with aggregate edges and counts; expand shows the members", { skip }, async () => {
      const fan = await runToEnd("fanout", { n: 30 });
      assert.equal(fan.stateType, "COMPLETED");
      const fanGraph = await api().runs.graph.query({ id: fan.id });
      const squares = fanGraph.nodes.find((n) => n.id === "group:square");
      assert.ok(squares, JSON.stringify(fanGraph.nodes));
      assert.equal(squares.kind, "group");
      assert.equal(squares.total, 30);
      assert.deepEqual(squares.counts, { COMPLETED: 30 });
      assert.equal(squares.stateType, "COMPLETED");
      const wrapper = fanGraph.nodes.find((n) => n.taskKey === "flow:child");
      assert.ok(wrapper);
      assert.equal(wrapper.kind, "task");
      assert.ok(wrapper.childFlowRunId);
      assert.equal(fanGraph.nodes.length, 2);
      assert.deepEqual(
        fanGraph.edges.map((e) => [e.source, e.target, e.count]),
        [["group:square", wrapper.id, 30]],
      );
      assert.equal(fanGraph.total, 31);
      assert.deepEqual(fanGraph.counts, { COMPLETED: 31 });

      const run = await runToEnd("pipeline", { n: 12 });
      assert.equal(run.stateType, "COMPLETED");
      const graph = await api().runs.graph.query({ id: run.id });
      const byId = new Map(graph.nodes.map((n) => [n.id, n]));
      for (const key of ["double", "inc"]) {
        const group = byId.get(`group:${key}`);
        assert.ok(group, `no group:${key} in ${[...byId.keys()].join(", ")}`);
        assert.equal(group.total, 12);
        assert.equal(group.counts.COMPLETED, 12);
        assert.equal(group.stateType, "COMPLETED");
      }
      assert.equal(byId.get("group:step")?.total, 3);
      const sum = graph.nodes.find((n) => n.taskKey === "sum");
      assert.ok(sum && sum.kind === "task");
      assert.equal(graph.nodes.length, 4);
      const edges = graph.edges.map((e) => `${e.source}->${e.target}:${e.count}`).sort();
      // The loop of `step` (edges within its group) draws no self-loop.
      assert.deepEqual(edges, ["group:double->group:inc:12", `group:inc->${sum.id}:12`]);
      assert.equal(graph.total, 28);

      const expanded = await api().runs.graph.query({ id: run.id, expand: ["inc", "step"] });
      const incs = expanded.nodes.filter((n) => n.taskKey === "inc");
      assert.equal(incs.length, 12);
      assert.ok(incs.every((n) => n.kind === "task" && n.stateType === "COMPLETED" && n.hidden === 0));
      assert.ok(!expanded.nodes.some((n) => n.id === "group:inc"));
      const steps = expanded.nodes.filter((n) => n.taskKey === "step");
      assert.equal(steps.length, 3);
      const incIds = new Set(incs.map((n) => n.id));
      const stepIds = new Set(steps.map((n) => n.id));
      const into = (target: string) => expanded.edges.filter((e) => e.target === target);
      for (const inc of incs) {
        assert.deepEqual(
          into(inc.id).map((e) => [e.source, e.count]),
          [["group:double", 1]],
        );
      }
      const intoSum = into(sum.id);
      assert.equal(intoSum.length, 12);
      assert.ok(intoSum.every((e) => incIds.has(e.source) && e.count === 1));
      // The loop's members are chained one to the next.
      const stepEdges = expanded.edges.filter((e) => stepIds.has(e.source) && stepIds.has(e.target));
      assert.equal(stepEdges.length, 2);
      assert.equal(expanded.edges.length, 12 + 12 + 2);
    });

    test("taskRuns.page pages by offset with a consistent total; taskRuns.get names upstream and downstream", {
      skip,
    }, async () => {
      const run = await runToEnd("pipeline", { n: 9 });
      const all: string[] = [];
      for (let offset = 0; ; offset += 5) {
        const page = await api().taskRuns.page.query({ flowRunId: run.id, offset, limit: 5 });
        assert.equal(page.total, 9 + 9 + 3 + 1);
        assert.equal(page.attempt, run.attempt);
        assert.equal(page.items.length, Math.min(5, Math.max(0, page.total - offset)));
        all.push(...page.items.map((t) => t.id));
        if (!page.items.length) break;
      }
      assert.equal(all.length, 22);
      assert.equal(new Set(all).size, 22);
      const { items: listed } = await api().taskRuns.list.query({ flowRunId: run.id });
      assert.deepEqual(new Set(all), new Set(listed.map((t) => t.id)));

      const incPage = await api().taskRuns.page.query({ flowRunId: run.id, taskKey: "inc", offset: 3, limit: 4 });
      assert.equal(incPage.total, 9);
      assert.equal(incPage.items.length, 4);
      assert.ok(incPage.items.every((t) => t.taskKey === "inc"));
      assert.deepEqual(
        incPage.items.map((t) => t.dynamicKey),
        [3, 4, 5, 6],
      );
      assert.equal((await api().taskRuns.page.query({ flowRunId: run.id, state: ["COMPLETED"] })).total, 22);
      const none = await api().taskRuns.page.query({ flowRunId: run.id, state: ["FAILED", "CRASHED"] });
      assert.deepEqual([none.total, none.items.length], [0, 0]);
      const past = await api().taskRuns.page.query({ flowRunId: run.id, offset: 100 });
      assert.deepEqual([past.total, past.items.length], [22, 0]);

      const sum = listed.find((t) => t.taskKey === "sum");
      assert.ok(sum);
      const detail = await api().taskRuns.get.query({ id: sum.id });
      const level1 = detail.upstream.filter((u) => u.depth === 1);
      const level2 = detail.upstream.filter((u) => u.depth === 2);
      assert.equal(level1.length, 9);
      assert.ok(level1.every((u) => u.task.taskKey === "inc" && u.via === sum.id));
      assert.equal(level2.length, 9);
      assert.ok(level2.every((u) => u.task.taskKey === "double" && listed.some((t) => t.id === u.via && t.taskKey === "inc")));
      assert.ok(detail.upstream.every((u) => u.depth <= 3));
      assert.deepEqual(detail.downstream, []);

      const firstInc = listed.find((t) => t.taskKey === "inc" && t.dynamicKey === 0);
      const firstDouble = listed.find((t) => t.taskKey === "double" && t.dynamicKey === 0);
      assert.ok(firstInc && firstDouble);
      const incDetail = await api().taskRuns.get.query({ id: firstInc.id });
      assert.deepEqual(
        incDetail.upstream.map((u) => [u.depth, u.task.id, u.task.taskKey]),
        [[1, firstDouble.id, "double"]],
      );
      assert.deepEqual(
        incDetail.downstream.map((d) => d.id),
        [sum.id],
      );
      // The third step of the loop: two steps upstream, the last one downstream of nothing.
      // (In call order: several task runs reported in one batch share their creation time.)
      const steps = listed.filter((t) => t.taskKey === "step").sort((a, b) => a.dynamicKey - b.dynamicKey);
      assert.deepEqual(
        steps.map((t) => t.dynamicKey),
        [0, 1, 2],
      );
      const lastStep = await api().taskRuns.get.query({ id: steps[2]?.id ?? "" });
      assert.deepEqual(
        lastStep.upstream.map((u) => [u.depth, u.task.id]),
        [
          [1, steps[1]?.id],
          [2, steps[0]?.id],
        ],
      );
    });

    test("logs.list: tail returns the last lines in order, search filters, beforeId pages back", { skip }, async () => {
      const run = await runToEnd("pipeline", { n: 2, lines: 12 });
      assert.equal(run.stateType, "COMPLETED");
      const { items: all } = await api().logs.list.query({ flowRunId: run.id });
      const ours = all.filter((l) => l.message.startsWith("pipeline line-"));
      assert.equal(ours.length, 12);
      assert.ok(all.length >= 13);
      const ids = all.map((l) => l.id);
      assert.deepEqual(
        ids,
        [...ids].sort((a, b) => a - b),
      );

      const tail = await api().logs.list.query({ flowRunId: run.id, tail: true, limit: 2 });
      assert.deepEqual(
        tail.items.map((l) => l.id),
        ids.slice(-2),
      );
      assert.equal(tail.firstId, ids.at(-2));
      assert.equal(tail.lastId, ids.at(-1));

      const back = await api().logs.list.query({ flowRunId: run.id, beforeId: tail.firstId ?? 0, limit: 3 });
      assert.deepEqual(
        back.items.map((l) => l.id),
        ids.slice(-5, -2),
      );
      const further = await api().logs.list.query({ flowRunId: run.id, beforeId: back.firstId ?? 0, limit: 1000 });
      assert.deepEqual(
        further.items.map((l) => l.id),
        ids.slice(0, -5),
      );
      const start = await api().logs.list.query({ flowRunId: run.id, beforeId: ids[0] ?? 0 });
      assert.deepEqual(start.items, []);

      const found = await api().logs.list.query({ flowRunId: run.id, search: "line-1" });
      assert.deepEqual(
        found.items.map((l) => l.message),
        ["pipeline line-10", "pipeline line-11"],
      );
      const searchTail = await api().logs.list.query({ flowRunId: run.id, search: "pipeline line-", tail: true, limit: 3 });
      assert.deepEqual(
        searchTail.items.map((l) => l.message),
        ["pipeline line-09", "pipeline line-10", "pipeline line-11"],
      );
      const between = await api().logs.list.query({
        flowRunId: run.id,
        search: "pipeline line-",
        afterId: ours[2]?.id ?? 0,
        beforeId: ours[6]?.id ?? 0,
      });
      assert.deepEqual(
        between.items.map((l) => l.message),
        ["pipeline line-03", "pipeline line-04", "pipeline line-05"],
      );
      const nothing = await api().logs.list.query({ flowRunId: run.id, search: "no line says this" });
      assert.deepEqual(nothing.items, []);
    });

    test("runs.retry runs a failed run again as a new attempt; a completed run or a child run is refused", { skip }, async () => {
      const failed = await runToEnd("failing");
      assert.equal(failed.stateType, "FAILED");
      const retried = await api().runs.retry.mutate({ id: failed.id });
      assert.equal(retried.id, failed.id);
      assert.equal(retried.state.type, "SCHEDULED");
      assert.equal(retried.state.name, "AwaitingRetry");
      // Not twice: it is no longer failed.
      assert.equal(await trpcCode(api().runs.retry.mutate({ id: failed.id })), "CONFLICT");

      const again = await waitUntil("the retried run fails again", async () => {
        const r = await api().runs.get.query({ id: failed.id });
        return r.stateType === "FAILED" && r.attempt > failed.attempt ? r : undefined;
      });
      const types = again.states.map((s) => `${s.type}:${s.name}`);
      const firstEnd = types.indexOf("FAILED:Failed");
      assert.deepEqual(types.slice(firstEnd, firstEnd + 5), [
        "FAILED:Failed",
        "SCHEDULED:AwaitingRetry",
        "PENDING:Pending",
        "RUNNING:Running",
        "FAILED:Failed",
      ]);
      assert.equal(types.length, firstEnd + 5);

      const completed = await runToEnd("sleepy", { ms: 0 });
      assert.equal(completed.stateType, "COMPLETED");
      assert.equal(await trpcCode(api().runs.retry.mutate({ id: completed.id })), "CONFLICT");
      const fan = await runToEnd("fanout", { n: 2 });
      const child = (await api().runs.list.query({ parentFlowRunId: fan.id })).items[0];
      assert.ok(child);
      assert.equal(await trpcCode(api().runs.retry.mutate({ id: child.id })), "CONFLICT");
      assert.equal(await trpcCode(api().runs.retry.mutate({ id: "no-such-run" })), "NOT_FOUND");
    });

    test("runs.stats counts the runs created per state and over time; runs.list filters by tag, root and time", {
      skip,
    }, async () => {
      const tag = `stats-${provider}`;
      const since = new Date(Date.now() - 1_000).toISOString();
      const runs = await Promise.all([
        runToEnd("sleepy", { ms: 0 }, [tag, "web"]),
        runToEnd("sleepy", { ms: 0 }, [tag]),
        runToEnd("pipeline", { n: 1 }, ["web", tag]),
        runToEnd("failing", {}, [tag]),
        runToEnd("sleepy", { ms: 0 }, [`${tag}-other`]),
      ]);
      assert.deepEqual(
        runs.map((r) => r.stateType),
        ["COMPLETED", "COMPLETED", "COMPLETED", "FAILED", "COMPLETED"],
      );
      const stats = await api().runs.stats.query({ tag, createdAfter: since, buckets: 6 });
      assert.deepEqual(stats.counts, { COMPLETED: 3, FAILED: 1 });
      assert.equal(stats.from, since);
      assert.equal(stats.buckets.length, 6);
      const summed: Record<string, number> = {};
      for (const b of stats.buckets) for (const [state, n] of Object.entries(b.counts)) summed[state] = (summed[state] ?? 0) + n;
      assert.deepEqual(summed, stats.counts);
      const starts = stats.buckets.map((b) => Date.parse(b.start));
      assert.deepEqual(
        starts,
        [...starts].sort((a, b) => a - b),
      );
      assert.equal(stats.buckets[0]?.start, since);

      const byDeployment = await api().runs.stats.query({ tag, deployment: "sleepy", createdAfter: since });
      assert.deepEqual(byDeployment.counts, { COMPLETED: 2 });
      assert.equal(byDeployment.buckets.length, 24);
      const before = await api().runs.stats.query({ tag, createdBefore: since });
      assert.deepEqual(before.counts, {});

      const later = new Date(Date.now() + 60_000).toISOString();
      const badRange = await call(server(), "runs.stats", {
        token: server().adminToken,
        input: { createdAfter: later, createdBefore: since },
      });
      assert.equal(badRange.status, 400);
      assert.match(badRange.body.error?.message ?? "", /createdAfter must be before createdBefore/);
      assert.equal(await trpcCode(api().runs.stats.query({ createdAfter: since, createdBefore: since })), "BAD_REQUEST");
      assert.equal(await trpcCode(api().runs.stats.query({ createdAfter: "yesterday" })), "BAD_REQUEST");

      const tagged = await api().runs.list.query({ tag });
      assert.deepEqual(new Set(tagged.items.map((r) => r.id)), new Set(runs.slice(0, 4).map((r) => r.id)));
      assert.ok(tagged.items.every((r) => r.tags.includes(tag)));
      const web = await api().runs.list.query({ tag: "web" });
      assert.deepEqual(new Set(web.items.map((r) => r.id)), new Set([runs[0]?.id, runs[2]?.id]));
      // A tag matches whole: a prefix of a tag is not that tag.
      assert.deepEqual((await api().runs.list.query({ tag: "stats" })).items, []);
      assert.equal((await api().runs.list.query({ tag: `${tag}-other` })).items.length, 1);
      const failedTagged = await api().runs.list.query({ tag, state: ["FAILED"] });
      assert.deepEqual(
        failedTagged.items.map((r) => r.id),
        [runs[3]?.id],
      );
      assert.deepEqual((await api().runs.list.query({ tag, createdBefore: since })).items, []);

      // rootOnly leaves out child flow runs.
      const fan = await runToEnd("fanout", { n: 1 }, [tag]);
      const children = await api().runs.list.query({ parentFlowRunId: fan.id });
      assert.equal(children.items.length, 1);
      const everything = await api().runs.list.query({ createdAfter: since, limit: 500 });
      const roots = await api().runs.list.query({ createdAfter: since, rootOnly: true, limit: 500 });
      assert.ok(everything.items.some((r) => r.id === children.items[0]?.id));
      assert.ok(!roots.items.some((r) => r.id === children.items[0]?.id));
      assert.ok(roots.items.every((r) => r.parentFlowRunId === null));
      assert.ok(roots.items.some((r) => r.id === fan.id));
      const rootStats = await api().runs.stats.query({ createdAfter: since, rootOnly: true });
      const allStats = await api().runs.stats.query({ createdAfter: since });
      const count = (c: Record<string, number>) => Object.values(c).reduce((a, b) => a + b, 0);
      assert.equal(count(allStats.counts) - count(rootStats.counts), everything.items.length - roots.items.length);
    });

    // Tags and log search mean the same on both databases: literal text (no LIKE wildcards).
    let literalRun: { id: string; createdAt: unknown } | undefined;
    test("runs.list({tag}) matches a tag literally and in its case, on both databases", { skip }, async () => {
      const tag = `lit-${provider}`;
      literalRun = await runToEnd("pipeline", { n: 1, lines: 2 }, [`${tag}-50%`, `${tag}-a_b`, "Mixed"]);
      await runToEnd("sleepy", { ms: 0 }, [`${tag}-50x0`, `${tag}-axb`]);
      const ids = async (t: string) => (await api().runs.list.query({ tag: t })).items.map((r) => r.id);
      assert.deepEqual(await ids(`${tag}-axb`), [(await api().runs.list.query({ tag: `${tag}-50x0` })).items[0]?.id]);
      assert.deepEqual(await ids(`${tag}-a_b`), [literalRun.id], "_ is no wildcard");
      assert.deepEqual(await ids(`${tag}-50%`), [literalRun.id], "% is no wildcard");
      assert.deepEqual(await ids("mixed"), [], "tags are matched in their case");
    });

    test("logs.list({search}) matches text literally", { skip }, async () => {
      assert.ok(literalRun);
      const search = async (text: string) =>
        (await api().logs.list.query({ flowRunId: literalRun?.id ?? "", search: text })).items.map((l) => l.message);
      assert.deepEqual(await search("line-0"), ["pipeline line-00", "pipeline line-01"]);
      assert.deepEqual(await search("line_0"), [], "_ is no wildcard");
      assert.deepEqual(await search("line-%1"), [], "% is no wildcard");
    });

    test("runs.stats buckets add up to the counts when a run was created exactly at createdBefore", { skip }, async () => {
      assert.ok(literalRun);
      const createdAt = new Date(String(literalRun.createdAt));
      const stats = await api().runs.stats.query({
        tag: `lit-${provider}-50%`,
        rootOnly: true,
        deployment: "pipeline",
        createdAfter: new Date(createdAt.getTime() - 60_000).toISOString(),
        createdBefore: createdAt.toISOString(),
        buckets: 3,
      });
      assert.deepEqual(stats.counts, { COMPLETED: 1 });
      assert.equal(
        stats.buckets.reduce((a, b) => a + (b.counts.COMPLETED ?? 0), 0),
        1,
      );
    });
  });
}
