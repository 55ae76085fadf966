// The shape of a relational schema (tables, columns, keys, indexes, foreign keys), computed two
// ways so they can be compared: from schema.prisma's DMMF, as Prisma Migrate would create it
// (expectedShape), and from a live database (describeSqlite, describePostgres).
// Used by schema-match.test.ts.

import type BetterSqlite3 from "better-sqlite3";
import type { Client, PoolClient } from "pg";
import type { Provider } from "./database.ts";
import type { DmmfDatamodel, DmmfField, DmmfModel } from "./dmmf.ts";

export interface ColumnShape {
  name: string;
  /** Provider type, normalised: SQLite's declared type ("TEXT"), PostgreSQL's ("text", "timestamp(3)"). */
  type: string;
  nullable: boolean;
  /** Normalised default: null, "now", "autoincrement", or the SQL literal ("0", "'x'", "true"). */
  default: string | null;
}

export interface IndexShape {
  name: string;
  columns: string[];
  unique: boolean;
}

export interface ForeignKeyShape {
  /** Constraint name (SQLite: parsed from the CREATE TABLE statement; null if unnamed). */
  name: string | null;
  columns: string[];
  referencedTable: string;
  referencedColumns: string[];
  /** SQL action: "CASCADE", "SET NULL", "RESTRICT", "NO ACTION", "SET DEFAULT". */
  onDelete: string;
  onUpdate: string;
}

export interface TableShape {
  name: string;
  /** Sorted by name: like Prisma Migrate, the check ignores column order (ADD COLUMN appends). */
  columns: ColumnShape[];
  /** SQLite primary keys are unnamed (name null). */
  primaryKey: { name: string | null; columns: string[] };
  /** Sorted by name. Excludes the primary key's index. */
  indexes: IndexShape[];
  /** Sorted by name, then columns. */
  foreignKeys: ForeignKeyShape[];
}

/** Sorted by table name. */
export type SchemaShape = TableShape[];

/** Tables that belong to the database engine or to migration bookkeeping, not to the schema. */
export function isBookkeepingTable(name: string): boolean {
  return name === "_prisma_migrations" || name.startsWith("sqlite_");
}

// ---------------------------------------------------------------------------------------------
// Expected: from the DMMF, following Prisma Migrate's conventions.
// ---------------------------------------------------------------------------------------------

/** Column type Prisma Migrate uses for a scalar type without `@db.*`, per provider. */
const COLUMN_TYPES: Record<Provider, Record<string, string>> = {
  sqlite: {
    String: "TEXT",
    Int: "INTEGER",
    BigInt: "BIGINT",
    Float: "REAL",
    Decimal: "DECIMAL",
    Boolean: "BOOLEAN",
    DateTime: "DATETIME",
    Bytes: "BLOB",
  },
  postgresql: {
    String: "text",
    Int: "integer",
    BigInt: "bigint",
    Float: "double precision",
    Decimal: "numeric(65,30)",
    Boolean: "boolean",
    DateTime: "timestamp(3)",
    Bytes: "bytea",
    Json: "jsonb",
  },
};

const REFERENTIAL_ACTIONS: Record<string, string> = {
  Cascade: "CASCADE",
  SetNull: "SET NULL",
  Restrict: "RESTRICT",
  NoAction: "NO ACTION",
  SetDefault: "SET DEFAULT",
};

/** Longest identifier Prisma generates per provider (PostgreSQL's NAMEDATALEN - 1). */
const MAX_IDENTIFIER: Record<Provider, number> = { sqlite: Number.POSITIVE_INFINITY, postgresql: 63 };

/**
 * Prisma's default constraint/index name: `<Table>_<col>_<col>_<suffix>`, the table-and-columns
 * part cut so the whole fits the provider's identifier limit (psl's ConstraintNames).
 */
export function defaultConstraintName(
  provider: Provider,
  table: string,
  columns: string[],
  suffix: "pkey" | "key" | "idx" | "fkey",
): string {
  const limit = MAX_IDENTIFIER[provider];
  const base = suffix === "pkey" ? table : `${table}_${columns.join("_")}`;
  const room = limit - suffix.length - 1;
  return `${base.length > room ? base.slice(0, room) : base}_${suffix}`;
}

function unsupported(what: string): never {
  throw new Error(
    `schema-shape: ${what} is not supported by the schema-match check yet; extend src/schema-shape.ts ` +
      "(expectedShape and the describe functions) before using it in schema.prisma.",
  );
}

function tableName(model: DmmfModel): string {
  return model.dbName ?? model.name;
}

function columnName(field: DmmfField): string {
  return field.dbName ?? field.name;
}

function expectedType(provider: Provider, field: DmmfField): string {
  if (field.kind === "enum") return provider === "sqlite" ? "TEXT" : unsupported(`enum field ${field.name}`);
  if (field.kind !== "scalar") unsupported(`${field.kind} field ${field.name}`);
  if (field.isList) unsupported(`list field ${field.name}`);
  if (field.nativeType) unsupported(`native type @db.${field.nativeType[0]} on ${field.name}`);
  return COLUMN_TYPES[provider][field.type] ?? unsupported(`type ${field.type} (field ${field.name}) on ${provider}`);
}

function expectedDefault(field: DmmfField): string | null {
  const value = field.default;
  if (value === undefined) return null;
  if (Array.isArray(value)) return unsupported(`list default on ${field.name}`);
  if (typeof value === "object") {
    switch (value.name) {
      case "now":
        return "now";
      case "autoincrement":
        return "autoincrement";
      // Generated by the client, not the database.
      case "cuid":
      case "uuid":
      case "nanoid":
      case "ulid":
        return null;
      default:
        return unsupported(`default ${value.name}() on ${field.name}`);
    }
  }
  if (typeof value === "string") return `'${value.replace(/'/g, "''")}'`;
  return String(value);
}

/** The schema Prisma Migrate would create for the datamodel on `provider`. */
export function expectedShape(datamodel: DmmfDatamodel, provider: Provider): SchemaShape {
  const models = new Map(datamodel.models.map((model) => [model.name, model]));
  const tables = datamodel.models.map((model): TableShape => {
    const table = tableName(model);
    const fieldsByName = new Map(model.fields.map((field) => [field.name, field]));
    const column = (fieldName: string, ofModel: DmmfModel = model): string => {
      const field = ofModel.fields.find((candidate) => candidate.name === fieldName);
      if (!field) throw new Error(`DMMF: ${ofModel.name}.${fieldName} not found`);
      return columnName(field);
    };

    const columns = model.fields
      .filter((field) => field.kind !== "object")
      .map(
        (field): ColumnShape => ({
          name: columnName(field),
          type: expectedType(provider, field),
          nullable: !field.isRequired,
          default: expectedDefault(field),
        }),
      );

    const modelIndexes = datamodel.indexes.filter((index) => index.model === model.name);
    const id = modelIndexes.find((index) => index.type === "id");
    if (!id) return unsupported(`model ${model.name} without an @id/@@id`);
    const pkColumns = id.fields.map((field) => column(field.name));

    const indexes = modelIndexes
      .filter((index) => index.type !== "id")
      .map((index): IndexShape => {
        if (index.type === "fulltext") unsupported(`@@fulltext on ${model.name}`);
        if (index.fields.some((field) => field.sortOrder === "desc" || field.length !== undefined)) {
          unsupported(`sort order or length in an index of ${model.name}`);
        }
        const indexColumns = index.fields.map((field) => column(field.name));
        const unique = index.type === "unique";
        return {
          name: index.dbName ?? defaultConstraintName(provider, table, indexColumns, unique ? "key" : "idx"),
          columns: indexColumns,
          unique,
        };
      });

    const foreignKeys = model.fields
      .filter((field) => field.kind === "object" && (field.relationFromFields?.length ?? 0) > 0)
      .map((field): ForeignKeyShape => {
        const target = models.get(field.type);
        if (!target) throw new Error(`DMMF: relation ${model.name}.${field.name} targets unknown model ${field.type}`);
        const from = field.relationFromFields ?? [];
        const fkColumns = from.map((name) => column(name));
        // Prisma's defaults: Restrict when the relation is required, SetNull when optional; Cascade on update.
        const required = from.every((name) => fieldsByName.get(name)?.isRequired === true);
        const onDelete = field.relationOnDelete ?? (required ? "Restrict" : "SetNull");
        const onUpdate = field.relationOnUpdate ?? "Cascade";
        return {
          name: defaultConstraintName(provider, table, fkColumns, "fkey"),
          columns: fkColumns,
          referencedTable: tableName(target),
          referencedColumns: (field.relationToFields ?? []).map((name) => column(name, target)),
          onDelete: REFERENTIAL_ACTIONS[onDelete] ?? unsupported(`onDelete ${onDelete}`),
          onUpdate: REFERENTIAL_ACTIONS[onUpdate] ?? unsupported(`onUpdate ${onUpdate}`),
        };
      });

    // Implicit many-to-many relations need a join table that Prisma names itself.
    for (const field of model.fields) {
      if (field.kind !== "object" || !field.isList) continue;
      const back = models.get(field.type)?.fields.find((other) => other.relationName === field.relationName && other !== field);
      if (back?.isList) unsupported(`implicit many-to-many relation ${model.name}.${field.name}`);
    }

    return {
      name: table,
      columns: sortColumns(columns),
      primaryKey: { name: provider === "sqlite" ? null : (id.dbName ?? `${table}_pkey`), columns: pkColumns },
      indexes: sortIndexes(indexes),
      foreignKeys: sortForeignKeys(foreignKeys),
    };
  });
  return tables.sort((a, b) => compare(a.name, b.name));
}

// ---------------------------------------------------------------------------------------------
// Actual: from a live database.
// ---------------------------------------------------------------------------------------------

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function sortColumns(columns: ColumnShape[]): ColumnShape[] {
  return columns.sort((a, b) => compare(a.name, b.name));
}

function sortIndexes(indexes: IndexShape[]): IndexShape[] {
  return indexes.sort((a, b) => compare(a.name, b.name));
}

function sortForeignKeys(keys: ForeignKeyShape[]): ForeignKeyShape[] {
  return keys.sort((a, b) => compare(a.name ?? "", b.name ?? "") || compare(a.columns.join(), b.columns.join()));
}

function quoteSqliteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** Normalises a SQLite column default (PRAGMA table_info's dflt_value). */
function sqliteDefault(value: string | null): string | null {
  if (value === null) return null;
  if (/^current_timestamp$/i.test(value)) return "now";
  return value;
}

/** The schema of a SQLite database (bookkeeping tables excluded). */
export function describeSqlite(db: BetterSqlite3.Database): SchemaShape {
  const tables = db
    .prepare<[], { name: string; sql: string }>("SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name")
    .all()
    .filter((table) => !isBookkeepingTable(table.name));
  return tables
    .map(({ name, sql }): TableShape => {
      const q = quoteSqliteIdentifier(name);
      const info = db
        .prepare<[], { name: string; type: string; notnull: number; dflt_value: string | null; pk: number }>(
          `PRAGMA table_info(${q})`,
        )
        .all();
      const pkColumns = info
        .filter((column) => column.pk > 0)
        .sort((a, b) => a.pk - b.pk)
        .map((column) => column.name);
      // AUTOINCREMENT is only legal on an INTEGER PRIMARY KEY column, so it designates that column.
      const autoincrement = /\bAUTOINCREMENT\b/i.test(sql) && pkColumns.length === 1 ? pkColumns[0] : undefined;
      const columns = info.map(
        (column): ColumnShape => ({
          name: column.name,
          type: column.type.toUpperCase(),
          // A rowid-aliasing INTEGER PRIMARY KEY cannot be NULL even when not declared NOT NULL.
          nullable: column.notnull === 0 && !(column.name === autoincrement),
          default: column.name === autoincrement ? "autoincrement" : sqliteDefault(column.dflt_value),
        }),
      );

      const indexes = db
        .prepare<[], { name: string; unique: number; origin: string }>(`PRAGMA index_list(${q})`)
        .all()
        .filter((index) => index.origin !== "pk")
        .map(
          (index): IndexShape => ({
            name: index.name,
            unique: index.unique === 1,
            columns: db
              .prepare<[], { seqno: number; name: string | null }>(`PRAGMA index_info(${quoteSqliteIdentifier(index.name)})`)
              .all()
              .sort((a, b) => a.seqno - b.seqno)
              .map((column) => column.name ?? "<expression>"),
          }),
        );

      const fkRows = db
        .prepare<
          [],
          { id: number; seq: number; table: string; from: string; to: string | null; on_update: string; on_delete: string }
        >(`PRAGMA foreign_key_list(${q})`)
        .all();
      // PRAGMA foreign_key_list has no names: read them from the CREATE TABLE statement.
      const names = new Map<string, string>();
      for (const match of sql.matchAll(/CONSTRAINT\s+"((?:[^"]|"")+)"\s+FOREIGN\s+KEY\s*\(([^)]*)\)/gi)) {
        const fkName = match[1]?.replace(/""/g, '"') ?? "";
        const fkColumns = (match[2] ?? "")
          .split(",")
          .map((part) => part.trim().replace(/^"|"$/g, ""))
          .join(",");
        names.set(fkColumns, fkName);
      }
      // A column added later (ALTER TABLE ADD COLUMN) carries its named key in the column
      // definition: "col" TYPE CONSTRAINT "name" REFERENCES … (no table rebuild needed).
      for (const match of sql.matchAll(/"((?:[^"]|"")+)"\s+\w+\s+CONSTRAINT\s+"((?:[^"]|"")+)"\s+REFERENCES/gi)) {
        names.set(match[1]?.replace(/""/g, '"') ?? "", match[2]?.replace(/""/g, '"') ?? "");
      }
      const foreignKeys = [...new Set(fkRows.map((row) => row.id))].map((id): ForeignKeyShape => {
        const rows = fkRows.filter((row) => row.id === id).sort((a, b) => a.seq - b.seq);
        const first = rows[0];
        if (!first) throw new Error("unreachable: foreign key without columns");
        const fkColumns = rows.map((row) => row.from);
        return {
          name: names.get(fkColumns.join(",")) ?? null,
          columns: fkColumns,
          referencedTable: first.table,
          // `to` is null when the key references the parent's primary key implicitly.
          referencedColumns: rows.map((row) => row.to ?? "<primary key>"),
          onDelete: first.on_delete.toUpperCase(),
          onUpdate: first.on_update.toUpperCase(),
        };
      });

      return {
        name,
        columns: sortColumns(columns),
        primaryKey: { name: null, columns: pkColumns },
        indexes: sortIndexes(indexes),
        foreignKeys: sortForeignKeys(foreignKeys),
      };
    })
    .sort((a, b) => compare(a.name, b.name));
}

/** Normalises a PostgreSQL column default (information_schema.columns.column_default). */
function postgresDefault(value: string | null): string | null {
  if (value === null) return null;
  if (/^nextval\('.*'::regclass\)$/.test(value)) return "autoincrement";
  if (/^(CURRENT_TIMESTAMP|now\(\))$/i.test(value)) return "now";
  const literal = /^('(?:[^']|'')*')::[\w ]+$/.exec(value);
  if (literal?.[1]) return literal[1];
  return value;
}

function postgresType(dataType: string, precision: number | null, numericPrecision: number | null, scale: number | null) {
  if (dataType === "timestamp without time zone") return `timestamp(${precision ?? 6})`;
  if (dataType === "timestamp with time zone") return `timestamptz(${precision ?? 6})`;
  if (dataType === "numeric" && numericPrecision !== null) return `numeric(${numericPrecision},${scale ?? 0})`;
  return dataType;
}

const PG_ACTIONS: Record<string, string> = { a: "NO ACTION", r: "RESTRICT", c: "CASCADE", n: "SET NULL", d: "SET DEFAULT" };

/** The schema of the connection's current PostgreSQL schema (bookkeeping tables excluded). */
export async function describePostgres(client: Client | PoolClient): Promise<SchemaShape> {
  const tables = (
    await client.query<{ name: string }>(
      `SELECT table_name AS name FROM information_schema.tables
       WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name`,
    )
  ).rows.filter((table) => !isBookkeepingTable(table.name));

  const columns = (
    await client.query<{
      table: string;
      name: string;
      data_type: string;
      is_nullable: string;
      column_default: string | null;
      datetime_precision: number | null;
      numeric_precision: number | null;
      numeric_scale: number | null;
    }>(
      `SELECT table_name AS table, column_name AS name, data_type, is_nullable, column_default,
              datetime_precision, numeric_precision, numeric_scale
       FROM information_schema.columns WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position`,
    )
  ).rows;

  const indexes = (
    await client.query<{ table: string; name: string; unique: boolean; primary: boolean; columns: string[] }>(
      `SELECT t.relname AS table, i.relname AS name, x.indisunique AS unique, x.indisprimary AS primary,
              ARRAY(SELECT a.attname::text FROM unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                    JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum ORDER BY k.ord) AS columns
       FROM pg_index x
       JOIN pg_class t ON t.oid = x.indrelid
       JOIN pg_class i ON i.oid = x.indexrelid
       JOIN pg_namespace n ON n.oid = t.relnamespace
       WHERE n.nspname = current_schema()`,
    )
  ).rows;

  const constraints = (
    await client.query<{
      table: string;
      name: string;
      type: string;
      columns: string[];
      referenced_table: string | null;
      referenced_columns: string[] | null;
      on_delete: string;
      on_update: string;
    }>(
      `SELECT t.relname AS table, c.conname AS name, c.contype::text AS type,
              ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
                    JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum ORDER BY k.ord) AS columns,
              r.relname AS referenced_table,
              ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY AS k(attnum, ord)
                    JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum ORDER BY k.ord) AS referenced_columns,
              c.confdeltype::text AS on_delete, c.confupdtype::text AS on_update
       FROM pg_constraint c
       JOIN pg_class t ON t.oid = c.conrelid
       JOIN pg_namespace n ON n.oid = t.relnamespace
       LEFT JOIN pg_class r ON r.oid = c.confrelid
       WHERE n.nspname = current_schema() AND c.contype IN ('p', 'f', 'u')`,
    )
  ).rows;

  return tables
    .map(({ name }): TableShape => {
      const pk = constraints.find((constraint) => constraint.table === name && constraint.type === "p");
      // A UNIQUE constraint (rather than Prisma's UNIQUE INDEX) shows up under its own index name
      // with an extra "constraint:" marker, so the comparison flags it.
      const uniqueConstraints = new Set(
        constraints.filter((constraint) => constraint.table === name && constraint.type === "u").map((c) => c.name),
      );
      return {
        name,
        columns: sortColumns(
          columns
            .filter((column) => column.table === name)
            .map(
              (column): ColumnShape => ({
                name: column.name,
                type: postgresType(column.data_type, column.datetime_precision, column.numeric_precision, column.numeric_scale),
                nullable: column.is_nullable === "YES",
                default: postgresDefault(column.column_default),
              }),
            ),
        ),
        primaryKey: { name: pk?.name ?? null, columns: pk?.columns ?? [] },
        indexes: sortIndexes(
          indexes
            .filter((index) => index.table === name && !index.primary)
            .map((index) => ({
              name: uniqueConstraints.has(index.name) ? `constraint:${index.name}` : index.name,
              columns: index.columns,
              unique: index.unique,
            })),
        ),
        foreignKeys: sortForeignKeys(
          constraints
            .filter((constraint) => constraint.table === name && constraint.type === "f")
            .map((constraint) => ({
              name: constraint.name,
              columns: constraint.columns,
              referencedTable: constraint.referenced_table ?? "?",
              referencedColumns: constraint.referenced_columns ?? [],
              onDelete: PG_ACTIONS[constraint.on_delete] ?? constraint.on_delete,
              onUpdate: PG_ACTIONS[constraint.on_update] ?? constraint.on_update,
            })),
        ),
      };
    })
    .sort((a, b) => compare(a.name, b.name));
}

// ---------------------------------------------------------------------------------------------
// Comparison.
// ---------------------------------------------------------------------------------------------

function describeIndex(index: IndexShape): string {
  return `${index.unique ? "UNIQUE " : ""}(${index.columns.join(", ")})`;
}

function describeForeignKey(key: ForeignKeyShape): string {
  return `(${key.columns.join(", ")}) -> ${key.referencedTable}(${key.referencedColumns.join(", ")}) ON DELETE ${key.onDelete} ON UPDATE ${key.onUpdate}`;
}

/** Human-readable differences between the expected and the actual schema; empty when they match. */
export function diffShapes(expected: SchemaShape, actual: SchemaShape): string[] {
  const problems: string[] = [];
  const actualTables = new Map(actual.map((table) => [table.name, table]));
  const expectedNames = new Set(expected.map((table) => table.name));
  for (const table of actual) {
    if (!expectedNames.has(table.name)) problems.push(`table ${table.name}: in the database but not in schema.prisma`);
  }
  for (const want of expected) {
    const got = actualTables.get(want.name);
    if (!got) {
      problems.push(`table ${want.name}: in schema.prisma but missing from the database`);
      continue;
    }
    const t = want.name;
    const gotColumns = new Map(got.columns.map((column) => [column.name, column]));
    for (const column of got.columns) {
      if (!want.columns.some((c) => c.name === column.name)) problems.push(`${t}.${column.name}: column not in schema.prisma`);
    }
    for (const column of want.columns) {
      const have = gotColumns.get(column.name);
      if (!have) {
        problems.push(`${t}.${column.name}: column missing`);
        continue;
      }
      if (have.type !== column.type) problems.push(`${t}.${column.name}: type ${have.type}, expected ${column.type}`);
      if (have.nullable !== column.nullable) {
        problems.push(
          `${t}.${column.name}: ${have.nullable ? "nullable" : "NOT NULL"}, expected ${column.nullable ? "nullable" : "NOT NULL"}`,
        );
      }
      if (have.default !== column.default) {
        problems.push(`${t}.${column.name}: default ${have.default ?? "none"}, expected ${column.default ?? "none"}`);
      }
    }
    if (got.primaryKey.columns.join() !== want.primaryKey.columns.join() || got.primaryKey.name !== want.primaryKey.name) {
      problems.push(
        `${t}: primary key ${got.primaryKey.name ?? ""}(${got.primaryKey.columns.join(", ")}), expected ${want.primaryKey.name ?? ""}(${want.primaryKey.columns.join(", ")})`,
      );
    }
    const gotIndexes = new Map(got.indexes.map((index) => [index.name, index]));
    for (const index of got.indexes) {
      if (!want.indexes.some((i) => i.name === index.name)) {
        problems.push(`${t}: index ${index.name} ${describeIndex(index)} not in schema.prisma`);
      }
    }
    for (const index of want.indexes) {
      const have = gotIndexes.get(index.name);
      if (!have) problems.push(`${t}: index ${index.name} ${describeIndex(index)} missing`);
      else if (describeIndex(have) !== describeIndex(index)) {
        problems.push(`${t}: index ${index.name} is ${describeIndex(have)}, expected ${describeIndex(index)}`);
      }
    }
    const gotKeys = got.foreignKeys.map(describeForeignKey);
    const wantKeys = want.foreignKeys.map(describeForeignKey);
    for (const key of gotKeys) if (!wantKeys.includes(key)) problems.push(`${t}: foreign key ${key} not in schema.prisma`);
    for (const key of wantKeys) if (!gotKeys.includes(key)) problems.push(`${t}: foreign key ${key} missing`);
    for (const key of want.foreignKeys) {
      const have = got.foreignKeys.find((k) => describeForeignKey(k) === describeForeignKey(key));
      if (have && have.name !== key.name)
        problems.push(`${t}: foreign key ${describeForeignKey(key)} named ${have.name}, expected ${key.name}`);
    }
  }
  return problems;
}
