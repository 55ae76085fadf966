import type { ErrorHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import type { Logger } from "./logger.ts";

/**
 * Hono's `onError` for the control plane: an error a route throws is one JSON log line with the
 * request's method and path (never its headers: they carry credentials), and the caller gets a
 * JSON 500 without details. An `HTTPException` keeps the answer it was thrown with.
 *
 * @example
 * app.onError(unhandledHttpError(logger.child({ component: "server" })));
 */
export function unhandledHttpError(log: Logger): ErrorHandler {
  return (err, c) => {
    if (err instanceof HTTPException) return err.getResponse();
    log.error({ err, method: c.req.method, path: c.req.path }, "unhandled error in an HTTP route");
    return c.json({ error: "internal server error" }, 500);
  };
}
