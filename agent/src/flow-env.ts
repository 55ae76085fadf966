/**
 * The environment of flow processes. User code runs with what the agent hands it, never with
 * the agent's whole environment: the agent holds its API token (FERRY_API_TOKEN) and often
 * other credentials of the machine, and anything a flow can read it can print into run logs
 * that every read token of the workspace sees.
 *
 * A flow process gets:
 * - the variables of {@link BASE_VARIABLES} and the locale (`LC_*`) from the agent's environment,
 *   what a program needs to find executables, a home, a temporary directory and its locale;
 * - what the operator adds: `--env NAME` (the agent's value), `--env NAME=VALUE` (a fixed value),
 *   `--env-prefix PREFIX` (every agent variable whose name starts with PREFIX);
 * - the `FERRY_*` variables the agent sets itself for the runner (run id, attempt, agent name).
 *
 * `FERRY_*` names are reserved: none passes from the agent's environment, whatever the
 * operator asks, so no Ferry credential can reach user code by a broad `--env-prefix`.
 */

/** Passed from the agent's environment by default: nothing here is a credential. */
export const BASE_VARIABLES: readonly string[] = [
  "PATH",
  "HOME",
  "USER",
  "LOGNAME",
  "SHELL",
  "LANG",
  "LANGUAGE",
  "TZ",
  "TMPDIR",
  "TEMP",
  "TMP",
  // Node's own settings: heap size, extra CA certificates for a company's TLS proxy.
  "NODE_OPTIONS",
  "NODE_EXTRA_CA_CERTS",
];

/** Names the agent's environment never passes to a flow process (the agent sets its own). */
export const RESERVED_PREFIX = "FERRY_";

/** What the operator adds to the flow environment (`ferry agent start --env/--env-prefix`). */
export interface FlowEnvOptions {
  /** Variables passed from the agent's environment by name. */
  pass?: readonly string[];
  /** Variables set to a fixed value. */
  set?: Readonly<Record<string, string>>;
  /** Every variable of the agent's environment whose name starts with one of these. */
  prefixes?: readonly string[];
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Checks what an operator asked for; returns the problems (empty when fine): a name that is
 * not a variable name, a reserved `FERRY_` name, an empty prefix (it would pass everything).
 */
export function flowEnvProblems(options: FlowEnvOptions): string[] {
  const problems: string[] = [];
  const names = [...(options.pass ?? []), ...Object.keys(options.set ?? {})];
  for (const name of names) {
    if (!NAME.test(name)) problems.push(`"${name}" is not an environment variable name`);
    else if (name.toUpperCase().startsWith(RESERVED_PREFIX))
      problems.push(`${name}: FERRY_* variables are reserved for the agent and never passed to flows`);
  }
  for (const prefix of options.prefixes ?? []) {
    if (!prefix) problems.push("an empty --env-prefix would pass the agent's whole environment");
    else if (!/^[A-Za-z0-9_]+$/.test(prefix)) problems.push(`"${prefix}" is not a variable name prefix`);
  }
  return problems;
}

/**
 * The environment a flow process starts with, from the agent's environment `from` and the
 * operator's additions. `FERRY_*` variables are dropped whichever rule would pass them.
 *
 * @example
 * flowEnvironment(process.env, { pass: ["AWS_PROFILE"], set: { STAGE: "prod" }, prefixes: ["PIPELINE_"] })
 */
export function flowEnvironment(from: NodeJS.ProcessEnv, options: FlowEnvOptions = {}): Record<string, string> {
  const env: Record<string, string> = {};
  const passes = new Set([...BASE_VARIABLES, ...(options.pass ?? [])]);
  const prefixes = ["LC_", ...(options.prefixes ?? []).filter((p) => p !== "")];
  for (const [name, value] of Object.entries(from)) {
    if (value === undefined || name.toUpperCase().startsWith(RESERVED_PREFIX)) continue;
    if (passes.has(name) || prefixes.some((p) => name.startsWith(p))) env[name] = value;
  }
  for (const [name, value] of Object.entries(options.set ?? {})) {
    if (!name.toUpperCase().startsWith(RESERVED_PREFIX)) env[name] = value;
  }
  return env;
}
