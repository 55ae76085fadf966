import type { LiveStatus } from "@/lib/live";

/** What a page shows while its data loads or when the API answered with an error. */
export function LoadState({ loading, error }: { loading: boolean; error: string | undefined }) {
  if (error)
    return (
      <p className="alert alert-error" role="alert">
        Could not load: {error}
      </p>
    );
  if (loading) return <div className="skeleton" aria-busy="true" />;
  return null;
}

/** A small "Live" pill: the page follows the control plane's change stream. */
export function LivePill({ status }: { status: LiveStatus }) {
  const label = status === "live" ? "Live" : status === "connecting" ? "Connecting" : "Reconnecting";
  return (
    <span className={`live-pill ${status}`} data-live={status} title="Updates stream from the control plane">
      <span className="dot" aria-hidden="true" />
      {label}
    </span>
  );
}

export function Empty({ title, children }: { title: string; children?: React.ReactNode }) {
  return (
    <div className="empty">
      <h3>{title}</h3>
      {children ? <div className="muted">{children}</div> : null}
    </div>
  );
}
