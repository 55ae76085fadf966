/**
 * Seeded random generation for the protocol fuzzer: a small PRNG, a JSON tree that can hold
 * what `JSON.stringify` cannot write (duplicate and `__proto__` keys, `1e400`, `-0`, deep
 * nesting as raw text), valid agent messages built from the shapes of the protocol schemas,
 * and mutations of them. Every case gets its own generator seeded from (run seed, channel,
 * worker, index), so one failing case can be rebuilt on its own.
 */
import { LIMITS, PROTOCOL_VERSION, STATE_DISPLAY_NAMES } from "@ferry/sdk/protocol";

// ---- PRNG ---------------------------------------------------------------------------------

/** mulberry32: 32 bits of state, good enough to drive a fuzzer and trivially reproducible. */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    const item = items[Math.floor(this.next() * items.length)];
    if (item === undefined) throw new Error("pick from an empty list");
    return item;
  }

  /** Picks by weight: `[[3, "a"], [1, "b"]]` gives "a" three times as often as "b". */
  weighted<T>(items: readonly (readonly [number, T])[]): T {
    const total = items.reduce((n, [w]) => n + w, 0);
    let r = this.next() * total;
    for (const [w, item] of items) {
      r -= w;
      if (r < 0) return item;
    }
    const last = items.at(-1);
    if (!last) throw new Error("weighted pick from an empty list");
    return last[1];
  }
}

/** FNV-1a over the parts: the seed of one case. */
export function caseSeed(...parts: (number | string)[]): number {
  let h = 0x811c9dc5;
  for (const ch of parts.join(":")) {
    h ^= ch.charCodeAt(0);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

// ---- a JSON tree that can say anything ----------------------------------------------------

/** JSON text inserted verbatim (numbers JSON.stringify cannot write, deep nesting, broken text). */
export class Raw {
  constructor(readonly text: string) {}
}

/** An object as an ordered list of entries: duplicate keys and `__proto__` stay plain data. */
export class Obj {
  constructor(readonly entries: [string, Val][] = []) {}

  get(key: string): Val | undefined {
    return this.entries.find(([k]) => k === key)?.[1];
  }

  set(key: string, value: Val): this {
    const i = this.entries.findIndex(([k]) => k === key);
    if (i >= 0) this.entries[i] = [key, value];
    else this.entries.push([key, value]);
    return this;
  }

  delete(key: string): void {
    const i = this.entries.findIndex(([k]) => k === key);
    if (i >= 0) this.entries.splice(i, 1);
  }
}

export type Val = null | boolean | number | string | Raw | Obj | Val[];

export function obj(fields: Record<string, Val>): Obj {
  return new Obj(Object.entries(fields));
}

/** Thrown by `encode` when the text would exceed its budget (a huge string repeated in a long array). */
export class TooBig extends Error {}

/** The largest text `encode` builds: a little above the frame limit is all a case needs. */
export const ENCODE_BUDGET = 8 * 1024 * 1024;

/** Serializes a tree; recursion is bounded by the tree's own depth (deep nesting is `Raw`). */
export function encode(v: Val, budget = ENCODE_BUDGET): string {
  const out = encodeInner(v, budget);
  if (out.length > budget) throw new TooBig(`encoded value exceeds ${budget} characters`);
  return out;
}

function encodeInner(v: Val, budget: number): string {
  if (v === null || typeof v === "boolean" || typeof v === "number" || typeof v === "string") return JSON.stringify(v);
  if (v instanceof Raw) return v.text;
  let size = 2;
  const add = (part: string) => {
    size += part.length + 1;
    if (size > budget) throw new TooBig(`encoded value exceeds ${budget} characters`);
    return part;
  };
  if (v instanceof Obj) return `{${v.entries.map(([k, x]) => add(`${JSON.stringify(k)}:${encodeInner(x, budget)}`)).join(",")}}`;
  // Long arrays of one repeated element are common (batch-size mutations): encode each element once.
  const cache = new Map<Val, string>();
  const parts = v.map((x) => {
    let part = cache.get(x);
    if (part === undefined) {
      part = encodeInner(x, budget);
      if (typeof x === "object" && x !== null) cache.set(x, part);
    }
    return add(part);
  });
  return `[${parts.join(",")}]`;
}

/** `encode`, or for a value too big to build, a frame just above the limit (answered with 1009). */
export function encodeFrame(v: Val): { text: string; tooBig: boolean } {
  try {
    return { text: encode(v), tooBig: false };
  } catch (err) {
    if (!(err instanceof TooBig)) throw err;
    return { text: `{"type":"logs","v":1,"pad":"${"x".repeat(LIMITS.maxFrameBytes)}"}`, tooBig: true };
  }
}

// ---- scalar generators --------------------------------------------------------------------

const ALPHABETS = [
  "abcdefghijklmnopqrstuvwxyz0123456789-_",
  "ÄÖÜßéñ漢字🚢🦀‮\u200b",
  "\u0000\u0001\u001f\u007f\t\r\n",
  "\"'\\/{}[]<>%$`",
  "\ud800\udfff", // lone surrogates once split
];

export function randomString(rng: Rng, maxLen = 24): string {
  const alphabet = rng.weighted([
    [6, ALPHABETS[0] ?? ""],
    [1, ALPHABETS[1] ?? ""],
    [1, ALPHABETS[2] ?? ""],
    [1, ALPHABETS[3] ?? ""],
    [0.3, ALPHABETS[4] ?? ""],
  ]);
  const chars = [...alphabet];
  let out = "";
  const n = rng.int(0, maxLen);
  for (let i = 0; i < n; i++) out += rng.pick(chars);
  return out;
}

export function randomId(rng: Rng): string {
  return `fz-${rng.int(0, 0xffffff).toString(16)}${rng.int(0, 0xffffff).toString(16)}`;
}

/** Numbers around every bound a schema or a database column could have. */
const EDGE_NUMBERS = [
  0,
  -1,
  1,
  0.5,
  -0.5,
  2 ** 31 - 1,
  2 ** 31,
  2 ** 32,
  -(2 ** 31) - 1,
  Number.MAX_SAFE_INTEGER,
  Number.MAX_SAFE_INTEGER + 2,
  -Number.MAX_SAFE_INTEGER,
  1e21,
  1e300,
  Number.MIN_VALUE,
  10_000,
  10_001,
  LIMITS.maxBatch,
  LIMITS.maxBatch + 1,
];
/** What JSON.parse turns into Infinity, -0, or what is not JSON at all. */
const RAW_NUMBERS = ["1e400", "-1e400", "-0", "1.0", "1E0", "0.1e1", "00", "+1", "NaN", "Infinity", "0x10", ".5", "1."];

export function edgeNumber(rng: Rng): Val {
  if (rng.chance(0.25)) return new Raw(rng.pick(RAW_NUMBERS));
  if (rng.chance(0.2)) return rng.int(-5, 20);
  return rng.pick(EDGE_NUMBERS);
}

const TIMESTAMPS = [
  "0000-01-01T00:00:00Z",
  "9999-12-31T23:59:59.999999999+23:59",
  "1970-01-01T00:00:00.000-23:59",
  "2024-02-29T12:00:00+01:00",
  "2024-02-30T12:00:00Z",
  "2024-01-01T24:00:00Z",
  "2024-01-01 00:00:00Z",
  "2024-01-01T00:00:00",
  "yesterday",
  "",
];

export function timestamp(rng: Rng): string {
  if (rng.chance(0.9)) return new Date(Date.now() - rng.int(0, 86_400_000)).toISOString();
  return rng.pick(TIMESTAMPS);
}

export const WEIRD_KEYS = [
  "__proto__",
  "constructor",
  "prototype",
  "toString",
  "hasOwnProperty",
  "valueOf",
  "",
  " ",
  "type",
  "v",
  "msgId",
  "agentId",
  "\u0000",
  "🚢",
];

/** Deeply nested JSON as text: `[[[...]]]` or `{"a":{"a":...}}`. */
export function deep(rng: Rng, depth = rng.pick([64, 1_000, 10_000, 100_000, 300_000])): Raw {
  if (rng.chance(0.5)) return new Raw(`${"[".repeat(depth)}${"]".repeat(depth)}`);
  return new Raw(`${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`);
}

/** A long string: kilobytes to a few megabytes (the frame limit is LIMITS.maxFrameBytes). */
export function hugeString(rng: Rng, bytes = rng.pick([20_000, 200_000, 1_000_000, 3_000_000])): string {
  return rng.chance(0.8) ? "x".repeat(bytes) : "é".repeat(Math.floor(bytes / 2));
}

/** Any JSON value, including what no schema expects. */
export function anyValue(rng: Rng, depth = 0): Val {
  const kind = rng.weighted<string>([
    [3, "null"],
    [3, "bool"],
    [6, "number"],
    [6, "string"],
    [depth < 3 ? 3 : 0, "array"],
    [depth < 3 ? 3 : 0, "object"],
    [0.3, "deep"],
  ]);
  switch (kind) {
    case "null":
      return null;
    case "bool":
      return rng.chance(0.5);
    case "number":
      return edgeNumber(rng);
    case "string":
      return rng.chance(0.1) ? timestamp(rng) : randomString(rng);
    case "array":
      return Array.from({ length: rng.int(0, 4) }, () => anyValue(rng, depth + 1));
    case "object": {
      const o = new Obj();
      for (let i = rng.int(0, 4); i > 0; i--) {
        o.entries.push([rng.chance(0.3) ? rng.pick(WEIRD_KEYS) : randomString(rng, 8), anyValue(rng, depth + 1)]);
      }
      return o;
    }
    default:
      return deep(rng, rng.pick([64, 1_000, 20_000]));
  }
}

// ---- valid agent messages ------------------------------------------------------------------

export interface RunTarget {
  flowRunId: string;
  attempt: number;
}

export interface MessageContext {
  rng: Rng;
  /** An attempt this connection holds, if any. */
  owned: RunTarget | undefined;
  /** Runs of other agents (the bystander's): reports about them must be refused. */
  others: readonly RunTarget[];
  nextMsgId(): number;
  agentId: string;
  pools: string[];
}

const STATES = ["SCHEDULED", "PENDING", "RUNNING", "COMPLETED", "FAILED", "CRASHED", "CANCELLING", "CANCELLED", "PAUSED"];
const STATE_NAMES: Readonly<Record<string, string>> = STATE_DISPLAY_NAMES;

function target(ctx: MessageContext): RunTarget {
  const { rng, owned, others } = ctx;
  const choice = rng.weighted<string>([
    [owned ? 6 : 0, "owned"],
    [others.length ? 2 : 0, "other"],
    [2, "random"],
  ]);
  if (choice === "owned" && owned) return rng.chance(0.9) ? owned : { ...owned, attempt: owned.attempt + rng.pick([-1, 1]) };
  if (choice === "other") return rng.pick(others);
  return { flowRunId: randomId(rng), attempt: rng.int(0, 3) };
}

function stateProposal(rng: Rng): Obj {
  const type = rng.weighted<string>([
    [4, "RUNNING"],
    [2, "COMPLETED"],
    [2, "FAILED"],
    [1, "CRASHED"],
    [1, "CANCELLED"],
    [1, rng.pick(STATES)],
  ]);
  const s = obj({ type, name: STATE_NAMES[type] ?? type });
  if (rng.chance(0.3)) s.set("message", randomString(rng, 60));
  return s;
}

function runRef(ref: RunTarget): Obj {
  return obj({ flowRunId: ref.flowRunId, attempt: ref.attempt });
}

export function helloMessage(ctx: MessageContext): Obj {
  const { rng } = ctx;
  return obj({
    type: "hello",
    v: PROTOCOL_VERSION,
    agentId: ctx.agentId,
    name: `fuzz-${ctx.agentId}`,
    pools: ctx.pools,
    capacity: rng.int(1, 3),
    labels: rng.chance(0.5) ? obj({ gpu: "no", zone: randomString(rng, 10) }) : obj({}),
    version: "fuzz",
    inFlight: ctx.owned && rng.chance(0.5) ? [runRef(ctx.owned)] : [],
  });
}

function runEvent(rng: Rng, root: RunTarget): Obj {
  const kind = rng.pick(["task_run.created", "task_run.state", "flow_run.created", "flow_run.state"]);
  const ts = timestamp(rng);
  switch (kind) {
    case "task_run.created":
      return obj({
        kind,
        id: randomId(rng),
        flowRunId: root.flowRunId,
        taskKey: "square",
        dynamicKey: rng.int(0, 50),
        name: `square-${rng.int(0, 50)}`,
        tags: rng.chance(0.3) ? ["fuzz"] : [],
        maxRetries: rng.int(0, 3),
        upstream: rng.chance(0.3) ? [randomId(rng)] : [],
        timestamp: ts,
      });
    case "task_run.state":
      return obj({
        kind,
        eventId: randomId(rng),
        taskRunId: randomId(rng),
        attempt: rng.int(0, 2),
        state: stateProposal(rng),
        timestamp: ts,
      });
    case "flow_run.created":
      return obj({
        kind,
        id: randomId(rng),
        parentFlowRunId: root.flowRunId,
        parentTaskRunId: randomId(rng),
        flowName: "child",
        parameters: rng.chance(0.7) ? obj({ items: [obj({ sq: 1 })] }) : obj({ x: anyValue(rng) }),
        timestamp: ts,
      });
    default:
      return obj({ kind, eventId: randomId(rng), flowRunId: randomId(rng), state: stateProposal(rng), timestamp: ts });
  }
}

function logLine(rng: Rng, seq: number): Obj {
  const line = obj({
    seq,
    timestamp: timestamp(rng),
    level: rng.pick(["debug", "info", "warn", "error"]),
    message: rng.chance(0.9) ? `fuzz line ${seq}` : randomString(rng, 200),
  });
  if (rng.chance(0.2)) line.set("taskRunId", randomId(rng));
  return line;
}

/** A message that the schemas accept (before mutation), of a random agent → control plane type. */
export function validMessage(ctx: MessageContext): Obj {
  const { rng } = ctx;
  const type = rng.weighted<string>([
    [1, "hello"],
    [2, "run.accept"],
    [2, "run.reject"],
    [5, "state.propose"],
    [4, "run.events"],
    [4, "logs"],
    [3, "heartbeat"],
    [1.5, "slots.acquire"],
  ]);
  const ref = target(ctx);
  switch (type) {
    case "hello":
      return helloMessage(ctx);
    case "run.accept":
      return obj({ type, v: PROTOCOL_VERSION, ...refFields(ref) });
    case "slots.acquire":
      return obj({
        type,
        v: PROTOCOL_VERSION,
        ...refFields(ref),
        taskRunId: randomId(rng),
        tags: rng.chance(0.7) ? ["fuzz"] : Array.from({ length: rng.int(1, 3) }, () => `fz-tag-${rng.int(0, 5)}`),
      });
    case "run.reject":
      return obj({ type, v: PROTOCOL_VERSION, ...refFields(ref), reason: randomString(rng, 40) });
    case "state.propose":
      return obj({
        type,
        v: PROTOCOL_VERSION,
        msgId: ctx.nextMsgId(),
        eventId: randomId(rng),
        ...refFields(ref),
        state: stateProposal(rng),
        timestamp: timestamp(rng),
      });
    case "run.events":
      return obj({
        type,
        v: PROTOCOL_VERSION,
        msgId: ctx.nextMsgId(),
        ...refFields(ref),
        events: Array.from({ length: rng.int(1, 5) }, () => runEvent(rng, ref)),
      });
    case "logs": {
      const first = rng.int(0, 1000);
      return obj({
        type,
        v: PROTOCOL_VERSION,
        msgId: ctx.nextMsgId(),
        ...refFields(ref),
        lines: Array.from({ length: rng.int(1, 5) }, (_, i) => logLine(rng, first + i)),
      });
    }
    default:
      return obj({
        type: "heartbeat",
        v: PROTOCOL_VERSION,
        runs: [runRef(ref), ...(ctx.owned && rng.chance(0.5) ? [runRef(ctx.owned)] : [])],
        ...(rng.chance(0.2) ? { draining: false } : {}),
      });
  }
}

function refFields(ref: RunTarget): Record<string, Val> {
  return { flowRunId: ref.flowRunId, attempt: ref.attempt };
}

// ---- mutations ----------------------------------------------------------------------------

interface Slot {
  get(): Val;
  set(v: Val): void;
  /** Removes the value (object key or array element). */
  remove(): void;
  path: string;
}

/** Every position in the tree, the root excluded. */
function slots(root: Val, path = "$", out: Slot[] = []): Slot[] {
  if (root instanceof Obj) {
    for (const entry of root.entries) {
      const [key] = entry;
      out.push({
        get: () => entry[1],
        set: (v) => {
          entry[1] = v;
        },
        remove: () => root.entries.splice(root.entries.indexOf(entry), 1),
        path: `${path}.${key}`,
      });
      slots(entry[1], `${path}.${key}`, out);
    }
  } else if (Array.isArray(root) && root.length <= 50) {
    root.forEach((item, i) => {
      out.push({
        get: () => root[i] ?? null,
        set: (v) => {
          root[i] = v;
        },
        remove: () => root.splice(i, 1),
        path: `${path}[${i}]`,
      });
      slots(item, `${path}[${i}]`, out);
    });
  }
  return out;
}

function objects(root: Val, out: Obj[] = []): Obj[] {
  if (root instanceof Obj) {
    out.push(root);
    for (const [, v] of root.entries) objects(v, out);
  } else if (Array.isArray(root) && root.length <= 50) {
    for (const v of root) objects(v, out);
  }
  return out;
}

function arrays(root: Val, out: Val[][] = []): Val[][] {
  if (Array.isArray(root)) {
    out.push(root);
    if (root.length <= 50) for (const v of root) arrays(v, out);
  } else if (root instanceof Obj) {
    for (const [, v] of root.entries) arrays(v, out);
  }
  return out;
}

function wrongType(rng: Rng, current: Val): Val {
  for (let i = 0; i < 5; i++) {
    const v = anyValue(rng, 2);
    const kind = (x: Val) => (x instanceof Raw ? "raw" : Array.isArray(x) ? "array" : x === null ? "null" : typeof x);
    if (kind(v) !== kind(current)) return v;
  }
  return null;
}

/**
 * Applies one mutation to `msg` (in place, except the root may be replaced) and returns the
 * new root with a short description of what was done.
 */
export function mutate(rng: Rng, msg: Val): { value: Val; what: string } {
  const all = slots(msg);
  const op = rng.weighted<string>([
    [4, "drop"],
    [4, "retype"],
    [3, "addKey"],
    [3, "version"],
    [2, "type"],
    [3, "msgId"],
    [2, "number"],
    [1, "dupKey"],
    [1.2, "bigArray"],
    [0.6, "hugeString"],
    [0.5, "deep"],
    [1, "emptyArray"],
    [0.2, "manyBadElements"],
    [0.3, "hugeKey"],
  ]);
  const root = msg instanceof Obj ? msg : undefined;
  switch (op) {
    case "drop": {
      const s = all.length ? rng.pick(all) : undefined;
      if (!s) break;
      s.remove();
      return { value: msg, what: `drop ${s.path}` };
    }
    case "retype": {
      const s = all.length ? rng.pick(all) : undefined;
      if (!s) break;
      s.set(wrongType(rng, s.get()));
      return { value: msg, what: `retype ${s.path}` };
    }
    case "addKey": {
      const target = rng.pick(objects(msg).length ? objects(msg) : [new Obj()]);
      const key = rng.chance(0.6) ? rng.pick(WEIRD_KEYS) : randomString(rng, 12);
      const value = key === "__proto__" || key === "constructor" ? obj({ polluted: true, v: 2, msgId: 1 }) : anyValue(rng);
      target.entries.push([key, value]);
      return { value: msg, what: `add key ${JSON.stringify(key)}` };
    }
    case "version": {
      if (!root) break;
      const v: Val = rng.pick<Val>([
        0,
        2,
        -1,
        1.5,
        "1",
        null,
        true,
        [1],
        obj({}),
        new Raw("1e400"),
        new Raw("-0"),
        new Raw("1.0"),
      ]);
      if (rng.chance(0.15)) root.delete("v");
      else root.set("v", rng.chance(0.05) ? deep(rng) : v);
      return { value: msg, what: "version" };
    }
    case "type": {
      if (!root) break;
      const t: Val = rng.pick<Val>([
        "launch-missiles",
        "HELLO",
        "hello ",
        "ack",
        "welcome",
        "run.assign",
        "error",
        "",
        randomString(rng, 16),
        null,
        7,
        ["hello"],
      ]);
      if (rng.chance(0.15)) root.delete("type");
      else root.set("type", t);
      return { value: msg, what: "type" };
    }
    case "msgId": {
      if (!root) break;
      const id: Val = rng.pick<Val>([
        -1,
        -(2 ** 31),
        0,
        2 ** 31,
        2 ** 53,
        Number.MAX_SAFE_INTEGER,
        1e300,
        1.5,
        "7",
        null,
        new Raw("1e400"),
        new Raw("-0"),
        new Raw("1.0"),
      ]);
      root.set("msgId", id);
      return { value: msg, what: "msgId" };
    }
    case "number": {
      const nums = all.filter((s) => typeof s.get() === "number");
      const s = nums.length ? rng.pick(nums) : undefined;
      if (!s) break;
      s.set(edgeNumber(rng));
      return { value: msg, what: `number ${s.path}` };
    }
    case "dupKey": {
      if (!root?.entries.length) break;
      const [key] = rng.pick(root.entries);
      root.entries.push([key, anyValue(rng)]);
      return { value: msg, what: `duplicate key ${key}` };
    }
    case "bigArray": {
      const list = arrays(msg);
      const arr = list.length ? rng.pick(list) : undefined;
      if (!arr) break;
      const n = rng.pick([LIMITS.maxBatch + 1, 10_001, 3 * LIMITS.maxBatch, rng.int(50, 2_000)]);
      const proto = arr[0] ?? anyValue(rng);
      arr.length = 0;
      for (let i = 0; i < n; i++) arr.push(proto);
      return { value: msg, what: `array of ${n}` };
    }
    case "hugeString": {
      const strs = all.filter((s) => typeof s.get() === "string");
      const s = strs.length ? rng.pick(strs) : undefined;
      if (!s) break;
      s.set(hugeString(rng));
      return { value: msg, what: `huge string at ${s.path}` };
    }
    case "deep": {
      const s = all.length ? rng.pick(all) : undefined;
      if (!s) break;
      s.set(deep(rng));
      return { value: msg, what: `deep nesting at ${s.path}` };
    }
    case "emptyArray": {
      const list = arrays(msg);
      const arr = list.length ? rng.pick(list) : undefined;
      if (!arr) break;
      arr.length = 0;
      return { value: msg, what: "empty array" };
    }
    case "hugeKey": {
      // Keys show up in error paths ("→ at labels.<key>"): a multi-megabyte key must not make a multi-megabyte error.
      const target = rng.pick(objects(msg).length ? objects(msg) : [new Obj()]);
      target.entries.push([hugeString(rng, rng.pick([100_000, 1_000_000])), randomString(rng, 8)]);
      return { value: msg, what: "huge key" };
    }
    case "manyBadElements": {
      // Up to ~1M schema violations in one frame well under the size limit: every element of a
      // batch invalid, each with a long inner list of invalid items.
      if (!root) break;
      const inner = rng.pick([100, 1_000]);
      const outer = rng.pick([100, 1_000]);
      const bad = obj({ kind: "task_run.created", upstream: Array.from({ length: inner }, () => 1) });
      root.set(
        "events",
        Array.from({ length: outer }, () => bad),
      );
      return { value: msg, what: `${outer}x${inner} invalid elements` };
    }
  }
  // Nothing applicable: replace a random slot with anything.
  return { value: anyValue(rng), what: "replaced by a random value" };
}

/** One frame as it goes on the wire. */
export interface Frame {
  data: string | Buffer;
  binary: boolean;
  /** Split into this many fragments (continuation frames). */
  fragments?: number;
  what: string;
}

/** The frame-level mutations: not JSON, not an object, binary, broken encoding. */
export function wireMutation(rng: Rng, text: string): Frame {
  const op = rng.weighted<string>([
    [3, "randomBytes"],
    [2, "binaryJson"],
    [3, "truncated"],
    [2, "trailing"],
    [2, "primitive"],
    [2, "garbage"],
    [1, "wrapped"],
    [1, "bom"],
    [1, "invalidUtf8"],
    [2, "fragmented"],
  ]);
  switch (op) {
    case "randomBytes":
      return {
        data: Buffer.from(Array.from({ length: rng.int(0, 200) }, () => rng.int(0, 255))),
        binary: true,
        what: "random bytes (binary)",
      };
    case "binaryJson":
      return { data: Buffer.from(text), binary: true, what: "valid JSON in a binary frame" };
    case "truncated":
      return { data: text.slice(0, rng.int(0, Math.max(0, text.length - 1))), binary: false, what: "truncated JSON" };
    case "trailing":
      return { data: `${text}${rng.pick(["}", ",", " x", "\u0000", "{}"])}`, binary: false, what: "trailing garbage" };
    case "primitive":
      return {
        data: rng.pick(["null", "1", '"hello"', "[]", "true", "{}", "-0", "1e400", '""']),
        binary: false,
        what: "JSON primitive",
      };
    case "garbage":
      return {
        data: rng.pick(["", " ", "NaN", "undefined", "{'a':1}", "// hi", "<xml/>", randomString(rng, 80)]),
        binary: false,
        what: "not JSON",
      };
    case "wrapped":
      return { data: `[${text}]`, binary: false, what: "message inside an array" };
    case "bom":
      return { data: `\ufeff${text}`, binary: false, what: "leading byte-order mark" };
    case "invalidUtf8":
      return { data: Buffer.from([0x7b, 0xc3, 0x28, 0xff, 0x7d]), binary: false, what: "invalid UTF-8 in a text frame" };
    default:
      return { data: text, binary: false, fragments: rng.int(2, 4), what: "valid text in fragments" };
  }
}
