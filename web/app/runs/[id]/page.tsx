"use client";

import Link from "next/link";
import { useParams } from "next/navigation";
import { useEffect, useRef, useState } from "react";
import { StateBadge } from "@/components/state-badge";
import { LoadState } from "@/components/status";
import { errorText, isAuthError, type LogRow, type TaskRun } from "@/lib/api";
import { formatDuration, formatTime, isTerminalState } from "@/lib/format";
import { useSession } from "@/lib/session";
import { usePolled } from "@/lib/use-polled";

const LIVE_MS = 2_000;
const LOG_PAGE = 1_000;
/** Lines kept on the page; the real app will page through older ones. */
const MAX_LOG_LINES = 5_000;

export default function RunPage() {
  const { id } = useParams<{ id: string }>();
  const [live, setLive] = useState(true);
  const detail = usePolled(
    `run:${id}`,
    async (api) => {
      const [run, taskRuns, edges] = await Promise.all([
        api.runs.get.query({ id }),
        api.taskRuns.list.query({ flowRunId: id, limit: 1_000 }),
        api.taskRuns.edges.query({ flowRunId: id }),
      ]);
      return { run, taskRuns, edges };
    },
    live ? LIVE_MS : null,
  );
  const run = detail.data?.run;
  // Poll while the run can still change; one last load happens when polling stops.
  const finished = run ? isTerminalState(run.stateType) : false;
  useEffect(() => setLive(!finished), [finished]);
  const logs = useRunLogs(id, live);

  return (
    <section>
      <p className="small">
        <Link href="/">← Flow runs</Link>
      </p>
      <LoadState loading={detail.loading} error={detail.error} />
      {run ? (
        <>
          <div className="page-head">
            <h1>{run.name}</h1>
            <StateBadge type={run.stateType} name={run.stateName} />
          </div>
          {run.stateMessage ? <p className="state-message">{run.stateMessage}</p> : null}
          <dl className="facts">
            <dt>Flow</dt>
            <dd>{run.flow.name}</dd>
            <dt>Deployment</dt>
            <dd>{run.deployment?.name ?? "—"}</dd>
            <dt>Attempt</dt>
            <dd>
              {run.attempt} of {run.maxRetries + 1}
            </dd>
            <dt>Agent</dt>
            <dd>{run.agentName ?? "—"}</dd>
            <dt>Work pool</dt>
            <dd>{run.workPool}</dd>
            {run.parentFlowRunId ? (
              <>
                <dt>Parent run</dt>
                <dd>
                  <Link href={`/runs/${run.parentFlowRunId}`}>{run.parentFlowRunId}</Link>
                </dd>
              </>
            ) : null}
            <dt>Created</dt>
            <dd>{formatTime(run.createdAt)}</dd>
            <dt>Started</dt>
            <dd>{formatTime(run.startTime)}</dd>
            <dt>Ended</dt>
            <dd>{formatTime(run.endTime)}</dd>
            <dt>Duration</dt>
            <dd>{formatDuration(run.startTime, run.endTime)}</dd>
          </dl>
          <details>
            <summary>Parameters</summary>
            <pre>{JSON.stringify(run.parameters, null, 2)}</pre>
          </details>
          <details>
            <summary>State history ({run.states.length})</summary>
            <ul className="history">
              {run.states.map((s) => (
                <li key={s.id}>
                  <span className="muted">{formatTime(s.timestamp)}</span> <StateBadge type={s.type} name={s.name} />{" "}
                  <span className="muted small">attempt {s.attempt}</span> {s.message}
                </li>
              ))}
            </ul>
          </details>

          <h2>
            Task runs <span className="muted small">{detail.data?.taskRuns.items.length ?? 0} task runs</span>{" "}
            <span className="muted small">· {detail.data?.edges.length ?? 0} edges</span>
          </h2>
          <TaskRunCounts counts={run.taskRunCounts} />
          <TaskRunTable items={detail.data?.taskRuns.items ?? []} />
          {detail.data?.taskRuns.nextCursor ? <p className="muted small">Showing the first 1000 task runs.</p> : null}
        </>
      ) : null}

      <h2>Logs</h2>
      {logs.error ? <p className="error">Could not load logs: {logs.error}</p> : null}
      <LogView lines={logs.lines} />
    </section>
  );
}

function TaskRunCounts({ counts }: { counts: Record<string, number> }) {
  const entries = Object.entries(counts).sort(([a], [b]) => a.localeCompare(b));
  if (!entries.length) return null;
  return (
    <p className="counts">
      {entries.map(([type, n]) => (
        <span key={type}>
          <StateBadge type={type} /> {n}
        </span>
      ))}
    </p>
  );
}

function TaskRunTable({ items }: { items: TaskRun[] }) {
  if (!items.length) return <p className="muted">No task runs yet.</p>;
  return (
    <table>
      <thead>
        <tr>
          <th>Task run</th>
          <th>State</th>
          <th>Attempt</th>
          <th>Started</th>
          <th>Duration</th>
        </tr>
      </thead>
      <tbody>
        {items.map((t) => (
          <tr key={t.id}>
            <td>
              {t.childFlowRunId ? <Link href={`/runs/${t.childFlowRunId}`}>{t.name}</Link> : t.name}
              {t.stateMessage ? <div className="muted small clip">{t.stateMessage}</div> : null}
            </td>
            <td>
              <StateBadge type={t.stateType} name={t.stateName} />
            </td>
            <td className="num">{t.attempt}</td>
            <td>{formatTime(t.startTime)}</td>
            <td>{formatDuration(t.startTime, t.endTime)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function LogView({ lines }: { lines: LogRow[] }) {
  if (!lines.length) return <p className="muted">No log lines yet.</p>;
  return (
    <div className="logs" role="log">
      {lines.map((l) => (
        <div key={l.id} className={`log-line level-${l.level}`}>
          <span className="log-time">{formatTime(l.timestamp)}</span>
          <span className="log-level">{l.level}</span>
          <span className="log-message">{l.message}</span>
        </div>
      ))}
    </div>
  );
}

/** The run's log lines (and its child runs'), fetched incrementally after the last id seen. */
function useRunLogs(flowRunId: string, live: boolean): { lines: LogRow[]; error: string | undefined } {
  const { api, signOut } = useSession();
  const cursor = useRef<{ flowRunId: string; afterId: number | undefined; lines: LogRow[] }>({
    flowRunId,
    afterId: undefined,
    lines: [],
  });
  const [state, setState] = useState<{ flowRunId: string; lines: LogRow[]; error: string | undefined }>({
    flowRunId,
    lines: [],
    error: undefined,
  });

  useEffect(() => {
    if (!api) return;
    if (cursor.current.flowRunId !== flowRunId) cursor.current = { flowRunId, afterId: undefined, lines: [] };
    const c = cursor.current;
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const tick = async () => {
      try {
        for (;;) {
          const page = await api.logs.list.query({ flowRunId, afterId: c.afterId, limit: LOG_PAGE });
          if (stopped) return;
          if (page.items.length) {
            c.lines = [...c.lines, ...page.items].slice(-MAX_LOG_LINES);
            c.afterId = page.lastId ?? c.afterId;
          }
          setState({ flowRunId, lines: c.lines, error: undefined });
          if (page.items.length < LOG_PAGE) break;
        }
      } catch (err) {
        if (stopped) return;
        if (isAuthError(err)) {
          signOut();
          return;
        }
        setState({ flowRunId, lines: c.lines, error: errorText(err) });
      }
      if (!stopped && live) timer = setTimeout(() => void tick(), LIVE_MS);
    };
    void tick();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [api, flowRunId, live, signOut]);

  return state.flowRunId === flowRunId ? { lines: state.lines, error: state.error } : { lines: [], error: undefined };
}
