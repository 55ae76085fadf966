import { TRPCError } from "@trpc/server";

/** The control plane's closed set of domain errors, mapped to tRPC (and thus HTTP) codes in one place. */
export type DomainErrorCode =
  | "NOT_FOUND"
  | "INVALID_PARAMETERS"
  | "INVALID_TRANSITION"
  | "CONFLICT"
  | "FORBIDDEN"
  /** A per-workspace quota (see quotas.ts): the message names it and how the operator raises it. */
  | "QUOTA_EXCEEDED";

export class DomainError extends Error {
  constructor(
    readonly code: DomainErrorCode,
    message: string,
    /** Details for the caller, e.g. parameter validation issues. */
    readonly issues: string[] = [],
  ) {
    super(message);
  }
}

export function toTRPCError(err: DomainError): TRPCError {
  const code = ((): TRPCError["code"] => {
    switch (err.code) {
      case "NOT_FOUND":
        return "NOT_FOUND";
      case "INVALID_PARAMETERS":
        return "BAD_REQUEST";
      case "INVALID_TRANSITION":
      case "CONFLICT":
        return "CONFLICT";
      case "FORBIDDEN":
        return "FORBIDDEN";
      case "QUOTA_EXCEEDED":
        return "TOO_MANY_REQUESTS";
    }
  })();
  return new TRPCError({ code, message: err.message, cause: err });
}
