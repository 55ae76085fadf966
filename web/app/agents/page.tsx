"use client";

import Link from "next/link";
import { Empty, LivePill, LoadState } from "@/components/status";
import type { AgentRow } from "@/lib/api";
import { formatAgo, formatTime } from "@/lib/format";
import { useLiveWorkspace, useLoad, useNow } from "@/lib/live";
import { useSession } from "@/lib/session";

function Capacity({ agent }: { agent: AgentRow }) {
  const share = agent.capacity > 0 ? Math.min(1, agent.inUse / agent.capacity) : 0;
  return (
    <div className="capacity" title={`${agent.inUse} of ${agent.capacity} run slots in use`}>
      <span className="num">
        {agent.inUse} / {agent.capacity}
      </span>
      <span className="meter" aria-hidden="true">
        <span className={share >= 1 ? "full" : undefined} style={{ width: `${Math.round(share * 100)}%` }} />
      </span>
    </div>
  );
}

export default function AgentsPage() {
  const { can } = useSession();
  const list = useLoad("agents", (api) => api.agents.list.query());
  const live = useLiveWorkspace(["agents", "runs"], () => list.reload());
  useNow(1_000);

  const items = list.data ?? [];
  const online = items.filter((a) => a.connected).length;

  return (
    <section>
      <div className="page-head">
        <div>
          <h1>Agents</h1>
          <div className="page-sub">
            {list.data ? (
              <>
                <strong>{online}</strong> online of {items.length} · agents run flows on their own machines
              </>
            ) : (
              "Agents run flows on their own machines"
            )}
          </div>
        </div>
        <span className="spacer" />
        <LivePill status={live} />
      </div>
      <LoadState loading={list.loading && !list.data} error={list.error} />
      {list.data && items.length === 0 ? (
        <div className="card">
          <Empty title="No agent has connected yet">
            <p>
              On a machine with your flows, run <code>ferry agent start --token &lt;agent token&gt;</code> (add{" "}
              <code>--pool &lt;name&gt;</code> to serve another work pool than <code>default</code>).
            </p>
            <p>
              The token needs the <code>agent</code> scope
              {can("admin") ? (
                <>
                  : create one under <Link href="/tokens">API tokens</Link>.
                </>
              ) : (
                "; an admin can create one."
              )}
            </p>
          </Empty>
        </div>
      ) : null}
      {items.length > 0 ? (
        <div className="card table-scroll">
          <table className="table">
            <thead>
              <tr>
                <th>Name</th>
                <th>Status</th>
                <th>Pools</th>
                <th>Labels</th>
                <th>In use</th>
                <th>Last heartbeat</th>
                <th>Version</th>
                <th>Connected since</th>
              </tr>
            </thead>
            <tbody>
              {items.map((a) => (
                <tr key={a.id} className={a.connected ? undefined : "dim"} data-agent={a.name}>
                  <td>
                    <div className="cell-title">{a.name}</div>
                    <div className="cell-sub mono">{a.id}</div>
                  </td>
                  <td>
                    <span className={`badge ${a.connected ? "agent-online" : "agent-offline"}`}>
                      <span className="dot" aria-hidden="true" />
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
                  <td>
                    {Object.keys(a.labels).length ? (
                      Object.entries(a.labels).map(([k, v]) => (
                        <span key={k} className="tag mono">
                          {k}={v}
                        </span>
                      ))
                    ) : (
                      <span className="muted">—</span>
                    )}
                  </td>
                  <td>
                    <Capacity agent={a} />
                  </td>
                  <td className="nowrap" title={formatTime(a.lastHeartbeatAt)}>
                    {formatAgo(a.lastHeartbeatAt)}
                  </td>
                  <td className="mono small">{a.version}</td>
                  <td className="nowrap">
                    {a.connected ? (
                      <span title={formatTime(a.connectedAt)}>{formatAgo(a.connectedAt)}</span>
                    ) : (
                      <span className="muted" title={formatTime(a.disconnectedAt)}>
                        {a.disconnectedAt ? `left ${formatAgo(a.disconnectedAt)}` : "—"}
                      </span>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
    </section>
  );
}
