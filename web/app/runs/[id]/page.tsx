"use client";

import Link from "next/link";
import { useParams } from "next/navigation";
import { useCallback, useState } from "react";
import { Dag } from "@/components/run/dag";
import { Logs } from "@/components/run/logs";
import { TaskDrawer } from "@/components/run/task-drawer";
import { Timeline } from "@/components/run/timeline";
import { StateBadge, StateBar } from "@/components/state-badge";
import { LivePill, LoadState } from "@/components/status";
import { errorText, type GraphNode } from "@/lib/api";
import { formatDuration, formatTime, isTerminalState } from "@/lib/format";
import { type RunPart, useLiveRun, useLoad, useNow } from "@/lib/live";
import { useSession } from "@/lib/session";

type Tab = "logs" | "timeline" | "states" | "parameters";

export default function RunPage() {
  const { id } = useParams<{ id: string }>();
  const { api, can } = useSession();
  const run = useLoad(`run:${id}`, (a) => a.runs.get.query({ id }));
  const [expanded, setExpanded] = useState<Set<string>>(new Set());
  const expandKey = [...expanded].sort().join(",");
  const graph = useLoad(`graph:${id}:${expandKey}`, (a) => a.runs.graph.query({ id, expand: [...expanded] }));
  const [tasksVersion, setTasksVersion] = useState(0);
  const [logsVersion, setLogsVersion] = useState(0);
  const [tab, setTab] = useState<Tab>("logs");
  const [selected, setSelected] = useState<string | null>(null);
  const [action, setAction] = useState<{ busy: boolean; error: string | null }>({ busy: false, error: null });

  const live = useLiveRun(id, (parts: RunPart[]) => {
    if (parts.includes("state") || parts.includes("tasks")) run.reload();
    if (parts.includes("tasks") || parts.includes("state")) {
      graph.reload();
      setTasksVersion((v) => v + 1);
    }
    if (parts.includes("logs")) setLogsVersion((v) => v + 1);
  });
  useNow(1_000);

  const toggleGroup = useCallback((key: string) => {
    setExpanded((prev) => {
      const next = new Set(prev);
      if (next.has(key)) next.delete(key);
      else next.add(key);
      return next;
    });
  }, []);
  const onSelectNode = useCallback(
    (node: GraphNode) => {
      if (node.kind === "group") toggleGroup(node.taskKey);
      else setSelected(node.id);
    },
    [toggleGroup],
  );

  const r = run.data;
  const act = async (what: "cancel" | "retry") => {
    setAction({ busy: true, error: null });
    try {
      if (what === "cancel") await api.runs.cancel.mutate({ id });
      else await api.runs.retry.mutate({ id });
      setAction({ busy: false, error: null });
      run.reload();
    } catch (err) {
      setAction({ busy: false, error: errorText(err) });
    }
  };
  if (!r) return <LoadState loading={run.loading} error={run.error} />;

  const terminal = isTerminalState(r.stateType);
  const cancellable = !terminal && r.stateType !== "CANCELLING";
  const retryable = ["FAILED", "CRASHED", "CANCELLED"].includes(r.stateType) && !r.parentFlowRunId;
  const taskTotal = Object.values(r.taskRunCounts).reduce((a, b) => a + b, 0);
  const params = Object.entries(r.parameters);
  const lastMessage = r.stateMessage && !["COMPLETED", "RUNNING", "PENDING"].includes(r.stateType) ? r.stateMessage : null;

  return (
    <section className="stack" data-testid="run-page" data-run-state={r.stateType}>
      <div>
        <div className="crumbs">
          <Link href="/runs">Runs</Link>
          {r.deployment ? (
            <>
              {" / "}
              <Link href={`/deployments/${encodeURIComponent(r.deployment.name)}`}>{r.deployment.name}</Link>
            </>
          ) : null}
          {r.parentFlowRunId ? (
            <>
              {" / "}
              <Link href={`/runs/${r.parentFlowRunId}`}>parent run</Link>
            </>
          ) : null}
        </div>
        <div className="page-head" style={{ marginBottom: 0 }}>
          <h1 className="mono" style={{ fontSize: 20 }}>
            {r.name}
          </h1>
          <span data-testid="run-state">
            <StateBadge type={r.stateType} name={r.stateName} />
          </span>
          <LivePill status={live} />
          <span className="spacer" />
          {can("write") && cancellable ? (
            <button type="button" className="button danger" disabled={action.busy} onClick={() => void act("cancel")}>
              Cancel run
            </button>
          ) : null}
          {can("write") && retryable ? (
            <button type="button" className="button" disabled={action.busy} onClick={() => void act("retry")}>
              Retry
            </button>
          ) : null}
        </div>
      </div>
      {action.error ? (
        <p className="alert alert-error" role="alert">
          {action.error}
        </p>
      ) : null}

      <div className="card">
        <div className="facts">
          <Fact label="Flow" value={r.flow.name} />
          <Fact label="Duration" value={formatDuration(r.startTime, r.endTime)} />
          <Fact label="Started" value={formatTime(r.startTime)} />
          <Fact label="Attempt" value={`${r.attempt}${r.maxRetries ? ` (retries ${r.retryCount}/${r.maxRetries})` : ""}`} />
          <Fact label="Agent" value={r.agentName ?? "—"} />
          <Fact label="Work pool" value={r.workPool} />
          {r.scheduledFor ? (
            <Fact
              label={r.backfillId ? "Backfill slot" : "Scheduled for"}
              value={
                <span title={`data interval ${formatTime(r.dataIntervalStart)} → ${formatTime(r.dataIntervalEnd)}`}>
                  {formatTime(r.scheduledFor)}
                </span>
              }
            />
          ) : null}
          {params.length ? (
            <Fact
              label="Parameters"
              value={
                <button type="button" className="link-button mono small params-summary" onClick={() => setTab("parameters")}>
                  {summarise(r.parameters)}
                </button>
              }
            />
          ) : null}
          <Fact
            label="Task runs"
            value={
              <span className="row" style={{ gap: 8 }}>
                <span className="num">{taskTotal.toLocaleString("en-US")}</span>
                <span style={{ width: 120 }}>
                  <StateBar counts={r.taskRunCounts} />
                </span>
              </span>
            }
          />
          {r.tags.length ? (
            <Fact
              label="Tags"
              value={r.tags.map((t) => (
                <span key={t} className="tag">
                  {t}
                </span>
              ))}
            />
          ) : null}
        </div>
        {lastMessage ? (
          <div style={{ padding: "0 16px 14px" }}>
            <pre className={r.stateType === "FAILED" || r.stateType === "CRASHED" ? "alert-error" : ""} data-testid="run-message">
              {lastMessage}
            </pre>
          </div>
        ) : null}
      </div>

      <div className="card" style={{ overflow: "hidden" }}>
        <div className="card-head">
          <h2>Graph</h2>
          <span className="muted small">
            {graph.data
              ? `${graph.data.total.toLocaleString("en-US")} task runs · ${graph.data.nodes.length} nodes${
                  graph.data.attempt && graph.data.attempt > 1 ? ` · attempt ${graph.data.attempt}` : ""
                }`
              : ""}
          </span>
          <span className="spacer" />
          {expanded.size ? (
            <button type="button" className="button small" onClick={() => setExpanded(new Set())}>
              Collapse all
            </button>
          ) : null}
        </div>
        {graph.data?.nodes.length ? (
          <Dag graph={graph.data} selected={selected} expanded={expanded} onSelect={onSelectNode} onToggleGroup={toggleGroup} />
        ) : graph.data ? (
          <div className="empty muted">
            {terminal ? "This run created no task runs." : "Task runs appear here as the flow calls them."}
          </div>
        ) : (
          <LoadState loading={graph.loading} error={graph.error} />
        )}
      </div>

      <div className="card" style={{ overflow: "hidden" }}>
        <div className="tabs" role="tablist">
          {(
            [
              ["logs", "Logs"],
              ["timeline", "Timeline"],
              ["states", "State history"],
              ["parameters", "Parameters"],
            ] as const
          ).map(([key, label]) => (
            <button key={key} type="button" role="tab" className="tab" aria-selected={tab === key} onClick={() => setTab(key)}>
              {label}
            </button>
          ))}
        </div>
        {tab === "logs" ? <Logs flowRunId={id} version={logsVersion} /> : null}
        {tab === "timeline" ? (
          <Timeline flowRunId={id} runStart={r.startTime} runEnd={r.endTime} version={tasksVersion} onSelect={setSelected} />
        ) : null}
        {tab === "states" ? (
          <div className="card-body">
            <ul className="history">
              {r.states.map((s) => (
                <li key={s.id}>
                  <span className="muted small">{new Date(s.timestamp).toLocaleTimeString(undefined, { hour12: false })}</span>
                  <span>
                    <StateBadge type={s.type} name={s.name} /> <span className="muted small">attempt {s.attempt}</span>
                    {s.message ? <div className="msg">{s.message}</div> : null}
                  </span>
                </li>
              ))}
            </ul>
          </div>
        ) : null}
        {tab === "parameters" ? (
          <div className="card-body">
            {params.length ? <pre>{JSON.stringify(r.parameters, null, 2)}</pre> : <p className="muted">No parameters.</p>}
          </div>
        ) : null}
      </div>

      {selected ? (
        <TaskDrawer
          taskRunId={selected}
          flowRunId={id}
          version={tasksVersion}
          onClose={() => setSelected(null)}
          onSelect={setSelected}
        />
      ) : null}
    </section>
  );
}

function Fact({ label, value }: { label: string; value: React.ReactNode }) {
  return (
    <div className="fact">
      <span className="fact-label">{label}</span>
      <span className="fact-value">{value}</span>
    </div>
  );
}

/** Parameters on one line, cut to fit the header (the Parameters tab shows them whole). */
function summarise(params: Record<string, unknown>): string {
  const text = Object.entries(params)
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join("  ");
  return text.length > 80 ? `${text.slice(0, 79)}…` : text;
}
