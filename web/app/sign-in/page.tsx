"use client";

import { useRouter } from "next/navigation";
import { type FormEvent, useState } from "react";
import { API_URL, createApi, errorText, isAuthError } from "@/lib/api";
import { useSession } from "@/lib/session";

export default function SignInPage() {
  const router = useRouter();
  const { signIn } = useSession();
  const [token, setToken] = useState("");
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const value = token.trim();
    if (!value) return;
    setBusy(true);
    setError(undefined);
    try {
      // Check the token before keeping it.
      await createApi(value).auth.whoami.query();
      signIn(value);
      router.replace("/");
    } catch (err) {
      setError(
        isAuthError(err)
          ? `The control plane refused this token: ${errorText(err)}`
          : `Could not reach ${API_URL}: ${errorText(err)}`,
      );
      setBusy(false);
    }
  }

  return (
    <section className="card narrow">
      <h1>Sign in</h1>
      <p className="muted">
        Paste an API token with the <code>read</code> scope (<code>ferry dev</code> prints an admin token on its first start). It
        is kept in this tab only.
      </p>
      <form onSubmit={submit} className="stack">
        <label htmlFor="token">API token</label>
        <input
          id="token"
          name="token"
          type="password"
          autoComplete="off"
          spellCheck={false}
          placeholder="fry_…"
          value={token}
          onChange={(e) => setToken(e.target.value)}
        />
        <button type="submit" disabled={busy || !token.trim()}>
          {busy ? "Checking…" : "Sign in"}
        </button>
        {error ? <p className="error">{error}</p> : null}
      </form>
      <p className="muted small">API: {API_URL}</p>
    </section>
  );
}
