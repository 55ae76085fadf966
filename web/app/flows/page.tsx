"use client";

import Link from "next/link";
import { Empty, LivePill, LoadState } from "@/components/status";
import { formatAgo, formatCount, formatTime } from "@/lib/format";
import { useLiveWorkspace, useLoad, useNow } from "@/lib/live";

export default function FlowsPage() {
  const list = useLoad("flows", (api) => api.flows.list.query({ limit: 500 }));
  const live = useLiveWorkspace(["deployments", "runs"], () => list.reload());
  useNow(30_000);
  const items = list.data ?? [];

  return (
    <section>
      <div className="page-head">
        <div>
          <h1>Flows</h1>
          <div className="page-sub">
            Every flow deployed or run in this workspace
            {list.data ? ` · ${items.length} flow${items.length === 1 ? "" : "s"}` : ""}
          </div>
        </div>
        <span className="spacer" />
        <LivePill status={live} />
      </div>
      <LoadState loading={list.loading && !list.data} error={list.error} />
      {list.data && items.length === 0 ? (
        <div className="card">
          <Empty title="No flows yet">
            A flow appears here once it is deployed with <code>ferry deploy</code>.
          </Empty>
        </div>
      ) : null}
      {items.length > 0 ? (
        <div className="card table-scroll">
          <table className="table">
            <thead>
              <tr>
                <th>Name</th>
                <th className="num">Deployments</th>
                <th className="num">Runs</th>
                <th>Created</th>
                <th>Updated</th>
              </tr>
            </thead>
            <tbody>
              {items.map((f) => (
                <tr key={f.id}>
                  <td>
                    <Link className="cell-title" href={`/flows/${encodeURIComponent(f.name)}`}>
                      {f.name}
                    </Link>
                  </td>
                  <td className="num">{formatCount(f._count.deployments)}</td>
                  <td className="num">{formatCount(f._count.runs)}</td>
                  <td className="nowrap">{formatTime(f.createdAt)}</td>
                  <td className="nowrap" title={formatTime(f.updatedAt)}>
                    {formatAgo(f.updatedAt)}
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
