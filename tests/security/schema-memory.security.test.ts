/**
 * Many distinct parameter schemas keep the control plane's memory bounded (issue 12, item 4):
 * before the fix every compiled schema stayed in Ajv's registry for good (1,500 schemas took the
 * process from 220 MB to 1.4 GB). Here 5,000 distinct schemas across five workspaces are
 * deployed and each is checked by runs.create (one in ten creates a run), through the real API of a real control-plane process, and the
 * process's resident set is read from /proc before, during and after.
 *
 * SQLite only: what is measured is the validator cache inside the control-plane process, which
 * does not depend on the database, and on PostgreSQL the same load takes about twice as long.
 * FERRY_SCHEMA_COUNT=<n> changes the number of schemas (e.g. to compare with older code).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { createTenant, type Tenant, tenantOf, useTenants } from "./tenants.ts";

const SCHEMAS = Number(process.env.FERRY_SCHEMA_COUNT ?? 5000);
const WORKSPACES = 5;
/** Deployment names reused per workspace: each redeploy brings a new schema, the database stays small. */
const NAMES = 25;
const CONCURRENCY = 4;
const MAX_GROWTH_MB = 300;
/** Growth allowed over the second half of the load: a bounded cache has stopped growing by then. */
const MAX_LATE_GROWTH_MB = 40;
/**
 * The control plane runs with a heap cap, as an operator would give it in a container. Without
 * one, V8 lets garbage pile up for as long as it likes (RSS then says how lazily it collects,
 * not what is kept: +300 MB here on either code); with one, RSS follows what is retained, and a
 * leak shows as steady growth (the old code: +25 MB per 1,000 of these schemas, to the end).
 */
process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ""} --max-old-space-size=256`.trim();

/** Resident and peak-resident set of a process, in MB, from /proc/<pid>/status. */
function memoryOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN);
  return { rss: kb("VmRSS") / 1024, peak: kb("VmHWM") / 1024 };
}

/** The i-th schema: distinct text, a realistic shape (a few typed fields, two patterns, a $defs ref). */
function schemaOf(i: number): Record<string, unknown> {
  return {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    type: "object",
    $defs: { tag: { type: "string", pattern: `^t${i}-[a-z]{1,12}$` } },
    properties: {
      [`dataset_${i}`]: { type: "string", pattern: `^s3://bucket-${i % 97}/[a-z0-9/_-]+$`, maxLength: 500 },
      lr: { type: "number", exclusiveMinimum: 0, maximum: 1 },
      epochs: { type: "integer", minimum: 1, maximum: 1000 + i },
      tags: { type: "array", items: { $ref: "#/$defs/tag" }, maxItems: 20 },
      mode: { enum: ["fast", "full", `m${i}`] },
    },
    required: [`dataset_${i}`],
    additionalProperties: false,
  };
}

function paramsOf(i: number): Record<string, unknown> {
  return { [`dataset_${i}`]: `s3://bucket-${i % 97}/x/y_${i}`, lr: 0.01, epochs: 3, tags: [`t${i}-abc`], mode: "fast" };
}

describe("many distinct parameter schemas (sqlite)", () => {
  const tenants: Tenant[] = [];
  const t = useTenants("sqlite", undefined, async (t) => {
    tenants.push(t.victim, t.attacker);
    for (let w = tenants.length; w < WORKSPACES; w++) tenants.push(await createTenant(t, `tenant-${w}`));
  });

  test(`${SCHEMAS} distinct schemas keep the control plane's RSS bounded`, { timeout: 600_000 }, async () => {
    const pid = t.server.proc.child.pid;
    assert.ok(pid, "the control plane's pid");
    const one = async (i: number) => {
      const tenant = tenants[i % WORKSPACES] ?? tenantOf(t.server.url, t.server.adminToken);
      const name = `d${Math.floor(i / WORKSPACES) % NAMES}`;
      await tenant.api.deployments.upsert.mutate({
        name,
        flowName: name,
        entrypoint: "flows/train.ts",
        paramsSchema: schemaOf(i),
      });
      // Every tenth run is created; the others are refused by the validator (lr over its maximum),
      // which compiles or looks up the schema just the same but writes nothing, so the load stays fast.
      if (i % 10 === 0) {
        const run = await tenant.api.runs.create.mutate({ deployment: name, parameters: paramsOf(i) });
        assert.equal(run.stateType, "SCHEDULED");
        return;
      }
      await assert.rejects(
        tenant.api.runs.create.mutate({ deployment: name, parameters: { ...paramsOf(i), lr: 5 } }),
        /lr: must be <= 1/,
      );
    };
    // Warm-up, so "before" includes the modules and caches any control plane has once it has served a few runs.
    for (let i = 0; i < 2 * WORKSPACES; i++) await one(SCHEMAS + i);
    const before = memoryOf(pid);
    const started = performance.now();
    let next = 0;
    let highest = before.rss;
    const samples: string[] = [];
    const load = (end: number) =>
      Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (next < end) {
            const i = next++;
            await one(i);
            if (i % 250 === 0) {
              const now = memoryOf(pid).rss;
              highest = Math.max(highest, now);
              if (i % 1000 === 0) samples.push(`${i}: ${now.toFixed(0)}`);
            }
          }
        }),
      );
    await load(Math.floor(SCHEMAS / 2));
    const middle = memoryOf(pid);
    await load(SCHEMAS);
    const after = memoryOf(pid);
    const seconds = (performance.now() - started) / 1000;
    process.stdout.write(
      `# ${SCHEMAS} schemas in ${seconds.toFixed(0)} s: RSS before ${before.rss.toFixed(0)} MB, halfway ${middle.rss.toFixed(0)} MB, after ${after.rss.toFixed(0)} MB, ` +
        `highest sampled ${highest.toFixed(0)} MB, peak (VmHWM) ${after.peak.toFixed(0)} MB; samples (schemas: MB) ${samples.join(", ")}\n`,
    );
    assert.ok(
      after.rss - middle.rss < MAX_LATE_GROWTH_MB,
      `RSS grew by ${(after.rss - middle.rss).toFixed(0)} MB over the second half`,
    );
    assert.ok(after.rss - before.rss < MAX_GROWTH_MB, `RSS grew by ${(after.rss - before.rss).toFixed(0)} MB`);
    assert.ok(
      after.peak - before.rss < MAX_GROWTH_MB + 100,
      `peak RSS ${(after.peak - before.rss).toFixed(0)} MB over the start`,
    );
  });
});
