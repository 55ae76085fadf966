"use client";

import { LoadState } from "@/components/status";
import { formatTime } from "@/lib/format";
import { usePolled } from "@/lib/use-polled";

export default function DeploymentsPage() {
  const deployments = usePolled("deployments", (api) => api.deployments.list.query({ limit: 500 }), 10_000);
  const items = deployments.data ?? [];
  return (
    <section>
      <div className="page-head">
        <h1>Deployments</h1>
      </div>
      <LoadState loading={deployments.loading} error={deployments.error} />
      {deployments.data && items.length === 0 ? (
        <p className="muted">
          No deployments yet. Create them with <code>ferry deploy</code>.
        </p>
      ) : null}
      {items.length > 0 ? (
        <table>
          <thead>
            <tr>
              <th>Name</th>
              <th>Flow</th>
              <th>Entrypoint</th>
              <th>Work pool</th>
              <th>Retries</th>
              <th>Tags</th>
              <th>Updated</th>
            </tr>
          </thead>
          <tbody>
            {items.map((d) => (
              <tr key={d.id}>
                <td>
                  {d.name}
                  {d.description ? <div className="muted small clip">{d.description}</div> : null}
                </td>
                <td>{d.flowName}</td>
                <td>
                  <code>{d.entrypoint}</code>
                </td>
                <td>{d.workPool}</td>
                <td className="num">{d.retries}</td>
                <td>
                  {d.tags.map((t) => (
                    <span key={t} className="tag">
                      {t}
                    </span>
                  ))}
                </td>
                <td>{formatTime(d.updatedAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </section>
  );
}
