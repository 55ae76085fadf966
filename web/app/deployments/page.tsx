"use client";

import Link from "next/link";
import { Empty, LivePill, LoadState } from "@/components/status";
import { formatAgo, formatMs, formatTime } from "@/lib/format";
import { useLiveWorkspace, useLoad, useNow } from "@/lib/live";

export default function DeploymentsPage() {
  const list = useLoad("deployments", (api) => api.deployments.list.query({ limit: 500 }));
  const live = useLiveWorkspace(["deployments"], () => list.reload());
  useNow(30_000);
  const items = list.data ?? [];

  return (
    <section>
      <div className="page-head">
        <div>
          <h1>Deployments</h1>
          <div className="page-sub">
            Flows that agents can run, created with <code>ferry deploy</code>
            {list.data ? ` · ${items.length} deployment${items.length === 1 ? "" : "s"}` : ""}
          </div>
        </div>
        <span className="spacer" />
        <LivePill status={live} />
      </div>
      <LoadState loading={list.loading && !list.data} error={list.error} />
      {list.data && items.length === 0 ? (
        <div className="card">
          <Empty title="No deployments yet">
            Deploy the flows of a module with <code>ferry deploy flows/pipeline.ts</code>; each exported flow becomes a
            deployment.
          </Empty>
        </div>
      ) : null}
      {items.length > 0 ? (
        <div className="card table-scroll">
          <table className="table">
            <thead>
              <tr>
                <th>Name</th>
                <th>Flow</th>
                <th>Work pool</th>
                <th>Tags</th>
                <th className="num">Retries</th>
                <th className="num">Timeout</th>
                <th className="num">Concurrency</th>
                <th>Updated</th>
              </tr>
            </thead>
            <tbody>
              {items.map((d) => (
                <tr key={d.id}>
                  <td>
                    <Link className="cell-title" href={`/deployments/${encodeURIComponent(d.name)}`}>
                      {d.name}
                    </Link>
                    {d.description ? <div className="cell-sub cell-clip">{d.description}</div> : null}
                  </td>
                  <td>
                    <Link href={`/flows/${encodeURIComponent(d.flowName)}`}>{d.flowName}</Link>
                  </td>
                  <td>
                    <span className="tag">{d.workPool}</span>
                  </td>
                  <td>
                    {d.tags.length ? (
                      d.tags.map((t) => (
                        <span key={t} className="tag">
                          {t}
                        </span>
                      ))
                    ) : (
                      <span className="muted">—</span>
                    )}
                  </td>
                  <td className="num">{d.retries}</td>
                  <td className="num">{d.timeoutMs ? formatMs(d.timeoutMs) : <span className="muted">—</span>}</td>
                  <td className="num" title={d.concurrencyLimit ? `over the limit: ${d.collisionStrategy}` : "no limit"}>
                    {d.concurrencyLimit ?? <span className="muted">—</span>}
                  </td>
                  <td className="nowrap" title={formatTime(d.updatedAt)}>
                    {formatAgo(d.updatedAt)}
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
