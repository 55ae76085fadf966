/**
 * Secrets at rest: what the control plane keeps to act for a workspace (notification channels'
 * URLs, signing secrets and routing keys) or for itself (the web session signing key) is
 * stored encrypted with a key the operator holds, outside the database. A database dump, a
 * backup or a read-only SQL account then shows no usable secret.
 *
 * Format: envelope encryption as a compact JWE (`jose`): a fresh content key per value encrypts
 * it (A256GCM), and the operator's key wraps that content key (A256KW). The protected header
 * names the wrapping key (`kid`, a digest of the key, never the key) and what the value is for
 * (`ctx`), so a value copied into another row does not decrypt there.
 *
 * Keys: FERRY_SECRET_KEY (base64, 32 bytes) or a key file (one base64 key a line: the first
 * encrypts, the others only decrypt); FERRY_SECRET_KEY_PREVIOUS lists older keys (comma-
 * separated). Without either, the first start generates a key file: next to the SQLite file, or
 * `.ferry/secret.key` in the working directory on PostgreSQL (with a warning: replicas must share
 * it). Rotation: a new first key, the old one kept as previous; the next start re-encrypts every
 * stored secret with the new key ({@link sealStoredSecrets}), after which the old key can go.
 *
 * @example
 * const keyring = SecretKeyring.of(SecretKeyring.generateKey());
 * const sealed = await keyring.seal("https://hooks.slack.com/…", "notification-channel:ch_1");
 * await keyring.open(sealed, "notification-channel:ch_1"); // the URL
 */
import { createHash, randomBytes } from "node:crypto";
import { linkSync, mkdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { type Db, providerOf, sqliteFilePath } from "@ferry/prisma";
import { CompactEncrypt, compactDecrypt, decodeProtectedHeader } from "jose";
import { parseObject } from "./json.ts";

export const SECRET_KEY_BYTES = 32;
const ALG = "A256KW";
const ENC = "A256GCM";
/** A compact JWE: five base64url parts (the second, the wrapped key, is never empty with A256KW). */
const COMPACT_JWE = /^eyJ[\w-]*\.[\w-]+\.[\w-]+\.[\w-]*\.[\w-]+$/;

/** A secret could not be read: unknown key, another row's value, tampering. */
export class SecretError extends Error {
  override name = "SecretError";
}

/** The id a key is known by in stored values: a digest, so it says nothing about the key. */
export function keyId(key: Uint8Array): string {
  return createHash("sha256").update("ferry-secret-key:").update(key).digest("base64url").slice(0, 16);
}

/** A key as the operator writes it: base64 or base64url of 32 random bytes (`openssl rand -base64 32`). */
export function parseKey(text: string, source: string): Uint8Array {
  const trimmed = text.trim();
  const bytes = /^[A-Za-z0-9+/_-]+={0,2}$/.test(trimmed) ? Buffer.from(trimmed, "base64") : Buffer.alloc(0);
  if (bytes.length !== SECRET_KEY_BYTES) {
    throw new SecretError(`${source}: expected ${SECRET_KEY_BYTES} bytes in base64 (openssl rand -base64 32)`);
  }
  return new Uint8Array(bytes);
}

/** The operator's keys: the first encrypts; all of them decrypt (older keys during a rotation). */
export class SecretKeyring {
  readonly currentKid: string;
  private readonly keys: Map<string, Uint8Array>;

  private constructor(
    private readonly current: Uint8Array,
    previous: readonly Uint8Array[],
  ) {
    this.currentKid = keyId(current);
    this.keys = new Map([...previous, current].map((k) => [keyId(k), k]));
  }

  static of(current: Uint8Array, previous: readonly Uint8Array[] = []): SecretKeyring {
    if (current.length !== SECRET_KEY_BYTES || previous.some((k) => k.length !== SECRET_KEY_BYTES)) {
      throw new SecretError(`secret keys are ${SECRET_KEY_BYTES} bytes`);
    }
    return new SecretKeyring(current, previous);
  }

  static generateKey(): Uint8Array {
    return new Uint8Array(randomBytes(SECRET_KEY_BYTES));
  }

  /** Ids of the keys that decrypt (the current one first). */
  get kids(): string[] {
    return [this.currentKid, ...[...this.keys.keys()].filter((k) => k !== this.currentKid)];
  }

  /** Encrypts `plaintext` for one use (`purpose`, e.g. "notification-channel:<id>"). */
  async seal(plaintext: string, purpose: string): Promise<string> {
    return new CompactEncrypt(new TextEncoder().encode(plaintext))
      .setProtectedHeader({ alg: ALG, enc: ENC, kid: this.currentKid, ctx: purpose })
      .encrypt(this.current);
  }

  /** Decrypts a value sealed for `purpose`; throws a SecretError for anything else. */
  async open(sealed: string, purpose: string): Promise<string> {
    const kid = sealedKeyId(sealed);
    if (kid === undefined) throw new SecretError("not an encrypted value");
    const key = this.keys.get(kid);
    if (!key) throw new SecretError(`encrypted with key ${kid}, which is not configured (FERRY_SECRET_KEY_PREVIOUS?)`);
    try {
      const { plaintext, protectedHeader } = await compactDecrypt(sealed, key, {
        keyManagementAlgorithms: [ALG],
        contentEncryptionAlgorithms: [ENC],
      });
      if (protectedHeader.ctx !== purpose) throw new SecretError("the value belongs to something else");
      return new TextDecoder().decode(plaintext);
    } catch (err) {
      if (err instanceof SecretError) throw err;
      throw new SecretError(`cannot decrypt: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  knows(kid: string): boolean {
    return this.keys.has(kid);
  }
}

/** The key id of a sealed value, or undefined when `value` is not one (e.g. plaintext from before encryption). */
export function sealedKeyId(value: string): string | undefined {
  if (!COMPACT_JWE.test(value)) return undefined;
  try {
    const header = decodeProtectedHeader(value);
    return header.alg === ALG && header.enc === ENC && typeof header.kid === "string" ? header.kid : undefined;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Where the keys come from

export interface SecretKeySources {
  /** A key (base64): FERRY_SECRET_KEY. */
  key?: string | undefined;
  /** Older keys that still decrypt (base64, comma-separated): FERRY_SECRET_KEY_PREVIOUS. */
  previous?: string | undefined;
  /** A key file (`--secret-key-file`, FERRY_SECRET_KEY_FILE): one key a line, the first encrypts. */
  keyFile?: string | undefined;
}

export function secretKeySourcesFromEnv(env: NodeJS.ProcessEnv = process.env): SecretKeySources {
  return {
    key: env.FERRY_SECRET_KEY || undefined,
    previous: env.FERRY_SECRET_KEY_PREVIOUS || undefined,
    keyFile: env.FERRY_SECRET_KEY_FILE || undefined,
  };
}

/**
 * Where a generated key goes when the operator gives none: beside the SQLite file (the data
 * directory), else `.ferry/secret.key` in the working directory.
 */
export function defaultKeyFile(databaseUrl: string, cwd: string = process.cwd()): string {
  if (providerOf(databaseUrl) === "sqlite") return join(dirname(sqliteFilePath(databaseUrl)), "secret.key");
  return join(resolve(cwd, ".ferry"), "secret.key");
}

/** Reads a key file: one base64 key a line (blank lines and `#` comments ignored), owner-only. */
export function readKeyFile(path: string): Uint8Array[] {
  if (process.platform !== "win32" && statSync(path).mode & 0o077) {
    throw new SecretError(`secret key file ${path} is accessible by group or others: chmod 600 ${path}`);
  }
  const lines = readFileSync(path, "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
  if (!lines.length) throw new SecretError(`secret key file ${path} holds no key`);
  return lines.map((l, i) => parseKey(l, `${path} line ${i + 1}`));
}

function keyFileText(keys: readonly Uint8Array[]): string {
  return `# Ferry secret keys: the first encrypts, the others only decrypt (during a rotation).\n${keys
    .map((k) => Buffer.from(k).toString("base64"))
    .join("\n")}\n`;
}

/** Creates a key file with a new key unless one exists (atomically: replicas starting together agree on one key). */
function createKeyFile(path: string): boolean {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  writeFileSync(tmp, keyFileText([SecretKeyring.generateKey()]), { mode: 0o600 });
  try {
    linkSync(tmp, path); // fails when the file exists: then whoever made it first wins
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw err;
  } finally {
    unlinkSync(tmp);
  }
}

/**
 * The keyring from the operator's sources; with none, from the key file at `fallbackFile`,
 * generated there on first use (`generated` is then its path).
 */
export function loadSecretKeyring(
  sources: SecretKeySources,
  fallbackFile: string,
): { keyring: SecretKeyring; generated?: string; source: string } {
  if (sources.key && sources.keyFile) throw new SecretError("give FERRY_SECRET_KEY or a secret key file, not both");
  const previous = (sources.previous ?? "")
    .split(",")
    .filter((k) => k.trim())
    .map((k, i) => parseKey(k, `FERRY_SECRET_KEY_PREVIOUS key ${i + 1}`));
  if (sources.key) {
    return { keyring: SecretKeyring.of(parseKey(sources.key, "FERRY_SECRET_KEY"), previous), source: "FERRY_SECRET_KEY" };
  }
  const file = sources.keyFile ?? fallbackFile;
  const generated = !sources.keyFile && createKeyFile(file);
  const [current, ...older] = readKeyFile(file);
  if (!current) throw new SecretError(`secret key file ${file} holds no key`);
  return { keyring: SecretKeyring.of(current, [...older, ...previous]), source: file, ...(generated ? { generated: file } : {}) };
}

/**
 * Rotates a key file: a new key first, the old ones after it (they still decrypt). The next
 * start of the control plane re-encrypts what is stored with the new key.
 */
export function rotateKeyFile(path: string): { kid: string; previousKids: string[] } {
  const old = readKeyFile(path);
  const key = SecretKeyring.generateKey();
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, keyFileText([key, ...old]), { mode: 0o600 });
  renameSync(tmp, path);
  return { kid: keyId(key), previousKids: old.map(keyId) };
}

// ---------------------------------------------------------------------------------------------
// What is stored secret

/** The purpose a channel's settings are sealed for: they decrypt only in their own row. */
export const channelPurpose = (channelId: string) => `notification-channel:${channelId}`;
export const SESSION_KEY_SETTING = "session.signingKey";
export const settingPurpose = (key: string) => `setting:${key}`;

/**
 * What a channel's list entry may show of its settings: where it goes (scheme and host), never
 * a path (Slack's and many webhooks' paths are credentials) or a key.
 */
export function channelTarget(kind: string, config: Record<string, unknown>): string {
  if (kind === "pagerduty") return "PagerDuty Events API";
  try {
    const u = new URL(typeof config.url === "string" ? config.url : "");
    return `${u.protocol}//${u.host}/…`;
  } catch {
    return "(invalid)";
  }
}

/** A channel's stored `configJson`: its public target, and its settings sealed. */
export async function sealChannelConfig(
  keyring: SecretKeyring,
  channelId: string,
  kind: string,
  config: Record<string, unknown>,
): Promise<string> {
  const sealed = await keyring.seal(JSON.stringify(config), channelPurpose(channelId));
  return JSON.stringify({ target: channelTarget(kind, config), sealed });
}

/** What a channel's list entry shows, from its stored configJson (sealed or, before migration, plain). */
export function storedChannelTarget(kind: string, configJson: string): string {
  const stored = parseObject(configJson);
  if (typeof stored.sealed === "string") return typeof stored.target === "string" ? stored.target : "(sealed)";
  return channelTarget(kind, stored);
}

/**
 * A channel's settings from its stored configJson. Plain settings from before encryption are
 * read as they are (until the start-up migration seals them); without a keyring, sealed ones are {}.
 */
export async function openChannelConfig(
  keyring: SecretKeyring | undefined,
  row: { id: string; configJson: string },
): Promise<Record<string, unknown>> {
  const stored = parseObject(row.configJson);
  if (typeof stored.sealed !== "string") return stored;
  if (!keyring) return {};
  return parseObject(await keyring.open(stored.sealed, channelPurpose(row.id)));
}

/** The key id of a stored channel configJson, undefined when it is still plaintext. */
function channelKeyId(configJson: string): string | undefined {
  const stored = parseObject(configJson);
  return typeof stored.sealed === "string" ? (sealedKeyId(stored.sealed) ?? "(unreadable)") : undefined;
}

/**
 * Brings what is stored up to the current key, at start-up: plaintext (from before encryption)
 * is sealed, values under an older key are sealed again with the current one. Each row is
 * written only if it is still what was read (two replicas starting together do not clobber each
 * other). Throws when a value was encrypted with a key this keyring lacks: starting would make
 * those secrets unusable, and the operator has to provide the key (FERRY_SECRET_KEY_PREVIOUS).
 */
export async function sealStoredSecrets(db: Db, keyring: SecretKeyring): Promise<{ sealed: number; resealed: number }> {
  const channels = await db.notificationChannel.findMany({ select: { id: true, kind: true, configJson: true } });
  const settings = await db.setting.findMany({ where: { key: { in: [SESSION_KEY_SETTING] } } });
  // Checked before any write: with a wrong key, nothing is sealed with it.
  const kids = [...channels.map((r) => channelKeyId(r.configJson)), ...settings.map((r) => sealedKeyId(r.value))];
  const unknown = new Set(kids.filter((kid): kid is string => kid !== undefined && !keyring.knows(kid)));
  if (unknown.size) {
    throw new SecretError(
      `stored secrets are encrypted with key(s) ${[...unknown].join(", ")}, which are not configured (known: ${keyring.kids.join(", ")}): ` +
        "start with the key that encrypted them (FERRY_SECRET_KEY, FERRY_SECRET_KEY_PREVIOUS or --secret-key-file)",
    );
  }

  let sealed = 0;
  let resealed = 0;
  for (const row of channels) {
    const kid = channelKeyId(row.configJson);
    if (kid === keyring.currentKid) continue;
    const config = await openChannelConfig(keyring, row);
    const configJson = await sealChannelConfig(keyring, row.id, row.kind, config);
    const { count } = await db.notificationChannel.updateMany({
      where: { id: row.id, configJson: row.configJson },
      data: { configJson },
    });
    if (kid === undefined) sealed += count;
    else resealed += count;
  }
  for (const row of settings) {
    const kid = sealedKeyId(row.value);
    if (kid === keyring.currentKid) continue;
    const purpose = settingPurpose(row.key);
    const plain = kid === undefined ? row.value : await keyring.open(row.value, purpose);
    const value = await keyring.seal(plain, purpose);
    const { count } = await db.setting.updateMany({ where: { key: row.key, value: row.value }, data: { value } });
    if (kid === undefined) sealed += count;
    else resealed += count;
  }
  return { sealed, resealed };
}
