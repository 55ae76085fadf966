// Generates one Prisma client per provider from the single schema.prisma.
//
// Prisma 7's client needs no engine, but `prisma generate` refuses to start without
// the schema-engine binary, which cannot be downloaded on an air-gapped machine.
// Pointing PRISMA_SCHEMA_ENGINE_BINARY at any existing file satisfies the check.
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const schema = readFileSync(join(root, "schema.prisma"), "utf8");
const prismaCli = createRequire(import.meta.url).resolve("prisma/build/index.js");
const engine = process.env.PRISMA_SCHEMA_ENGINE_BINARY ?? process.execPath;

for (const provider of ["sqlite", "postgresql"]) {
  const text = schema
    .replace(/provider\s*=\s*"sqlite"/, `provider = "${provider}"`)
    .replace(/output\s*=\s*"[^"]*"/, `output = "../generated/${provider}"`);
  if (!text.includes(`provider = "${provider}"`)) throw new Error(`could not set provider ${provider}`);
  const dir = join(root, ".build");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `schema.${provider}.prisma`);
  writeFileSync(file, text);
  execFileSync(process.execPath, [prismaCli, "generate", "--schema", file], {
    cwd: root,
    stdio: ["ignore", "inherit", "inherit"],
    env: { ...process.env, PRISMA_SCHEMA_ENGINE_BINARY: engine, PRISMA_HIDE_UPDATE_MESSAGE: "1", CHECKPOINT_DISABLE: "1" },
  });
}
