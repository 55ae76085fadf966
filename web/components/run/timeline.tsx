"use client";

import { useVirtualizer } from "@tanstack/react-virtual";
import { useCallback, useEffect, useRef, useState } from "react";
import type { TaskRunRow } from "@/lib/api";
import { formatMs } from "@/lib/format";
import { useSession } from "@/lib/session";

const PAGE = 200;
const ROW = 28;

/**
 * A Gantt chart of the run's task runs. Virtualised, and loaded a page of 200 at a time
 * around what is on screen, so a 10,000-task run costs what fits the window.
 */
export function Timeline({
  flowRunId,
  runStart,
  runEnd,
  version,
  onSelect,
}: {
  flowRunId: string;
  runStart: string | null;
  runEnd: string | null;
  /** Changes when task runs changed (live): loaded pages are read again. */
  version: number;
  onSelect(taskRunId: string): void;
}) {
  const { api } = useSession();
  const [total, setTotal] = useState<number | null>(null);
  const [pages, setPages] = useState<Map<number, TaskRunRow[]>>(new Map());
  const loading = useRef(new Set<number>());
  const stale = useRef(new Set<number>());
  const scrollRef = useRef<HTMLDivElement>(null);
  const virtual = useVirtualizer({
    count: total ?? 0,
    getScrollElement: () => scrollRef.current,
    estimateSize: () => ROW,
    overscan: 20,
  });
  const items = virtual.getVirtualItems();
  const first = items[0]?.index ?? 0;
  const last = items.at(-1)?.index ?? 0;

  const load = useCallback(
    async (page: number) => {
      if (loading.current.has(page)) return;
      loading.current.add(page);
      try {
        const res = await api.taskRuns.page.query({ flowRunId, offset: page * PAGE, limit: PAGE });
        setTotal(res.total);
        setPages((prev) => new Map(prev).set(page, res.items));
        stale.current.delete(page);
      } finally {
        loading.current.delete(page);
      }
    },
    [api, flowRunId],
  );

  // Live: everything loaded is stale; what is on screen is read again now, the rest when scrolled to.
  // biome-ignore lint/correctness/useExhaustiveDependencies: version is the trigger
  useEffect(() => {
    setPages((prev) => {
      for (const p of prev.keys()) stale.current.add(p);
      return prev;
    });
    void load(Math.floor(first / PAGE));
    if (Math.floor(last / PAGE) !== Math.floor(first / PAGE)) void load(Math.floor(last / PAGE));
  }, [version, load]);

  useEffect(() => {
    if (total === null) return;
    for (const p of new Set([Math.floor(first / PAGE), Math.floor(last / PAGE)])) {
      if (!pages.has(p) || stale.current.has(p)) void load(p);
    }
  }, [first, last, pages, total, load]);

  const start = runStart ? new Date(runStart).getTime() : null;
  const end = runEnd ? new Date(runEnd).getTime() : Date.now();
  const span = start ? Math.max(1, end - start) : 1;

  if (total === 0) return <div className="empty muted">No task runs yet.</div>;
  return (
    <div className="timeline" ref={scrollRef} data-testid="timeline" data-total={total ?? ""}>
      <div style={{ height: virtual.getTotalSize(), position: "relative" }}>
        {items.map((item) => {
          const row = pages.get(Math.floor(item.index / PAGE))?.[item.index % PAGE];
          if (!row) {
            return (
              <div key={item.key} className="tl-row muted" style={{ top: item.start }}>
                …
              </div>
            );
          }
          const s = row.startTime ? new Date(row.startTime).getTime() : null;
          const e = row.endTime ? new Date(row.endTime).getTime() : s !== null ? Date.now() : null;
          const left = start !== null && s !== null ? ((s - start) / span) * 100 : 0;
          const width = s !== null && e !== null ? Math.max(0.2, ((e - s) / span) * 100) : 0;
          return (
            <button key={item.key} type="button" className="tl-row" style={{ top: item.start }} onClick={() => onSelect(row.id)}>
              <span className="tl-name" title={row.name}>
                {row.name}
              </span>
              <span className="tl-track">
                {s !== null ? (
                  <span
                    className={`tl-bar state-${row.stateType.toLowerCase()}`}
                    style={{ left: `${Math.min(99.8, left)}%`, width: `${Math.min(100 - left, width)}%` }}
                    title={`${row.stateName}`}
                  />
                ) : (
                  <span className="muted small">{row.stateName}</span>
                )}
              </span>
              <span className="num muted small">{s !== null && e !== null ? formatMs(e - s) : ""}</span>
            </button>
          );
        })}
      </div>
    </div>
  );
}
