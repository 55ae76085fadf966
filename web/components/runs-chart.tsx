import { STATE_LABEL, STATE_ORDER } from "@/components/state-badge";
import type { RunStats } from "@/lib/api";

/** Runs over time, stacked by state: one bar per bucket of the time range. */
export function RunsChart({ stats }: { stats: RunStats }) {
  const width = 1000;
  const height = 96;
  const axis = 14;
  const n = stats.buckets.length;
  const max = Math.max(1, ...stats.buckets.map((b) => Object.values(b.counts).reduce((a, c) => a + c, 0)));
  const slot = width / n;
  const barW = Math.max(2, slot * 0.72);
  const fmt = (iso: string) => {
    const d = new Date(iso);
    const span = new Date(stats.to).getTime() - new Date(stats.from).getTime();
    return span > 2 * 86_400_000
      ? d.toLocaleDateString(undefined, { month: "short", day: "numeric" })
      : d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  };
  const labelEvery = Math.max(1, Math.ceil(n / 6));
  return (
    <svg className="chart" viewBox={`0 0 ${width} ${height}`} preserveAspectRatio="none" role="img" aria-label="Runs over time">
      {stats.buckets.map((b, i) => {
        let y = height - axis;
        return (
          <g key={b.start}>
            <title>
              {`${fmt(b.start)}: ${
                STATE_ORDER.filter((s) => b.counts[s])
                  .map((s) => `${b.counts[s]} ${STATE_LABEL[s]}`)
                  .join(", ") || "no runs"
              }`}
            </title>
            <rect x={i * slot} y={0} width={slot} height={height - axis} fill="transparent" />
            {STATE_ORDER.filter((s) => b.counts[s]).map((s) => {
              const h = ((b.counts[s] ?? 0) / max) * (height - axis - 4);
              y -= h;
              return (
                <rect
                  key={s}
                  className={`bar state-${s.toLowerCase()}`}
                  x={i * slot + (slot - barW) / 2}
                  y={y}
                  width={barW}
                  height={h}
                  rx={1.5}
                />
              );
            })}
          </g>
        );
      })}
      {stats.buckets.map((b, i) =>
        i % labelEvery === 0 ? (
          <text key={`l${b.start}`} className="axis" x={i * slot + 2} y={height - 2}>
            {fmt(b.start)}
          </text>
        ) : null,
      )}
    </svg>
  );
}
