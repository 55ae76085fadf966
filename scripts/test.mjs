// `npm test`: the unit tests beside the code, the end-to-end suites (real `ferry` processes
// against SQLite and PostgreSQL), the adversarial multi-tenant suites (tests/security), the
// browser suites (the built web app in Chromium against a real control plane and agent), then
// the chaos suite (fault injection). `npm test -- unit`, `-- e2e`, `-- security`, `-- browser`
// or `-- chaos` runs one part; further arguments go to node's test
// runner (e.g. --test-name-pattern=cancel).
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const SKIP = new Set(["node_modules", ".git", ".next", "generated", ".tsbuild", ".build", ".ferry", "test-results"]);

function find(dir, out = []) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (SKIP.has(entry.name)) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) find(path, out);
    else if (entry.name.endsWith(".test.ts")) out.push(relative(root, path));
  }
  return out;
}

const args = process.argv.slice(2);
const part = ["unit", "e2e", "security", "browser", "chaos"].includes(args[0]) ? args.shift() : "all";
const files = find(root).sort();
const e2e = files.filter((f) => f.endsWith(".e2e.test.ts"));
const browser = files.filter((f) => f.endsWith(".browser.test.ts"));
const chaos = files.filter((f) => f.endsWith(".chaos.test.ts"));
const security = files.filter((f) => f.endsWith(".security.test.ts"));
const unit = files.filter(
  (f) => ![".e2e.test.ts", ".security.test.ts", ".browser.test.ts", ".chaos.test.ts"].some((s) => f.endsWith(s)),
);

function run(label, list, concurrency) {
  if (!list.length) return 0;
  process.stdout.write(`\n== ${label}: ${list.length} files ==\n`);
  const result = spawnSync(
    process.execPath,
    ["--import", "tsx", "--test", `--test-concurrency=${concurrency}`, "--test-reporter=spec", ...args, ...list],
    { cwd: root, stdio: "inherit", env: { ...process.env, FERRY_LOG_LEVEL: process.env.FERRY_LOG_LEVEL ?? "warn" } },
  );
  return result.status ?? 1;
}

let status = 0;
if (part === "all" || part === "unit") status ||= run("unit tests", unit, 2);
// End-to-end, browser and chaos files start several processes each; one file at a time keeps
// a 2-core CI machine honest (and the chaos timings meaningful).
if (part === "all" || part === "e2e") status = run("end-to-end tests", e2e, 1) || status;
if (part === "all" || part === "security") status = run("security tests", security, 1) || status;
if (part === "all" || part === "browser") status = run("browser tests", browser, 1) || status;
if (part === "all" || part === "chaos") status = run("chaos tests", chaos, 1) || status;
process.exit(status);
