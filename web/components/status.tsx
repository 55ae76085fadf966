/** What a page shows while its data loads or when the API answered with an error. */
export function LoadState({ loading, error }: { loading: boolean; error: string | undefined }) {
  if (error) return <p className="error">Could not load: {error}</p>;
  if (loading) return <p className="muted">Loading…</p>;
  return null;
}
