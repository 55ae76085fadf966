/**
 * The web app's security headers, set per request by `proxy.ts` (Next's request hook): a
 * Content-Security-Policy with a fresh nonce for scripts, no framing by other sites, and the
 * usual hardening headers. The control plane's URL is read at request time (one build serves any
 * installation), so it is named in `connect-src` here rather than in next.config.
 */

/** The control plane's URL as browsers reach it (FERRY_API_URL, read when a page is served). */
export function apiUrl(): string {
  return (process.env.FERRY_API_URL || process.env.NEXT_PUBLIC_FERRY_API_URL || "http://127.0.0.1:4200").replace(/\/+$/, "");
}

/**
 * The policy for one response. Scripts run only from this origin or with the nonce (Next puts
 * it on its own inline scripts; `strict-dynamic` lets those load their chunks), so an injected
 * script never runs. `unsafe-eval` stays allowed for the scripts that do run: the run form
 * validates parameters with Ajv, which compiles the deployment's JSON Schema to a function
 * (Ajv generates that code from the schema safely; it never evaluates text from the page). Styles allow
 * inline attributes: the graph and the virtualised lists position nodes with `style`, and
 * nonces do not cover attributes; injected CSS cannot run code. `connect-src` names the
 * control plane (tRPC calls and the server-sent events of live views).
 */
export function contentSecurityPolicy(nonce: string, api: string): string {
  let apiOrigin = "";
  try {
    apiOrigin = new URL(api).origin;
  } catch {
    // An unparsable FERRY_API_URL connects nowhere; the page says it cannot reach the control plane.
  }
  return [
    "default-src 'self'",
    `script-src 'self' 'nonce-${nonce}' 'strict-dynamic' 'unsafe-eval'`,
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "font-src 'self' data:",
    `connect-src 'self'${apiOrigin ? ` ${apiOrigin}` : ""}`,
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join("; ");
}

/** Headers every page answer carries besides the policy. */
export const HARDENING_HEADERS: Readonly<Record<string, string>> = {
  "X-Frame-Options": "DENY",
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "same-origin",
  "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
};
