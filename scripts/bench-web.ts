/**
 * `npm run bench:web`: the run page of a 10,000-task run in Chromium, against a real control
 * plane, agent and the built web app (as the browser tests run them). Prints JSON.
 *
 * - live: the page is opened as the run starts; how long after the control plane records
 *   the run's end the page shows it (the live path: change feed → SSE → re-read)
 * - open: a fresh page of the finished run, navigation start → the DAG drawn (the mapped group
 *   with all 10,000 task runs counted) and → the first log lines shown; cold (first load) and warm
 * - expand: clicking the group → its first 200 members drawn
 * - timeline: the tab clicked → its rows drawn
 * - api: the queries behind the page, timed from Node (graph, task-run page, log tail)
 *
 * BENCH_WEB_TASKS (default 10000), BENCH_WEB_OPENS (default 5), BENCH_WEB_PROVIDERS (default "sqlite,postgresql").
 */
import { cpSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import type { Page } from "playwright-core";
import { buildWeb, freePort, launchBrowser, newPage, startWeb } from "../tests/browser/harness.ts";
import {
  createDatabase,
  deployFixtures,
  makeProject,
  type Provider,
  postgresUnavailable,
  REPO,
  removeDir,
  startAgent,
  startServer,
  stopAll,
  waitUntil,
} from "../tests/e2e/harness.ts";

const TASKS = Number(process.env.BENCH_WEB_TASKS ?? 10_000);
const OPENS = Number(process.env.BENCH_WEB_OPENS ?? 5);
const PROVIDERS = (process.env.BENCH_WEB_PROVIDERS ?? "sqlite,postgresql").split(",") as Provider[];

const ms = (n: number) => Math.round(n);
const median = (values: number[]) => {
  const s = [...values].sort((a, b) => a - b);
  return s.length ? ms(s[Math.floor((s.length - 1) / 2)] ?? Number.NaN) : Number.NaN;
};

async function time<T>(fn: () => Promise<T>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/** Navigation start → selector visible, measured by the page's own clock. */
async function openRunPage(page: Page, url: string): Promise<{ dag: number; logs: number }> {
  await page.goto("about:blank");
  const t0 = Date.now();
  await page.goto(url, { waitUntil: "commit" });
  const group = `[data-testid="dag-node"][data-kind="group"][data-total="${TASKS}"]`;
  const [dag, logs] = await Promise.all([
    page.waitForSelector(group, { timeout: 120_000 }).then(() => Date.now() - t0),
    page.waitForSelector('[data-testid="log-line"]', { timeout: 120_000 }).then(() => Date.now() - t0),
  ]);
  return { dag, logs };
}

async function benchProvider(provider: Provider) {
  const project = makeProject();
  cpSync(join(REPO, "tests/browser/fixtures"), join(project, "flows"), { recursive: true });
  const database = await createDatabase(provider, project);
  const webPort = await freePort();
  const server = await startServer(database.url, ["--cors-origin", `http://127.0.0.1:${webPort}`]);
  const suite = { project, database, server };
  await deployFixtures(suite, [], "flows/web.ts");
  await startAgent(server, { name: "bench-web", workDir: project });
  const web = await startWeb(server.url, webPort);
  const browser = await launchBrowser();
  try {
    const tab = await newPage(browser);
    const { page } = tab;
    await page.goto(`${web.url}/sign-in`);
    await page.fill('input[name="token"]', server.adminToken);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForURL(/\/runs/);

    // Live: the page is open while the 10,000 task runs are recorded.
    const created = performance.now();
    const run = await server.api.runs.create.mutate({ deployment: "big", parameters: { n: TASKS, logEvery: 10 } });
    await page.goto(`${web.url}/runs/${run.id}`);
    await page.waitForSelector('[data-testid="run-page"]');
    const done = await waitUntil(
      "the big run to finish",
      async () => {
        const r = await server.api.runs.get.query({ id: run.id });
        return r.stateType === "COMPLETED" || r.stateType === "FAILED" ? r : undefined;
      },
      600_000,
    );
    if (done.stateType !== "COMPLETED") throw new Error(`the big run ended ${done.stateType}: ${done.stateMessage}`);
    const recorded = performance.now();
    await page.waitForSelector('[data-testid="run-page"][data-run-state="COMPLETED"]', { timeout: 60_000 });
    await page.waitForSelector(`[data-testid="dag-node"][data-kind="group"][data-total="${TASKS}"][data-state="COMPLETED"]`, {
      timeout: 60_000,
    });
    const liveLag = performance.now() - recorded;
    const runWall = recorded - created;

    // Fresh opens of the finished run.
    const opens: { dag: number; logs: number }[] = [];
    const cold = await newPage(browser);
    await cold.context.addCookies(await tab.context.cookies());
    opens.push(await openRunPage(cold.page, `${web.url}/runs/${run.id}`));
    await cold.close();
    for (let i = 0; i < OPENS; i++) opens.push(await openRunPage(page, `${web.url}/runs/${run.id}`));

    const expand = await time(async () => {
      await page.locator('[data-testid="dag-node"][data-task-key="noop"]').getByRole("button", { name: "expand" }).click();
      await page.waitForFunction(
        () =>
          (globalThis as unknown as { document: { querySelectorAll(s: string): { length: number } } }).document.querySelectorAll(
            '[data-testid="dag-node"][data-task-key="noop"][data-kind="task"]',
          ).length >= 200,
        undefined,
        { timeout: 60_000 },
      );
    });
    const timeline = await time(async () => {
      await page.getByRole("tab", { name: "Timeline" }).click();
      await page.waitForSelector(".tl-row .tl-bar", { timeout: 60_000 });
    });
    // Scroll to the end of the timeline: the last page is fetched and drawn.
    const timelineEnd = await time(async () => {
      await page.evaluate(() => {
        const el = (
          globalThis as unknown as { document: { querySelector(s: string): { scrollTop: number; scrollHeight: number } | null } }
        ).document.querySelector('[data-testid="timeline"]');
        if (el) el.scrollTop = el.scrollHeight;
      });
      await page.waitForFunction(
        (last) =>
          [
            ...(
              globalThis as unknown as { document: { querySelectorAll(s: string): Iterable<{ textContent: string | null }> } }
            ).document.querySelectorAll(".tl-row .tl-name"),
          ].some((e) => e.textContent === last),
        `noop-${TASKS - 1}`,
        { timeout: 60_000 },
      );
    });
    const pageErrors = tab.errors.filter((e) => e.kind === "page").length;
    await tab.close();

    const api = {
      graphMs: median(await Promise.all([0, 1, 2].map(() => time(() => server.api.runs.graph.query({ id: run.id }))))),
      graphExpandedMs: ms(await time(() => server.api.runs.graph.query({ id: run.id, expand: ["noop"] }))),
      taskPageMs: ms(await time(() => server.api.taskRuns.page.query({ flowRunId: run.id, offset: TASKS - 200, limit: 200 }))),
      logTailMs: ms(await time(() => server.api.logs.list.query({ flowRunId: run.id, tail: true, limit: 500 }))),
      logSearchMs: ms(await time(() => server.api.logs.list.query({ flowRunId: run.id, search: "task 99", limit: 200 }))),
    };
    const [first, ...warm] = opens;
    return {
      provider,
      tasks: TASKS,
      logLines: TASKS / 10 + 3,
      runWallSeconds: Math.round(runWall / 100) / 10,
      liveLagMs: ms(liveLag),
      open: {
        coldDagMs: first?.dag,
        coldFirstLogsMs: first?.logs,
        warmDagMsP50: median(warm.map((o) => o.dag)),
        warmFirstLogsMsP50: median(warm.map((o) => o.logs)),
        opens: warm.length,
      },
      expandGroupTo200Ms: ms(expand),
      timelineFirstRowsMs: ms(timeline),
      timelineScrollToEndMs: ms(timelineEnd),
      api,
      pageErrors,
    };
  } finally {
    await browser.close();
    await web.stop();
    await stopAll();
    await database.drop();
    removeDir(project);
  }
}

async function main() {
  await buildWeb();
  const results = [];
  for (const provider of PROVIDERS) {
    if (provider === "postgresql") {
      const why = await postgresUnavailable();
      if (why) {
        process.stderr.write(`skipping PostgreSQL: ${why}\n`);
        continue;
      }
    }
    process.stderr.write(`bench:web on ${provider} (${TASKS} task runs)…\n`);
    results.push(await benchProvider(provider));
  }
  const sqlite = results.find((r) => r.provider === "sqlite");
  const pg = results.find((r) => r.provider === "postgresql");
  const ratios =
    sqlite && pg
      ? {
          warmDagPgOverSqlite: Math.round(((pg.open.warmDagMsP50 ?? 0) / (sqlite.open.warmDagMsP50 || 1)) * 100) / 100,
          graphQueryPgOverSqlite: Math.round((pg.api.graphMs / (sqlite.api.graphMs || 1)) * 100) / 100,
        }
      : undefined;
  process.stdout.write(`${JSON.stringify({ results, ratios }, null, 2)}\n`);
  // Gross regressions only (tests assert behaviour; this guards against a page that crawls).
  for (const r of results) {
    if ((r.open.warmDagMsP50 ?? 0) > 15_000) {
      process.stderr.write(`${r.provider}: the DAG took over 15 s to draw\n`);
      process.exitCode = 1;
    }
  }
}

await main();
