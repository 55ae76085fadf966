/**
 * `npm run bench`: the whole benchmark suite, one script after another (never two at once, so
 * they do not share the 2 cores), each printing JSON; the results are printed together and kept
 * in bench-results/<time>.json (git-ignored). `npm run bench -- latency cluster` runs some.
 *
 * - latency  (scripts/bench.ts):         dispatch and start latency (warm and cold), a 1,000-task map
 * - scale    (scripts/bench-scale.ts):   mapped no-op tasks at 1,000 / 10,000 / 100,000
 * - cluster  (scripts/bench-cluster.ts): dispatch across replicas, throughput with 1/10/100 agents,
 *                                        1,000 idle agents, log ingestion
 * bench:web and bench:backfill (issues 4 and 5) are run on their own.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { REPO } from "../tests/e2e/harness.ts";

const PARTS = { latency: "bench.ts", scale: "bench-scale.ts", cluster: "bench-cluster.ts" } as const;
const Part = z.enum(Object.keys(PARTS) as [keyof typeof PARTS, ...(keyof typeof PARTS)[]]);

const asked = z.array(Part).safeParse(process.argv.slice(2));
if (!asked.success) {
  process.stderr.write(`usage: npm run bench [-- ${Object.keys(PARTS).join(" | ")} …]\n`);
  process.exit(2);
}
const parts = asked.data.length ? asked.data : Part.options;

const results: Record<string, unknown> = {};
let failed = false;
for (const part of parts) {
  const script = join(REPO, "scripts", PARTS[part]);
  if (!existsSync(script)) {
    results[part] = { skipped: `${PARTS[part]} is missing` };
    continue;
  }
  process.stderr.write(`== bench ${part} (${PARTS[part]})\n`);
  const started = Date.now();
  const run = spawnSync(process.execPath, ["--import", "tsx", script], {
    cwd: REPO,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    maxBuffer: 64 * 1024 * 1024,
  });
  const seconds = Math.round((Date.now() - started) / 100) / 10;
  const json = run.stdout.slice(run.stdout.indexOf("{"));
  try {
    results[part] = { seconds, ...(JSON.parse(json) as Record<string, unknown>) };
  } catch {
    results[part] = { seconds, error: `exit ${run.status}: no JSON`, output: run.stdout.slice(-2000) };
  }
  if (run.status !== 0) failed = true;
}

const out = { at: new Date().toISOString(), results };
mkdirSync(join(REPO, "bench-results"), { recursive: true });
const file = join(REPO, "bench-results", `${out.at.replace(/[:.]/g, "-")}.json`);
writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
process.stderr.write(`saved ${file}\n`);
process.exit(failed ? 1 : 0);
