/** A state: coloured by its type, labelled with its display name (e.g. RUNNING shown as "Retrying"). */
export function StateBadge({ type, name }: { type: string; name?: string | null }) {
  return (
    <span className={`badge state-${type.toLowerCase()}`} title={type} data-state={type}>
      <span className="dot" aria-hidden="true" />
      {name || type}
    </span>
  );
}

export const STATE_ORDER = [
  "RUNNING",
  "PENDING",
  "SCHEDULED",
  "PAUSED",
  "CANCELLING",
  "COMPLETED",
  "FAILED",
  "CRASHED",
  "CANCELLED",
] as const;

export const STATE_LABEL: Record<string, string> = {
  SCHEDULED: "Scheduled",
  PENDING: "Pending",
  RUNNING: "Running",
  COMPLETED: "Completed",
  FAILED: "Failed",
  CRASHED: "Crashed",
  CANCELLING: "Cancelling",
  CANCELLED: "Cancelled",
  PAUSED: "Paused",
};

/** A thin bar split by state counts (groups of task runs, a run's task runs). */
export function StateBar({ counts, total }: { counts: Record<string, number>; total?: number }) {
  const sum = total ?? Object.values(counts).reduce((a, b) => a + b, 0);
  if (!sum) return <div className="state-bar" />;
  return (
    <div
      className="state-bar"
      role="img"
      aria-label={STATE_ORDER.filter((s) => counts[s])
        .map((s) => `${counts[s]} ${STATE_LABEL[s]}`)
        .join(", ")}
    >
      {STATE_ORDER.filter((s) => counts[s]).map((s) => (
        <span key={s} className={`seg state-${s.toLowerCase()}`} style={{ flexGrow: counts[s] ?? 0 }} />
      ))}
    </div>
  );
}
