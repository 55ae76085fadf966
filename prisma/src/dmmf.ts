// The DMMF datamodel of schema.prisma, as Prisma itself parses it, for tests that compare the
// migrated database with the schema (schema-match.test.ts).
//
// Offline there is no `@prisma/internals` (getDMMF) and no standalone `@prisma/prisma-schema-wasm`;
// the datamodel embedded in the generated client lacks nullability and indexes. `prisma generate`
// does compute the full DMMF and hands it to every generator, so this runs it with a tiny custom
// generator (scripts/dmmf-generator.mjs) that writes the datamodel to a JSON file.

import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { Provider } from "./database.ts";

export interface DmmfFieldDefault {
  name: string;
  args: unknown[];
}

export interface DmmfField {
  name: string;
  /** "scalar", "object" (relation), "enum" or "unsupported". */
  kind: string;
  /** Column name when the field has `@map`. */
  dbName?: string | null;
  isList: boolean;
  isRequired: boolean;
  isUnique: boolean;
  isId: boolean;
  isUpdatedAt: boolean;
  hasDefaultValue: boolean;
  /** Scalar type (String, Int, DateTime, ...), enum name or related model name. */
  type: string;
  /** `@db.X(args)` as [X, args], or null. */
  nativeType?: [string, string[]] | null;
  /** A function default (`now()`, `autoincrement()`, `dbgenerated("...")`) or a literal. */
  default?: DmmfFieldDefault | string | number | boolean | unknown[];
  relationName?: string;
  relationFromFields?: string[];
  relationToFields?: string[];
  /** Absent when the schema does not say; Prisma's defaults then apply. */
  relationOnDelete?: string;
  relationOnUpdate?: string;
}

export interface DmmfModel {
  name: string;
  /** Table name when the model has `@@map`. */
  dbName: string | null;
  fields: DmmfField[];
  primaryKey: { name: string | null; fields: string[] } | null;
}

export interface DmmfIndex {
  model: string;
  type: "id" | "normal" | "unique" | "fulltext";
  isDefinedOnField: boolean;
  /** Constraint/index name when given with `map:`; otherwise Prisma's default name applies. */
  dbName?: string | null;
  fields: { name: string; sortOrder?: "asc" | "desc"; length?: number }[];
}

export interface DmmfDatamodel {
  models: DmmfModel[];
  enums: { name: string; values: { name: string; dbName: string | null }[] }[];
  indexes: DmmfIndex[];
}

const prismaRoot = fileURLToPath(new URL("../", import.meta.url));

/** Path of the one schema. */
export const schemaPath = join(prismaRoot, "schema.prisma");

/**
 * The schema text with its datasource provider set to `provider` and its generators replaced by
 * one generator block: the same rewriting scripts/generate.mjs does for the clients.
 */
export function schemaForProvider(schema: string, provider: Provider, generatorBlock: string): string {
  const withProvider = schema.replace(/(datasource\s+\w+\s*\{[^}]*?provider\s*=\s*)"[^"]*"/, `$1"${provider}"`);
  if (withProvider === schema && !schema.includes(`provider = "${provider}"`)) {
    throw new Error(`could not set the datasource provider to ${provider}`);
  }
  const withoutGenerators = withProvider.replace(/^generator\s+\w+\s*\{[^}]*\}\s*$/gm, "");
  return `${generatorBlock}\n${withoutGenerators}`;
}

function quoteCommandPart(part: string): string {
  return /^[\w./:\\-]+$/.test(part) ? part : `'${part.replace(/'/g, "'\\''")}'`;
}

/** Runs `prisma generate` with the DMMF generator and returns the datamodel of schema.prisma. */
export async function loadDatamodel(provider: Provider, schemaFile: string = schemaPath): Promise<DmmfDatamodel> {
  const require = createRequire(import.meta.url);
  const prismaCli = require.resolve("prisma/build/index.js");
  const generator = join(prismaRoot, "scripts", "dmmf-generator.mjs");
  const dir = await mkdtemp(join(tmpdir(), "ferry-dmmf-"));
  try {
    const output = join(dir, "dmmf.json");
    const command = [process.execPath, generator].map(quoteCommandPart).join(" ");
    const block = `generator dmmf {\n  provider = ${JSON.stringify(command)}\n  output   = ${JSON.stringify(output)}\n}\n`;
    const file = join(dir, "schema.prisma");
    await writeFile(file, schemaForProvider(await readFile(schemaFile, "utf8"), provider, block));
    try {
      await promisify(execFile)(process.execPath, [prismaCli, "generate", "--schema", file], {
        cwd: dir,
        timeout: 120_000,
        env: {
          ...process.env,
          // `prisma generate` checks that a schema engine exists although it does not use it.
          PRISMA_SCHEMA_ENGINE_BINARY: process.env.PRISMA_SCHEMA_ENGINE_BINARY ?? process.execPath,
          PRISMA_HIDE_UPDATE_MESSAGE: "1",
          CHECKPOINT_DISABLE: "1",
        },
      });
    } catch (error) {
      const details = error instanceof Error ? `${error.message}\n${(error as { stderr?: string }).stderr ?? ""}` : String(error);
      throw new Error(`prisma generate (DMMF) failed for ${schemaFile}: ${details}`);
    }
    const parsed = JSON.parse(await readFile(output, "utf8")) as { datamodel?: Partial<DmmfDatamodel> };
    const datamodel = parsed.datamodel;
    if (!datamodel || !Array.isArray(datamodel.models) || !Array.isArray(datamodel.indexes)) {
      throw new Error("the DMMF written by prisma generate has no models/indexes: has its format changed?");
    }
    return { models: datamodel.models, enums: datamodel.enums ?? [], indexes: datamodel.indexes };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
