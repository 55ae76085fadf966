import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { resolveEntrypoint } from "./flow-process.ts";

describe("resolveEntrypoint", () => {
  const base = mkdtempSync(join(tmpdir(), "ferry-entry-"));
  const work = join(base, "work");
  const outside = join(base, "outside");
  mkdirSync(join(work, "flows"), { recursive: true });
  mkdirSync(outside);
  writeFileSync(join(work, "flows", "ok.ts"), "export {};\n");
  writeFileSync(join(outside, "secret.ts"), "export {};\n");
  // A deployment names paths; a symbolic link inside the work directory must not lead out of it.
  symlinkSync(join(outside, "secret.ts"), join(work, "flows", "link.ts"));
  symlinkSync(outside, join(work, "escape"));
  symlinkSync(join(work, "flows", "ok.ts"), join(work, "flows", "inside.ts"));
  after(() => rmSync(base, { recursive: true, force: true }));

  it("keeps entrypoints inside the work directory, links that stay inside included", () => {
    assert.equal(resolveEntrypoint(work, "flows/ok.ts"), join(work, "flows", "ok.ts"));
    assert.equal(resolveEntrypoint(work, "./flows/../flows/ok.ts"), join(work, "flows", "ok.ts"));
    assert.equal(resolveEntrypoint(work, "flows/inside.ts"), join(work, "flows", "inside.ts"));
    // Not there (yet): the run fails to load it, nothing outside is reached.
    assert.equal(resolveEntrypoint(work, "flows/missing.ts"), join(work, "flows", "missing.ts"));
  });

  it("refuses paths and links that leave it", () => {
    for (const entrypoint of [
      "../outside/secret.ts",
      "/etc/passwd",
      "flows/link.ts",
      "escape/secret.ts",
      join(outside, "secret.ts"),
    ]) {
      assert.equal(resolveEntrypoint(work, entrypoint), undefined, entrypoint);
    }
  });
});
