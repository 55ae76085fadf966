/** A run's state: coloured by its type, labelled with its display name (e.g. RUNNING shown as "Retrying"). */
export function StateBadge({ type, name }: { type: string; name?: string | null }) {
  return (
    <span className={`badge state-${type.toLowerCase()}`} title={type}>
      {name || type}
    </span>
  );
}
