"use client";

import Link from "next/link";
import { useParams } from "next/navigation";
import { RecentRuns } from "@/components/recent-runs";
import { Empty, LivePill, LoadState } from "@/components/status";
import { formatAgo, formatTime, routeSegment } from "@/lib/format";
import { useLiveWorkspace, useLoad, useNow } from "@/lib/live";

export default function FlowPage() {
  const params = useParams<{ name: string }>();
  const name = routeSegment(params.name);
  const flow = useLoad(`flow:${name}`, (api) => api.flows.get.query({ name }));
  const runs = useLoad(`flow-runs:${name}`, (api) => api.runs.list.query({ flow: name, limit: 10 }));
  const live = useLiveWorkspace(["runs", "deployments"], (kinds) => {
    if (kinds.includes("deployments")) flow.reload();
    if (kinds.includes("runs")) runs.reload();
  });
  useNow(1_000);

  const f = flow.data;
  const deployments = f?.deployments ?? [];
  const items = runs.data?.items ?? [];

  return (
    <section>
      <div className="page-head">
        <div>
          <div className="crumbs">
            <Link href="/flows">Flows</Link> / {name}
          </div>
          <h1>{name}</h1>
          <div className="page-sub">
            {f
              ? `${deployments.length} deployment${deployments.length === 1 ? "" : "s"} · first seen ${formatTime(f.createdAt)}`
              : " "}
          </div>
        </div>
        <span className="spacer" />
        <LivePill status={live} />
      </div>

      <LoadState loading={flow.loading && !f} error={flow.error} />

      {f ? (
        <div className="stack">
          <div className="card">
            <div className="card-head">
              <h3>Deployments</h3>
            </div>
            {deployments.length === 0 ? (
              <Empty title="Not deployed">
                Deploy it with <code>ferry deploy</code> to run it from here.
              </Empty>
            ) : (
              <div className="table-scroll">
                <table className="table">
                  <thead>
                    <tr>
                      <th>Name</th>
                      <th>Entrypoint</th>
                      <th>Work pool</th>
                      <th>Updated</th>
                      <th />
                    </tr>
                  </thead>
                  <tbody>
                    {deployments.map((d) => (
                      <tr key={d.id}>
                        <td>
                          <Link className="cell-title" href={`/deployments/${encodeURIComponent(d.name)}`}>
                            {d.name}
                          </Link>
                          {d.description ? <div className="cell-sub cell-clip">{d.description}</div> : null}
                        </td>
                        <td>
                          <code>{d.entrypoint}</code>
                        </td>
                        <td>
                          <span className="tag">{d.workPool}</span>
                        </td>
                        <td className="nowrap" title={formatTime(d.updatedAt)}>
                          {formatAgo(d.updatedAt)}
                        </td>
                        <td className="num">
                          <Link className="small" href={`/runs?deployment=${encodeURIComponent(d.name)}`}>
                            Runs →
                          </Link>
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </div>

          <div className="card">
            <div className="card-head">
              <h3>Recent runs</h3>
            </div>
            {runs.error || (runs.loading && !runs.data) ? (
              <div className="card-body">
                <LoadState loading={runs.loading} error={runs.error} />
              </div>
            ) : null}
            {runs.data && items.length === 0 ? <Empty title="No runs yet" /> : null}
            {items.length ? <RecentRuns runs={items} showDeployment /> : null}
          </div>
        </div>
      ) : null}
    </section>
  );
}
