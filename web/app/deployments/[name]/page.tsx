"use client";

import { TRPCClientError } from "@trpc/client";
import Link from "next/link";
import { useParams, useRouter } from "next/navigation";
import { type ReactNode, useMemo, useState } from "react";
import { BackfillsCard } from "@/components/backfills-card";
import { ParamForm } from "@/components/param-form";
import { RecentRuns } from "@/components/recent-runs";
import { SchedulesCard } from "@/components/schedules-card";
import { Empty, LivePill, LoadState } from "@/components/status";
import { TriggersCard } from "@/components/triggers-card";
import { errorText, isAuthError } from "@/lib/api";
import { formatAgo, formatMs, formatTime, routeSegment } from "@/lib/format";
import { useLiveWorkspace, useLoad } from "@/lib/live";
import { useSession } from "@/lib/session";

interface RunError {
  message: string;
  issues: string[];
}

function runError(err: unknown): RunError {
  const message = errorText(err);
  const data = err instanceof TRPCClientError ? (err.data as { issues?: unknown } | undefined) : undefined;
  const issues = Array.isArray(data?.issues) ? data.issues.filter((i): i is string => typeof i === "string") : [];
  // The message repeats the issues one per line after its first line.
  return { message: issues.length ? (message.split("\n")[0] ?? message) : message, issues };
}

function Fact({ label, children }: { label: string; children: ReactNode }) {
  return (
    <div className="fact">
      <span className="fact-label">{label}</span>
      <span className="fact-value">{children}</span>
    </div>
  );
}

export default function DeploymentPage() {
  const params = useParams<{ name: string }>();
  const name = routeSegment(params.name);
  const router = useRouter();
  const { api, can, expired } = useSession();

  const deployment = useLoad(`deployment:${name}`, (a) => a.deployments.get.query({ name }));
  const runs = useLoad(`deployment-runs:${name}`, (a) => a.runs.list.query({ deployment: name, limit: 10 }));
  const schedules = useLoad(`deployment-schedules:${name}`, (a) => a.schedules.list.query({ deployment: name }));
  const triggers = useLoad(`deployment-triggers:${name}`, (a) => a.triggers.list.query({ deployment: name }));
  const backfills = useLoad(`deployment-backfills:${name}`, (a) => a.backfills.list.query({ deployment: name, limit: 20 }));
  const live = useLiveWorkspace(["runs", "deployments"], (kinds) => {
    if (kinds.includes("deployments")) {
      deployment.reload();
      schedules.reload();
      triggers.reload();
    }
    if (kinds.includes("runs")) {
      runs.reload();
      backfills.reload();
      triggers.reload();
    }
  });

  const [starting, setStarting] = useState(false);
  const [failure, setFailure] = useState<RunError | null>(null);

  const d = deployment.data;
  // A redeploy with other parameters starts the form afresh; a reload of the same keeps what was typed.
  const formKey = d ? JSON.stringify([d.paramsSchema, d.defaultParams]) : "";
  const schema = useMemo(
    () => (formKey ? (JSON.parse(formKey) as [Record<string, unknown>, Record<string, unknown>]) : null),
    [formKey],
  );

  const start = async (parameters: Record<string, unknown>) => {
    setStarting(true);
    setFailure(null);
    try {
      const run = await api.runs.create.mutate({ deployment: name, parameters });
      router.push(`/runs/${run.id}`);
    } catch (err) {
      if (isAuthError(err)) expired();
      else setFailure(runError(err));
      setStarting(false);
    }
  };

  const runsHref = `/runs?deployment=${encodeURIComponent(name)}`;
  const items = runs.data?.items ?? [];

  return (
    <section>
      <div className="page-head">
        <div>
          <div className="crumbs">
            <Link href="/deployments">Deployments</Link> / {name}
          </div>
          <h1>{name}</h1>
          <div className="page-sub">{d ? (d.description ?? `Deployment of the flow ${d.flowName}`) : " "}</div>
        </div>
        <span className="spacer" />
        <Link className="button" href={runsHref}>
          All runs
        </Link>
        <LivePill status={live} />
      </div>

      <LoadState loading={deployment.loading && !d} error={deployment.error} />

      {d ? (
        <div className="stack">
          <div className="card facts">
            <Fact label="Flow">
              <Link href={`/flows/${encodeURIComponent(d.flowName)}`}>{d.flowName}</Link>
            </Fact>
            <Fact label="Entrypoint">
              <code>{d.entrypoint}</code>
            </Fact>
            <Fact label="Work pool">
              <span className="tag">{d.workPool}</span>
            </Fact>
            <Fact label="Tags">
              {d.tags.length
                ? d.tags.map((t) => (
                    <span key={t} className="tag">
                      {t}
                    </span>
                  ))
                : "—"}
            </Fact>
            <Fact label="Retries">
              {d.retries}
              {d.retries > 0 && d.retryDelayMs > 0 ? <span className="muted"> · {formatMs(d.retryDelayMs)} apart</span> : null}
            </Fact>
            <Fact label="Timeout">{d.timeoutMs ? formatMs(d.timeoutMs) : "none"}</Fact>
            <Fact label="Concurrency limit">{d.concurrencyLimit ?? "none"}</Fact>
            <Fact label="Collision strategy">
              <span className="mono">{d.collisionStrategy}</span>
            </Fact>
            <Fact label="Updated">
              <span title={formatTime(d.updatedAt)}>{formatAgo(d.updatedAt)}</span>
            </Fact>
          </div>

          <SchedulesCard deployment={name} schedules={schedules} />
          <BackfillsCard backfills={backfills} />
          <TriggersCard triggers={triggers} />

          <div className="grid grid-2">
            <div className="card">
              <div className="card-head">
                <h3>Run this deployment</h3>
              </div>
              <div className="card-body stack">
                {can("write") && schema ? (
                  <ParamForm key={formKey} schema={schema[0]} defaults={schema[1]} busy={starting} onSubmit={start} />
                ) : (
                  <p className="muted">
                    Starting runs needs a token with the <strong>write</strong> scope; this one can only read.
                  </p>
                )}
                {failure ? (
                  <div className="alert alert-error" role="alert">
                    <div>{failure.message}</div>
                    {failure.issues.length ? (
                      <ul className="param-issues">
                        {failure.issues.map((i) => (
                          <li key={i}>{i}</li>
                        ))}
                      </ul>
                    ) : null}
                  </div>
                ) : null}
              </div>
            </div>

            <div className="card">
              <div className="card-head">
                <h3>Recent runs</h3>
                <span className="spacer" />
                <Link className="small" href={runsHref}>
                  All runs →
                </Link>
              </div>
              {runs.error || (runs.loading && !runs.data) ? (
                <div className="card-body">
                  <LoadState loading={runs.loading} error={runs.error} />
                </div>
              ) : null}
              {runs.data && items.length === 0 ? (
                <Empty title="No runs yet">
                  Start one here or with <code>ferry run {name}</code>.
                </Empty>
              ) : null}
              {items.length ? <RecentRuns runs={items} /> : null}
            </div>
          </div>
        </div>
      ) : null}
    </section>
  );
}
