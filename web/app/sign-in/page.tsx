"use client";

import { useRouter, useSearchParams } from "next/navigation";
import { type FormEvent, Suspense, useEffect, useState } from "react";
import { Icon } from "@/components/icons";
import { safeNext } from "@/lib/safe-next";
import { useSession } from "@/lib/session";

function SignInForm() {
  const router = useRouter();
  const params = useSearchParams();
  const { me, signIn, apiUrl } = useSession();
  const [token, setToken] = useState("");
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  // Resolved against this page's origin as the browser would (see safeNext): never another host.
  const target = safeNext(params.get("next"), typeof window === "undefined" ? "http://localhost" : window.location.origin);

  useEffect(() => {
    if (me) router.replace(target);
  }, [me, router, target]);

  async function submit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const value = token.trim();
    if (!value) return;
    setBusy(true);
    setError(undefined);
    const problem = await signIn(value);
    if (problem) {
      setError(problem);
      setBusy(false);
    }
  }

  return (
    <div className="sign-in">
      <div className="sign-in-card">
        <div className="brand brand-large">
          <span className="brand-mark" aria-hidden="true">
            <Icon name="ferry" size={20} />
          </span>
          Ferry
        </div>
        <h1>Sign in</h1>
        <p className="muted">
          Paste an API token. A <code>read</code> token can look at everything; <code>write</code> can start and cancel runs. The
          token is exchanged for a session cookie and not kept by the browser.
        </p>
        <form onSubmit={submit} className="form">
          <label className="field">
            <span className="field-label">API token</span>
            <input
              name="token"
              type="password"
              autoComplete="off"
              spellCheck={false}
              placeholder="fry_…"
              value={token}
              onChange={(e) => setToken(e.target.value)}
              aria-invalid={error ? true : undefined}
            />
          </label>
          {error ? (
            <p className="alert alert-error" role="alert">
              {error}
            </p>
          ) : null}
          <button type="submit" className="button primary wide" disabled={busy || !token.trim()}>
            {busy ? "Signing in…" : "Sign in"}
          </button>
        </form>
        <p className="muted small">
          Control plane: <code>{apiUrl}</code>. Create a token with <code>ferry token create --scope read</code>.
        </p>
      </div>
    </div>
  );
}

export default function SignInPage() {
  return (
    <Suspense>
      <SignInForm />
    </Suspense>
  );
}
