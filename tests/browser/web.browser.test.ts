/**
 * The web app in Chromium against a real control plane (SQLite file), a real agent and the
 * built Next.js app: sign-in, the generated run form, live list and run page, the DAG, logs,
 * cancel, scopes. Screenshots go to web/test-results/.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Page } from "playwright-core";
import { createToken, waitUntil } from "../e2e/harness.ts";
import { type BrowserPage, newPage, screenshot, useBrowserStack } from "./harness.ts";

const stack = useBrowserStack("sqlite");

/** What the page functions below touch (the tests compile without the DOM library). */
interface BrowserGlobals {
  document: { cookie: string; querySelectorAll(selector: string): { length: number } };
  localStorage: Record<string, string>;
  sessionStorage: Record<string, string>;
}

async function signIn(page: Page, baseUrl: string, token: string): Promise<void> {
  await page.goto(`${baseUrl}/runs`);
  await page.waitForURL(/\/sign-in/);
  await page.fill('input[name="token"]', token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(/\/runs/);
  await page.getByRole("heading", { name: "Flow runs" }).waitFor();
}

const runState = (page: Page) => page.getAttribute('[data-testid="run-page"]', "data-run-state");

async function waitForRunState(page: Page, state: string, timeout = 60_000): Promise<void> {
  await page.waitForSelector(`[data-testid="run-page"][data-run-state="${state}"]`, { timeout });
}

describe("web app in Chromium (sqlite)", () => {
  let tab: BrowserPage;
  before(async () => {
    tab = await newPage(stack.browser);
  });
  after(async () => {
    await tab?.close();
  });

  it("refuses a bad token and keeps the visitor on the sign-in page", async () => {
    const { page } = tab;
    await page.goto(`${stack.web.url}/`);
    await page.waitForURL(/\/sign-in/);
    await page.fill('input[name="token"]', "fry_not_a_real_token");
    await page.getByRole("button", { name: "Sign in" }).click();
    const alert = page.locator(".alert-error");
    await alert.waitFor();
    assert.match((await alert.textContent()) ?? "", /invalid token/);
    assert.match(page.url(), /\/sign-in/);
    // An agent token is refused too.
    const agentToken = (await createToken(stack.server, ["agent"], "agent-only")).secret;
    await page.fill('input[name="token"]', agentToken);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page
      .getByRole("alert")
      .filter({ hasText: /agent token cannot sign in/ })
      .waitFor();
    await screenshot(page, "sign-in-refused");
  });

  it("signs in with a session cookie the page cannot read", async () => {
    const { page, context } = tab;
    await signIn(page, stack.web.url, stack.server.adminToken);
    const cookies = await context.cookies(stack.server.url);
    const session = cookies.find((c) => c.name === "ferry_session");
    assert.ok(session, "the control plane set its session cookie");
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, "Lax");
    assert.equal(
      await page.evaluate(() => (globalThis as unknown as BrowserGlobals).document.cookie.includes("ferry_session")),
      false,
    );
    // The token itself is not kept anywhere the page's scripts can reach.
    const stored = await page.evaluate(() => {
      const g = globalThis as unknown as BrowserGlobals;
      return JSON.stringify({ ...g.localStorage, ...g.sessionStorage });
    });
    assert.equal(stored.includes(stack.server.adminToken), false);
  });

  it("starts the example pipeline from the form generated from its parameter schema and follows it live to COMPLETED", async () => {
    const { page } = tab;
    await page.goto(`${stack.web.url}/deployments/ml-pipeline`);
    const grid = page.locator('[name="grid"]');
    await grid.waitFor();
    // Validated before submit: a bad value names the field and sends nothing.
    await grid.fill("[0.1, 2]");
    await page.getByRole("button", { name: "Start run" }).click();
    await page.locator(".field-error").first().waitFor();
    assert.equal((await stack.server.api.runs.list.query({ deployment: "ml-pipeline" })).items.length, 0);
    await grid.fill("[0.1, 0.05, 0.02, 0.01]");
    await page.getByRole("button", { name: "Start run" }).click();
    await page.waitForURL(/\/runs\/[^/]+$/);
    const runId = page.url().split("/").at(-1) ?? "";
    await waitForRunState(page, "COMPLETED");

    // The DAG: ingest → clean → train ×4 (a group) → evaluate ×4 → pick/register, with edges.
    const train = page.locator('[data-testid="dag-node"][data-task-key="train"]');
    await train.waitFor();
    assert.equal(await train.getAttribute("data-kind"), "group");
    assert.equal(await train.getAttribute("data-total"), "4");
    assert.equal(await train.getAttribute("data-state"), "COMPLETED");
    const edges = await page.locator(".react-flow__edge").count();
    assert.ok(edges >= 4, `edges drawn: ${edges}`);
    const stored = await stack.server.api.runs.graph.query({ id: runId });
    assert.equal(edges, stored.edges.length, "every edge of the graph is drawn");
    // Logs arrived while it ran.
    await page
      .locator('[data-testid="log-line"]')
      .filter({ hasText: /ingested/ })
      .first()
      .waitFor();
    await screenshot(page, "run-page-completed");

    // Expanding the group shows the four task runs.
    await train.getByRole("button", { name: "expand" }).click();
    await page.waitForFunction(
      () =>
        (globalThis as unknown as BrowserGlobals).document.querySelectorAll(
          '[data-testid="dag-node"][data-task-key="train"][data-kind="task"]',
        ).length === 4,
    );

    // The list shows it, completed.
    await page.goto(`${stack.web.url}/runs`);
    await page.waitForSelector(`tr[data-run-id="${runId}"][data-state="COMPLETED"]`);
  });

  it("shows a run live: the list and the run page change without a reload while the DAG grows", async () => {
    const { page } = tab;
    await page.goto(`${stack.web.url}/runs`);
    await page.getByRole("heading", { name: "Flow runs" }).waitFor();
    await page.waitForSelector('[data-live="live"]');
    const { id } = await stack.server.api.runs.create.mutate({ deployment: "demo", parameters: { shards: 30, ms: 500 } });
    // Appears in the list, then turns RUNNING, without navigation.
    await page.waitForSelector(`tr[data-run-id="${id}"]`, { timeout: 15_000 });
    await page.waitForSelector(`tr[data-run-id="${id}"][data-state="RUNNING"]`, { timeout: 30_000 });
    await screenshot(page, "runs-list");

    // A second tab keeps the list open: it must reach COMPLETED on its own.
    const list = await tab.context.newPage();
    await list.goto(`${stack.web.url}/runs`);
    await list.waitForSelector(`tr[data-run-id="${id}"]`);
    await page.click(`tr[data-run-id="${id}"] a[href="/runs/${id}"]`);
    await waitForRunState(page, "RUNNING");
    const group = page.locator('[data-testid="dag-node"][data-task-key="process-shard"]');
    await group.waitFor({ timeout: 30_000 });
    // Mid-run: part of the group done, the rest running; the page follows.
    await waitUntil("some shards done while others run", async () => {
      const counts = await stack.server.api.runs.graph.query({ id });
      const g = counts.nodes.find((n) => n.taskKey === "process-shard");
      return !!g && (g.counts.COMPLETED ?? 0) >= 6 && (g.counts.COMPLETED ?? 0) < 30;
    });
    await page.waitForTimeout(700); // let the page draw the latest tick
    await screenshot(page, "run-page-mid-run");
    await waitForRunState(page, "COMPLETED");
    await page.waitForSelector(
      '[data-testid="dag-node"][data-task-key="process-shard"][data-state="COMPLETED"][data-total="30"]',
    );
    await page.locator('[data-testid="dag-node"][data-task-key="summarise"]').waitFor();
    await page
      .locator('[data-testid="log-line"]')
      .filter({ hasText: /summarised/ })
      .first()
      .waitFor();
    await list.waitForSelector(`tr[data-run-id="${id}"][data-state="COMPLETED"]`, { timeout: 15_000 });
    await list.close();

    // The timeline lists the task runs.
    await page.getByRole("tab", { name: "Timeline" }).click();
    await page.waitForSelector('[data-testid="timeline"][data-total="33"]');
    await screenshot(page, "run-page-timeline");
  });

  it("opens a failed task run with its error, stack trace and lineage, and filters logs", async () => {
    const { page } = tab;
    const { id } = await stack.server.api.runs.create.mutate({ deployment: "broken" });
    await page.goto(`${stack.web.url}/runs/${id}`);
    await waitForRunState(page, "FAILED");
    await page.locator('[data-testid="dag-node"][data-task-key="check-shards"]').click();
    const drawer = page.getByTestId("task-drawer");
    await drawer.waitFor();
    const error = drawer.getByTestId("task-error").first();
    await error.waitFor();
    const text = (await error.textContent()) ?? "";
    assert.match(text, /shard 1 has a negative row count/);
    assert.match(text, /\n\s+at /, "the stack trace is shown");
    await drawer
      .getByTestId("lineage")
      .getByRole("button", { name: /prepare/ })
      .waitFor();
    await screenshot(page, "task-drawer-failed");
    await page.keyboard.press("Escape");

    // Level filter and search on the run's logs.
    const lines = page.locator('[data-testid="logs"]').first().locator('[data-testid="log-line"]');
    await lines
      .filter({ hasText: /preparing 2 shards/ })
      .first()
      .waitFor();
    await page.getByLabel("Search logs").first().fill("no such text anywhere");
    await page.getByLabel("Search logs").first().press("Enter");
    await page.getByText("No lines match.").first().waitFor();

    // Retry: the same run runs again as attempt 2 (and fails the same way).
    await page.getByRole("button", { name: "Retry" }).click();
    await waitUntil("the retried run to fail again", async () => {
      const r = await stack.server.api.runs.get.query({ id });
      return r.attempt === 2 && r.stateType === "FAILED";
    });
    await waitForRunState(page, "FAILED");
    await page.locator(".fact").filter({ hasText: "Attempt" }).getByText("2").waitFor();
  });

  it("cancels a long run from the UI", async () => {
    const { page } = tab;
    const { id } = await stack.server.api.runs.create.mutate({ deployment: "sleepy", parameters: { ms: 120_000 } });
    await page.goto(`${stack.web.url}/runs/${id}`);
    await waitForRunState(page, "RUNNING", 30_000);
    await page.getByRole("button", { name: "Cancel run" }).click();
    await waitForRunState(page, "CANCELLED", 30_000);
    assert.equal((await stack.server.api.runs.get.query({ id })).stateType, "CANCELLED");
    assert.equal(await runState(page), "CANCELLED");
  });

  it("a read token sees runs but no cancel button, and the API refuses its mutation", async () => {
    const readToken = (await createToken(stack.server, ["read"], "viewer")).secret;
    const viewer = await newPage(stack.browser, { colorScheme: "dark" });
    try {
      const { page } = viewer;
      await signIn(page, stack.web.url, readToken);
      const { id } = await stack.server.api.runs.create.mutate({ deployment: "sleepy", parameters: { ms: 60_000 } });
      await page.goto(`${stack.web.url}/runs/${id}`);
      await waitForRunState(page, "RUNNING", 30_000);
      assert.equal(await page.getByRole("button", { name: "Cancel run" }).count(), 0);
      // The session cookie goes with a hand-made call from the page; the control plane refuses it.
      const answer = await page.evaluate(
        async ({ api, runId }) => {
          const res = await fetch(`${api}/trpc/runs.cancel`, {
            method: "POST",
            credentials: "include",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ id: runId }),
          });
          return { status: res.status, body: await res.text() };
        },
        { api: stack.server.url, runId: id },
      );
      assert.equal(answer.status, 403, answer.body);
      assert.match(answer.body, /write scope/);
      assert.equal((await stack.server.api.runs.get.query({ id })).stateType, "RUNNING");
      await screenshot(page, "run-page-read-only-dark");
      await page.goto(`${stack.web.url}/runs`);
      await page.getByRole("heading", { name: "Flow runs" }).waitFor();
      await screenshot(page, "runs-list-dark");
      await stack.server.api.runs.cancel.mutate({ id });
    } finally {
      await viewer.close();
    }
  });

  it("lists deployments, flows and agents, and manages API tokens", async () => {
    const { page } = tab;
    await page.goto(`${stack.web.url}/deployments`);
    await page.getByRole("link", { name: "ml-pipeline" }).first().waitFor();
    await screenshot(page, "deployments");
    await page.goto(`${stack.web.url}/deployments/ml-pipeline`);
    await page.locator('[name="grid"]').waitFor();
    // A schedule added from the page: listed with its next slots; pausing greys it.
    const schedules = page.getByTestId("schedules");
    await schedules.getByRole("button", { name: "Add schedule" }).click();
    await schedules.locator('input[name="cron"]').fill("0 3 * * *");
    await schedules.locator('input[name="timezone"]').fill("Europe/Paris");
    await schedules.locator("form").getByRole("button", { name: "Add schedule" }).click();
    const scheduleRow = schedules.locator("tr[data-schedule]").filter({ hasText: "0 3 * * * (Europe/Paris)" });
    await scheduleRow.waitFor();
    const [created] = await stack.server.api.schedules.list.query({ deployment: "ml-pipeline" });
    assert.equal(created?.cron, "0 3 * * *");
    assert.equal(created?.nextSlots.length, 5);
    await screenshot(page, "deployment-run-form");
    await scheduleRow.getByRole("button", { name: "Pause" }).click();
    await scheduleRow.getByRole("button", { name: "Resume" }).waitFor();
    assert.equal((await stack.server.api.schedules.list.query({ deployment: "ml-pipeline" }))[0]?.active, false);
    // A backfill shows on its deployment's page and completes there, live.
    const backfill = await stack.server.api.backfills.create.mutate({
      deployment: "sleepy",
      from: "2026-01-01T00:00:00Z",
      to: "2026-01-01T05:00:00Z",
      intervalSeconds: 3600,
      parameters: { ms: 300 },
      maxActive: 2,
    });
    const trig = await stack.server.api.triggers.create.mutate({
      deployment: "sleepy",
      trigger: { kind: "run_state", source: "fanout", states: ["COMPLETED"], mapping: { ms: "run.parameters.n" } },
    });
    await page.goto(`${stack.web.url}/deployments/sleepy`);
    await page.locator(`tr[data-trigger="${trig.id}"]`).getByText("a run of fanout is COMPLETED").waitFor();
    const bfRow = page.locator(`tr[data-backfill="${String(backfill.backfill?.id)}"]`);
    await bfRow.waitFor();
    await page
      .locator(`tr[data-backfill="${String(backfill.backfill?.id)}"][data-status="COMPLETED"]`)
      .waitFor({ timeout: 60_000 });
    await bfRow.getByText("6 of 6 slots").waitFor();
    await screenshot(page, "deployment-backfill");
    // Alerts: a failure notified to a channel that is down shows in the history as pending, with its error.
    // A host that never resolves (.invalid): the control plane refuses private addresses by default.
    await stack.server.api.notifications.createChannel.mutate({ kind: "webhook", name: "down", url: "http://down.invalid/hook" });
    await stack.server.api.notifications.createRule.mutate({ channel: "down", deployment: "failing", events: ["FAILED"] });
    await stack.server.api.runs.create.mutate({ deployment: "failing" });
    await page.goto(`${stack.web.url}/notifications`);
    await page.locator('tr[data-delivery][data-status="PENDING"]').first().waitFor({ timeout: 30_000 });
    await page.locator('tr[data-channel="down"]').waitFor();
    await screenshot(page, "alerts");
    await page.goto(`${stack.web.url}/flows`);
    await page.getByRole("link", { name: "demo" }).first().waitFor();
    await page.goto(`${stack.web.url}/agents`);
    const agent = page.locator('tr[data-agent="agent-browser"]');
    await agent.getByText("Online").waitFor();
    await screenshot(page, "agents");

    // Tokens: created with the secret shown once, then revoked; the revoked token is refused.
    await page.goto(`${stack.web.url}/tokens`);
    await page.fill('input[name="name"]', "ci-reader");
    await page.check('input[name="scopes"][value="read"]');
    await page.getByRole("button", { name: "Create token" }).click();
    const secret = (await page.locator("[data-secret]").textContent())?.trim() ?? "";
    assert.match(secret, /^fry_/);
    assert.equal(
      (await fetch(`${stack.server.url}/trpc/auth.whoami`, { headers: { authorization: `Bearer ${secret}` } })).status,
      200,
    );
    await screenshot(page, "tokens-created");
    await page.getByRole("button", { name: "Done" }).click();
    assert.equal(await page.locator("[data-secret]").count(), 0, "the secret is shown once");
    const row = page.locator('tr[data-token="ci-reader"]');
    await row.getByRole("button", { name: "Revoke" }).click();
    await row.getByRole("button", { name: "Yes" }).click();
    await row.getByText("Revoked").waitFor();
    assert.equal(
      (await fetch(`${stack.server.url}/trpc/auth.whoami`, { headers: { authorization: `Bearer ${secret}` } })).status,
      401,
    );
  });

  it("signing out ends the session on the server", async () => {
    const { page, context } = tab;
    await page.goto(`${stack.web.url}/runs`);
    const cookie = (await context.cookies(stack.server.url)).find((c) => c.name === "ferry_session");
    assert.ok(cookie);
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.waitForURL(/\/sign-in/);
    // The old cookie value no longer works, even if someone kept it.
    const res = await fetch(`${stack.server.url}/trpc/auth.whoami`, { headers: { cookie: `ferry_session=${cookie.value}` } });
    assert.equal(res.status, 401);
  });

  it("had no uncaught errors in the page", () => {
    const crashes = tab.errors.filter((e) => e.kind === "page");
    assert.deepEqual(crashes, []);
  });
});
