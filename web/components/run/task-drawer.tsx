"use client";

import Link from "next/link";
import { useEffect } from "react";
import { StateBadge } from "@/components/state-badge";
import { LoadState } from "@/components/status";
import { formatDuration, formatTime } from "@/lib/format";
import { useLoad } from "@/lib/live";
import { Logs } from "./logs";

/** One task run: state, timing, errors with their stack, where its inputs came from, its logs. */
export function TaskDrawer({
  taskRunId,
  flowRunId,
  version,
  onClose,
  onSelect,
}: {
  taskRunId: string;
  flowRunId: string;
  version: number;
  onClose(): void;
  onSelect(taskRunId: string): void;
}) {
  const task = useLoad(`task:${taskRunId}`, (api) => api.taskRuns.get.query({ id: taskRunId }));
  // biome-ignore lint/correctness/useExhaustiveDependencies: version is the trigger
  useEffect(() => task.reload(), [version]);
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => e.key === "Escape" && onClose();
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [onClose]);
  const t = task.data;
  const failures = t?.states.filter((s) => (s.type === "FAILED" || s.name === "AwaitingRetry") && s.message) ?? [];
  const levels = new Map<number, NonNullable<typeof t>["upstream"]>();
  for (const u of t?.upstream ?? []) levels.set(u.depth, [...(levels.get(u.depth) ?? []), u]);

  return (
    <>
      <div className="drawer-backdrop" onClick={onClose} aria-hidden="true" />
      <aside className="drawer" aria-label="Task run" data-testid="task-drawer">
        <div className="drawer-head">
          <div>
            <div className="muted small">Task run</div>
            <h2>{t?.name ?? "…"}</h2>
          </div>
          <span className="spacer" />
          {t ? <StateBadge type={t.stateType} name={t.stateName} /> : null}
          <button type="button" className="button small" onClick={onClose} aria-label="Close">
            ✕
          </button>
        </div>
        <div className="drawer-body">
          <LoadState loading={task.loading && !t} error={task.error} />
          {t ? (
            <>
              <dl className="kv">
                <dt>Task</dt>
                <dd className="mono">
                  {t.taskKey} #{t.dynamicKey}
                </dd>
                <dt>Started</dt>
                <dd>{formatTime(t.startTime)}</dd>
                <dt>Duration</dt>
                <dd>{formatDuration(t.startTime, t.endTime)}</dd>
                <dt>Attempt</dt>
                <dd>
                  {t.attempt} of {t.maxRetries + 1}
                </dd>
                {t.tags.length ? (
                  <>
                    <dt>Tags</dt>
                    <dd>
                      {t.tags.map((x) => (
                        <span key={x} className="tag">
                          {x}
                        </span>
                      ))}
                    </dd>
                  </>
                ) : null}
                {t.cacheKey ? (
                  <>
                    <dt>Result</dt>
                    <dd className="mono small">{t.resultRef ?? "—"}</dd>
                  </>
                ) : null}
                {t.childFlowRunId ? (
                  <>
                    <dt>Child run</dt>
                    <dd>
                      <Link href={`/runs/${t.childFlowRunId}`}>open the child flow run ↗</Link>
                    </dd>
                  </>
                ) : null}
              </dl>

              {failures.length ? (
                <section>
                  <div className="section-title">{failures.length > 1 ? `Errors (${failures.length} attempts)` : "Error"}</div>
                  <div className="stack" style={{ gap: 8 }}>
                    {failures.map((s) => (
                      <div key={s.id}>
                        <div className="small muted">
                          attempt {s.attempt} · {s.name} · {formatTime(s.timestamp)}
                        </div>
                        <pre className="alert-error" data-testid="task-error">
                          {s.message}
                        </pre>
                      </div>
                    ))}
                  </div>
                </section>
              ) : null}

              <section>
                <div className="section-title">Inputs came from</div>
                {t.upstream.length ? (
                  <ul className="lineage" data-testid="lineage">
                    {[...levels.entries()].map(([depth, ups]) =>
                      ups.map((u) => (
                        <li key={`${depth}-${u.task.id}`} style={{ paddingLeft: (depth - 1) * 18 }}>
                          <span className="muted">{depth === 1 ? "←" : "↖"}</span>
                          <button type="button" className="link-button" onClick={() => onSelect(u.task.id)}>
                            {u.task.name}
                          </button>
                          <StateBadge type={u.task.stateType} name={u.task.stateName} />
                        </li>
                      )),
                    )}
                  </ul>
                ) : (
                  <p className="muted small">No task results were passed in (parameters or constants only).</p>
                )}
              </section>
              {t.downstream.length ? (
                <section>
                  <div className="section-title">Its result went to</div>
                  <ul className="lineage">
                    {t.downstream.map((d) => (
                      <li key={d.id}>
                        <span className="muted">→</span>
                        <button type="button" className="link-button" onClick={() => onSelect(d.id)}>
                          {d.name}
                        </button>
                        <StateBadge type={d.stateType} name={d.stateName} />
                      </li>
                    ))}
                  </ul>
                </section>
              ) : null}

              <section>
                <div className="section-title">State history</div>
                <ul className="history">
                  {t.states.map((s) => (
                    <li key={s.id}>
                      <span className="muted small">
                        {new Date(s.timestamp).toLocaleTimeString(undefined, { hour12: false })}
                      </span>
                      <span>
                        <StateBadge type={s.type} name={s.name} />
                        {s.message && s.type !== "FAILED" ? <div className="msg">{s.message.split("\n")[0]}</div> : null}
                      </span>
                    </li>
                  ))}
                </ul>
              </section>

              <section className="card" style={{ overflow: "hidden" }}>
                <Logs flowRunId={flowRunId} taskRunId={taskRunId} version={version} />
              </section>
            </>
          ) : null}
        </div>
      </aside>
    </>
  );
}
