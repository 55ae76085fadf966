/**
 * The API half of the fuzzer: random and mutated calls of the tRPC procedures over plain HTTP
 * (`POST /trpc/<proc>` with a JSON body, `GET /trpc/<proc>?input=`), plus what a client can get
 * wrong around them: unknown procedures, wrong methods, batches, bodies that are not JSON or
 * too big, content types, credentials. Every answer must be a 2xx or a 4xx with a JSON error.
 */
import http from "node:http";
import { LIMITS } from "@ferry/sdk/protocol";
import { caseSeed, deep, encode, encodeFrame, hugeString, mutate, obj, Rng, randomString, type Val } from "./gen.ts";

type Kind = "query" | "mutation";

interface Proc {
  path: string;
  kind: Kind;
  /** A valid input (undefined: the procedure takes none). */
  input?: (rng: Rng, known: Known) => Val;
  /** What a 2xx answer of this procedure creates. */
  creates?: "run" | "deployment" | "token";
}

/** Ids and names the fuzzer may point valid-looking inputs at. */
export interface Known {
  runIds: string[];
  /** Runs the API fuzzer created (pool without agents): safe to cancel. */
  ownRunIds: string[];
  deployments: string[];
  /** Deployments in a pool without agents, made for the fuzzer: what runs.create aims at. */
  runnable: string[];
  /** Deployments the fuzzer's own upserts made: what deployments.delete aims at. */
  upserted: string[];
  /** Tokens the fuzzer's own tokens.create made: what tokens.revoke aims at. */
  tokenIds: string[];
}

export const API_POOL = "fuzz-api-pool";

const PROCS: Proc[] = [
  { path: "auth.whoami", kind: "query" },
  { path: "auth.createSession", kind: "mutation", input: (r) => obj({ ttlSeconds: r.pick([60, 600, 7 * 86_400]) }) },
  { path: "flows.list", kind: "query", input: (r) => obj({ limit: r.int(1, 500) }) },
  { path: "flows.get", kind: "query", input: (r) => obj({ name: r.pick(["fanout", "train", "child", "nope"]) }) },
  {
    path: "deployments.upsert",
    kind: "mutation",
    creates: "deployment",
    input: (r) =>
      obj({
        name: `fz-api-up-${r.int(0, 30)}`,
        flowName: "sleepy",
        entrypoint: "flows/train.ts",
        paramsSchema: obj({ type: "object", properties: obj({ ms: obj({ type: "integer", minimum: 0 }) }) }),
        workPool: API_POOL,
        tags: ["fuzz"],
        retries: r.int(0, 3),
      }),
  },
  { path: "deployments.list", kind: "query", input: (r) => obj({ limit: r.int(1, 500) }) },
  { path: "deployments.get", kind: "query", input: (r, k) => obj({ name: r.pick(k.deployments) }) },
  {
    path: "deployments.delete",
    kind: "mutation",
    input: (r, k) => obj({ name: r.pick(k.upserted.length ? k.upserted : ["fz-api-up-0"]) }),
  },
  {
    path: "runs.create",
    kind: "mutation",
    creates: "run",
    input: (r, k) => {
      const deployment = r.pick(k.runnable);
      const parameters = deployment === "fuzz-api-train" ? obj({ grid: [0.1, 0.01] }) : obj({ ms: r.int(0, 10) });
      const o = obj({ deployment, parameters });
      if (r.chance(0.3)) o.set("idempotencyKey", `fz-${r.int(0, 50)}`);
      if (r.chance(0.3)) o.set("tags", ["fuzz"]);
      return o;
    },
  },
  {
    path: "runs.list",
    kind: "query",
    input: (r) => obj({ limit: r.int(1, 50), ...(r.chance(0.5) ? { state: ["COMPLETED", "FAILED"] } : {}) }),
  },
  { path: "runs.get", kind: "query", input: (r, k) => obj({ id: r.pick(k.runIds) }) },
  { path: "runs.cancel", kind: "mutation", input: (r, k) => obj({ id: r.pick(k.ownRunIds.length ? k.ownRunIds : ["none"]) }) },
  { path: "taskRuns.list", kind: "query", input: (r, k) => obj({ flowRunId: r.pick(k.runIds), limit: r.int(1, 100) }) },
  { path: "taskRuns.edges", kind: "query", input: (r, k) => obj({ flowRunId: r.pick(k.runIds) }) },
  { path: "taskRuns.get", kind: "query", input: (r) => obj({ id: `fz-${r.int(0, 9)}` }) },
  {
    path: "logs.list",
    kind: "query",
    input: (r, k) =>
      obj({ flowRunId: r.pick(k.runIds), limit: r.int(1, 100), ...(r.chance(0.3) ? { afterId: r.int(0, 50) } : {}) }),
  },
  { path: "agents.list", kind: "query" },
  {
    path: "tokens.create",
    kind: "mutation",
    creates: "token",
    input: (r) => obj({ name: `fz-${r.int(0, 99)}`, scopes: [r.pick(["read", "write", "agent", "admin"])] }),
  },
  { path: "tokens.list", kind: "query" },
  { path: "tokens.revoke", kind: "mutation", input: (r, k) => obj({ id: r.pick(k.tokenIds.length ? k.tokenIds : ["none"]) }) },
];

const UNKNOWN_PROCS = [
  "nope",
  "runs",
  "runs.",
  ".runs.list",
  "runs.list.more",
  "runs.__proto__",
  "__proto__",
  "constructor",
  "toString",
  "runs.constructor",
  "__proto__.toString",
  "runs.list%00",
  "%E0%A4%A",
  "r%C3%BCns.list",
  "a".repeat(2_000),
];

export interface ApiCase {
  method: string;
  path: string;
  query?: string;
  headers: Record<string, string>;
  body?: string | Uint8Array;
  /** A body above the limit, sent over a keep-alive connection of its own (see `sendIsolated`). */
  big?: { bytes: number; chunked: boolean };
  what: string;
  /** Statuses that are the only right answer (otherwise any 2xx/4xx). */
  expectStatus?: number[];
  creates?: Proc["creates"];
  /** The input as sent (for creating mutations). */
  input?: unknown;
}

export interface Tokens {
  admin: string;
  read: string;
  agent: string;
}

/** Builds API case `index`. */
export function buildApiCase(seed: number, index: number, tokens: Tokens, known: Known): ApiCase {
  const rng = new Rng(caseSeed(seed, "api", index));
  const proc = rng.pick(PROCS);
  const auth = { authorization: `Bearer ${tokens.admin}` };
  const json = { "content-type": "application/json" };
  const call = (p: Proc, input: Val | undefined, what: string): ApiCase => {
    const text = input === undefined ? undefined : encodeFrame(input).text;
    if (p.kind === "query") {
      return {
        method: "GET",
        path: `/trpc/${p.path}`,
        ...(text === undefined ? {} : { query: `input=${encodeURIComponent(text)}` }),
        headers: { ...auth },
        what,
        input: text,
      };
    }
    return { method: "POST", path: `/trpc/${p.path}`, headers: { ...auth, ...json }, body: text ?? "", what, input: text };
  };
  const mutated = (p: Proc): { input: Val | undefined; what: string } => {
    let input: Val | undefined = p.input?.(rng, known);
    const whats = [p.path];
    const n = rng.weighted([
      [1, 0],
      [5, 1],
      [2, 2],
    ]);
    for (let i = 0; i < n; i++) {
      const m = mutate(rng, input ?? obj({}));
      input = m.value;
      whats.push(m.what);
    }
    return { input, what: whats.join(" / ") };
  };
  const variant = rng.weighted<string>([
    [60, "call"],
    [5, "method"],
    [8, "unknown"],
    [6, "batch"],
    [5, "badJson"],
    [1.2, "huge"],
    [0.5, "hugeChunked"],
    [4, "contentType"],
    [5, "auth"],
    [3, "bigInput"],
  ]);
  switch (variant) {
    case "call": {
      const { input, what } = mutated(proc);
      const c = call(proc, input, what);
      return proc.creates ? { ...c, creates: proc.creates } : c;
    }
    case "method": {
      const { input, what } = mutated(proc);
      const text = input === undefined ? "" : encodeFrame(input).text;
      const method = rng.pick(proc.kind === "query" ? ["POST", "PUT", "DELETE", "PATCH"] : ["GET", "PUT", "DELETE", "PATCH"]);
      return {
        method,
        path: `/trpc/${proc.path}`,
        headers: { ...auth, ...json },
        ...(method === "GET" ? { query: `input=${encodeURIComponent(text)}` } : { body: text }),
        what: `${what} / ${method}`,
        expectStatus: [405, 404, 400],
      };
    }
    case "unknown": {
      const name = rng.chance(0.7) ? rng.pick(UNKNOWN_PROCS) : encodeURIComponent(randomString(rng, 30)) || "x";
      return {
        method: rng.pick(["GET", "POST"]),
        path: `/trpc/${name}`,
        headers: { ...auth, ...json },
        body: undefined,
        what: `unknown procedure ${name.slice(0, 40)}`,
        expectStatus: [404, 400, 405],
      };
    }
    case "batch": {
      const kind: Kind = rng.pick(["query", "mutation"]);
      const procs = Array.from({ length: rng.int(1, 4) }, () => rng.pick(PROCS.filter((p) => p.kind === kind && !p.creates)));
      const inputs = obj({});
      procs.forEach((p, i) => {
        const { input } = mutated(p);
        if (input !== undefined) inputs.set(String(i), input);
      });
      const text = rng.chance(0.2)
        ? encode(rng.pick<Val>([[], null, 1, obj({ "0": deep(rng, 1_000) })]))
        : encodeFrame(inputs).text;
      const path = `/trpc/${procs.map((p) => p.path).join(",")}`;
      return kind === "query"
        ? { method: "GET", path, query: `batch=1&input=${encodeURIComponent(text)}`, headers: auth, what: `batch ${path}` }
        : { method: "POST", path, query: "batch=1", headers: { ...auth, ...json }, body: text, what: `batch ${path}` };
    }
    case "badJson": {
      const broken = rng.pick(["{not json", "{", '{"a":1}}', "undefined", "NaN", "\u0000", "[", '"', "{'name':'x'}"]);
      const p = rng.pick(PROCS.filter((x) => x.input));
      return p.kind === "query"
        ? {
            method: "GET",
            path: `/trpc/${p.path}`,
            query: `input=${encodeURIComponent(broken)}`,
            headers: auth,
            what: `bad JSON ${JSON.stringify(broken)}`,
            expectStatus: [400],
          }
        : {
            method: "POST",
            path: `/trpc/${p.path}`,
            headers: { ...auth, ...json },
            body: broken,
            what: `bad JSON ${JSON.stringify(broken)}`,
            // An empty body is "no input": refused by the input schema.
            expectStatus: [400],
          };
    }
    case "huge":
    case "hugeChunked": {
      const p = rng.pick(PROCS.filter((x) => x.kind === "mutation"));
      const bytes = LIMITS.maxFrameBytes + rng.int(1, 2 * 1024 * 1024);
      const chunked = variant === "hugeChunked";
      return {
        method: "POST",
        path: `/trpc/${p.path}`,
        headers: { ...auth, ...json },
        big: { bytes, chunked },
        what: `${p.path} with a ${chunked ? "chunked " : ""}body of ${bytes} bytes`,
        expectStatus: [413],
      };
    }
    case "contentType": {
      const p = rng.pick(PROCS.filter((x) => x.kind === "mutation"));
      const { input, what } = mutated(p);
      const type = rng.pick([
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "application/octet-stream",
        "application/json; charset=latin1",
        "",
      ]);
      const body = type.startsWith("multipart")
        ? '--xyz\r\nContent-Disposition: form-data; name="name"\r\n\r\nx\r\n--xyz--\r\n'
        : type === "application/x-www-form-urlencoded"
          ? "name=x&scopes=admin"
          : encodeFrame(input ?? null).text;
      return {
        method: "POST",
        path: `/trpc/${p.path}`,
        headers: { ...auth, ...(type ? { "content-type": type } : {}) },
        body: type === "application/octet-stream" ? new Uint8Array(Buffer.from(body)) : body,
        what: `${what} as ${type || "no content type"}`,
        ...(p.creates ? { creates: p.creates } : {}),
        input: body,
      };
    }
    case "auth": {
      const { input, what } = mutated(proc);
      const c = call(proc, input, what);
      const variant = rng.pick(["none", "garbage", "read", "agent", "malformed", "long"]);
      const authorization = {
        none: undefined,
        garbage: `Bearer fry_${randomString(rng, 20).replace(/[^\x21-\x7e]/g, "z")}z`,
        read: `Bearer ${tokens.read}`,
        agent: `Bearer ${tokens.agent}`,
        malformed: "Bearer a b c",
        long: `Bearer ${"x".repeat(8_000)}`,
      }[variant];
      const headers: Record<string, string> = { ...c.headers };
      delete headers.authorization;
      if (authorization) headers.authorization = authorization;
      // 400 stays possible: an input that is not JSON is refused before the procedure runs.
      if (variant === "read") {
        // auth.createSession is the one mutation a read token may call.
        const denied = (proc.kind === "mutation" && proc.path !== "auth.createSession") || proc.path.startsWith("tokens.");
        return denied
          ? { ...c, headers, what: `${c.what} / read token`, expectStatus: [400, 403] }
          : { ...c, headers, what: `${c.what} / read token` };
      }
      return {
        ...c,
        headers,
        what: `${c.what} / auth ${variant}`,
        expectStatus: variant === "agent" ? [400, 403] : [400, 401],
      };
    }
    default: {
      const p = rng.pick(PROCS.filter((x) => x.input));
      const what = rng.pick(["deep", "huge", "wide"]);
      const value: Val =
        what === "deep"
          ? obj({ name: "x", parameters: deep(rng), paramsSchema: deep(rng, 5_000), deployment: "fuzz-api" })
          : what === "huge"
            ? obj({ name: hugeString(rng, rng.pick([100_000, 1_000_000, 3_000_000])), deployment: "fuzz-api" })
            : obj({
                deployment: rng.pick(known.runnable),
                parameters: obj({ grid: Array.from({ length: rng.pick([10_000, 50_000]) }, () => "a") }),
              });
      const input = value;
      const c = call(p, input, `${p.path} / ${what} input`);
      // Large query inputs go in a POST body (a URL has 16 KiB at most).
      if (p.kind === "query" && encode(input).length > 8_000) {
        return { ...c, method: "POST", query: undefined, body: encode(input), headers: { ...c.headers, ...json } };
      }
      return p.creates ? { ...c, creates: p.creates } : c;
    }
  }
}

export interface ApiResult {
  status: number;
  bytes: number;
  ms: number;
  body: unknown;
  text: string;
  /** Set when the connection the answer said to keep alive could not be used again. */
  reuse?: string;
}

function result(status: number, buf: Buffer, started: number): ApiResult {
  const text = buf.toString();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status, bytes: buf.length, ms: Date.now() - started, body: parsed, text };
}

/** Bodies above this go over a connection of their own (see `sendIsolated`). */
const ISOLATE_BYTES = 64 * 1024;

export async function send(base: string, c: ApiCase, timeoutMs: number): Promise<ApiResult> {
  if (c.big) return sendIsolated(base, c, c.big, timeoutMs);
  if (c.body !== undefined && c.method !== "GET" && c.body.length > ISOLATE_BYTES) {
    return sendIsolated(base, c, { bytes: Buffer.byteLength(c.body), chunked: false, data: c.body }, timeoutMs);
  }
  const started = Date.now();
  const url = `${base}${c.path}${c.query === undefined ? "" : `?${c.query}`}`;
  const res = await fetch(url, {
    method: c.method,
    headers: c.headers,
    ...(c.body === undefined || c.method === "GET" ? {} : { body: c.body }),
    signal: AbortSignal.timeout(timeoutMs),
  });
  return result(res.status, Buffer.from(await res.arrayBuffer()), started);
}

/**
 * Sends a large body over a keep-alive connection of its own, then a second request on the
 * same connection: an answer that says `Connection: keep-alive` promises that this works
 * (pooling clients, browsers and the tRPC client among them, reuse the socket at once). Kept
 * apart so that a connection the server breaks is charged to the call that broke it.
 */
async function sendIsolated(
  base: string,
  c: ApiCase,
  big: { bytes: number; chunked: boolean; data?: string | Uint8Array },
  timeoutMs: number,
): Promise<ApiResult> {
  const started = Date.now();
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const url = new URL(`${base}${c.path}${c.query === undefined ? "" : `?${c.query}`}`);
  try {
    const first = await new Promise<{ status: number; buf: Buffer; connection: string | undefined }>((resolve, reject) => {
      const req = http.request(
        url,
        {
          method: c.method,
          agent,
          headers: {
            ...c.headers,
            ...(big.chunked ? { "transfer-encoding": "chunked" } : { "content-length": String(big.bytes) }),
          },
          timeout: timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (d: Buffer) => chunks.push(d));
          res.on("end", () =>
            resolve({ status: res.statusCode ?? 0, buf: Buffer.concat(chunks), connection: res.headers.connection }),
          );
          res.on("error", reject);
        },
      );
      // The server may answer (and stop reading) before the whole body is written.
      req.on("error", (err) => reject(err));
      // Writing the rest of a refused body can then fail on the socket itself (EPIPE) after the
      // answer was read and the request let go of it: expected, and not an answer of its own.
      req.on("socket", (socket) => socket.on("error", () => {}));
      req.on("timeout", () => req.destroy(new Error("timed out")));
      if (big.data !== undefined) {
        req.end(big.data);
        return;
      }
      const chunk = Buffer.alloc(256 * 1024, 0x78);
      let left = big.bytes;
      const pump = () => {
        while (left > 0) {
          const part = left >= chunk.length ? chunk : chunk.subarray(0, left);
          left -= part.length;
          if (!req.write(part)) {
            req.once("drain", pump);
            return;
          }
        }
        req.end();
      };
      pump();
    });
    const r = result(first.status, first.buf, started);
    if (first.connection?.toLowerCase() !== "close") {
      const again = await new Promise<string | undefined>((resolve) => {
        const req = http.get(new URL(`${base}/healthz`), { agent, timeout: timeoutMs }, (res) => {
          res.resume();
          res.on("end", () => resolve(undefined));
        });
        req.on("error", (err) => resolve(err.message));
      });
      if (again) r.reuse = `the ${first.status} said keep-alive, the next request on that connection failed: ${again}`;
    }
    return r;
  } finally {
    agent.destroy();
  }
}

function errorMessages(body: unknown): string[] | undefined {
  const one = (x: unknown): string | undefined => {
    if (typeof x !== "object" || x === null || !("error" in x)) return undefined;
    const e = x.error;
    if (typeof e === "string") return e;
    if (typeof e === "object" && e !== null && "message" in e && typeof e.message === "string") return e.message;
    // tRPC's JSON envelope: {error: {json: {message}}} is not used without a transformer.
    return undefined;
  };
  if (Array.isArray(body)) {
    const msgs = body.map(one).filter((m): m is string => m !== undefined);
    return msgs.length ? msgs : undefined;
  }
  const m = one(body);
  return m === undefined ? undefined : [m];
}

const MAX_ERROR_ANSWER = 1024 * 1024;

/** Problems with one answer; empty when it is what the API documents. */
export function checkApi(c: ApiCase, r: ApiResult): string[] {
  const problems: string[] = [];
  if (r.status >= 500) {
    const known = /Maximum call stack size exceeded/.test(r.text) ? "[known K2] " : "";
    problems.push(`${known}server error ${r.status}: ${r.text.slice(0, 300)}`);
  } else if (r.status < 200 || (r.status >= 300 && r.status < 400)) problems.push(`unexpected status ${r.status}`);
  // 431 and 414 come from Node's HTTP parser (a URL or header above 16 KiB), before any route.
  if (c.expectStatus && !c.expectStatus.includes(r.status) && r.status !== 431 && r.status !== 414) {
    problems.push(`status ${r.status}, expected ${c.expectStatus.join("|")}: ${r.text.slice(0, 200)}`);
  }
  // Node's HTTP parser answers 431/414 itself, without a body.
  if (r.status >= 400 && r.status < 500 && r.status !== 431 && r.status !== 414) {
    const msgs = errorMessages(r.body);
    if (!msgs) problems.push(`${r.status} without a JSON error: ${r.text.slice(0, 200)}`);
    else if (msgs.some((m) => !m.trim())) problems.push(`${r.status} with an empty error message`);
  }
  if (r.status >= 200 && r.status < 300 && r.body === undefined) problems.push(`${r.status} with a body that is not JSON`);
  if (r.reuse) problems.push(`[known K1] ${r.reuse}`);
  // A clear error is short: an answer far bigger than any message the protocol allows is an amplification.
  if (r.status >= 400 && r.bytes > MAX_ERROR_ANSWER) {
    const known = /invalid parameters for deployment/.test(r.text.slice(0, 2_000)) ? "[known K7] " : "";
    problems.push(
      `${known}a ${r.status} answer of ${r.bytes} bytes to a request of ${c.big?.bytes ?? c.body?.length ?? 0} bytes`,
    );
  }
  return problems;
}
