import assert from "node:assert/strict";
import { test } from "node:test";
import { flowEnvironment, flowEnvProblems } from "./flow-env.ts";

const agentEnv = {
  PATH: "/usr/bin",
  HOME: "/home/ferry",
  LC_ALL: "C.UTF-8",
  FERRY_API_TOKEN: "fry_secret",
  FERRY_API_URL: "http://cp",
  AWS_SECRET_ACCESS_KEY: "aws-secret",
  PIPELINE_STAGE: "prod",
  PIPELINE_BUCKET: "s3://b",
  FERRY_PIPELINE_X: "no",
};

test("by default a flow gets the allow-list and the locale, nothing else", () => {
  assert.deepEqual(flowEnvironment(agentEnv), { PATH: "/usr/bin", HOME: "/home/ferry", LC_ALL: "C.UTF-8" });
});

test("the operator adds by name, by value and by prefix; FERRY_* never passes", () => {
  const env = flowEnvironment(agentEnv, {
    pass: ["AWS_SECRET_ACCESS_KEY", "FERRY_API_TOKEN"],
    set: { STAGE: "prod", FERRY_API_TOKEN: "x" },
    prefixes: ["PIPELINE_", "FERRY"],
  });
  assert.equal(env.AWS_SECRET_ACCESS_KEY, "aws-secret");
  assert.equal(env.STAGE, "prod");
  assert.equal(env.PIPELINE_STAGE, "prod");
  assert.equal(env.PIPELINE_BUCKET, "s3://b");
  for (const name of Object.keys(env)) assert.ok(!name.startsWith("FERRY_"), name);
});

test("reserved names, bad names and an empty prefix are refused", () => {
  assert.deepEqual(flowEnvProblems({ pass: ["AWS_PROFILE"], set: { A: "1" }, prefixes: ["PIPELINE_"] }), []);
  assert.equal(flowEnvProblems({ pass: ["FERRY_API_TOKEN"] }).length, 1);
  assert.equal(flowEnvProblems({ set: { "bad name": "1" } }).length, 1);
  assert.equal(flowEnvProblems({ prefixes: [""] }).length, 1);
});
