"use client";

import { useState } from "react";
import { StateBar } from "@/components/state-badge";
import { LoadState } from "@/components/status";
import { errorText, type FerryApi } from "@/lib/api";
import { formatAgo, formatTime } from "@/lib/format";
import type { Loaded } from "@/lib/live";
import { useSession } from "@/lib/session";

type BackfillList = Awaited<ReturnType<FerryApi["backfills"]["list"]["query"]>>;

const FINISHED = ["COMPLETED", "FAILED", "CRASHED", "CANCELLED"];

/** A deployment's backfills with their progress; pause, resume and cancel with a write token. */
export function BackfillsCard({ backfills }: { backfills: Loaded<BackfillList> }) {
  const { api, can } = useSession();
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const list = backfills.data ?? [];
  if (backfills.data && !list.length) return null;
  const act = async (id: string, what: "pause" | "resume" | "cancel") => {
    setBusy(id);
    setError(null);
    try {
      await api.backfills[what].mutate({ id });
      backfills.reload();
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(null);
    }
  };
  return (
    <div className="card" data-testid="backfills">
      <div className="card-head">
        <h3>Backfills</h3>
      </div>
      {error ? (
        <p className="alert alert-error" role="alert" style={{ margin: 12 }}>
          {error}
        </p>
      ) : null}
      <LoadState loading={backfills.loading && !backfills.data} error={backfills.error} />
      {list.length ? (
        <table className="table">
          <thead>
            <tr>
              <th>Range</th>
              <th style={{ width: "34%" }}>Progress</th>
              <th>Status</th>
              <th>Started</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {list.map((b) => {
              const done = FINISHED.reduce((a, s) => a + (b.runs[s] ?? 0), 0) + b.skipped;
              return (
                <tr key={b.id} data-backfill={b.id} data-status={b.status}>
                  <td>
                    <div className="cell-title small">
                      {formatTime(String(b.rangeStart))} → {formatTime(String(b.rangeEnd))}
                    </div>
                    <div className="cell-sub">
                      {b.kind === "cron" ? `${b.cron} (${b.timezone})` : `every ${b.intervalSeconds} s`} · max {b.maxActive} at
                      once · reprocess {b.reprocess}
                      {b.backwards ? " · newest first" : ""}
                    </div>
                  </td>
                  <td>
                    <StateBar
                      counts={{ ...b.runs, ...(b.skipped ? { CANCELLED: (b.runs.CANCELLED ?? 0) + b.skipped } : {}) }}
                      total={b.total}
                    />
                    <div className="cell-sub num" style={{ textAlign: "left" }}>
                      {done.toLocaleString("en-US")} of {b.total.toLocaleString("en-US")} slots
                      {b.skipped ? ` (${b.skipped.toLocaleString("en-US")} skipped)` : ""}
                      {(b.runs.FAILED ?? 0) + (b.runs.CRASHED ?? 0)
                        ? ` · ${(b.runs.FAILED ?? 0) + (b.runs.CRASHED ?? 0)} failed`
                        : ""}
                    </div>
                  </td>
                  <td>
                    <span
                      className={`badge state-${b.status === "RUNNING" ? "running" : b.status === "COMPLETED" ? "completed" : b.status === "PAUSED" ? "paused" : "cancelled"}`}
                    >
                      <span className="dot" aria-hidden="true" />
                      {b.status.charAt(0) + b.status.slice(1).toLowerCase()}
                    </span>
                  </td>
                  <td className="nowrap small">{formatAgo(String(b.createdAt))}</td>
                  <td className="num nowrap">
                    {can("write") && (b.status === "RUNNING" || b.status === "PAUSED") ? (
                      <span className="row" style={{ justifyContent: "flex-end" }}>
                        <button
                          type="button"
                          className="button small"
                          disabled={busy === b.id}
                          onClick={() => void act(b.id, b.status === "RUNNING" ? "pause" : "resume")}
                        >
                          {b.status === "RUNNING" ? "Pause" : "Resume"}
                        </button>
                        <button
                          type="button"
                          className="button small danger"
                          disabled={busy === b.id}
                          onClick={() => void act(b.id, "cancel")}
                        >
                          Cancel
                        </button>
                      </span>
                    ) : null}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      ) : null}
    </div>
  );
}
