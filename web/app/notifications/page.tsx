"use client";

import { Empty, LivePill, LoadState } from "@/components/status";
import { formatAgo, formatTime } from "@/lib/format";
import { useLiveWorkspace, useLoad } from "@/lib/live";

const STATUS_CLASS: Record<string, string> = { SENT: "state-completed", PENDING: "state-pending", FAILED: "state-failed" };

/** Alerting: where notifications go, which events go there, and what was delivered. */
export default function NotificationsPage() {
  const channels = useLoad("notify-channels", (api) => api.notifications.channels.query());
  const rules = useLoad("notify-rules", (api) => api.notifications.rules.query());
  const deliveries = useLoad("notify-deliveries", (api) => api.notifications.deliveries.query({ limit: 100 }));
  const live = useLiveWorkspace(["deployments", "runs"], () => {
    deliveries.reload();
    rules.reload();
  });
  const history = deliveries.data ?? [];
  return (
    <section className="stack">
      <div className="page-head" style={{ marginBottom: 0 }}>
        <div>
          <h1>Alerts</h1>
          <div className="page-sub">Notification channels, the rules that use them, and every delivery with its retries</div>
        </div>
        <span className="spacer" />
        <LivePill status={live} />
      </div>

      <div className="grid grid-2">
        <div className="card">
          <div className="card-head">
            <h3>Channels</h3>
          </div>
          <LoadState loading={channels.loading && !channels.data} error={channels.error} />
          {channels.data && !channels.data.length ? (
            <Empty title="No channels">
              <code>ferry notify channel-add slack ops --url https://hooks.slack.com/services/…</code>
            </Empty>
          ) : null}
          {channels.data?.length ? (
            <table className="table">
              <tbody>
                {channels.data.map((c) => (
                  <tr key={c.id} data-channel={c.name}>
                    <td>
                      <div className="cell-title">{c.name}</div>
                      <div className="cell-sub mono">{c.target}</div>
                    </td>
                    <td>
                      <span className="tag">{c.kind}</span>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : null}
        </div>
        <div className="card">
          <div className="card-head">
            <h3>Rules</h3>
          </div>
          <LoadState loading={rules.loading && !rules.data} error={rules.error} />
          {rules.data && !rules.data.length ? (
            <Empty title="No rules">
              <code>ferry notify rule-add ops --on failed --on recovered --deployment nightly</code>
            </Empty>
          ) : null}
          {rules.data?.length ? (
            <table className="table">
              <tbody>
                {rules.data.map((r) => (
                  <tr key={r.id} className={r.active ? undefined : "dim"}>
                    <td>
                      <div className="cell-title">{r.name}</div>
                      <div className="cell-sub">
                        {r.events.join(", ")}
                        {r.longRunningSeconds ? ` · longer than ${Math.round(r.longRunningSeconds / 60)} min` : ""} → {r.channel}
                      </div>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : null}
        </div>
      </div>

      <div className="card">
        <div className="card-head">
          <h3>Delivery history</h3>
        </div>
        <LoadState loading={deliveries.loading && !deliveries.data} error={deliveries.error} />
        {deliveries.data && !history.length ? <Empty title="Nothing sent yet" /> : null}
        {history.length ? (
          <table className="table" data-testid="deliveries">
            <thead>
              <tr>
                <th>When</th>
                <th>Event</th>
                <th>Run</th>
                <th>Channel</th>
                <th>Status</th>
                <th className="num">Attempts</th>
                <th>Last error</th>
              </tr>
            </thead>
            <tbody>
              {history.map((d) => (
                <tr key={d.id} data-delivery={d.id} data-status={d.status}>
                  <td className="nowrap small" title={formatTime(String(d.createdAt))}>
                    {formatAgo(String(d.createdAt))}
                  </td>
                  <td className="mono small">{d.event}</td>
                  <td>{d.flowRunId ? <a href={`/runs/${d.flowRunId}`}>{d.runName ?? d.flowRunId}</a> : "—"}</td>
                  <td>
                    {d.channel} <span className="muted small">({d.channelKind})</span>
                  </td>
                  <td>
                    <span className={`badge ${STATUS_CLASS[d.status] ?? ""}`}>
                      <span className="dot" aria-hidden="true" />
                      {d.status.charAt(0) + d.status.slice(1).toLowerCase()}
                    </span>
                  </td>
                  <td className="num">{d.attempts}</td>
                  <td className="small muted" style={{ maxWidth: 320 }}>
                    {d.lastError ?? ""}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : null}
      </div>
    </section>
  );
}
