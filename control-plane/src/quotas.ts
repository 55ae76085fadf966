import { z } from "zod";
import { DomainError } from "./errors.ts";

/**
 * Per-workspace quotas: what one tenant may ask of a control plane it shares with others.
 * Each has a default that a real team does not reach and that keeps a hostile tenant from
 * slowing the rest; the operator changes them with `ferry server start --quota name=value`.
 * A request over a quota is refused with an error that names the quota and how to raise it;
 * nothing already accepted is dropped.
 */
export const Quotas = z.object({
  /** Largest parameters of one run, as JSON (bytes): a run's parameters travel in every list and dispatch. */
  maxParametersBytes: z
    .number()
    .int()
    .min(1024)
    .max(16 * 1024 * 1024)
    .default(64 * 1024),
  /** Schedules per workspace (declared by deploys and added by hand together). */
  maxSchedules: z.number().int().min(1).max(100_000).default(200),
  /** Shortest time between two slots of one schedule (seconds). */
  minScheduleIntervalSeconds: z.number().int().min(1).max(86_400).default(60),
  /** Backfills of a workspace creating runs at once. */
  maxActiveBackfills: z.number().int().min(1).max(1_000).default(5),
  /** Runs a workspace may create through the API and webhooks, per second, sustained. */
  runCreatesPerSecond: z.number().int().min(1).max(1_000_000).default(200),
  /** Runs a workspace may create in a burst above the sustained rate. */
  runCreateBurst: z.number().int().min(1).max(1_000_000).default(1_000),
  /** Notification channels of a workspace (the channel list is bounded by it). */
  maxNotificationChannels: z.number().int().min(1).max(10_000).default(100),
  /** Notification rules of a workspace (the rule list is bounded by it; the alert outbox reads a workspace's rules per alerting state). */
  maxNotificationRules: z.number().int().min(1).max(10_000).default(500),
  /** Flow runs one agent may hold at once (its hello's capacity; `ferry agent start --concurrency`). */
  maxAgentCapacity: z.number().int().min(1).max(10_000).default(1_000),
  /** Agents one token may run, counting those seen in the last day. */
  maxAgentsPerToken: z.number().int().min(1).max(100_000).default(100),
  /** Open agent connections of one token, per control-plane process. */
  maxSocketsPerToken: z.number().int().min(1).max(100_000).default(100),
  /** Calls in one batched API request (tRPC batch). */
  /** Calls in one batched API request (tRPC batch; the web app sends at most 10). */
  maxBatchSize: z.number().int().min(10).max(1_000).default(20),
});
export type Quotas = z.infer<typeof Quotas>;
export type QuotaName = keyof Quotas;

export const DEFAULT_QUOTAS: Quotas = Quotas.parse({});

/** `name=value` pairs of `--quota` into quotas, with a clear error for an unknown name or a bad value. */
export function parseQuotaFlags(pairs: readonly string[]): Quotas {
  const raw: Record<string, number> = {};
  for (const pair of pairs) {
    const [name, value, ...rest] = pair.split("=");
    if (!name || value === undefined || rest.length) throw new Error(`--quota ${pair}: expected name=value`);
    if (!(name in Quotas.shape)) {
      throw new Error(`--quota ${pair}: unknown quota "${name}" (known: ${Object.keys(Quotas.shape).join(", ")})`);
    }
    if (!/^\d+$/.test(value)) throw new Error(`--quota ${pair}: the value must be a whole number`);
    raw[name] = Number(value);
  }
  const parsed = Quotas.safeParse(raw);
  if (!parsed.success) {
    throw new Error(`--quota: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message.toLowerCase()}`).join("; ")}`);
  }
  return parsed.data;
}

/** The error of a request over a quota: names the quota, the limit and the flag that raises it. */
export function quotaExceeded(name: QuotaName, limit: number, what: string): DomainError {
  return new DomainError(
    "QUOTA_EXCEEDED",
    `${what} (quota ${name} = ${limit}; the operator raises it with ferry server start --quota ${name}=N)`,
  );
}

/** Fails unless `parameters` fit the parameters quota. */
export function checkParametersSize(quotas: Pick<Quotas, "maxParametersBytes">, parameters: unknown): void {
  const bytes = Buffer.byteLength(JSON.stringify(parameters ?? {}));
  if (bytes > quotas.maxParametersBytes) {
    throw quotaExceeded(
      "maxParametersBytes",
      quotas.maxParametersBytes,
      `the run's parameters are ${bytes} bytes of JSON: pass large data by reference (a path or URI) instead`,
    );
  }
}

/**
 * Token buckets, one per workspace, for the run-creation rate. In memory per replica: a
 * restart refills the buckets, which only ever lets a tenant through, never refuses work by
 * mistake. Idle buckets are dropped so a flood of workspaces cannot grow the map for ever.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Takes one token for `key`; false when its bucket is empty. */
  take(key: string): boolean {
    const now = this.now();
    const bucket = this.buckets.get(key) ?? { tokens: this.burst, at: now };
    bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.perSecond);
    bucket.at = now;
    this.buckets.set(key, bucket);
    if (this.buckets.size > 10_000) this.sweep(now);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  /** Drops buckets that have refilled (they hold nothing a new bucket would not). */
  private sweep(now: number): void {
    for (const [key, b] of this.buckets) {
      if (b.tokens + ((now - b.at) / 1000) * this.perSecond >= this.burst) this.buckets.delete(key);
    }
  }
}
