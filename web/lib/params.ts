import Ajv2020, { type ErrorObject, type ValidateFunction } from "ajv/dist/2020";

/**
 * Run parameters from a deployment's JSON Schema (draft 2020-12, made by zod's
 * `toJSONSchema` with `io: "input"` at deploy time): one form field per property of the
 * top-level object, parsing of what was typed, validation with the schema itself.
 * Pure functions, no React.
 */

export type JsonSchema = Record<string, unknown>;
export type FieldKind = "string" | "number" | "integer" | "boolean" | "enum" | "json";
export type EnumOption = string | number | boolean | null;

export interface Field {
  name: string;
  kind: FieldKind;
  /** Must be given (the schema requires it and the deployment has no default for it). */
  required: boolean;
  hasDefault: boolean;
  /** The deployment's default if it has one, else the schema's `default`. */
  default: unknown;
  title?: string;
  description?: string;
  /** Numbers: inclusive bounds; strings: length; arrays (json): item count. */
  min?: number;
  max?: number;
  /** The choices of an `enum` field. */
  options?: EnumOption[];
  /** The property's own schema (references resolved). */
  schema: JsonSchema;
}

/** What the form holds: the text of each input (booleans are "true" / "false"). */
export type RawValues = Record<string, string>;
export type ParamErrors = Record<string, string>;

/** Key of `validate` errors that are about no single parameter. */
export const ROOT = "";

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const num = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);
const isOption = (v: unknown): v is EnumOption => v === null || ["string", "number", "boolean"].includes(typeof v);

/** Follows local references (`#/$defs/...`) from the root schema. */
function resolve(root: JsonSchema, schema: unknown): JsonSchema {
  let current = schema;
  for (let hops = 0; hops < 16 && isObject(current) && typeof current.$ref === "string"; hops++) {
    const ref = current.$ref;
    if (!ref.startsWith("#")) break;
    let target: unknown = root;
    for (const raw of ref.slice(1).split("/").filter(Boolean)) {
      const key = decodeURIComponent(raw).replaceAll("~1", "/").replaceAll("~0", "~");
      target = isObject(target) ? target[key] : undefined;
    }
    if (!isObject(target)) break;
    // Keywords next to $ref (description, default) apply as well.
    const { $ref: _ref, ...siblings } = current;
    current = { ...target, ...siblings };
  }
  return isObject(current) ? current : {};
}

function kindOf(schema: JsonSchema): FieldKind {
  if (Array.isArray(schema.enum) && schema.enum.length > 0 && schema.enum.every(isOption)) return "enum";
  if ("const" in schema && isOption(schema.const)) return "enum";
  switch (schema.type) {
    case "string":
      return "string";
    case "number":
      return "number";
    case "integer":
      return "integer";
    case "boolean":
      return "boolean";
    default:
      return "json";
  }
}

function bounds(kind: FieldKind, s: JsonSchema): { min?: number; max?: number } {
  const out: { min?: number; max?: number } = {};
  let min: number | undefined;
  let max: number | undefined;
  if (kind === "number" || kind === "integer") {
    min = num(s.minimum);
    max = num(s.maximum);
    // zod's int() states the safe-integer range: no bound worth showing.
    if (min !== undefined && min <= Number.MIN_SAFE_INTEGER) min = undefined;
    if (max !== undefined && max >= Number.MAX_SAFE_INTEGER) max = undefined;
  } else if (kind === "string") {
    min = num(s.minLength);
    max = num(s.maxLength);
  } else if (kind === "json" && s.type === "array") {
    min = num(s.minItems);
    max = num(s.maxItems);
  }
  if (min !== undefined) out.min = min;
  if (max !== undefined) out.max = max;
  return out;
}

/**
 * One field per property of the top-level object schema, in the schema's order.
 * `defaultParams` (the deployment's) override the schema's defaults; a required
 * parameter the deployment has a default for need not be given.
 */
export function fieldsOf(schema: JsonSchema, defaultParams: Record<string, unknown> = {}): Field[] {
  const root = resolve(schema, schema);
  if (!isObject(root.properties)) return [];
  const required = new Set(Array.isArray(root.required) ? root.required.filter((r): r is string => typeof r === "string") : []);
  return Object.entries(root.properties).map(([name, raw]) => {
    const s = resolve(schema, raw);
    const kind = kindOf(s);
    const fromDeployment = Object.hasOwn(defaultParams, name);
    const hasDefault = fromDeployment || "default" in s;
    const field: Field = {
      name,
      kind,
      required: required.has(name) && !fromDeployment,
      hasDefault,
      default: fromDeployment ? defaultParams[name] : s.default,
      schema: s,
      ...bounds(kind, s),
    };
    if (typeof s.title === "string" && s.title) field.title = s.title;
    if (typeof s.description === "string" && s.description) field.description = s.description;
    if (kind === "enum") field.options = Array.isArray(s.enum) ? (s.enum as EnumOption[]) : [s.const as EnumOption];
    return field;
  });
}

/** The value of an enum option in a <select>: strings as they are, anything else as JSON. */
export function optionValue(option: EnumOption): string {
  return typeof option === "string" ? option : JSON.stringify(option);
}

/** What an input shows for `value` (undefined: empty). */
export function rawOf(field: Field, value: unknown): string {
  if (value === undefined) return "";
  switch (field.kind) {
    case "string":
      return typeof value === "string" ? value : JSON.stringify(value);
    case "number":
    case "integer":
      return typeof value === "number" ? String(value) : JSON.stringify(value);
    case "boolean":
      return value === true ? "true" : value === false ? "false" : "";
    case "enum":
      return isOption(value) ? optionValue(value) : "";
    case "json":
      return JSON.stringify(value, null, 2);
  }
}

/** The form's inputs for a parameter object (missing parameters: empty). */
export function rawValues(fields: Field[], value: Record<string, unknown>): RawValues {
  return Object.fromEntries(fields.map((f) => [f.name, rawOf(f, value[f.name])]));
}

/** The form's starting inputs: every default filled in. */
export function initialValues(fields: Field[]): RawValues {
  return Object.fromEntries(fields.map((f) => [f.name, f.hasDefault ? rawOf(f, f.default) : ""]));
}

function parseField(field: Field, raw: string): { value?: unknown; error?: string } {
  const text = field.kind === "string" ? raw : raw.trim();
  if (text === "") return field.required ? { error: "Required" } : {};
  switch (field.kind) {
    case "string":
      return { value: text };
    case "number":
    case "integer": {
      const n = Number(text);
      if (!Number.isFinite(n)) return { error: "Enter a number" };
      if (field.kind === "integer" && !Number.isInteger(n)) return { error: "Enter a whole number" };
      return { value: n };
    }
    case "boolean":
      if (text === "true") return { value: true };
      if (text === "false") return { value: false };
      return { error: "Choose true or false" };
    case "enum": {
      const option = (field.options ?? []).find((o) => optionValue(o) === text);
      return option === undefined ? { error: "Choose one of the options" } : { value: option };
    }
    case "json":
      try {
        return { value: JSON.parse(text) as unknown };
      } catch (err) {
        return { error: `Invalid JSON: ${err instanceof Error ? err.message : String(err)}` };
      }
  }
}

/**
 * The parameters the inputs stand for: numbers and JSON parsed, empty optional fields
 * left out. A field that cannot be parsed is left out too, with an error.
 */
export function parseForm(fields: Field[], raw: RawValues): { value: Record<string, unknown>; errors: ParamErrors } {
  const value: Record<string, unknown> = {};
  const errors: ParamErrors = {};
  for (const field of fields) {
    const parsed = parseField(field, raw[field.name] ?? "");
    if (parsed.error) errors[field.name] = parsed.error;
    else if ("value" in parsed) value[field.name] = parsed.value;
  }
  return { value, errors };
}

/** Parses the JSON editor's text: it has to be one JSON object. */
export function parseJsonObject(text: string): { value?: Record<string, unknown>; error?: string } {
  if (!text.trim()) return { value: {} };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { error: `Invalid JSON: ${err instanceof Error ? err.message : String(err)}` };
  }
  if (!isObject(value)) return { error: 'The parameters must be one JSON object, like {"name": 1}' };
  return { value };
}

const ajv = new Ajv2020({ strict: false, allErrors: true, logger: false });
const compiled = new WeakMap<object, ValidateFunction | Error>();

function compile(schema: JsonSchema): ValidateFunction | Error {
  let validator = compiled.get(schema);
  if (!validator) {
    try {
      validator = ajv.compile(schema);
    } catch (err) {
      validator = err instanceof Error ? err : new Error(String(err));
    }
    compiled.set(schema, validator);
  }
  return validator;
}

function place(e: ErrorObject): { key: string; message: string } {
  const path = e.instancePath
    .split("/")
    .slice(1)
    .map((p) => p.replaceAll("~1", "/").replaceAll("~0", "~"));
  const message = e.message ?? "is invalid";
  const [head, ...rest] = path;
  if (head === undefined) {
    const params = e.params as Record<string, unknown>;
    if (e.keyword === "required" && typeof params.missingProperty === "string")
      return { key: params.missingProperty, message: "Required" };
    if (e.keyword === "additionalProperties" && typeof params.additionalProperty === "string") {
      return { key: params.additionalProperty, message: "Not a parameter of this flow" };
    }
    return { key: ROOT, message };
  }
  // Where inside the parameter: grid[1], shape.k, rows[0].name.
  const inside = rest
    .map((p) => (/^\d+$/.test(p) ? `[${p}]` : `.${p}`))
    .join("")
    .replace(/^\./, "");
  return { key: head, message: inside ? `${inside}: ${message}` : message };
}

/**
 * Checks parameters against the schema. Errors are keyed by parameter name (`ROOT` for
 * the rest); no errors: valid.
 */
export function validate(schema: JsonSchema, value: unknown): ParamErrors {
  const validator = compile(schema);
  if (validator instanceof Error) return { [ROOT]: `The deployment's parameter schema is invalid: ${validator.message}` };
  if (validator(value)) return {};
  const errors: Record<string, string[]> = {};
  for (const e of validator.errors ?? []) {
    // A union's failed branches are noise next to its own "must match a schema in anyOf".
    if (e.schemaPath.includes("/anyOf/") || e.schemaPath.includes("/oneOf/")) continue;
    const { key, message } = place(e);
    const list = errors[key] ?? [];
    if (!list.includes(message)) list.push(message);
    errors[key] = list;
  }
  const out: ParamErrors = Object.fromEntries(Object.entries(errors).map(([k, list]) => [k, list.join("; ")]));
  return Object.keys(out).length ? out : { [ROOT]: "The parameters do not match the schema" };
}
