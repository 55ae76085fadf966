/**
 * The web app as a hostile link would use it, in real Chromium: sign-in's `next` must never
 * send a signed-in user to another host, and pages must refuse to be framed by other sites.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type BrowserPage, newPage, useBrowserStack } from "../browser/harness.ts";

const stack = useBrowserStack("sqlite");

/** Spellings of "another host" that a prefix check on `/` lets through, as they appear in a link. */
const REDIRECTS = [
  "/\\evil.example",
  "/%09/evil.example",
  "/%0A/evil.example",
  "//evil.example",
  "/\\/evil.example",
  "https://evil.example/",
  "javascript:alert(document.cookie)",
];

describe("web app against hostile links (sqlite)", () => {
  let tab: BrowserPage;
  before(async () => {
    tab = await newPage(stack.browser);
    const { page } = tab;
    await page.goto(`${stack.web.url}/sign-in`);
    await page.fill('input[name="token"]', stack.server.adminToken);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForURL(/\/runs/);
  });
  after(async () => {
    await tab?.close();
  });

  it("sign-in's next never leaves the app, however the other host is spelled", async () => {
    const { page } = tab;
    const origin = new URL(stack.web.url).origin;
    for (const next of REDIRECTS) {
      // The raw text goes into the query as an attacker's link would carry it.
      await page.goto(`${stack.web.url}/sign-in?next=${next.replaceAll("\\", "%5C")}`);
      await page.waitForURL((url) => url.pathname === "/runs", { timeout: 15_000 });
      assert.equal(new URL(page.url()).origin, origin, `next=${next} left the app: ${page.url()}`);
    }
    // A path of the app is still honoured.
    await page.goto(`${stack.web.url}/sign-in?next=${encodeURIComponent("/deployments")}`);
    await page.waitForURL((url) => url.pathname === "/deployments");
  });

  it("pages carry a nonce-based Content-Security-Policy that forbids framing, and still work under it", async () => {
    const { page, errors } = tab;
    const response = await page.goto(`${stack.web.url}/runs`);
    const headers = response?.headers() ?? {};
    const csp = headers["content-security-policy"] ?? "";
    assert.match(csp, /frame-ancestors 'none'/);
    assert.match(csp, /script-src 'self' 'nonce-[A-Za-z0-9+/=]+' 'strict-dynamic'/);
    assert.doesNotMatch(csp, /script-src[^;]*'unsafe-inline'/, "inline scripts run only with the nonce");
    assert.match(csp, new RegExp(`connect-src 'self' ${new URL(stack.server.url).origin}`));
    assert.equal(headers["x-frame-options"], "DENY");
    // The app still runs its scripts (the runs list renders live data) and nothing was blocked.
    await page.getByRole("heading", { name: "Flow runs" }).waitFor();
    const blocked = errors.filter((e) => /Content Security Policy|Refused to/i.test(e.text));
    assert.deepEqual(blocked, []);
  });
});
