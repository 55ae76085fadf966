/** Where sign-in goes when `next` is missing or not a page of this app. */
export const DEFAULT_NEXT = "/runs";

/**
 * The page to open after sign-in, from the `next` query parameter: only a path of this same
 * origin, else `/runs`. A prefix check is not enough: browsers read `/\evil.example` and a
 * path whose tabs or newlines they strip (`/%09/evil.example` decodes to `/\t/evil.example`)
 * as `//evil.example`, another host. So `next` is resolved the way the browser will resolve
 * it, and kept only if it lands on `origin`; what is returned is the resolved path, query and
 * fragment, never the raw text.
 *
 * @example safeNext("/runs/abc?tab=logs", "https://ferry.example") // "/runs/abc?tab=logs"
 * @example safeNext("/\\evil.example", "https://ferry.example")     // "/runs"
 */
export function safeNext(next: string | null | undefined, origin: string): string {
  if (!next?.startsWith("/") || next.length > 2_000) return DEFAULT_NEXT;
  let url: URL;
  try {
    url = new URL(next, origin);
  } catch {
    return DEFAULT_NEXT;
  }
  if (url.origin !== new URL(origin).origin) return DEFAULT_NEXT;
  const path = `${url.pathname}${url.search}${url.hash}`;
  // Sign-in after sign-in would loop.
  return path.startsWith("/sign-in") ? DEFAULT_NEXT : path;
}
