import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  type Field,
  fieldsOf,
  initialValues,
  optionValue,
  parseForm,
  parseJsonObject,
  ROOT,
  rawValues,
  validate,
} from "./params.ts";

// What `ferry deploy` stores for examples/ml-pipeline (zod 4 toJSONSchema, io: "input").
const ML = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  type: "object",
  properties: {
    source: { default: "examples/ml-pipeline/data/houses.csv", type: "string" },
    grid: {
      default: [0.1, 0.03, 0.01],
      minItems: 1,
      maxItems: 100,
      type: "array",
      items: { type: "number", exclusiveMinimum: 0, maximum: 1 },
    },
    epochs: { default: 200, type: "integer", minimum: 1, maximum: 5000 },
  },
};

// tests/e2e/fixtures/train.ts's "train" and "fanout" flows.
const TRAIN = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  type: "object",
  properties: { grid: { minItems: 1, type: "array", items: { type: "number", exclusiveMinimum: 0 } } },
  required: ["grid"],
};
const FANOUT = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  type: "object",
  properties: { n: { type: "integer", minimum: 1, maximum: 10_000 } },
  required: ["n"],
};

// Every kind, as zod 4 writes it (z.strictObject: additionalProperties false).
const ALL = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  type: "object",
  properties: {
    name: { type: "string", minLength: 2, maxLength: 5, title: "Name", description: "Who" },
    ratio: { type: "number" },
    count: { type: "integer", minimum: -9007199254740991, maximum: 9007199254740991 },
    dry: { type: "boolean", default: false },
    mode: { type: "string", enum: ["fast", "slow"] },
    level: { enum: [1, 2, 3] },
    fixed: { type: "string", const: "x" },
    shape: { type: "object", properties: { k: { type: "number" } }, required: ["k"] },
    maybe: { anyOf: [{ type: "integer" }, { type: "null" }] },
    either: { type: ["string", "number"] },
    color: { $ref: "#/$defs/Color", description: "Paint" },
  },
  required: ["name", "mode", "maybe"],
  additionalProperties: false,
  $defs: { Color: { type: "string", enum: ["red", "blue"] } },
};

const field = (fields: Field[], name: string): Field => {
  const f = fields.find((x) => x.name === name);
  assert.ok(f, `field ${name}`);
  return f;
};

describe("fieldsOf", () => {
  it("describes the ml-pipeline parameters with their defaults and bounds", () => {
    const fields = fieldsOf(ML);
    assert.deepEqual(
      fields.map((f) => [f.name, f.kind, f.required, f.default]),
      [
        ["source", "string", false, "examples/ml-pipeline/data/houses.csv"],
        ["grid", "json", false, [0.1, 0.03, 0.01]],
        ["epochs", "integer", false, 200],
      ],
    );
    assert.equal(field(fields, "epochs").min, 1);
    assert.equal(field(fields, "epochs").max, 5000);
    assert.equal(field(fields, "grid").min, 1);
    assert.equal(field(fields, "grid").max, 100);
  });

  it("marks required parameters, unless the deployment has a default for them", () => {
    assert.equal(field(fieldsOf(TRAIN), "grid").required, true);
    assert.equal(field(fieldsOf(TRAIN), "grid").hasDefault, false);
    const f = field(fieldsOf(TRAIN, { grid: [0.5] }), "grid");
    assert.equal(f.required, false);
    assert.deepEqual(f.default, [0.5]);
  });

  it("lets the deployment's defaults override the schema's", () => {
    assert.equal(field(fieldsOf(ML, { epochs: 10 }), "epochs").default, 10);
  });

  it("maps every kind of property", () => {
    const fields = fieldsOf(ALL);
    assert.deepEqual(Object.fromEntries(fields.map((f) => [f.name, f.kind])), {
      name: "string",
      ratio: "number",
      count: "integer",
      dry: "boolean",
      mode: "enum",
      level: "enum",
      fixed: "enum",
      shape: "json",
      maybe: "json",
      either: "json",
      color: "enum",
    });
    const name = field(fields, "name");
    assert.equal(name.title, "Name");
    assert.equal(name.description, "Who");
    assert.equal(name.min, 2);
    assert.equal(name.max, 5);
    assert.equal(field(fields, "count").min, undefined, "the safe-integer range is no bound");
    assert.deepEqual(field(fields, "level").options, [1, 2, 3]);
    assert.deepEqual(field(fields, "fixed").options, ["x"]);
    assert.deepEqual(field(fields, "color").options, ["red", "blue"]);
    assert.equal(field(fields, "color").description, "Paint");
    assert.deepEqual(
      fields.filter((f) => f.required).map((f) => f.name),
      ["name", "mode", "maybe"],
    );
  });

  it("has no fields for a flow without parameters or an odd schema", () => {
    assert.deepEqual(fieldsOf({ type: "object" }), []);
    assert.deepEqual(fieldsOf({}), []);
    assert.deepEqual(fieldsOf({ type: "object", properties: [] }), []);
  });
});

describe("initialValues and rawValues", () => {
  it("fills in the defaults as text", () => {
    assert.deepEqual(initialValues(fieldsOf(ML)), {
      source: "examples/ml-pipeline/data/houses.csv",
      grid: JSON.stringify([0.1, 0.03, 0.01], null, 2),
      epochs: "200",
    });
    assert.deepEqual(initialValues(fieldsOf(TRAIN)), { grid: "" });
  });

  it("round-trips through parseForm", () => {
    const fields = fieldsOf(ALL);
    const value = {
      name: "abc",
      ratio: 0.5,
      count: 3,
      dry: true,
      mode: "slow",
      level: 2,
      shape: { k: 1 },
      maybe: null,
      either: 7,
    };
    const { value: back, errors } = parseForm(fields, rawValues(fields, value));
    assert.deepEqual(errors, {});
    assert.deepEqual(back, value);
    assert.equal(optionValue(2), "2");
    assert.equal(optionValue("slow"), "slow");
  });
});

describe("parseForm", () => {
  const fields = fieldsOf(ALL);

  it("parses numbers, booleans, options and JSON, and leaves out empty optional fields", () => {
    const { value, errors } = parseForm(fields, {
      name: "abc",
      ratio: " 1.5 ",
      count: "-4",
      dry: "false",
      mode: "fast",
      level: "3",
      fixed: "",
      shape: '{"k": 2}',
      maybe: "null",
      either: "",
      color: "",
    });
    assert.deepEqual(errors, {});
    assert.deepEqual(value, {
      name: "abc",
      ratio: 1.5,
      count: -4,
      dry: false,
      mode: "fast",
      level: 3,
      shape: { k: 2 },
      maybe: null,
    });
  });

  it("reports what cannot be parsed, per field", () => {
    const { value, errors } = parseForm(fields, {
      name: "",
      ratio: "abc",
      count: "1.5",
      mode: "medium",
      shape: "{k: 2}",
      maybe: "",
    });
    assert.equal(errors.name, "Required");
    assert.equal(errors.ratio, "Enter a number");
    assert.equal(errors.count, "Enter a whole number");
    assert.equal(errors.mode, "Choose one of the options");
    assert.match(errors.shape ?? "", /^Invalid JSON: /);
    assert.equal(errors.maybe, "Required");
    assert.deepEqual(value, {});
  });

  it("keeps spaces of strings as typed", () => {
    assert.deepEqual(parseForm(fieldsOf(ML), { source: " a b ", grid: "", epochs: "" }).value, { source: " a b " });
  });
});

describe("parseJsonObject", () => {
  it("takes one object (empty text: no parameters)", () => {
    assert.deepEqual(parseJsonObject('{"n": 3}'), { value: { n: 3 } });
    assert.deepEqual(parseJsonObject("  "), { value: {} });
    assert.match(parseJsonObject("[1]").error ?? "", /one JSON object/);
    assert.match(parseJsonObject("{").error ?? "", /^Invalid JSON: /);
  });
});

describe("validate", () => {
  it("accepts good parameters", () => {
    assert.deepEqual(validate(ML, { grid: [0.5], epochs: 5 }), {});
    assert.deepEqual(validate(ML, {}), {});
    assert.deepEqual(validate(TRAIN, { grid: [1, 2] }), {});
    assert.deepEqual(validate(FANOUT, { n: 10 }), {});
    assert.deepEqual(validate(ALL, { name: "abc", mode: "fast", maybe: 1, color: "red", shape: { k: 1 } }), {});
  });

  it("names the parameter of each problem", () => {
    assert.deepEqual(validate(FANOUT, {}), { n: "Required" });
    assert.deepEqual(validate(FANOUT, { n: 0 }), { n: "must be >= 1" });
    assert.deepEqual(validate(FANOUT, { n: 1.5 }), { n: "must be integer" });
    assert.deepEqual(validate(TRAIN, { grid: [] }), { grid: "must NOT have fewer than 1 items" });
    assert.deepEqual(validate(ML, { grid: [0.5, 2] }), { grid: "[1]: must be <= 1" });
  });

  it("reports unknown parameters, nested problems and unions", () => {
    const errors = validate(ALL, { name: "a", mode: "x", maybe: "no", extra: 1, shape: {}, color: "green" });
    assert.equal(errors.name, "must NOT have fewer than 2 characters");
    assert.equal(errors.mode, "must be equal to one of the allowed values");
    assert.equal(errors.maybe, "must match a schema in anyOf");
    assert.equal(errors.extra, "Not a parameter of this flow");
    assert.equal(errors.shape, "must have required property 'k'");
    assert.equal(errors.color, "must be equal to one of the allowed values");
    assert.equal(errors[ROOT], undefined);
    assert.deepEqual(
      validate({ type: "object", properties: { rows: { type: "array", items: ALL.properties.shape } } }, { rows: [{ k: "1" }] }),
      {
        rows: "[0].k: must be number",
      },
    );
  });

  it("reports problems with the whole object under ROOT", () => {
    assert.deepEqual(validate(TRAIN, [1]), { [ROOT]: "must be object" });
    assert.match(validate({ type: "nonsense" }, {})[ROOT] ?? "", /schema is invalid/);
  });
});
