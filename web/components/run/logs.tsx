"use client";

import { useVirtualizer } from "@tanstack/react-virtual";
import { useCallback, useEffect, useLayoutEffect, useRef, useState } from "react";
import type { LogRow } from "@/lib/api";
import { errorText } from "@/lib/api";
import { useSession } from "@/lib/session";

const LEVELS = ["debug", "info", "warn", "error"] as const;
type Level = (typeof LEVELS)[number];
const LEVEL_LABEL: Record<Level, string> = { debug: "DEBUG", info: "INFO", warn: "WARNING", error: "ERROR" };
const FIRST_PAGE = 500;
const OLDER_PAGE = 500;
const NEWER_PAGE = 2000;
/** Lines kept in the page at most; older ones are dropped and read again when scrolled to. */
const KEEP = 20_000;
const ROW = 20;

/**
 * A run's logs (with its child flow runs'): the last 500 lines first, newer lines as the
 * control plane announces them, older ones when scrolled to the top. Virtualised; never
 * loads the whole log. Level filter and text search run on the server.
 */
export function Logs({ flowRunId, taskRunId, version }: { flowRunId: string; taskRunId?: string; version: number }) {
  const { api } = useSession();
  const [levels, setLevels] = useState<Set<Level>>(new Set(LEVELS));
  const [search, setSearch] = useState("");
  const [query, setQuery] = useState("");
  const [lines, setLines] = useState<LogRow[]>([]);
  const [hasOlder, setHasOlder] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [loaded, setLoaded] = useState(false);
  const scrollRef = useRef<HTMLDivElement>(null);
  const follow = useRef(true);
  const busy = useRef(false);
  const lastId = useRef<number | null>(null);
  const filterKey = `${[...levels].sort().join(",")}|${query}|${taskRunId ?? ""}`;
  const filterKeyRef = useRef(filterKey);
  filterKeyRef.current = filterKey;

  const filter = useCallback(
    () => ({
      flowRunId,
      ...(levels.size < LEVELS.length ? { level: [...levels] } : {}),
      ...(query ? { search: query } : {}),
      ...(taskRunId ? { taskRunId } : {}),
    }),
    [flowRunId, levels, query, taskRunId],
  );

  // (Re)start from the end of the log whenever the filter changes.
  useEffect(() => {
    const key = filterKey;
    let cancelled = false;
    busy.current = true;
    setLoaded(false);
    api.logs.list
      .query({ ...filter(), tail: true, limit: FIRST_PAGE })
      .then((page) => {
        if (cancelled || filterKeyRef.current !== key) return;
        setLines(page.items);
        setHasOlder(page.items.length === FIRST_PAGE);
        lastId.current = page.lastId;
        follow.current = true;
        setError(null);
        setLoaded(true);
      })
      .catch((err: unknown) => !cancelled && setError(errorText(err)))
      .finally(() => {
        busy.current = false;
      });
    return () => {
      cancelled = true;
    };
  }, [api, filter, filterKey]);

  // Live: read what came after the last line shown.
  // biome-ignore lint/correctness/useExhaustiveDependencies: version is the trigger
  useEffect(() => {
    if (!loaded || busy.current) return;
    const key = filterKey;
    busy.current = true;
    (async () => {
      for (;;) {
        const page = await api.logs.list.query({
          ...filter(),
          ...(lastId.current !== null ? { afterId: lastId.current } : {}),
          limit: NEWER_PAGE,
        });
        if (filterKeyRef.current !== key) return;
        if (page.items.length) {
          lastId.current = page.lastId;
          setLines((prev) => {
            const next = [...prev, ...page.items];
            if (next.length > KEEP) {
              setHasOlder(true);
              return next.slice(next.length - KEEP);
            }
            return next;
          });
        }
        if (page.items.length < NEWER_PAGE) return;
      }
    })()
      .catch((err: unknown) => setError(errorText(err)))
      .finally(() => {
        busy.current = false;
      });
  }, [version, loaded]);

  const virtual = useVirtualizer({
    count: lines.length,
    getScrollElement: () => scrollRef.current,
    estimateSize: () => ROW,
    overscan: 30,
  });

  // Keep following the end while the user is at the bottom.
  useLayoutEffect(() => {
    if (follow.current && lines.length) virtual.scrollToIndex(lines.length - 1, { align: "end" });
  }, [lines.length, virtual]);

  const loadOlder = useCallback(async () => {
    const firstId = lines[0]?.id;
    if (!hasOlder || busy.current || firstId === undefined) return;
    busy.current = true;
    const key = filterKey;
    try {
      const page = await api.logs.list.query({ ...filter(), beforeId: firstId, limit: OLDER_PAGE });
      if (filterKeyRef.current !== key) return;
      setHasOlder(page.items.length === OLDER_PAGE);
      if (page.items.length) {
        setLines((prev) => [...page.items, ...prev]);
        // Keep the line the user was reading where it was.
        requestAnimationFrame(() => virtual.scrollToIndex(page.items.length, { align: "start" }));
      }
    } catch (err) {
      setError(errorText(err));
    } finally {
      busy.current = false;
    }
  }, [api, filter, filterKey, hasOlder, lines, virtual]);

  const onScroll = () => {
    const el = scrollRef.current;
    if (!el) return;
    follow.current = el.scrollHeight - el.scrollTop - el.clientHeight < ROW * 2;
    if (el.scrollTop < ROW * 3) void loadOlder();
  };

  const toggle = (l: Level) =>
    setLevels((prev) => {
      const next = new Set(prev);
      if (next.has(l)) next.delete(l);
      else next.add(l);
      return next.size ? next : new Set(LEVELS);
    });

  return (
    <div data-testid="logs">
      <div className="logs-toolbar">
        <fieldset className="chips" aria-label="Log levels">
          {LEVELS.map((l) => (
            <button key={l} type="button" className="chip" aria-pressed={levels.has(l)} onClick={() => toggle(l)}>
              {LEVEL_LABEL[l]}
            </button>
          ))}
        </fieldset>
        <form
          onSubmit={(e) => {
            e.preventDefault();
            setQuery(search.trim());
          }}
          className="row"
        >
          <input
            type="search"
            placeholder="Search logs…"
            aria-label="Search logs"
            value={search}
            onChange={(e) => {
              setSearch(e.target.value);
              if (!e.target.value) setQuery("");
            }}
            style={{ width: 240 }}
          />
        </form>
        <span className="spacer" style={{ flex: 1 }} />
        <span className="muted small" data-testid="log-count">
          {lines.length.toLocaleString("en-US")} lines{hasOlder ? " (scroll up for older)" : ""}
        </span>
      </div>
      {error ? (
        <p className="alert alert-error" role="alert" style={{ margin: 12 }}>
          {error}
        </p>
      ) : null}
      <div className="logs" ref={scrollRef} onScroll={onScroll}>
        {loaded && !lines.length ? (
          <div className="empty muted">{query || levels.size < LEVELS.length ? "No lines match." : "No logs yet."}</div>
        ) : null}
        <div style={{ height: virtual.getTotalSize(), position: "relative" }}>
          {virtual.getVirtualItems().map((item) => {
            const line = lines[item.index];
            if (!line) return null;
            const level = (LEVELS as readonly string[]).includes(line.level) ? (line.level as Level) : "info";
            return (
              <div key={line.id} className="log-line" style={{ top: item.start }} data-testid="log-line" title={line.message}>
                <span className="log-time">{new Date(line.timestamp).toLocaleTimeString(undefined, { hour12: false })}</span>
                <span className={`log-level ${LEVEL_LABEL[level]}`}>{LEVEL_LABEL[level]}</span>
                <span className="log-msg">{line.message}</span>
              </div>
            );
          })}
        </div>
      </div>
    </div>
  );
}
