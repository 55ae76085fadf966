/**
 * Browser harness: the real Next.js web app (`next build` + `next start`) in front of a real
 * control plane and agent (see tests/e2e/harness.ts), driven by Debian's Chromium through
 * playwright-core.
 */
import { cpSync, existsSync, mkdirSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { join } from "node:path";
import { after, before } from "node:test";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { buildWeb, startWebServer, WEB_DIR, type WebServer, webSourceHash } from "../../cli/src/web.ts";
import {
  createDatabase,
  deployFixtures,
  makeProject,
  type Proc,
  type Provider,
  postgresUnavailable,
  REPO,
  removeDir,
  type Suite,
  startAgent,
  startServer,
  stopAll,
} from "../e2e/harness.ts";

export const RESULTS = join(WEB_DIR, "test-results");
export { buildWeb, webSourceHash };

/** A TCP port free right now on 127.0.0.1 (to choose the web port before starting the control plane). */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const server = createServer();
    server.once("error", rej);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => res(port));
    });
  });
}

export type Web = WebServer;

/** `next start` on 127.0.0.1:`port` with the control plane at `apiUrl` (FERRY_API_URL, read at request time). */
export async function startWeb(apiUrl: string, port?: number): Promise<Web> {
  return startWebServer({ apiUrl, port: port ?? (await freePort()) });
}

export const CHROMIUM = process.env.FERRY_CHROMIUM ?? "/usr/bin/chromium";

/** Headless Debian Chromium; playwright gives every launch a fresh temporary profile (--user-data-dir). */
export function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium, or set FERRY_CHROMIUM`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Without the networking flags Chromium stalls on refused connections (ENVIRONMENT.md).
    args: [
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-quic",
      "--no-first-run",
      "--no-sandbox",
      "--disable-gpu",
    ],
  });
}

export interface PageError {
  /** `console`: a console.error message (failed requests included); `page`: an uncaught exception. */
  kind: "console" | "page";
  text: string;
  /** Where a console message came from (url:line). */
  location?: string;
}

export interface BrowserPage {
  page: Page;
  context: BrowserContext;
  /** Every console error and uncaught page error so far: tests assert there are none (or only expected ones). */
  errors: PageError[];
  close(): Promise<void>;
}

/** A page in its own context (fresh storage), 1440x900, recording console and page errors. */
export async function newPage(browser: Browser, options: { colorScheme?: "light" | "dark" } = {}): Promise<BrowserPage> {
  const context = await browser.newContext({
    viewport: { width: 1440, height: 900 },
    colorScheme: options.colorScheme ?? "light",
  });
  const page = await context.newPage();
  const errors: PageError[] = [];
  page.on("console", (message) => {
    if (message.type() !== "error") return;
    const { url, lineNumber } = message.location();
    errors.push({ kind: "console", text: message.text(), ...(url ? { location: `${url}:${lineNumber}` } : {}) });
  });
  page.on("pageerror", (error) => {
    errors.push({ kind: "page", text: error.stack ?? error.message });
  });
  return { page, context, errors, close: () => context.close() };
}

/** Saves a full-page PNG as web/test-results/<name>.png and returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(RESULTS, { recursive: true });
  const path = join(RESULTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** Why the browser suites of `provider` are skipped (PostgreSQL not running), or undefined; throws under FERRY_REQUIRE_POSTGRES=1. */
export async function browserSkip(provider: Provider): Promise<string | undefined> {
  return provider === "postgresql" ? postgresUnavailable() : undefined;
}

export interface BrowserStack extends Suite {
  agent: Proc;
  web: Web;
  browser: Browser;
}

/**
 * Registers before/after hooks giving a suite the whole product: a fresh database of
 * `provider`, a control plane on it (allowing the web app's origin), the fixture flows
 * deployed, one agent, the built web app and a Chromium. `skip` comes from browserSkip()
 * (as in the e2e suites, pass it to the tests as well). The returned object is filled in by
 * the before hook; everything is stopped and deleted afterwards.
 */
export function useBrowserStack(provider: Provider, skip?: string): BrowserStack {
  const stack = {} as BrowserStack;
  before(async () => {
    if (skip) return;
    await buildWeb();
    const webPort = await freePort();
    stack.project = makeProject();
    // The browser fixtures and the example pipeline (with its data), deployed beside the e2e fixtures.
    cpSync(join(REPO, "tests/browser/fixtures"), join(stack.project, "flows"), { recursive: true });
    cpSync(join(REPO, "examples/ml-pipeline"), join(stack.project, "examples/ml-pipeline"), { recursive: true });
    stack.database = await createDatabase(provider, stack.project);
    stack.server = await startServer(stack.database.url, ["--cors-origin", `http://127.0.0.1:${webPort}`]);
    await deployFixtures(stack);
    await deployFixtures(stack, [], "flows/web.ts");
    await deployFixtures(stack, [], "examples/ml-pipeline/pipeline.ts");
    stack.agent = await startAgent(stack.server, { name: "agent-browser", workDir: stack.project });
    stack.web = await startWeb(stack.server.url, webPort);
    stack.browser = await launchBrowser();
  });
  after(async () => {
    await stack.browser?.close();
    await stack.web?.stop();
    await stopAll();
    await stack.database?.drop();
    if (stack.project) removeDir(stack.project);
  });
  return stack;
}
