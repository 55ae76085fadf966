"use client";

import { type FormEvent, useState } from "react";
import { Empty, LoadState } from "@/components/status";
import { errorText, isAuthError, type TokenRow } from "@/lib/api";
import { formatAgo, formatTime } from "@/lib/format";
import { useLoad, useNow } from "@/lib/live";
import { useSession } from "@/lib/session";

const SCOPES = [
  { scope: "read", help: "see runs, deployments, agents" },
  { scope: "write", help: "also deploy and start, cancel or retry runs" },
  { scope: "admin", help: "also manage API tokens" },
  { scope: "agent", help: "only for ferry agent start" },
] as const;
type Scope = (typeof SCOPES)[number]["scope"];

const MAX_DAYS = 3650;

interface Created {
  name: string;
  secret: string;
  scopes: string[];
  expiresAt: string | null;
}

function statusOf(t: TokenRow, now: number): "Active" | "Revoked" | "Expired" {
  if (t.revokedAt) return "Revoked";
  if (t.expiresAt && new Date(t.expiresAt).getTime() <= now) return "Expired";
  return "Active";
}

function CreateToken({ onCreated }: { onCreated(token: Created): void }) {
  const { api, expired } = useSession();
  const [name, setName] = useState("");
  const [scopes, setScopes] = useState<Scope[]>(["read"]);
  const [days, setDays] = useState("");
  const [errors, setErrors] = useState<{ name?: string; scopes?: string; days?: string }>({});
  const [failure, setFailure] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const found: typeof errors = {};
    if (!name.trim()) found.name = "Give the token a name, e.g. the machine or script using it";
    else if (name.trim().length > 100) found.name = "At most 100 characters";
    if (!scopes.length) found.scopes = "Choose at least one scope";
    const d = days.trim() ? Number(days.trim()) : undefined;
    if (d !== undefined && (!Number.isInteger(d) || d < 1 || d > MAX_DAYS)) found.days = `A whole number of days, 1–${MAX_DAYS}`;
    setErrors(found);
    if (Object.keys(found).length) return;
    setBusy(true);
    setFailure(null);
    try {
      const token = await api.tokens.create.mutate({
        name: name.trim(),
        scopes,
        ...(d ? { expiresInSeconds: d * 86_400 } : {}),
      });
      onCreated({ name: token.name, secret: token.secret, scopes: token.scopes, expiresAt: token.expiresAt });
      setName("");
      setDays("");
      setScopes(["read"]);
    } catch (err) {
      if (isAuthError(err)) expired();
      else setFailure(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  const toggle = (scope: Scope, on: boolean) => {
    setScopes((s) => (on ? [...s.filter((x) => x !== scope), scope] : s.filter((x) => x !== scope)));
    setErrors(({ scopes: _gone, ...rest }) => rest);
  };

  return (
    <form className="form" noValidate onSubmit={(e) => void submit(e)}>
      <div className="field">
        <label className="field-label" htmlFor="token-name">
          Name<span className="req">*</span>
        </label>
        <input
          id="token-name"
          name="name"
          type="text"
          maxLength={100}
          autoComplete="off"
          value={name}
          aria-invalid={errors.name ? true : undefined}
          aria-describedby={errors.name ? "token-name-error" : undefined}
          onChange={(e) => {
            setName(e.target.value);
            setErrors(({ name: _gone, ...rest }) => rest);
          }}
        />
        {errors.name ? (
          <div className="field-error" id="token-name-error">
            {errors.name}
          </div>
        ) : null}
      </div>
      <fieldset className="field token-scopes" aria-invalid={errors.scopes ? true : undefined}>
        <legend className="field-label">
          Scopes<span className="req">*</span>
        </legend>
        {SCOPES.map(({ scope, help }) => (
          <label key={scope} className="checkbox">
            <input
              type="checkbox"
              name="scopes"
              value={scope}
              checked={scopes.includes(scope)}
              onChange={(e) => toggle(scope, e.target.checked)}
            />
            <span>
              <strong>{scope}</strong> <span className="muted small">{help}</span>
            </span>
          </label>
        ))}
        {errors.scopes ? <div className="field-error">{errors.scopes}</div> : null}
      </fieldset>
      <div className="field">
        <label className="field-label" htmlFor="token-days">
          Expires after (days)
        </label>
        <input
          id="token-days"
          name="expiresInDays"
          type="text"
          inputMode="numeric"
          placeholder="never"
          value={days}
          aria-invalid={errors.days ? true : undefined}
          aria-describedby="token-days-help"
          onChange={(e) => {
            setDays(e.target.value);
            setErrors(({ days: _gone, ...rest }) => rest);
          }}
        />
        {errors.days ? (
          <div className="field-error">{errors.days}</div>
        ) : (
          <div className="field-help" id="token-days-help">
            Empty: the token does not expire.
          </div>
        )}
      </div>
      {failure ? (
        <p className="alert alert-error" role="alert">
          {failure}
        </p>
      ) : null}
      <div className="row">
        <button type="submit" className="button primary" disabled={busy}>
          Create token
        </button>
      </div>
    </form>
  );
}

function NewSecret({ token, onDone }: { token: Created; onDone(): void }) {
  const [copied, setCopied] = useState<"yes" | "no" | null>(null);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(token.secret);
      setCopied("yes");
    } catch {
      setCopied("no");
    }
  };
  return (
    <div className="secret-box" role="status">
      <div className="row">
        <strong>Token “{token.name}” created</strong>
        <span className="muted small">
          {token.scopes.join(" · ")} · {token.expiresAt ? `expires ${formatTime(token.expiresAt)}` : "no expiry"}
        </span>
      </div>
      <div className="secret-value">
        <code className="mono" data-secret="">
          {token.secret}
        </code>
        <button type="button" className="button small" onClick={() => void copy()}>
          {copied === "yes" ? "Copied" : "Copy"}
        </button>
      </div>
      <p className="small">
        <strong>Copy it now:</strong> this is the only time the secret is shown. Ferry keeps only a hash of it.
        {copied === "no" ? " (Copying failed: select the text and copy it by hand.)" : ""}
      </p>
      <div className="row">
        <button type="button" className="button small" onClick={onDone}>
          Done
        </button>
      </div>
    </div>
  );
}

/** Tokens the page lists, newest first (revoked ones included). */
const TOKENS_SHOWN = 500;

export default function TokensPage() {
  const { api, can, me, expired } = useSession();
  const admin = can("admin");
  const list = useLoad(admin ? "tokens" : null, (a) => a.tokens.list.query({ limit: TOKENS_SHOWN }));
  const now = useNow(30_000);
  const [created, setCreated] = useState<Created | null>(null);
  const [confirming, setConfirming] = useState<string | null>(null);
  const [revoking, setRevoking] = useState<string | null>(null);
  const [failure, setFailure] = useState<string | null>(null);

  const revoke = async (id: string) => {
    setRevoking(id);
    setFailure(null);
    try {
      await api.tokens.revoke.mutate({ id });
      setConfirming(null);
      list.reload();
    } catch (err) {
      if (isAuthError(err)) expired();
      else setFailure(errorText(err));
    } finally {
      setRevoking(null);
    }
  };

  const head = (
    <div className="page-head">
      <div>
        <h1>API tokens</h1>
        <div className="page-sub">Credentials for the CLI, agents, scripts and this web app</div>
      </div>
      <span className="spacer" />
    </div>
  );

  if (!admin) {
    return (
      <section>
        {head}
        <div className="card">
          <Empty title="403 · Admins only">
            Managing API tokens needs a token with the <code>admin</code> scope. Sign in with one to see this page.
          </Empty>
        </div>
      </section>
    );
  }

  const items = list.data?.items ?? [];
  const active = items.filter((t) => statusOf(t, now) === "Active").length;

  return (
    <section>
      {head}
      <div className="grid grid-side">
        <div className="card">
          <div className="card-head">
            <h3>Tokens</h3>
            <span className="spacer" />
            {list.data ? (
              <span className="muted small">
                {active} active of {items.length}
                {list.data.nextCursor ? ` (the newest ${TOKENS_SHOWN}; ferry token list shows all)` : ""}
              </span>
            ) : null}
          </div>
          {list.error || (list.loading && !list.data) ? (
            <div className="card-body">
              <LoadState loading={list.loading} error={list.error} />
            </div>
          ) : null}
          {failure ? (
            <div className="card-body">
              <p className="alert alert-error" role="alert">
                Could not revoke: {failure}
              </p>
            </div>
          ) : null}
          {list.data && items.length === 0 ? <Empty title="No tokens">Create one with the form.</Empty> : null}
          {items.length ? (
            <div className="table-scroll">
              <table className="table">
                <thead>
                  <tr>
                    <th>Name</th>
                    <th>Scopes</th>
                    <th>Created</th>
                    <th>Last used</th>
                    <th>Expires</th>
                    <th>Status</th>
                    <th />
                  </tr>
                </thead>
                <tbody>
                  {items.map((t) => {
                    const status = statusOf(t, now);
                    const mine = me?.tokenId === t.id;
                    return (
                      <tr key={t.id} className={status === "Active" ? undefined : "dim"} data-token={t.name}>
                        <td>
                          <div className="cell-title">
                            {t.name}
                            {mine ? <span className="tag token-mine">this session</span> : null}
                          </div>
                          <div className="cell-sub mono">{t.prefix}…</div>
                        </td>
                        <td>
                          {t.scopes
                            .split(",")
                            .filter(Boolean)
                            .map((s) => (
                              <span key={s} className="tag">
                                {s}
                              </span>
                            ))}
                        </td>
                        <td className="nowrap" title={formatTime(t.createdAt)}>
                          {formatAgo(t.createdAt)}
                        </td>
                        <td className="nowrap" title={t.lastUsedAt ? formatTime(t.lastUsedAt) : undefined}>
                          {formatAgo(t.lastUsedAt)}
                        </td>
                        <td className="nowrap">{t.expiresAt ? formatTime(t.expiresAt) : <span className="muted">never</span>}</td>
                        <td>
                          <span className={`badge token-${status.toLowerCase()}`}>
                            <span className="dot" aria-hidden="true" />
                            {status}
                          </span>
                        </td>
                        <td className="num nowrap">
                          {t.revokedAt ? null : confirming === t.id ? (
                            <span className="row token-confirm">
                              <span className="small">{mine ? "Revoke and sign out?" : "Revoke?"}</span>
                              <button
                                type="button"
                                className="button small danger"
                                disabled={revoking === t.id}
                                onClick={() => void revoke(t.id)}
                              >
                                Yes
                              </button>
                              <button
                                type="button"
                                className="button small"
                                disabled={revoking === t.id}
                                onClick={() => setConfirming(null)}
                              >
                                No
                              </button>
                            </span>
                          ) : (
                            <button type="button" className="button small danger" onClick={() => setConfirming(t.id)}>
                              Revoke
                            </button>
                          )}
                        </td>
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            </div>
          ) : null}
        </div>

        <div className="stack">
          {created ? <NewSecret token={created} onDone={() => setCreated(null)} /> : null}
          <div className="card">
            <div className="card-head">
              <h3>New token</h3>
            </div>
            <div className="card-body">
              <CreateToken
                onCreated={(token) => {
                  setCreated(token);
                  list.reload();
                }}
              />
            </div>
          </div>
        </div>
      </div>
    </section>
  );
}
