/**
 * Secret parameters: a deployment's parameter schema marks a field `writeOnly: true` (JSON
 * Schema's "may be sent, never returned"; in a flow, `z.string().meta({ writeOnly: true })`).
 * Its value is stored for the run (the agent hands it to the flow process) but every API answer
 * about the run shows {@link REDACTED} instead, whoever asks: a read token, the web app, the
 * token that created the run. Marks are read from the deployment's current schema, through
 * `properties` (nested objects) and `items` (arrays); `$ref` is not followed.
 */
import { parseJson } from "./json.ts";

export const REDACTED = "[redacted]";

type Schema = Record<string, unknown>;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** Whether a schema marks anything write-only (most do not: their values are returned as they are). */
function marksSecrets(schema: unknown, depth = 0): boolean {
  if (!isObject(schema) || depth > 32) return false;
  if (schema.writeOnly === true) return true;
  const props = isObject(schema.properties) ? Object.values(schema.properties) : [];
  return props.some((p) => marksSecrets(p, depth + 1)) || marksSecrets(schema.items, depth + 1);
}

function redact(value: unknown, schema: unknown, depth: number): unknown {
  if (!isObject(schema) || depth > 32) return value;
  if (schema.writeOnly === true) return REDACTED;
  if (isObject(value) && isObject(schema.properties)) {
    const out: Record<string, unknown> = { ...value };
    for (const [key, sub] of Object.entries(schema.properties as Schema)) {
      if (Object.hasOwn(out, key)) out[key] = redact(out[key], sub, depth + 1);
    }
    return out;
  }
  if (Array.isArray(value) && isObject(schema.items)) return value.map((v) => redact(v, schema.items, depth + 1));
  return value;
}

/**
 * A run's parameters as the API shows them: values of write-only fields replaced.
 *
 * @example
 * redactParameters({ table: "t", apiKey: "k" }, '{"properties":{"apiKey":{"type":"string","writeOnly":true}}}')
 * // { table: "t", apiKey: "[redacted]" }
 */
export function redactParameters(
  parameters: Record<string, unknown>,
  paramsSchemaJson: string | null | undefined,
): Record<string, unknown> {
  if (!paramsSchemaJson?.includes("writeOnly")) return parameters;
  const schema = parseJson<unknown>(paramsSchemaJson, {});
  if (!marksSecrets(schema)) return parameters;
  return redact(parameters, schema, 0) as Record<string, unknown>;
}
