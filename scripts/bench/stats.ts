/** Figures the benchmark scripts share: percentiles of latencies and a process's CPU and memory from /proc. */
import { readFileSync } from "node:fs";

/** The p-th percentile (nearest rank) of values, rounded to 0.01. */
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return Math.round((sorted[Math.max(0, index)] ?? Number.NaN) * 100) / 100;
}

export interface Summary {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

export const summary = (values: readonly number[]): Summary => ({
  n: values.length,
  p50: percentile(values, 50),
  p99: percentile(values, 99),
  max: percentile(values, 100),
});

/** CPU seconds (user + system) a process has used so far, from /proc. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 of stat (11 and 12 after the command name and state); clock ticks of 1/100 s.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Resident and peak resident memory of a process in MiB, from /proc. */
export function memoryMb(pid: number): { rssMb: number; peakRssMb: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { rssMb: Math.round(kb("VmRSS") / 1024), peakRssMb: Math.round(kb("VmHWM") / 1024) };
}

/** Cumulative counts of a Prometheus histogram, by upper bound (seconds), as scraped from /metrics. */
export async function scrapeHistogram(url: string, token: string, name: string): Promise<Map<number, number>> {
  const res = await fetch(new URL("/metrics", url), { headers: { authorization: `Bearer ${token}` } });
  if (!res.ok) throw new Error(`GET /metrics: ${res.status}`);
  const buckets = new Map<number, number>();
  for (const line of (await res.text()).split("\n")) {
    const m = new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\d+)`).exec(line);
    if (m?.[1] && m[2]) buckets.set(m[1] === "+Inf" ? Number.POSITIVE_INFINITY : Number(m[1]), Number(m[2]));
  }
  return buckets;
}

/**
 * p50 and p99 (ms) of the observations between two scrapes of a histogram, interpolated
 * linearly inside the bucket that holds each (as Prometheus' histogram_quantile does).
 */
export function histogramQuantiles(
  before: Map<number, number>,
  after: Map<number, number>,
): { n: number; p50: number; p99: number } {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const counts = bounds.map((b) => (after.get(b) ?? 0) - (before.get(b) ?? 0));
  const n = counts.at(-1) ?? 0;
  if (!n) return { n, p50: Number.NaN, p99: Number.NaN }; // nothing observed: no quantile to give
  const quantile = (q: number) => {
    const rank = q * n;
    for (let i = 0; i < bounds.length; i++) {
      const c = counts[i] ?? 0;
      if (c >= rank) {
        const lower = i ? (bounds[i - 1] ?? 0) : 0;
        const upper = bounds[i] ?? lower;
        if (!Number.isFinite(upper)) return lower * 1000;
        const below = i ? (counts[i - 1] ?? 0) : 0;
        const fraction = c === below ? 0 : (rank - below) / (c - below);
        return Math.round((lower + (upper - lower) * fraction) * 1000 * 100) / 100;
      }
    }
    return Number.NaN;
  };
  return { n, p50: quantile(0.5), p99: quantile(0.99) };
}

/**
 * `ferry server start` flags of a benchmark's control plane: the per-workspace run-creation
 * rate and agents per token are tenant quotas (control-plane/src/quotas.ts), not the figures
 * being measured, so the benches that create runs as fast as they can, or connect 1,000 agents
 * with one token, lift them.
 */
export const BENCH_SERVER_ARGS = [
  "runCreatesPerSecond=1000000",
  "runCreateBurst=1000000",
  "maxAgentsPerToken=100000",
  "maxSocketsPerToken=100000",
].flatMap((q) => ["--quota", q]);
