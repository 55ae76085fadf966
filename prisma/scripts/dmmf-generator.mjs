// A minimal Prisma generator that writes the schema's DMMF datamodel (models, fields,
// relations, indexes, as parsed by Prisma itself) to the generator's `output` file as JSON.
// src/dmmf.ts runs it through `prisma generate` so tests can compare the migrated database
// with schema.prisma without `@prisma/internals` (not installed) or a hand-written parser.
//
// Protocol (what @prisma/generator-helper implements): Prisma sends JSON-RPC requests on
// stdin, one per line, and reads the responses from stderr.
import { writeFileSync } from "node:fs";
import { createInterface } from "node:readline";

function reply(id, result) {
  process.stderr.write(`${JSON.stringify({ jsonrpc: "2.0", id, result })}\n`);
}

function fail(id, error) {
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`${JSON.stringify({ jsonrpc: "2.0", id, error: { code: -32000, message, data: null } })}\n`);
}

createInterface({ input: process.stdin, crlfDelay: Number.POSITIVE_INFINITY }).on("line", (line) => {
  const message = JSON.parse(line);
  try {
    if (message.method === "getManifest") {
      reply(message.id, { manifest: { prettyName: "DMMF (JSON)", requiresEngines: [] } });
    } else if (message.method === "generate") {
      const output = message.params.generator.output?.value;
      if (!output) throw new Error("the dmmf generator needs an `output` file");
      writeFileSync(output, JSON.stringify({ version: message.params.version, datamodel: message.params.dmmf.datamodel }));
      reply(message.id, null);
    } else {
      fail(message.id, new Error(`unknown method ${message.method}`));
    }
  } catch (error) {
    fail(message.id, error);
  }
});
