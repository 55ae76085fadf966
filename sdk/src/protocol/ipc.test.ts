import assert from "node:assert/strict";
import { test } from "node:test";
import { PROTOCOL_VERSION } from "./common.ts";
import { FromFlowProcess, ToFlowProcess } from "./ipc.ts";
import { validateMessage } from "./parse.ts";

const v = PROTOCOL_VERSION;
const file = { path: "/srv/flows/a.ts", size: 10, mtimeMs: 1.5, ctimeMs: 1.5, ino: 42 };

test("prepare: an entrypoint is required; maxRuns defaults to 1 and must be a whole number from 1", () => {
  const ok = validateMessage(ToFlowProcess, { type: "prepare", v, entrypoint: "/srv/flows/a.ts" });
  assert.ok(ok.ok && ok.value.type === "prepare" && ok.value.maxRuns === 1);
  for (const bad of [
    { type: "prepare", v },
    { type: "prepare", v, entrypoint: "" },
    { type: "prepare", v, entrypoint: "/a.ts", maxRuns: 0 },
    { type: "prepare", v, entrypoint: "/a.ts", maxRuns: 1.5 },
    { type: "prepare", v, entrypoint: "/a.ts", maxRuns: "2" },
  ])
    assert.equal(validateMessage(ToFlowProcess, bad).ok, false, JSON.stringify(bad));
});

test("prepared: files carry a path and numeric stamps; an error is a string", () => {
  assert.ok(validateMessage(FromFlowProcess, { type: "prepared", v, files: [file] }).ok);
  assert.ok(validateMessage(FromFlowProcess, { type: "prepared", v, files: [], error: "could not import" }).ok);
  for (const bad of [
    { type: "prepared", v },
    { type: "prepared", v, files: [{ ...file, path: "" }] },
    { type: "prepared", v, files: [{ ...file, size: -1 }] },
    { type: "prepared", v, files: [{ ...file, mtimeMs: "yesterday" }] },
    { type: "prepared", v, files: [], error: 3 },
  ])
    assert.equal(validateMessage(FromFlowProcess, bad).ok, false, JSON.stringify(bad));
});

test("finished: reusable is an optional boolean", () => {
  const base = { type: "finished", v, state: { type: "COMPLETED", name: "Completed" } };
  assert.ok(validateMessage(FromFlowProcess, base).ok);
  assert.ok(validateMessage(FromFlowProcess, { ...base, reusable: true }).ok);
  assert.equal(validateMessage(FromFlowProcess, { ...base, reusable: "yes" }).ok, false);
});
