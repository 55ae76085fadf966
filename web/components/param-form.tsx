"use client";

import { type FormEvent, useEffect, useId, useMemo, useRef, useState } from "react";
import {
  type Field,
  fieldsOf,
  initialValues,
  type JsonSchema,
  optionValue,
  type ParamErrors,
  parseForm,
  parseJsonObject,
  type RawValues,
  ROOT,
  rawValues,
  validate,
} from "@/lib/params";

type Mode = "form" | "json";

/** Booleans shown as a checkbox always have a value; the others can be left unset. */
const asCheckbox = (f: Field) => f.kind === "boolean" && (f.required || f.hasDefault);

function startValues(fields: Field[]): RawValues {
  const raw = initialValues(fields);
  for (const f of fields) if (asCheckbox(f) && !raw[f.name]) raw[f.name] = "false";
  return raw;
}

function hint(f: Field): string {
  const range = (unit: string) => {
    if (f.min !== undefined && f.max !== undefined) return `${f.min}–${f.max}${unit}`;
    if (f.min !== undefined) return `at least ${f.min}${unit}`;
    if (f.max !== undefined) return `at most ${f.max}${unit}`;
    return "";
  };
  const parts: string[] = [];
  switch (f.kind) {
    case "number":
    case "integer":
      parts.push(f.kind === "integer" ? "whole number" : "number");
      if (range("")) parts.push(range(""));
      break;
    case "string":
      if (range(" characters")) parts.push(range(" characters"));
      break;
    case "json": {
      const type = typeof f.schema.type === "string" ? f.schema.type : null;
      parts.push(type === "array" ? "JSON array" : type === "object" ? "JSON object" : "JSON value");
      if (type === "array" && range(" items")) parts.push(range(" items"));
      break;
    }
    default:
      break;
  }
  if (f.hasDefault && f.default !== undefined) {
    const text = JSON.stringify(f.default);
    parts.push(`default ${text.length > 40 ? `${text.slice(0, 39)}…` : text}`);
  }
  return parts.join(" · ");
}

function jsonPlaceholder(f: Field): string {
  return f.schema.type === "array" ? "[ … ]" : f.schema.type === "object" ? "{ … }" : "JSON";
}

/**
 * A run's parameters, as a form generated from the deployment's parameter schema (or as
 * one JSON object). Validates with the schema before `onSubmit`: nothing is sent while a
 * field is invalid. `defaults` are the deployment's default parameters.
 */
export function ParamForm({
  schema,
  defaults,
  busy = false,
  onSubmit,
}: {
  schema: JsonSchema;
  defaults: Record<string, unknown>;
  busy?: boolean;
  onSubmit: (parameters: Record<string, unknown>) => void | Promise<void>;
}) {
  const id = useId();
  const fields = useMemo(() => fieldsOf(schema, defaults), [schema, defaults]);
  const [mode, setMode] = useState<Mode>("form");
  const [raw, setRaw] = useState<RawValues>(() => startValues(fields));
  const [jsonText, setJsonText] = useState("");
  const [errors, setErrors] = useState<ParamErrors>({});
  const [focusFirst, setFocusFirst] = useState(0);
  const formRef = useRef<HTMLFormElement>(null);

  // After a refused submit, move the focus to the first field in error.
  useEffect(() => {
    if (!focusFirst) return;
    formRef.current?.querySelector<HTMLElement>('[aria-invalid="true"]')?.focus();
  }, [focusFirst]);

  const names = new Set(fields.map((f) => f.name));
  // Problems that belong to no field of the form (or every problem, in JSON mode).
  const general = Object.entries(errors)
    .filter(([k]) => mode === "json" || !names.has(k))
    .map(([k, msg]) => (k === ROOT ? msg : `${k}: ${msg}`));

  const refuse = (found: ParamErrors) => {
    setErrors(found);
    setFocusFirst((n) => n + 1);
  };

  const set = (name: string, value: string) => {
    setRaw((r) => ({ ...r, [name]: value }));
    setErrors(({ [name]: _gone, ...rest }) => rest);
  };

  const toJson = () => {
    const { value, errors: parseErrors } = parseForm(fields, raw);
    if (Object.keys(parseErrors).length) return refuse(parseErrors);
    setJsonText(JSON.stringify(value, null, 2));
    setErrors({});
    setMode("json");
  };

  const toForm = () => {
    const { value, error } = parseJsonObject(jsonText);
    if (!value) return refuse({ [ROOT]: error ?? "Invalid JSON" });
    const unknown = Object.keys(value).filter((k) => !names.has(k));
    if (unknown.length) {
      return refuse({ [ROOT]: `${unknown.join(", ")}: not a field of the form; remove to switch back` });
    }
    // A parameter left out of the JSON gets its default back (the same run either way).
    const given = Object.entries(rawValues(fields, value)).filter(([k]) => Object.hasOwn(value, k));
    setRaw({ ...startValues(fields), ...Object.fromEntries(given) });
    setErrors({});
    setMode("form");
  };

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (busy) return;
    let value: Record<string, unknown>;
    let found: ParamErrors = {};
    if (mode === "json") {
      const parsed = parseJsonObject(jsonText);
      if (!parsed.value) return refuse({ [ROOT]: parsed.error ?? "Invalid JSON" });
      value = parsed.value;
    } else {
      const parsed = parseForm(fields, raw);
      value = parsed.value;
      found = parsed.errors;
    }
    // The control plane validates the deployment's defaults merged with what is sent.
    found = { ...validate(schema, { ...defaults, ...value }), ...found };
    if (Object.keys(found).length) return refuse(found);
    setErrors({});
    await onSubmit(value);
  };

  const inputFor = (f: Field) => {
    const fieldId = `${id}-${f.name}`;
    const error = mode === "form" ? errors[f.name] : undefined;
    const described = [f.description || hint(f) ? `${fieldId}-help` : "", error ? `${fieldId}-error` : ""]
      .filter(Boolean)
      .join(" ");
    const common = {
      id: fieldId,
      name: f.name,
      "aria-invalid": error ? true : undefined,
      "aria-describedby": described || undefined,
      "aria-required": f.required || undefined,
    };
    const value = raw[f.name] ?? "";
    switch (f.kind) {
      case "string":
        return <input {...common} type="text" value={value} onChange={(e) => set(f.name, e.target.value)} />;
      case "number":
      case "integer":
        return (
          <input
            {...common}
            type="text"
            inputMode={f.kind === "integer" ? "numeric" : "decimal"}
            className="mono"
            value={value}
            onChange={(e) => set(f.name, e.target.value)}
          />
        );
      case "boolean":
        if (asCheckbox(f)) {
          return (
            <label className="checkbox">
              <input
                {...common}
                type="checkbox"
                value="true"
                checked={value === "true"}
                onChange={(e) => set(f.name, e.target.checked ? "true" : "false")}
              />
              {value === "true" ? "true" : "false"}
            </label>
          );
        }
        return (
          <select {...common} value={value} onChange={(e) => set(f.name, e.target.value)}>
            <option value="">— not set —</option>
            <option value="true">true</option>
            <option value="false">false</option>
          </select>
        );
      case "enum":
        return (
          <select {...common} value={value} onChange={(e) => set(f.name, e.target.value)}>
            {f.required && value !== "" ? null : <option value="">{f.required ? "Choose…" : "— not set —"}</option>}
            {(f.options ?? []).map((o) => (
              <option key={optionValue(o)} value={optionValue(o)}>
                {optionValue(o)}
              </option>
            ))}
          </select>
        );
      case "json":
        return (
          <textarea
            {...common}
            spellCheck={false}
            rows={Math.min(12, Math.max(3, value.split("\n").length))}
            placeholder={jsonPlaceholder(f)}
            value={value}
            onChange={(e) => set(f.name, e.target.value)}
          />
        );
    }
  };

  return (
    <form ref={formRef} className="form param-form" noValidate onSubmit={(e) => void submit(e)}>
      <div className="row">
        <span className="muted small">
          {fields.length === 0
            ? "This flow takes no parameters."
            : `${fields.length} parameter${fields.length === 1 ? "" : "s"}${fields.some((f) => f.required) ? " · * required" : ""}`}
        </span>
        <span className="param-spacer" />
        <button
          type="button"
          className="chip"
          aria-pressed={mode === "json"}
          title="Edit all parameters as one JSON object"
          onClick={() => (mode === "json" ? toForm() : toJson())}
        >
          {"{ }"} JSON
        </button>
      </div>

      {mode === "json" ? (
        <div className="field">
          <label className="field-label" htmlFor={`${id}-json`}>
            Parameters (JSON object)
          </label>
          <textarea
            id={`${id}-json`}
            name="parameters"
            spellCheck={false}
            rows={Math.min(20, Math.max(6, jsonText.split("\n").length + 1))}
            value={jsonText}
            aria-invalid={general.length ? true : undefined}
            onChange={(e) => {
              setJsonText(e.target.value);
              setErrors({});
            }}
          />
          <div className="field-help">Left out: the deployment&apos;s defaults.</div>
        </div>
      ) : (
        fields.map((f) => {
          const fieldId = `${id}-${f.name}`;
          const error = errors[f.name];
          const help = [f.description, hint(f)].filter(Boolean).join(" — ");
          return (
            <div className="field" key={f.name}>
              <label className="field-label" htmlFor={fieldId}>
                {f.title ? (
                  <>
                    {f.title} <span className="mono muted small">{f.name}</span>
                  </>
                ) : (
                  <span className="mono">{f.name}</span>
                )}
                {f.required ? (
                  <span className="req" aria-hidden="true">
                    *
                  </span>
                ) : null}
              </label>
              {inputFor(f)}
              {help ? (
                <div className="field-help" id={`${fieldId}-help`}>
                  {help}
                </div>
              ) : null}
              {error ? (
                <div className="field-error" id={`${fieldId}-error`}>
                  {error}
                </div>
              ) : null}
            </div>
          );
        })
      )}

      {general.length ? (
        <div className="alert alert-error">
          {general.length === 1 ? (
            general[0]
          ) : (
            <ul className="param-issues">
              {general.map((g) => (
                <li key={g}>{g}</li>
              ))}
            </ul>
          )}
        </div>
      ) : null}

      <div className="row">
        <button type="submit" className="button primary" disabled={busy} aria-busy={busy || undefined}>
          Start run
        </button>
        {busy ? <span className="muted small">Starting…</span> : null}
      </div>
    </form>
  );
}
