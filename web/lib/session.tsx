"use client";

import { usePathname, useRouter } from "next/navigation";
import { createContext, type ReactNode, useCallback, useContext, useEffect, useMemo, useState } from "react";
import { clearToken, createApi, type FerryApi, readToken, saveToken } from "./api";

interface Session {
  /** The API client of the signed-in user; null until a token is known. */
  api: FerryApi | null;
  signIn(token: string): void;
  signOut(): void;
}

const SessionContext = createContext<Session | null>(null);

const PUBLIC_PATHS = new Set(["/sign-in"]);

/** Holds the API token (from sessionStorage) and sends visitors without one to the sign-in page. */
export function SessionProvider({ children }: { children: ReactNode }) {
  const router = useRouter();
  const pathname = usePathname();
  // undefined: not read yet (server render and first client render); null: signed out.
  const [token, setToken] = useState<string | null | undefined>(undefined);

  useEffect(() => {
    setToken(readToken());
  }, []);

  const isPublic = PUBLIC_PATHS.has(pathname);
  useEffect(() => {
    if (token === null && !isPublic) router.replace("/sign-in");
  }, [token, isPublic, router]);

  const signIn = useCallback((next: string) => {
    saveToken(next);
    setToken(next);
  }, []);
  const signOut = useCallback(() => {
    clearToken();
    setToken(null);
  }, []);

  const api = useMemo(() => (token ? createApi(token) : null), [token]);
  const session = useMemo<Session>(() => ({ api, signIn, signOut }), [api, signIn, signOut]);

  return (
    <SessionContext.Provider value={session}>
      {isPublic || token ? children : <p className="muted">Loading…</p>}
    </SessionContext.Provider>
  );
}

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error("useSession must be used inside <SessionProvider>");
  return session;
}
