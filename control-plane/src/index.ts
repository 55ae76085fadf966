/** @ferry/control-plane: the Ferry API server, agent hub, orchestration and dispatch. */
export type { Principal } from "./auth/authenticate.ts";
export { Scope } from "./auth/tokens.ts";
export { DEFAULT_QUOTAS, parseQuotaFlags, type Quotas } from "./quotas.ts";
export type { AppRouter } from "./router.ts";
export { defaultKeyFile, rotateKeyFile, SecretKeyring, secretKeySourcesFromEnv } from "./secrets.ts";
export { type ControlPlane, type ControlPlaneOptions, SERVER_VERSION, startControlPlane } from "./server.ts";
export { type CreatedToken, createToken, createWorkspace } from "./workspace.ts";
