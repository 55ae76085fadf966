import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { z } from "zod";

/** Files `ferry dev` keeps in `.ferry/` so later commands in the same directory just work. */
export const STATE_DIR = ".ferry";

const LocalConfig = z.object({ apiUrl: z.url().optional(), token: z.string().optional() });
type LocalConfig = z.infer<typeof LocalConfig>;

export function stateDir(cwd = process.cwd()): string {
  return resolve(cwd, STATE_DIR);
}

export function readLocalConfig(cwd = process.cwd()): LocalConfig {
  const file = join(stateDir(cwd), "config.json");
  if (!existsSync(file)) return {};
  const parsed = LocalConfig.safeParse(JSON.parse(readFileSync(file, "utf8")));
  return parsed.success ? parsed.data : {};
}

export function writeLocalConfig(config: LocalConfig, cwd = process.cwd()): void {
  mkdirSync(stateDir(cwd), { recursive: true });
  writeFileSync(join(stateDir(cwd), "config.json"), `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
}

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

export interface ApiConfig {
  apiUrl: string;
  token: string;
}

/** API URL and token from flags, then FERRY_API_URL / FERRY_API_TOKEN, then `.ferry/config.json`. */
export function apiConfig(flags: { api?: string | undefined; token?: string | undefined }): ApiConfig {
  const local = readLocalConfig();
  const apiUrl = flags.api ?? process.env.FERRY_API_URL ?? local.apiUrl;
  const token = flags.token ?? process.env.FERRY_API_TOKEN ?? local.token;
  if (!apiUrl) throw new CliError("no control plane URL: pass --api <url> or set FERRY_API_URL");
  if (!z.url({ protocol: /^https?$/ }).safeParse(apiUrl).success)
    throw new CliError(`--api must be an http(s) URL, got "${apiUrl}"`);
  if (!token) throw new CliError("no API token: pass --token <token> or set FERRY_API_TOKEN");
  return { apiUrl, token };
}

/**
 * An agent's control planes: `--api` may list several replicas, comma-separated
 * (`http://cp-a:4200,http://cp-b:4200`); the agent fails over from one to the next.
 */
export function agentApiConfig(flags: { api?: string | undefined; token?: string | undefined }): {
  apiUrls: string[];
  token: string;
} {
  const local = readLocalConfig();
  const list = (flags.api ?? process.env.FERRY_API_URL ?? local.apiUrl ?? "").split(",").map((u) => u.trim());
  const urls = list.filter((u) => u !== "");
  if (urls.length > 16) throw new CliError("--api lists more than 16 control planes");
  const checked = urls.map((url) => apiConfig({ api: url, token: flags.token }).apiUrl);
  const { token } = apiConfig({ api: checked[0], token: flags.token });
  return { apiUrls: checked, token };
}

export function databaseUrl(flag: string | undefined): string {
  return flag ?? process.env.FERRY_DATABASE_URL ?? `file:${join(stateDir(), "ferry.db")}`;
}

/** Validates parsed flags with a zod schema; a failure lists every bad flag. */
export function parseFlags<S extends z.ZodType>(schema: S, flags: unknown): z.output<S> {
  const parsed = schema.safeParse(flags);
  if (parsed.success) return parsed.data;
  // Name the flag as the user typed it: concurrencyLimit → --concurrency-limit.
  const flag = (path: PropertyKey[]) =>
    `--${path.map((p) => String(p).replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)).join(".")}`;
  const lines = parsed.error.issues.map((i) => `  ${flag(i.path)}: ${i.message}`);
  throw new CliError(`invalid options:\n${lines.join("\n")}`);
}
