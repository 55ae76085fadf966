// Imported by warm.ts: a test rewrites this file to deploy "new code".
export const CODE_VERSION = "v1";
