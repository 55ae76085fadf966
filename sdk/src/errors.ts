import type { SerializedError } from "./protocol/common.ts";
import { LIMITS } from "./protocol/common.ts";

/**
 * Throw from a task or flow to fail it at once, without the retries left.
 *
 * @example
 * if (!file.exists) throw new NonRetriableError(`input ${file.path} is missing`);
 */
export class NonRetriableError extends Error {
  override name = "NonRetriableError";
}

/** A task or flow ran longer than its `timeout`. */
export class TimeoutError extends Error {
  override name = "TimeoutError";
  constructor(
    readonly what: string,
    readonly timeoutMs: number,
  ) {
    super(`${what} timed out after ${timeoutMs} ms`);
  }
}

/** Flow parameters did not match the flow's zod schema. `issues` lists what is wrong, one line each. */
export class ParameterError extends Error {
  override name = "ParameterError";
  constructor(
    readonly flowName: string,
    readonly issues: string[],
  ) {
    super(`invalid parameters for flow "${flowName}":\n${issues.map((i) => `  - ${i}`).join("\n")}`);
  }
}

export function serializeError(err: unknown): SerializedError {
  if (err instanceof Error) {
    return {
      name: err.name.slice(0, LIMITS.maxNameChars),
      message: err.message.slice(0, LIMITS.maxMessageChars),
      stack: err.stack?.slice(0, LIMITS.maxLogChars),
    };
  }
  return { name: "Error", message: String(err).slice(0, LIMITS.maxMessageChars) };
}

/** One-line message for a state, e.g. "TypeError: x is undefined". */
export function errorMessage(err: unknown): string {
  const e = serializeError(err);
  return `${e.name}: ${e.message}`.slice(0, LIMITS.maxMessageChars);
}

/**
 * A failure as a state message: the first line names the error, then its stack trace (what
 * the web app shows for a failed task run), bounded to the message limit.
 */
export function errorReport(err: unknown): string {
  const e = serializeError(err);
  const head = `${e.name}: ${e.message}`;
  if (!e.stack) return head.slice(0, LIMITS.maxMessageChars);
  // V8's stack starts with "Name: message"; keep only the frames after it.
  const frames = e.stack
    .split("\n")
    .filter((line) => /^\s+at /.test(line))
    .join("\n");
  return (frames ? `${head}\n${frames}` : head).slice(0, LIMITS.maxMessageChars);
}
