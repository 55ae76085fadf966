"use client";

import Link from "next/link";
import { usePathname, useRouter, useSearchParams } from "next/navigation";
import { Suspense, useMemo, useState } from "react";
import { RunsChart } from "@/components/runs-chart";
import { STATE_LABEL, STATE_ORDER, StateBadge } from "@/components/state-badge";
import { Empty, LivePill, LoadState } from "@/components/status";
import type { RunSummary } from "@/lib/api";
import { formatDuration, formatTime } from "@/lib/format";
import { useLiveWorkspace, useLoad, useNow } from "@/lib/live";
import { useSession } from "@/lib/session";

const RANGES = [
  { key: "1h", label: "Last hour", ms: 3_600_000, buckets: 30 },
  { key: "24h", label: "Last 24 hours", ms: 86_400_000, buckets: 48 },
  { key: "7d", label: "Last 7 days", ms: 7 * 86_400_000, buckets: 56 },
  { key: "30d", label: "Last 30 days", ms: 30 * 86_400_000, buckets: 60 },
] as const;
type RangeKey = (typeof RANGES)[number]["key"];
const PAGE = 50;

type StateType = (typeof STATE_ORDER)[number];

function useFilters() {
  const params = useSearchParams();
  const router = useRouter();
  const pathname = usePathname();
  const states = params.getAll("state").filter((s): s is StateType => (STATE_ORDER as readonly string[]).includes(s));
  const range = (RANGES.find((r) => r.key === params.get("range"))?.key ?? "24h") as RangeKey;
  const filters = {
    states,
    flow: params.get("flow") ?? "",
    deployment: params.get("deployment") ?? "",
    tag: params.get("tag") ?? "",
    range,
    children: params.get("children") === "1",
  };
  const set = (patch: Partial<typeof filters>) => {
    const next = { ...filters, ...patch };
    const q = new URLSearchParams();
    for (const s of next.states) q.append("state", s);
    if (next.flow) q.set("flow", next.flow);
    if (next.deployment) q.set("deployment", next.deployment);
    if (next.tag) q.set("tag", next.tag);
    if (next.range !== "24h") q.set("range", next.range);
    if (next.children) q.set("children", "1");
    router.replace(`${pathname}${q.size ? `?${q}` : ""}`, { scroll: false });
  };
  return { filters, set };
}

function RunsPage() {
  const { filters, set } = useFilters();
  const { api } = useSession();
  const rangeDef = RANGES.find((r) => r.key === filters.range) ?? RANGES[1];
  // The time window moves with the clock only when the list reloads (no timer).
  const [extra, setExtra] = useState<RunSummary[]>([]);
  const [cursor, setCursor] = useState<string | undefined>();
  const common = {
    ...(filters.flow ? { flow: filters.flow } : {}),
    ...(filters.deployment ? { deployment: filters.deployment } : {}),
    ...(filters.tag ? { tag: filters.tag } : {}),
    rootOnly: !filters.children,
  };
  const key = JSON.stringify(filters);
  const list = useLoad(`runs:${key}`, (a) => {
    setExtra([]);
    setCursor(undefined);
    return a.runs.list.query({
      ...common,
      ...(filters.states.length ? { state: filters.states } : {}),
      createdAfter: new Date(Date.now() - rangeDef.ms).toISOString(),
      limit: PAGE,
    });
  });
  const stats = useLoad(`stats:${key}`, (a) =>
    a.runs.stats.query({ ...common, createdAfter: new Date(Date.now() - rangeDef.ms).toISOString(), buckets: rangeDef.buckets }),
  );
  const deployments = useLoad("deployments", (a) => a.deployments.list.query({ limit: 500 }));
  const flows = useLoad("flows", (a) => a.flows.list.query({ limit: 500 }));
  const live = useLiveWorkspace(["runs", "deployments"], (kinds) => {
    if (kinds.includes("runs")) {
      list.reload();
      stats.reload();
    }
    if (kinds.includes("deployments")) {
      deployments.reload();
      flows.reload();
    }
  });
  useNow(1_000); // running durations tick

  const nextCursor = cursor === undefined ? list.data?.nextCursor : cursor;
  const [loadingMore, setLoadingMore] = useState(false);
  const loadMore = async () => {
    if (!nextCursor) return;
    setLoadingMore(true);
    try {
      const page = await api.runs.list.query({
        ...common,
        ...(filters.states.length ? { state: filters.states } : {}),
        createdAfter: new Date(Date.now() - rangeDef.ms).toISOString(),
        limit: PAGE,
        cursor: nextCursor,
      });
      setExtra((e) => [...e, ...page.items]);
      setCursor(page.nextCursor ?? "");
    } finally {
      setLoadingMore(false);
    }
  };
  const items = useMemo(() => {
    const first = list.data?.items ?? [];
    const seen = new Set(first.map((r) => r.id));
    return [...first, ...extra.filter((r) => !seen.has(r.id))];
  }, [list.data, extra]);
  const counts = stats.data?.counts ?? {};
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  const toggleState = (s: StateType) =>
    set({ states: filters.states.includes(s) ? filters.states.filter((x) => x !== s) : [...filters.states, s] });

  return (
    <section className="stack">
      <div className="page-head" style={{ marginBottom: 0 }}>
        <div>
          <h1>Flow runs</h1>
          <div className="page-sub">
            {total.toLocaleString("en-US")} runs · {rangeDef.label.toLowerCase()}
          </div>
        </div>
        <span className="spacer" />
        <LivePill status={live} />
      </div>

      <div className="card">
        <div className="card-body stack" style={{ gap: 12 }}>
          <div className="row" style={{ gap: 10 }}>
            <select aria-label="Time range" value={filters.range} onChange={(e) => set({ range: e.target.value as RangeKey })}>
              {RANGES.map((r) => (
                <option key={r.key} value={r.key}>
                  {r.label}
                </option>
              ))}
            </select>
            <select aria-label="Flow" value={filters.flow} onChange={(e) => set({ flow: e.target.value })}>
              <option value="">All flows</option>
              {flows.data?.map((f) => (
                <option key={f.id} value={f.name}>
                  {f.name}
                </option>
              ))}
            </select>
            <select aria-label="Deployment" value={filters.deployment} onChange={(e) => set({ deployment: e.target.value })}>
              <option value="">All deployments</option>
              {deployments.data?.map((d) => (
                <option key={d.id} value={d.name}>
                  {d.name}
                </option>
              ))}
            </select>
            <TagFilter value={filters.tag} onChange={(tag) => set({ tag })} />
            <label className="checkbox small muted">
              <input type="checkbox" checked={filters.children} onChange={(e) => set({ children: e.target.checked })} />
              Include child flow runs
            </label>
          </div>
          <fieldset className="chips" aria-label="Filter by state">
            {STATE_ORDER.filter(
              (s) => counts[s] || filters.states.includes(s) || ["RUNNING", "COMPLETED", "FAILED"].includes(s),
            ).map((s) => (
              <button
                key={s}
                type="button"
                className={`chip state-${s.toLowerCase()}`}
                aria-pressed={filters.states.includes(s)}
                onClick={() => toggleState(s)}
                data-state-filter={s}
              >
                <span className="dot" aria-hidden="true" />
                {STATE_LABEL[s]}
                <span className="count">{(counts[s] ?? 0).toLocaleString("en-US")}</span>
              </button>
            ))}
            {filters.states.length ? (
              <button type="button" className="link-button small" onClick={() => set({ states: [] })}>
                Clear
              </button>
            ) : null}
          </fieldset>
          {stats.data ? <RunsChart stats={stats.data} /> : <div className="chart" />}
        </div>
      </div>

      <div className="card">
        <LoadState loading={list.loading} error={list.error} />
        {list.data && items.length === 0 ? (
          <Empty title="No runs match">
            Start one from a <Link href="/deployments">deployment</Link>, or with <code>ferry run &lt;deployment&gt;</code>.
          </Empty>
        ) : null}
        {items.length > 0 ? (
          <table className="table" data-testid="runs-table">
            <thead>
              <tr>
                <th>Run</th>
                <th>State</th>
                <th>Deployment</th>
                <th>Tags</th>
                <th>Started</th>
                <th className="num">Duration</th>
              </tr>
            </thead>
            <tbody>
              {items.map((run) => (
                <tr key={run.id} data-run-id={run.id} data-state={run.stateType}>
                  <td>
                    <Link href={`/runs/${run.id}`} className="cell-title">
                      {run.name}
                    </Link>
                    <div className="cell-sub">
                      {run.flow.name}
                      {run.parentFlowRunId ? " · child run" : ""}
                      {run.attempt > 1 ? ` · attempt ${run.attempt}` : ""}
                    </div>
                  </td>
                  <td>
                    <StateBadge type={run.stateType} name={run.stateName} />
                  </td>
                  <td>
                    {run.deployment ? (
                      <Link href={`/deployments/${encodeURIComponent(run.deployment.name)}`}>{run.deployment.name}</Link>
                    ) : (
                      <span className="muted">—</span>
                    )}
                  </td>
                  <td>
                    {run.tags.map((t) => (
                      <span key={t} className="tag">
                        {t}
                      </span>
                    ))}
                  </td>
                  <td className="nowrap">{formatTime(run.startTime ?? run.createdAt)}</td>
                  <td className="num nowrap">{formatDuration(run.startTime, run.endTime)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : null}
        {nextCursor ? (
          <div className="card-body" style={{ textAlign: "center" }}>
            <button type="button" className="button" onClick={() => void loadMore()} disabled={loadingMore}>
              {loadingMore ? "Loading…" : "Load more"}
            </button>
          </div>
        ) : null}
      </div>
    </section>
  );
}

function TagFilter({ value, onChange }: { value: string; onChange: (tag: string) => void }) {
  const [text, setText] = useState(value);
  return (
    <form
      onSubmit={(e) => {
        e.preventDefault();
        onChange(text.trim());
      }}
    >
      <input
        type="search"
        aria-label="Tag"
        placeholder="Tag…"
        value={text}
        onChange={(e) => {
          setText(e.target.value);
          if (!e.target.value) onChange("");
        }}
        style={{ width: 140 }}
      />
    </form>
  );
}

export default function Page() {
  return (
    <Suspense>
      <RunsPage />
    </Suspense>
  );
}
