import assert from "node:assert/strict";
import { test } from "node:test";
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { pino } from "pino";
import { unhandledHttpError } from "./http-errors.ts";

function app(lines: string[]): Hono {
  const log = pino({ base: { service: "control-plane" } }, { write: (line: string) => lines.push(line) });
  const hono = new Hono();
  hono.onError(unhandledHttpError(log));
  hono.get("/boom", () => {
    throw new Error("disk on fire");
  });
  hono.get("/teapot", () => {
    throw new HTTPException(418, { message: "short and stout" });
  });
  return hono;
}

test("an error thrown by a route is one JSON log line with the method and path; the answer hides it", async () => {
  const lines: string[] = [];
  const res = await app(lines).request("/boom?token=secret", { headers: { authorization: "Bearer fry_secret" } });
  assert.equal(res.status, 500);
  assert.deepEqual(await res.json(), { error: "internal server error" });
  assert.equal(lines.length, 1);
  const entry = JSON.parse(lines[0] ?? "") as Record<string, unknown> & { err: { message: string } };
  assert.equal(entry.level, 50);
  assert.equal(typeof entry.time, "number");
  assert.equal(entry.msg, "unhandled error in an HTTP route");
  assert.equal(entry.method, "GET");
  assert.equal(entry.path, "/boom");
  assert.equal(entry.err.message, "disk on fire");
  assert.doesNotMatch(lines[0] ?? "", /fry_secret|token=secret/, "no credentials in the log");
});

test("an HTTPException keeps its status and is not logged as a failure", async () => {
  const lines: string[] = [];
  const res = await app(lines).request("/teapot");
  assert.equal(res.status, 418);
  assert.equal(await res.text(), "short and stout");
  assert.deepEqual(lines, []);
});
