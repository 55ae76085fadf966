"use client";

import { LoadState } from "@/components/status";
import { formatAgo } from "@/lib/format";
import { usePolled } from "@/lib/use-polled";

export default function AgentsPage() {
  const agents = usePolled("agents", (api) => api.agents.list.query(), 5_000);
  const items = agents.data ?? [];
  return (
    <section>
      <div className="page-head">
        <h1>Agents</h1>
      </div>
      <LoadState loading={agents.loading} error={agents.error} />
      {agents.data && items.length === 0 ? (
        <p className="muted">
          No agent has connected yet. Start one with <code>ferry agent start</code>.
        </p>
      ) : null}
      {items.length > 0 ? (
        <table>
          <thead>
            <tr>
              <th>Name</th>
              <th>Status</th>
              <th>Pools</th>
              <th>In use</th>
              <th>Version</th>
              <th>Last heartbeat</th>
            </tr>
          </thead>
          <tbody>
            {items.map((a) => (
              <tr key={a.id}>
                <td>
                  {a.name}
                  <div className="muted small">{a.id}</div>
                </td>
                <td>
                  <span className={`badge ${a.connected ? "agent-online" : "agent-offline"}`}>
                    {a.connected ? "Online" : "Offline"}
                  </span>
                </td>
                <td>
                  {a.pools.map((p) => (
                    <span key={p} className="tag">
                      {p}
                    </span>
                  ))}
                </td>
                <td className="num">
                  {a.inUse} / {a.capacity}
                </td>
                <td>{a.version}</td>
                <td>{formatAgo(a.lastHeartbeatAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </section>
  );
}
