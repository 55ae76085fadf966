"use client";

import { useState } from "react";
import { LoadState } from "@/components/status";
import { errorText, type FerryApi } from "@/lib/api";
import { formatAgo } from "@/lib/format";
import type { Loaded } from "@/lib/live";
import { useSession } from "@/lib/session";

type TriggerList = Awaited<ReturnType<FerryApi["triggers"]["list"]["query"]>>;

/** What starts this deployment besides people and schedules: runs of other deployments, webhooks. */
export function TriggersCard({ triggers }: { triggers: Loaded<TriggerList> }) {
  const { api, apiUrl, can } = useSession();
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const list = triggers.data ?? [];
  if (triggers.data && !list.length) return null;
  const toggle = async (id: string, active: boolean) => {
    setBusy(id);
    setError(null);
    try {
      if (active) await api.triggers.pause.mutate({ id });
      else await api.triggers.resume.mutate({ id });
      triggers.reload();
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(null);
    }
  };
  return (
    <div className="card" data-testid="triggers">
      <div className="card-head">
        <h3>Triggers</h3>
      </div>
      {error ? (
        <p className="alert alert-error" role="alert" style={{ margin: 12 }}>
          {error}
        </p>
      ) : null}
      <LoadState loading={triggers.loading && !triggers.data} error={triggers.error} />
      {list.length ? (
        <table className="table">
          <thead>
            <tr>
              <th>Starts when</th>
              <th>Parameters</th>
              <th>Last fired</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {list.map((t) => (
              <tr key={t.id} className={t.active ? undefined : "dim"} data-trigger={t.id}>
                <td>
                  <div className="cell-title">{t.name}</div>
                  <div className="cell-sub mono">
                    {t.kind === "webhook"
                      ? `POST ${apiUrl}${t.path}`
                      : t.kind === "event"
                        ? `a flow publishes the event ${t.eventName}`
                        : `a run of ${t.source} is ${t.states.join(" or ")}`}
                  </div>
                </td>
                <td className="small mono">
                  {[
                    ...Object.entries(t.parameters).map(([k, v]) => `${k}=${JSON.stringify(v)}`),
                    ...Object.entries(t.mapping).map(([k, v]) => `${k}←${v}`),
                  ].join("  ") || <span className="muted">—</span>}
                </td>
                <td className="small nowrap">
                  {t.lastFiredAt ? formatAgo(String(t.lastFiredAt)) : <span className="muted">never</span>}
                </td>
                <td className="num nowrap">
                  {can("write") ? (
                    <button
                      type="button"
                      className="button small"
                      disabled={busy === t.id}
                      onClick={() => void toggle(t.id, t.active)}
                    >
                      {t.active ? "Pause" : "Resume"}
                    </button>
                  ) : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </div>
  );
}
