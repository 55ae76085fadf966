import { Ajv2020, type ValidateFunction } from "ajv/dist/2020.js";

/**
 * Validates run parameters against a deployment's JSON Schema (produced from the flow's
 * zod schema at deploy time), so a bad run is refused before it is created. The flow
 * process validates again with the zod schema itself before the body runs.
 */
const MAX_ISSUES = 20;

export class ParamsValidator {
  private readonly ajv = new Ajv2020({ allErrors: true, strict: false });
  private readonly cache = new Map<string, ValidateFunction>();

  /** Returns one line per problem; empty when the parameters are valid. */
  check(schemaJson: string, params: unknown): string[] {
    let validate = this.cache.get(schemaJson);
    if (!validate) {
      try {
        validate = this.ajv.compile(JSON.parse(schemaJson) as object);
      } catch (err) {
        return [`the deployment's parameter schema is invalid: ${err instanceof Error ? err.message : String(err)}`];
      }
      if (this.cache.size > 1000) this.cache.clear();
      this.cache.set(schemaJson, validate);
    }
    if (validate(params)) return [];
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
}
