"use client";

import { type FormEvent, useState } from "react";
import { Empty, LoadState } from "@/components/status";
import { errorText, type FerryApi } from "@/lib/api";
import { formatTime } from "@/lib/format";
import type { Loaded } from "@/lib/live";
import { useSession } from "@/lib/session";

type ScheduleList = Awaited<ReturnType<FerryApi["schedules"]["list"]["query"]>>;
type ScheduleRow = ScheduleList[number];

function describe(s: ScheduleRow): string {
  if (s.kind === "cron") return `${s.cron} (${s.timezone})`;
  const secs = s.intervalSeconds ?? 0;
  if (secs % 86_400 === 0) return `every ${secs / 86_400} d`;
  if (secs % 3600 === 0) return `every ${secs / 3600} h`;
  if (secs % 60 === 0) return `every ${secs / 60} min`;
  return `every ${secs} s`;
}

const CATCHUP: Record<string, string> = {
  ALL: "runs every missed slot",
  LATEST: "runs only the latest missed slot",
  SKIP: "skips missed slots",
};

/** A deployment's schedules: when they fire next, pause/resume/delete, and a form to add one. */
export function SchedulesCard({ deployment, schedules }: { deployment: string; schedules: Loaded<ScheduleList> }) {
  const { api, can } = useSession();
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [adding, setAdding] = useState(false);
  const act = async (id: string, what: "pause" | "resume" | "delete") => {
    setBusy(id);
    setError(null);
    try {
      if (what === "pause") await api.schedules.pause.mutate({ id });
      else if (what === "resume") await api.schedules.resume.mutate({ id });
      else await api.schedules.delete.mutate({ id });
      schedules.reload();
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(null);
    }
  };
  const list = schedules.data ?? [];
  return (
    <div className="card" data-testid="schedules">
      <div className="card-head">
        <h3>Schedules</h3>
        <span className="spacer" />
        {can("write") ? (
          <button type="button" className="button small" onClick={() => setAdding((a) => !a)}>
            {adding ? "Close" : "Add schedule"}
          </button>
        ) : null}
      </div>
      {error ? (
        <p className="alert alert-error" role="alert" style={{ margin: 12 }}>
          {error}
        </p>
      ) : null}
      {adding ? (
        <AddSchedule
          deployment={deployment}
          onDone={() => {
            setAdding(false);
            schedules.reload();
          }}
        />
      ) : null}
      <LoadState loading={schedules.loading && !schedules.data} error={schedules.error} />
      {schedules.data && !list.length ? (
        <Empty title="Runs only when started">
          Add a schedule here, with <code>ferry schedule add {deployment} --cron "0 2 * * *"</code>, or in the flow's options.
        </Empty>
      ) : null}
      {list.length ? (
        <table className="table">
          <thead>
            <tr>
              <th>When</th>
              <th>Next runs</th>
              <th>Missed slots</th>
              <th>Source</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {list.map((s) => (
              <tr key={s.id} className={s.active ? undefined : "dim"} data-schedule={s.id}>
                <td>
                  <div className="cell-title mono">{describe(s)}</div>
                  <div className="cell-sub">
                    {s.active ? "active" : "paused"}
                    {Object.keys(s.parameters).length ? ` · ${JSON.stringify(s.parameters)}` : ""}
                  </div>
                </td>
                <td className="small">
                  {s.active ? (
                    s.nextSlots.slice(0, 3).map((t) => <div key={t}>{formatTime(t)}</div>)
                  ) : (
                    <span className="muted">—</span>
                  )}
                </td>
                <td className="small muted">{CATCHUP[s.catchup] ?? s.catchup}</td>
                <td>
                  <span className="tag">{s.source}</span>
                </td>
                <td className="num nowrap">
                  {can("write") ? (
                    <span className="row" style={{ justifyContent: "flex-end" }}>
                      <button
                        type="button"
                        className="button small"
                        disabled={busy === s.id}
                        onClick={() => void act(s.id, s.active ? "pause" : "resume")}
                      >
                        {s.active ? "Pause" : "Resume"}
                      </button>
                      <button
                        type="button"
                        className="button small danger"
                        disabled={busy === s.id}
                        onClick={() => void act(s.id, "delete")}
                      >
                        Delete
                      </button>
                    </span>
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

function AddSchedule({ deployment, onDone }: { deployment: string; onDone(): void }) {
  const { api } = useSession();
  const [kind, setKind] = useState<"cron" | "interval">("cron");
  const [cron, setCron] = useState("0 * * * *");
  const [timezone, setTimezone] = useState(() => Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC");
  const [minutes, setMinutes] = useState("60");
  const [catchup, setCatchup] = useState<"ALL" | "LATEST" | "SKIP">("LATEST");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const every = Number(minutes);
      if (kind === "interval" && !(every > 0)) throw new Error("the interval must be a positive number of minutes");
      await api.schedules.create.mutate({
        deployment,
        schedule:
          kind === "cron"
            ? { cron, timezone, catchup, parameters: {}, graceSeconds: 60, active: true }
            : {
                intervalSeconds: Math.round(every * 60),
                timezone: "UTC",
                catchup,
                parameters: {},
                graceSeconds: 60,
                active: true,
              },
      });
      onDone();
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="form card-body" onSubmit={(e) => void submit(e)} style={{ borderBottom: "1px solid var(--border)" }}>
      <div className="row">
        <label className="checkbox">
          <input type="radio" name="kind" checked={kind === "cron"} onChange={() => setKind("cron")} /> Cron
        </label>
        <label className="checkbox">
          <input type="radio" name="kind" checked={kind === "interval"} onChange={() => setKind("interval")} /> Interval
        </label>
      </div>
      {kind === "cron" ? (
        <div className="row">
          <label className="field" style={{ flex: 1 }}>
            <span className="field-label">Cron expression</span>
            <input type="text" name="cron" className="mono" value={cron} onChange={(e) => setCron(e.target.value)} />
          </label>
          <label className="field" style={{ flex: 1 }}>
            <span className="field-label">Time zone</span>
            <input type="text" name="timezone" value={timezone} onChange={(e) => setTimezone(e.target.value)} />
          </label>
        </div>
      ) : (
        <label className="field">
          <span className="field-label">Every (minutes)</span>
          <input type="number" name="minutes" min={1} value={minutes} onChange={(e) => setMinutes(e.target.value)} />
        </label>
      )}
      <label className="field">
        <span className="field-label">After an outage</span>
        <select value={catchup} onChange={(e) => setCatchup(e.target.value as "ALL" | "LATEST" | "SKIP")}>
          <option value="LATEST">Run only the latest missed slot</option>
          <option value="ALL">Run every missed slot</option>
          <option value="SKIP">Skip missed slots</option>
        </select>
      </label>
      {error ? (
        <p className="alert alert-error" role="alert">
          {error}
        </p>
      ) : null}
      <div>
        <button type="submit" className="button primary" disabled={busy}>
          Add schedule
        </button>
      </div>
    </form>
  );
}
