import assert from "node:assert/strict";
import { test } from "node:test";
import { hashSecret, newSecret, parseScopes, scopeAllows, TOKEN_PREFIX } from "./tokens.ts";

test("secrets are prefixed, random, and only their hash is derived", () => {
  const a = newSecret();
  const b = newSecret();
  assert.ok(a.secret.startsWith(TOKEN_PREFIX));
  assert.notEqual(a.secret, b.secret);
  assert.equal(a.hash, hashSecret(a.secret));
  assert.ok(a.secret.startsWith(a.prefix));
  assert.ok(!a.hash.includes(a.secret));
});

test("scopes form a hierarchy except agent", () => {
  assert.ok(scopeAllows(["admin"], "write"));
  assert.ok(scopeAllows(["write"], "read"));
  assert.ok(!scopeAllows(["read"], "write"));
  assert.ok(!scopeAllows(["admin"], "agent"));
  assert.ok(!scopeAllows(["agent"], "read"));
  assert.deepEqual(parseScopes("read, agent,bogus"), ["read", "agent"]);
});
