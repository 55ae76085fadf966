"use client";

import { useCallback, useEffect, useRef, useState } from "react";
import { errorText, type FerryApi, isAuthError } from "./api";
import { useSession } from "./session";

export interface Loaded<T> {
  data: T | undefined;
  error: string | undefined;
  /** True until the first answer (or error) for the current key. */
  loading: boolean;
  /** Load again (keeps showing the current data meanwhile); calls during a load are merged into one. */
  reload(): void;
}

/**
 * Loads `load(api)` for `key` (when `key` is null, nothing). Reloads only when asked to,
 * typically by a live subscription: there is no polling timer.
 */
export function useLoad<T>(key: string | null, load: (api: FerryApi) => Promise<T>): Loaded<T> {
  const { api, expired } = useSession();
  const loadRef = useRef(load);
  loadRef.current = load;
  const [state, setState] = useState<{ key: string | null; data: T | undefined; error: string | undefined; done: boolean }>({
    key,
    data: undefined,
    error: undefined,
    done: false,
  });
  const inFlight = useRef(false);
  const again = useRef(false);
  const keyRef = useRef(key);
  keyRef.current = key;

  const run = useCallback(async () => {
    const forKey = keyRef.current;
    if (forKey === null) return;
    if (inFlight.current) {
      again.current = true;
      return;
    }
    inFlight.current = true;
    try {
      do {
        again.current = false;
        try {
          const data = await loadRef.current(api);
          if (keyRef.current === forKey) setState({ key: forKey, data, error: undefined, done: true });
        } catch (err) {
          if (isAuthError(err)) {
            expired();
            return;
          }
          if (keyRef.current === forKey) {
            setState((s) => ({ key: forKey, data: s.key === forKey ? s.data : undefined, error: errorText(err), done: true }));
          }
        }
      } while (again.current && keyRef.current === forKey);
    } finally {
      inFlight.current = false;
    }
  }, [api, expired]);

  useEffect(() => {
    if (key === null) return;
    inFlight.current = false;
    void run();
  }, [key, run]);

  const current = state.key === key;
  return {
    data: current ? state.data : undefined,
    error: current ? state.error : undefined,
    loading: key !== null && (!current || !state.done),
    reload: () => void run(),
  };
}

export type LiveStatus = "connecting" | "live" | "reconnecting";
export type WorkspaceKind = "runs" | "agents" | "deployments";
export type RunPart = "state" | "tasks" | "logs";

interface Subscribable<I, O> {
  subscribe(
    input: I,
    opts: {
      onData: (data: O) => void;
      onError: (err: unknown) => void;
      onConnectionStateChange?: (state: { state: "idle" | "connecting" | "pending" }) => void;
    },
  ): { unsubscribe(): void };
}

/**
 * Follows a subscription; `onChange` runs for every event except the very first one
 * (the page has just loaded what it shows). After a reconnect the first event counts:
 * whatever changed while disconnected is read again.
 */
function useSubscription<I, O>(
  pick: (api: FerryApi) => Subscribable<I, O>,
  input: I | null,
  inputKey: string,
  onChange: (data: O) => void,
): LiveStatus {
  const { api, expired } = useSession();
  const [status, setStatus] = useState<LiveStatus>("connecting");
  const onChangeRef = useRef(onChange);
  onChangeRef.current = onChange;
  const pickRef = useRef(pick);
  pickRef.current = pick;
  const inputRef = useRef(input);
  inputRef.current = input;

  // biome-ignore lint/correctness/useExhaustiveDependencies: inputKey stands for input
  useEffect(() => {
    const current = inputRef.current;
    if (current === null) return;
    let events = 0;
    const sub = pickRef.current(api).subscribe(current, {
      onData: (data) => {
        setStatus("live");
        if (events++ > 0) onChangeRef.current(data);
      },
      onError: (err) => {
        if (isAuthError(err)) expired();
        setStatus("reconnecting");
      },
      onConnectionStateChange: (s) => {
        if (s.state === "connecting") setStatus((prev) => (prev === "live" ? "reconnecting" : prev));
        if (s.state === "pending") setStatus("live");
      },
    });
    return () => sub.unsubscribe();
  }, [api, expired, inputKey]);
  return status;
}

/** Calls `onChange` with what changed in the workspace (runs, agents, deployments). */
export function useLiveWorkspace(kinds: WorkspaceKind[], onChange: (kinds: WorkspaceKind[]) => void): LiveStatus {
  return useSubscription(
    (api) => api.live.workspace as Subscribable<{ kinds: WorkspaceKind[] }, { kinds: WorkspaceKind[] }>,
    { kinds },
    kinds.join(","),
    (data) => onChange(data.kinds),
  );
}

/** Calls `onChange` with what changed in a run: its state, its task runs, its logs. */
export function useLiveRun(id: string | null, onChange: (parts: RunPart[]) => void): LiveStatus {
  return useSubscription(
    (api) => api.live.run as Subscribable<{ id: string }, { parts: RunPart[] }>,
    id === null ? null : { id },
    id ?? "",
    (data) => onChange(data.parts),
  );
}

/** Re-renders every `ms` (for "3 s ago" and running durations); no data is fetched. */
export function useNow(ms = 1_000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}
