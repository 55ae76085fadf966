"use client";

import Link from "next/link";
import { StateBadge } from "@/components/state-badge";
import { LoadState } from "@/components/status";
import { formatDuration, formatTime } from "@/lib/format";
import { usePolled } from "@/lib/use-polled";

export default function RunsPage() {
  const runs = usePolled("runs", (api) => api.runs.list.query({ limit: 100 }), 3_000);
  const items = runs.data?.items ?? [];
  return (
    <section>
      <div className="page-head">
        <h1>Flow runs</h1>
        <span className="muted small">refreshes every 3 s</span>
      </div>
      <LoadState loading={runs.loading} error={runs.error} />
      {runs.data && items.length === 0 ? (
        <p className="muted">
          No runs yet. Start one with <code>ferry run &lt;deployment&gt;</code>.
        </p>
      ) : null}
      {items.length > 0 ? (
        <table>
          <thead>
            <tr>
              <th>Run</th>
              <th>State</th>
              <th>Deployment</th>
              <th>Attempt</th>
              <th>Created</th>
              <th>Duration</th>
            </tr>
          </thead>
          <tbody>
            {items.map((run) => (
              <tr key={run.id}>
                <td>
                  <Link href={`/runs/${run.id}`}>{run.name}</Link>
                  {run.parentFlowRunId ? <span className="muted small"> (child)</span> : null}
                </td>
                <td>
                  <StateBadge type={run.stateType} name={run.stateName} />
                </td>
                <td>{run.deployment?.name ?? <span className="muted">{run.flow.name}</span>}</td>
                <td className="num">{run.attempt}</td>
                <td>{formatTime(run.createdAt)}</td>
                <td>{formatDuration(run.startTime, run.endTime)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </section>
  );
}
