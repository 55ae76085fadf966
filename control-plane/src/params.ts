import { createHash } from "node:crypto";
import { Ajv2020, type ValidateFunction } from "ajv/dist/2020.js";
import type { SchemaValidateFunction } from "ajv/dist/types/index.js";
import { RE2JS } from "re2js";
import { checkParametersSize, DEFAULT_QUOTAS } from "./quotas.ts";

/** Caps on a tenant's parameter schema, refused at deploy time with the cap named. */
export const SCHEMA_LIMITS = {
  /** Largest parameter schema accepted, as JSON text (bytes of UTF-16 code units, close enough). */
  maxSchemaBytes: 64 * 1024,
  /** Longest `pattern` (or `patternProperties` key) accepted. */
  maxPatternChars: 1000,
  /**
   * Most RE2 instructions all of a schema's distinct patterns compile to, each pattern counting
   * at least MIN_PATTERN_INSTRUCTIONS (so at most 200 patterns). A compiled instruction costs
   * ~170 bytes of heap and ~1.4 µs to build, a pattern ~6–20 KiB and ~0.5 ms, and 14 characters
   * (`[\\s\\S]{1,1000}`) make 2,000 instructions: without this cap a 64 KiB schema could hold
   * 500 MB of programs and take seconds to compile. With it: ≲ 7 MB and ≲ 150 ms.
   */
  maxPatternInstructions: 10_000,
  /**
   * Pattern work allowed in one check: the sum over pattern tests of input length × the
   * pattern's RE2 program size. RE2 is linear in the input, but its constant grows with the
   * program: the worst measured was ~60 ns a unit (`^([ab]{1,50}){1,20}$`, 2,043 instructions,
   * on random input, on a loaded machine), so a request holds the event loop ≲ 60 ms, never seconds.
   */
  maxPatternWork: 1_000_000,
} as const;

const MAX_ISSUES = 20;

/** Cache bounds: both hold, whichever is reached first evicts the least recently used. */
export interface ParamsValidatorOptions {
  /** Most compiled schemas kept (default 1,000). */
  maxEntries?: number;
  /** Most estimated bytes kept (default 64 MiB). */
  maxBytes?: number;
  /**
   * Share of both bounds one workspace may fill (default 0.25): past it a workspace evicts its own
   * least recently used schemas, so a tenant deploying thousands of schemas cannot flush the
   * others' and make every one of their runs pay for a compile.
   */
  maxShare?: number;
  /** Largest parameters of a run, as JSON bytes (the operator's quota; default DEFAULT_QUOTAS'). */
  maxParametersBytes?: number;
}

/**
 * Estimated heap of one cached validator: a fixed part (the Ajv instance's closures, the
 * generated function), a part proportional to the schema text (generated code grows with it),
 * and its compiled patterns. Measured with `--expose-gc` (see params.test.ts): ~12 KiB per Ajv,
 * ~6–9 KiB per pattern, ~170 bytes per RE2 instruction; rounded up so the bound errs safe.
 */
const ENTRY_BASE_BYTES = 16 * 1024;
const ENTRY_BYTES_PER_SCHEMA_BYTE = 12;
const ENTRY_BYTES_PER_PATTERN = 16 * 1024;
const ENTRY_BYTES_PER_INSTRUCTION = 320;

/** What a pattern counts against maxPatternInstructions at least: its fixed cost, in instructions. */
const MIN_PATTERN_INSTRUCTIONS = 50;

type Compiled = { ok: true; validate: ValidateFunction; patterns: number; instructions: number } | { ok: false; problem: string };

interface Entry {
  workspaceId: string;
  compiled: Compiled;
  bytes: number;
}

interface Usage {
  entries: number;
  bytes: number;
}

/** The budget of the check running now; checks are synchronous, so one slot is enough. */
let workLeft = Number.POSITIVE_INFINITY;

class PatternBudgetExceeded extends Error {}

/**
 * A pattern as Ajv's generated code sees it (`RegExpLike`). RE2 cannot run lookaround or
 * backreferences: such a pattern (zod emits one for `z.hostname()` or `z.iso.duration()`) is
 * not evaluated here, every string passes it, and the flow's own zod check decides.
 */
class LinearPattern {
  constructor(
    private readonly source: string,
    private readonly re: RE2JS | null,
    /** RE2 program size: the work per input character in the worst case. */
    readonly cost: number,
  ) {}

  test(input: string): boolean {
    if (!this.re) return true;
    workLeft -= input.length * this.cost;
    if (workLeft < 0) throw new PatternBudgetExceeded();
    try {
      return this.re.test(input);
    } finally {
      // The lazy DFA caches states per pattern (up to 8 MB each); dropping them after each test
      // keeps a cached validator's memory to its compiled program.
      this.re.reset();
    }
  }

  /** Ajv keys its per-schema pattern scope by this, so it must differ between patterns. */
  toString(): string {
    return `/${this.source}/u`;
  }
}

function compilePattern(source: string): LinearPattern {
  if (source.length > SCHEMA_LIMITS.maxPatternChars) {
    throw new Error(
      `a pattern is ${source.length} characters long; the cap is ${SCHEMA_LIMITS.maxPatternChars} (pattern starts "${source.slice(0, 40)}")`,
    );
  }
  try {
    const re = RE2JS.compile(RE2JS.translateRegExp(source));
    return new LinearPattern(source, re, Math.max(1, Number(re.re2().numberOfInstructions())));
  } catch {
    // Not RE2 syntax: refuse it only if it is not a JavaScript pattern either. Constructing a
    // RegExp only parses it (linear in its length); it is never executed.
    try {
      new RegExp(source, "u");
    } catch (err) {
      throw new Error(`invalid pattern "${source.slice(0, 80)}": ${err instanceof Error ? err.message : String(err)}`);
    }
    return new LinearPattern(source, null, 0);
  }
}

/** The patterns one schema compiled (Ajv asks again for each use of the same pattern). */
class PatternTally {
  readonly patterns = new Map<string, LinearPattern>();
  instructions = 0;

  /** Ajv's `code.regExp` contract: `(pattern, flags) => { test(s): boolean }`, plus a `code` name used only by standalone code. */
  readonly engine = Object.assign(
    (source: string, _flags: string): LinearPattern => {
      const known = this.patterns.get(source);
      if (known) return known;
      const pattern = compilePattern(source);
      this.instructions += Math.max(pattern.cost, MIN_PATTERN_INSTRUCTIONS);
      if (this.instructions > SCHEMA_LIMITS.maxPatternInstructions) {
        throw new Error(
          `its patterns compile to more than ${SCHEMA_LIMITS.maxPatternInstructions} RE2 instructions (the cap); use fewer or simpler patterns`,
        );
      }
      this.patterns.set(source, pattern);
      return pattern;
    },
    { code: "ferryLinearRegExp" },
  );
}

const ajvOptions = {
  allErrors: true,
  strict: false,
  // Tenant schemas must not write to the operator's log (unknown formats, keywords).
  logger: false as const,
  // Ajv itself ships no formats; none are added, so `format` is an annotation here and cannot
  // bring a tenant's or a library's regex onto the event loop. The flow's zod check enforces it.
  validateFormats: false,
  // Only checked in strict mode, but it would run `new RegExp(key)` natively: keep it off.
  allowMatchingProperties: true,
};

/**
 * Validates schemas against the JSON Schema 2020-12 meta-schema. It never holds a tenant
 * schema (validateSchema compiles nothing of the tenant's), so it is safe to share.
 */
const metaSchemas = new Ajv2020({ ...ajvOptions, code: { regExp: new PatternTally().engine } });

/** Keywords whose values are data, not schemas: a `$ref` inside them is not a reference. */
const DATA_KEYWORDS = new Set(["const", "enum", "default", "examples"]);

/** The first `$ref`/`$dynamicRef` that leaves the schema, if any. */
function foreignRef(node: unknown): string | undefined {
  if (Array.isArray(node)) {
    for (const item of node) {
      const found = foreignRef(item);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (node === null || typeof node !== "object") return undefined;
  for (const [key, value] of Object.entries(node)) {
    if ((key === "$ref" || key === "$dynamicRef") && typeof value === "string" && !value.startsWith("#")) return value;
    if (DATA_KEYWORDS.has(key)) continue;
    const found = foreignRef(value);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** A JSON value as text, object keys sorted: equal texts ⇔ equal values in JSON Schema's sense. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const record = value as Record<string, unknown>;
    return `{${Object.keys(record)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(record[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

/**
 * `uniqueItems` in linear time. Ajv's own compares every pair of object items (n²): 5,000 small
 * objects took 0.4 s, and a 4 MiB request holds 500,000 of them. Here each item's canonical
 * text goes into a set, so the cost is the size of the input (times a log for key sorting).
 */
const uniqueItems: SchemaValidateFunction = (schema: unknown, data: unknown): boolean => {
  uniqueItems.errors = [];
  if (schema !== true || !Array.isArray(data)) return true;
  const seen = new Map<string, number>();
  for (const [i, item] of data.entries()) {
    const text = canonicalJson(item);
    const j = seen.get(text);
    if (j !== undefined) {
      uniqueItems.errors = [
        {
          keyword: "uniqueItems",
          message: `must NOT have duplicate items (items ## ${j} and ${i} are identical)`,
          params: { i, j },
        },
      ];
      return false;
    }
    seen.set(text, i);
  }
  return true;
};

function compileSchema(schemaJson: string): Compiled {
  const invalid = (why: string): Compiled => ({ ok: false, problem: `the deployment's parameter schema is invalid: ${why}` });
  if (schemaJson.length > SCHEMA_LIMITS.maxSchemaBytes) {
    return invalid(`it is ${schemaJson.length} bytes; the cap is ${SCHEMA_LIMITS.maxSchemaBytes} bytes`);
  }
  let schema: unknown;
  try {
    schema = JSON.parse(schemaJson);
  } catch (err) {
    return invalid(err instanceof Error ? err.message : String(err));
  }
  if (typeof schema !== "boolean" && (schema === null || typeof schema !== "object" || Array.isArray(schema))) {
    return invalid("it must be an object");
  }
  const ref = foreignRef(schema);
  if (ref !== undefined) {
    return invalid(`"$ref": "${ref.slice(0, 200)}" points outside the schema; a $ref may only point inside it ("#…")`);
  }
  try {
    if (!metaSchemas.validateSchema(schema as object)) return invalid(metaSchemas.errorsText(metaSchemas.errors));
    // One Ajv per schema: its `$id`s and compiled schemas are its own and go when it goes.
    const tally = new PatternTally();
    const ajv = new Ajv2020({ ...ajvOptions, meta: false, validateSchema: false, code: { regExp: tally.engine } });
    ajv.removeKeyword("uniqueItems");
    ajv.addKeyword({ keyword: "uniqueItems", type: "array", schemaType: "boolean", validate: uniqueItems, errors: true });
    const validate = ajv.compile(schema as object);
    return { ok: true, validate, patterns: tally.patterns.size, instructions: tally.instructions };
  } catch (err) {
    return invalid(err instanceof Error ? err.message : String(err));
  }
}

/**
 * Validates run parameters against a deployment's JSON Schema (produced from the flow's
 * zod schema at deploy time), so a bad run is refused before it is created. The flow
 * process validates again with the zod schema itself before the body runs.
 *
 * The schema is a tenant's, so it is treated as hostile (DESIGN.md, invariant 9):
 * - patterns (`pattern`, `patternProperties`, and so `propertyNames`) run on RE2JS, a
 *   linear-time engine, never on V8's backtracking RegExp, and each check has a work budget;
 * - every schema compiles in an Ajv instance of its own, so no `$id` is registered
 *   installation-wide, and a `$ref` may only point inside the same schema;
 * - compiled validators live in an LRU bounded by count and by estimated bytes, keyed by
 *   workspace and schema hash;
 * - the schema's size and each pattern's length are capped (SCHEMA_LIMITS).
 *
 * @example
 * const validator = new ParamsValidator();
 * const problem = validator.schemaProblem(workspaceId, schemaJson); // on deploy
 * const issues = validator.check(workspaceId, schemaJson, { grid: [0.1] }); // [] when valid
 */
export class ParamsValidator {
  private readonly maxEntries: number;
  private readonly maxBytes: number;
  /** Insertion order is recency order: a hit is deleted and set again. */
  private readonly cache = new Map<string, Entry>();
  private readonly usage = new Map<string, Usage>();
  private readonly total: Usage = { entries: 0, bytes: 0 };
  private readonly share: Usage;

  private readonly maxParametersBytes: number;

  constructor(options: ParamsValidatorOptions = {}) {
    this.maxParametersBytes = options.maxParametersBytes ?? DEFAULT_QUOTAS.maxParametersBytes;
    this.maxEntries = options.maxEntries ?? 1000;
    this.maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
    const share = options.maxShare ?? 0.25;
    this.share = { entries: Math.max(1, Math.floor(this.maxEntries * share)), bytes: this.maxBytes * share };
  }

  /** Why a schema cannot be accepted (size, a pattern, a `$ref`, not compilable), or undefined. */
  schemaProblem(workspaceId: string, schemaJson: string): string | undefined {
    const compiled = this.compiled(workspaceId, schemaJson);
    return compiled.ok ? undefined : compiled.problem;
  }

  /** Returns one line per problem; empty when the parameters are valid. */
  /**
   * Fails (QUOTA_EXCEEDED) when a run's parameters are larger than the quota: every way a run
   * is made (API, schedule, backfill, a trigger mapping a webhook's or an event's payload)
   * passes here before its schema check, so no path stores megabytes a list would carry.
   */
  checkSize(parameters: unknown): void {
    checkParametersSize({ maxParametersBytes: this.maxParametersBytes }, parameters);
  }

  check(workspaceId: string, schemaJson: string, params: unknown): string[] {
    const compiled = this.compiled(workspaceId, schemaJson);
    if (!compiled.ok) return [compiled.problem];
    const validate = compiled.validate;
    workLeft = SCHEMA_LIMITS.maxPatternWork;
    let valid: boolean;
    try {
      valid = validate(params);
    } catch (err) {
      if (err instanceof PatternBudgetExceeded) {
        return [
          `(root): the parameters are too large to check against the schema's patterns (over ${SCHEMA_LIMITS.maxPatternWork.toLocaleString("en")} units of input length × pattern size)`,
        ];
      }
      throw err;
    } finally {
      workLeft = Number.POSITIVE_INFINITY;
    }
    if (valid) return [];
    const issues = [
      ...new Set(
        (validate.errors ?? []).map((e) => {
          const where = e.instancePath ? e.instancePath.slice(1).replaceAll("/", ".") : "(root)";
          const extra = e.keyword === "additionalProperties" ? ` (${String(e.params.additionalProperty)})` : "";
          return `${where}: ${e.message ?? "is invalid"}${extra}`;
        }),
      ),
    ];
    // A huge invalid input must not produce a huge answer.
    return issues.length > MAX_ISSUES ? [...issues.slice(0, MAX_ISSUES), `… and ${issues.length - MAX_ISSUES} more`] : issues;
  }

  /** What the cache holds now, in all or for one workspace (for tests and metrics). */
  stats(workspaceId?: string): { entries: number; estimatedBytes: number; maxEntries: number; maxBytes: number } {
    const used = workspaceId === undefined ? this.total : (this.usage.get(workspaceId) ?? { entries: 0, bytes: 0 });
    return { entries: used.entries, estimatedBytes: used.bytes, maxEntries: this.maxEntries, maxBytes: this.maxBytes };
  }

  private compiled(workspaceId: string, schemaJson: string): Compiled {
    // Keyed by workspace too: one tenant's cache hit must not tell it what another deployed.
    const key = `${workspaceId}\u0000${createHash("sha256").update(schemaJson).digest("base64url")}`;
    const hit = this.cache.get(key);
    if (hit) {
      this.cache.delete(key);
      this.cache.set(key, hit);
      return hit.compiled;
    }
    const compiled = compileSchema(schemaJson);
    // A refused schema is cached too (it is cheap), so a broken deployment is not recompiled per run.
    const bytes = compiled.ok
      ? ENTRY_BASE_BYTES +
        ENTRY_BYTES_PER_SCHEMA_BYTE * schemaJson.length +
        ENTRY_BYTES_PER_PATTERN * compiled.patterns +
        ENTRY_BYTES_PER_INSTRUCTION * compiled.instructions
      : 1024 + 2 * compiled.problem.length;
    this.cache.set(key, { workspaceId, compiled, bytes });
    const mine = this.usage.get(workspaceId) ?? { entries: 0, bytes: 0 };
    this.usage.set(workspaceId, mine);
    for (const used of [mine, this.total]) {
      used.entries += 1;
      used.bytes += bytes;
    }
    // Oldest first (Map order); the new entry is last, so reaching it means nothing older is left.
    for (const [oldest, entry] of this.cache) {
      if (oldest === key || !this.over(mine, this.share)) break;
      if (entry.workspaceId === workspaceId) this.evict(oldest, entry);
    }
    for (const [oldest, entry] of this.cache) {
      if (oldest === key || !this.over(this.total, { entries: this.maxEntries, bytes: this.maxBytes })) break;
      this.evict(oldest, entry);
    }
    return compiled;
  }

  private over(used: Usage, bound: Usage): boolean {
    return used.entries > bound.entries || used.bytes > bound.bytes;
  }

  private evict(key: string, entry: Entry): void {
    this.cache.delete(key);
    const theirs = this.usage.get(entry.workspaceId);
    for (const used of theirs ? [theirs, this.total] : [this.total]) {
      used.entries -= 1;
      used.bytes -= entry.bytes;
    }
    if (theirs && theirs.entries === 0) this.usage.delete(entry.workspaceId);
  }
}
