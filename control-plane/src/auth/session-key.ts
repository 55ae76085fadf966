import { randomBytes } from "node:crypto";
import type { Db } from "@ferry/prisma";
import { SESSION_KEY_SETTING, type SecretKeyring, sealedKeyId, settingPurpose } from "../secrets.ts";

/**
 * The installation's key for signing web sessions, created on first use and stored encrypted
 * with the operator's key: whoever reads the database cannot mint sessions. Replicas share it
 * through the database (the first to create it wins).
 */
export async function sessionKey(db: Db, keyring: SecretKeyring): Promise<Uint8Array> {
  const purpose = settingPurpose(SESSION_KEY_SETTING);
  const existing = await db.setting.findUnique({ where: { key: SESSION_KEY_SETTING } });
  if (!existing) {
    const value = await keyring.seal(randomBytes(32).toString("base64url"), purpose);
    await db.setting.upsert({ where: { key: SESSION_KEY_SETTING }, create: { key: SESSION_KEY_SETTING, value }, update: {} });
  }
  const stored = existing ?? (await db.setting.findUniqueOrThrow({ where: { key: SESSION_KEY_SETTING } }));
  // Plaintext only on a database from before encryption that the start-up migration has not sealed.
  const text = sealedKeyId(stored.value) === undefined ? stored.value : await keyring.open(stored.value, purpose);
  return Buffer.from(text, "base64url");
}
