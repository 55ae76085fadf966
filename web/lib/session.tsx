"use client";

import { usePathname, useRouter } from "next/navigation";
import { createContext, type ReactNode, useCallback, useContext, useEffect, useMemo, useState } from "react";
import { createApi, errorText, type FerryApi, isAuthError, type WhoAmI } from "./api";

type Scope = WhoAmI["scopes"][number];

interface Session {
  api: FerryApi;
  apiUrl: string;
  /** Who is signed in; null when signed out, undefined while checking. */
  me: WhoAmI | null | undefined;
  can(scope: Scope): boolean;
  /** Exchanges an API token for a session cookie; resolves to an error text or null. */
  signIn(token: string): Promise<string | null>;
  signOut(): Promise<void>;
  /** A request was refused for the credential: forget the session (shows the sign-in page). */
  expired(): void;
}

const SessionContext = createContext<Session | null>(null);

const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]"]);

/**
 * On one machine, `localhost` and `127.0.0.1` are different sites to a browser: a page on
 * one would not send the session cookie to a control plane on the other. When both are
 * loopback names, call the control plane by the name the page was opened with.
 */
function sameLoopbackHost(apiUrl: string): string {
  if (typeof window === "undefined") return apiUrl;
  try {
    const url = new URL(apiUrl);
    const page = window.location.hostname;
    if (LOOPBACK.has(url.hostname) && LOOPBACK.has(page) && url.hostname !== page) {
      url.hostname = page;
      return url.toString().replace(/\/+$/, "");
    }
  } catch {
    // not a URL: use it as given
  }
  return apiUrl;
}

const PUBLIC_PATHS = new Set(["/sign-in"]);
const IMPLIED: Record<Scope, Scope[]> = {
  admin: ["admin", "write", "read"],
  write: ["write", "read"],
  read: ["read"],
  agent: ["agent"],
};

/**
 * The web session: an httpOnly cookie set by the control plane at sign-in, so the page
 * itself never holds a credential. Asks the control plane who is signed in on load.
 */
export function SessionProvider({ apiUrl, children }: { apiUrl: string; children: ReactNode }) {
  const router = useRouter();
  const pathname = usePathname();
  const api = useMemo(() => createApi(sameLoopbackHost(apiUrl)), [apiUrl]);
  const [me, setMe] = useState<WhoAmI | null | undefined>(undefined);
  const [problem, setProblem] = useState<string | null>(null);

  const check = useCallback(async () => {
    try {
      setMe(await api.auth.whoami.query());
      setProblem(null);
    } catch (err) {
      if (isAuthError(err)) setMe(null);
      else setProblem(errorText(err));
    }
  }, [api]);

  useEffect(() => {
    void check();
  }, [check]);

  const isPublic = PUBLIC_PATHS.has(pathname);
  useEffect(() => {
    if (me === null && !isPublic) router.replace(`/sign-in?next=${encodeURIComponent(pathname)}`);
  }, [me, isPublic, pathname, router]);

  const signIn = useCallback(
    async (token: string) => {
      try {
        await api.auth.signIn.mutate({ token });
        setMe(await api.auth.whoami.query());
        return null;
      } catch (err) {
        return errorText(err);
      }
    },
    [api],
  );
  const signOut = useCallback(async () => {
    try {
      await api.auth.signOut.mutate();
    } finally {
      setMe(null);
      router.replace("/sign-in");
    }
  }, [api, router]);
  const expired = useCallback(() => setMe(null), []);
  const can = useCallback((scope: Scope) => !!me?.scopes.some((s) => (IMPLIED[s as Scope] ?? [s]).includes(scope)), [me]);

  const session = useMemo<Session>(
    () => ({ api, apiUrl, me, can, signIn, signOut, expired }),
    [api, apiUrl, me, can, signIn, signOut, expired],
  );
  let body: ReactNode = children;
  if (!isPublic && !me) {
    body = problem ? (
      <div className="empty" role="alert">
        <h2>Cannot reach the control plane</h2>
        <p className="muted">
          {problem} ({apiUrl})
        </p>
        <button type="button" className="button" onClick={() => void check()}>
          Try again
        </button>
      </div>
    ) : (
      <div className="empty muted">Loading…</div>
    );
  }
  return <SessionContext.Provider value={session}>{body}</SessionContext.Provider>;
}

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error("useSession must be used inside <SessionProvider>");
  return session;
}
