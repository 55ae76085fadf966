import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DEFAULT_NEXT, safeNext } from "./safe-next.ts";

const ORIGIN = "https://ferry.example";

describe("safeNext", () => {
  it("keeps paths of this app, with their query and fragment", () => {
    assert.equal(safeNext("/runs/0192-abc?tab=logs#l3", ORIGIN), "/runs/0192-abc?tab=logs#l3");
    assert.equal(safeNext("/deployments", ORIGIN), "/deployments");
  });

  it("falls back to the runs list without a usable next", () => {
    for (const next of [null, undefined, "", "runs", "https://ferry.example/runs", "/sign-in?next=/runs", "/".repeat(3000)]) {
      assert.equal(safeNext(next, ORIGIN), DEFAULT_NEXT, String(next));
    }
  });

  it("refuses every spelling that a browser reads as another host", () => {
    const evil = [
      "//evil.example",
      "/\\evil.example",
      "/\\/evil.example",
      "\\\\evil.example",
      "/\t/evil.example",
      "/\n/evil.example",
      "/\r\n/evil.example",
      "/ /evil.example".replace(" ", "\t"),
      "/\\\tevil.example",
      "///evil.example",
      "/\\@evil.example",
      "javascript:alert(1)",
      "/%2F%2Fevil.example",
    ];
    for (const next of evil) {
      const target = safeNext(next, ORIGIN);
      assert.equal(new URL(target, ORIGIN).origin, ORIGIN, JSON.stringify(next));
    }
    assert.equal(safeNext("/\\evil.example", ORIGIN), DEFAULT_NEXT);
    assert.equal(safeNext("/\t/evil.example", ORIGIN), DEFAULT_NEXT);
  });
});
