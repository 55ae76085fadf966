"use client";

import { useEffect, useRef, useState } from "react";
import { errorText, type FerryApi, isAuthError } from "./api";
import { useSession } from "./session";

export interface Polled<T> {
  data: T | undefined;
  error: string | undefined;
  /** True until the first answer (or error) for the current key. */
  loading: boolean;
}

interface State<T> {
  key: string;
  data: T | undefined;
  error: string | undefined;
  done: boolean;
}

/**
 * Loads `load(api)` now and again every `intervalMs` (null: once). `key` names what is
 * loaded: when it changes the previous data is dropped. A refused credential signs out.
 * (A placeholder for the live updates the real web app will get over subscriptions.)
 */
export function usePolled<T>(key: string, load: (api: FerryApi) => Promise<T>, intervalMs: number | null = 3_000): Polled<T> {
  const { api, signOut } = useSession();
  const loadRef = useRef(load);
  useEffect(() => {
    loadRef.current = load;
  });
  const [state, setState] = useState<State<T>>({ key, data: undefined, error: undefined, done: false });

  useEffect(() => {
    if (!api) return;
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const tick = async () => {
      try {
        const data = await loadRef.current(api);
        if (!stopped) setState({ key, data, error: undefined, done: true });
      } catch (err) {
        if (stopped) return;
        if (isAuthError(err)) {
          signOut();
          return;
        }
        setState((s) => ({ key, data: s.key === key ? s.data : undefined, error: errorText(err), done: true }));
      }
      if (!stopped && intervalMs !== null) timer = setTimeout(() => void tick(), intervalMs);
    };
    void tick();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [api, key, intervalMs, signOut]);

  const current = state.key === key;
  return { data: current ? state.data : undefined, error: current ? state.error : undefined, loading: !current || !state.done };
}
