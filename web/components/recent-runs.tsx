"use client";

import Link from "next/link";
import { StateBadge } from "@/components/state-badge";
import type { RunSummary } from "@/lib/api";
import { formatAgo, formatDuration, formatTime } from "@/lib/format";
import { useNow } from "@/lib/live";

/** A short table of runs (a deployment's or a flow's latest), with the deployment column when asked. */
export function RecentRuns({ runs, showDeployment = false }: { runs: RunSummary[]; showDeployment?: boolean }) {
  useNow(1_000);
  return (
    <div className="table-scroll">
      <table className="table">
        <thead>
          <tr>
            <th>Run</th>
            <th>State</th>
            {showDeployment ? <th>Deployment</th> : null}
            <th>Created</th>
            <th className="num">Duration</th>
          </tr>
        </thead>
        <tbody>
          {runs.map((r) => (
            <tr key={r.id} data-run-id={r.id} data-state={r.stateType}>
              <td>
                <Link className="cell-title" href={`/runs/${r.id}`}>
                  {r.name}
                </Link>
              </td>
              <td>
                <StateBadge type={r.stateType} name={r.stateName} />
              </td>
              {showDeployment ? (
                <td>
                  {r.deployment ? (
                    <Link href={`/deployments/${encodeURIComponent(r.deployment.name)}`}>{r.deployment.name}</Link>
                  ) : (
                    <span className="muted">{r.parentFlowRunId ? "child run" : "—"}</span>
                  )}
                </td>
              ) : null}
              <td className="nowrap" title={formatTime(r.createdAt)}>
                {formatAgo(r.createdAt)}
              </td>
              <td className="num nowrap">{r.startTime ? formatDuration(r.startTime, r.endTime) : "—"}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
