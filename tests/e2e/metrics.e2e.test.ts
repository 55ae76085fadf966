import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { describe, test } from "node:test";
import {
  createDatabase,
  createToken,
  deployFixtures,
  ferry,
  PROVIDERS,
  postgresUnavailable,
  spawnFerry,
  startAgent,
  useServer,
  waitUntil,
} from "./harness.ts";

/** A sample of the Prometheus text format: metric name, labels, value. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the text exposition format (comments skipped; label values unescaped). */
function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (!line.trim() || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/.exec(line);
    assert.ok(match?.[1] && match[3], `not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const m of (match[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[m[1] ?? ""] = (m[2] ?? "").replace(/\\n/g, "\n").replace(/\\(.)/g, "$1");
    }
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return found.length ? found.reduce((n, s) => n + s.value, 0) : undefined;
}

async function scrape(url: string, token?: string): Promise<{ status: number; contentType: string; text: string }> {
  const res = await fetch(`${url}/metrics`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  return { status: res.status, contentType: res.headers.get("content-type") ?? "", text: await res.text() };
}

for (const provider of PROVIDERS) {
  describe(`metrics and logs (${provider})`, async () => {
    const skip = provider === "postgresql" ? await postgresUnavailable() : undefined;
    const suite = useServer(
      provider,
      skip,
      async (s) => {
        await startAgent(s.server, { name: "metrics-agent", workDir: s.project });
        await deployFixtures(s);
      },
      // The notification receiver listens on 127.0.0.1: private egress is the operator's opt-in.
      { serverArgs: ["--allow-private-egress"] },
    );
    const server = () => suite.server;

    test("GET /metrics with a read token: runs by state, dispatch latency, agents, DB time, traffic", { skip }, async () => {
      const run = await server().api.runs.create.mutate({ deployment: "train", parameters: { grid: [0.1, 0.2] } });
      await waitUntil(
        "the run completes",
        async () => (await server().api.runs.get.query({ id: run.id })).stateType === "COMPLETED",
      );
      const reader = await createToken(server(), ["read"], "prometheus");
      const res = await scrape(server().url, reader.secret);
      assert.equal(res.status, 200, res.text);
      assert.match(res.contentType, /^text\/plain; version=0\.0\.4/);
      const samples = parseExposition(res.text);
      assert.ok((value(samples, "ferry_flow_runs", { state: "COMPLETED" }) ?? 0) >= 1, "a COMPLETED run counted");
      assert.equal(value(samples, "ferry_flow_runs", { state: "CRASHED" }), 0, "every state has a series");
      assert.equal(value(samples, "ferry_dispatch_queue_depth"), 0);
      assert.ok((value(samples, "ferry_dispatch_latency_seconds_count") ?? 0) >= 1, "the dispatch was timed");
      assert.equal(value(samples, "ferry_connected_agents"), 1);
      assert.ok((value(samples, "ferry_db_query_duration_seconds_count", { model: "FlowRun" }) ?? 0) >= 1, "DB time by model");
      assert.ok((value(samples, "ferry_db_query_duration_seconds_sum") ?? -1) > 0);
      assert.ok((value(samples, "ferry_api_requests_total", { procedure: "runs.create", outcome: "ok" }) ?? 0) >= 1);
      assert.ok((value(samples, "ferry_agent_messages_total", { direction: "in", type: "hello" }) ?? 0) >= 1);
      assert.ok((value(samples, "ferry_agent_messages_total", { direction: "out", type: "run.assign" }) ?? 0) >= 1);
      assert.ok((value(samples, "ferry_run_events_ingested_total") ?? 0) >= 1, "the run's task events");
      assert.ok(value(samples, "ferry_log_lines_ingested_total") !== undefined);
      assert.ok(value(samples, "ferry_process_resident_memory_bytes") !== undefined, "process metrics, ferry_ prefix");
      assert.ok(value(samples, "ferry_nodejs_eventloop_lag_seconds") !== undefined);
    });

    test("an API error is counted with its code", { skip }, async () => {
      await assert.rejects(server().api.runs.get.query({ id: "no-such-run" }));
      const admin = server().adminToken;
      const samples = parseExposition((await scrape(server().url, admin)).text);
      assert.ok((value(samples, "ferry_api_requests_total", { procedure: "runs.get", outcome: "NOT_FOUND" }) ?? 0) >= 1);
    });

    test("notification deliveries are counted by outcome: a retry after the receiver's 500, then sent", { skip }, async () => {
      let requests = 0;
      const receiver = createServer((req, res) => {
        req.resume();
        req.on("end", () => res.writeHead(++requests === 1 ? 500 : 200).end());
      });
      await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", () => r()));
      try {
        const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
        const api = server().api;
        await api.notifications.createChannel.mutate({ kind: "webhook", name: "metrics-hook", url });
        await api.deployments.upsert.mutate({
          name: "always-fails",
          flowName: "failing",
          entrypoint: "flows/train.ts",
          paramsSchema: { type: "object" },
        });
        await api.notifications.createRule.mutate({ channel: "metrics-hook", deployment: "always-fails", events: ["FAILED"] });
        await api.runs.create.mutate({ deployment: "always-fails", parameters: {} });
        const samples = await waitUntil(
          "the delivery was retried, then sent",
          async () => {
            const found = parseExposition((await scrape(server().url, server().adminToken)).text);
            const sent = value(found, "ferry_notification_deliveries_total", { outcome: "sent" }) ?? 0;
            return sent >= 1 ? found : undefined;
          },
          60_000,
        );
        assert.equal(value(samples, "ferry_notification_deliveries_total", { outcome: "retry" }), 1);
        assert.equal(value(samples, "ferry_notification_deliveries_total", { outcome: "failed" }), undefined);
        assert.equal(requests, 2);
      } finally {
        await new Promise<void>((r) => receiver.close(() => r()));
      }
    });

    test("401 without a token or with a bad one; 403 for another workspace or without the read scope", { skip }, async () => {
      const none = await scrape(server().url);
      assert.equal(none.status, 401);
      assert.match(JSON.parse(none.text).error, /Authorization/);
      assert.equal((await scrape(server().url, "fry_not-a-real-token")).status, 401);
      const created = await ferry(["workspace", "create", "elsewhere", "--database-url", suite.database.url, "--json"]);
      assert.equal(created.code, 0, created.output);
      const other = JSON.parse(created.output) as { admin: { secret: string } };
      const foreign = await scrape(server().url, other.admin.secret);
      assert.equal(foreign.status, 403);
      assert.match(JSON.parse(foreign.text).error, /default workspace/);
      const agentOnly = await createToken(server(), ["agent"], "agent-only");
      assert.equal((await scrape(server().url, agentOnly.secret)).status, 403);
      assert.doesNotMatch(none.text + foreign.text, /ferry_flow_runs/);
    });

    test("--metrics-public serves /metrics without a token; logs are JSON lines; a bad FERRY_LOG_LEVEL only warns", {
      skip,
    }, async () => {
      // A database of its own (for SQLite, a file apart from the suite's).
      const database = await createDatabase(provider, join(suite.project, "public"));
      try {
        const proc = spawnFerry(["server", "start", "--port", "0", "--database-url", database.url, "--metrics-public"], {
          env: { FERRY_LOG_LEVEL: "LOUDEST" },
        });
        const [, url] = (await proc.waitFor(/listening on (http:\/\/\S+)/)) as unknown as [string, string];
        const res = await scrape(url);
        assert.equal(res.status, 200);
        assert.equal(value(parseExposition(res.text), "ferry_connected_agents"), 0);
        await proc.waitFor(/"msg":"control plane listening"/);
        await proc.stop();
        const lines = proc
          .output()
          .split("\n")
          .filter((l) => l.startsWith("{"));
        assert.ok(lines.length >= 2, proc.output());
        for (const line of lines) {
          const entry = JSON.parse(line) as Record<string, unknown>;
          assert.equal(typeof entry.level, "number", line);
          assert.equal(typeof entry.time, "number", line);
          assert.equal(typeof entry.msg, "string", line);
        }
        const warnings = lines.filter((l) => l.includes("unknown FERRY_LOG_LEVEL"));
        assert.equal(warnings.length, 1, "one warning line for the process");
        assert.match(warnings[0] ?? "", /"level":40/);
        assert.ok(
          lines.some((l) => l.includes('"level":30')),
          "the fallback level is info",
        );
      } finally {
        await database.drop();
      }
    });
  });
}
