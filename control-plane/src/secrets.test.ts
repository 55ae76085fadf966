import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { sessionKey } from "./auth/session-key.ts";
import {
  channelPurpose,
  defaultKeyFile,
  keyId,
  loadSecretKeyring,
  openChannelConfig,
  parseKey,
  readKeyFile,
  rotateKeyFile,
  SECRET_KEY_BYTES,
  SESSION_KEY_SETTING,
  SecretError,
  SecretKeyring,
  sealChannelConfig,
  sealedKeyId,
  sealStoredSecrets,
  storedChannelTarget,
} from "./secrets.ts";
import { FIXTURE, withWorkspaceDatabase } from "./test-database.ts";

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "ferry-secrets-"));
  dirs.push(dir);
  return dir;
}
const b64 = (key: Uint8Array) => Buffer.from(key).toString("base64");

test("a sealed value opens for its purpose only, and shows nothing of the plaintext", async () => {
  const keyring = SecretKeyring.of(SecretKeyring.generateKey());
  const sealed = await keyring.seal("https://hooks.slack.com/services/T0/B0/s3cr3t", "notification-channel:a");
  assert.ok(!sealed.includes("s3cr3t") && !sealed.includes("hooks.slack.com"));
  assert.equal(sealedKeyId(sealed), keyring.currentKid);
  assert.equal(await keyring.open(sealed, "notification-channel:a"), "https://hooks.slack.com/services/T0/B0/s3cr3t");
  await assert.rejects(keyring.open(sealed, "notification-channel:b"), SecretError, "another row's value does not open");
  const parts = sealed.split(".");
  parts[3] = `${parts[3]?.slice(0, -2)}AA`;
  await assert.rejects(keyring.open(parts.join("."), "notification-channel:a"), SecretError, "tampering is detected");
  // A fresh data key per value: the same plaintext seals differently each time.
  assert.notEqual(await keyring.seal("x", "p"), await keyring.seal("x", "p"));
});

test("previous keys decrypt; an unknown key is named", async () => {
  const oldKey = SecretKeyring.generateKey();
  const old = SecretKeyring.of(oldKey);
  const sealed = await old.seal("v", "p");
  const rotated = SecretKeyring.of(SecretKeyring.generateKey(), [oldKey]);
  assert.equal(await rotated.open(sealed, "p"), "v");
  assert.notEqual(sealedKeyId(await rotated.seal("v", "p")), keyId(oldKey));
  const stranger = SecretKeyring.of(SecretKeyring.generateKey());
  await assert.rejects(stranger.open(sealed, "p"), /not configured/);
  assert.equal(sealedKeyId('{"url":"x"}'), undefined);
  assert.equal(sealedKeyId("c2Vzc2lvbmtleQ"), undefined);
});

test("keys are 32 bytes of base64", () => {
  const key = SecretKeyring.generateKey();
  assert.deepEqual(parseKey(b64(key), "k"), key);
  assert.deepEqual(parseKey(Buffer.from(key).toString("base64url"), "k"), key);
  assert.throws(() => parseKey("c2hvcnQ=", "FERRY_SECRET_KEY"), /FERRY_SECRET_KEY: expected 32 bytes/);
  assert.throws(() => parseKey("not base64!", "k"), SecretError);
  assert.equal(SECRET_KEY_BYTES, 32);
});

test("without a key, one is generated once into an owner-only file; a key in the environment wins", () => {
  const dir = tempDir();
  const file = defaultKeyFile(`file:${join(dir, "data", "ferry.db")}`);
  assert.equal(file, join(dir, "data", "secret.key"));
  const first = loadSecretKeyring({}, file);
  assert.equal(first.generated, file);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  const again = loadSecretKeyring({}, file);
  assert.equal(again.generated, undefined);
  assert.equal(again.keyring.currentKid, first.keyring.currentKid);

  const key = SecretKeyring.generateKey();
  const fromEnv = loadSecretKeyring({ key: b64(key), previous: b64(readKeyFile(file)[0] ?? key) }, file);
  assert.equal(fromEnv.keyring.currentKid, keyId(key));
  assert.ok(fromEnv.keyring.knows(first.keyring.currentKid));
  assert.throws(() => loadSecretKeyring({ key: b64(key), keyFile: file }, file), /not both/);

  chmodSync(file, 0o644);
  assert.throws(() => loadSecretKeyring({ keyFile: file }, file), /accessible by group or others/);
});

test("rotating a key file puts a new key first and keeps the old one for decryption", async () => {
  const file = join(tempDir(), "secret.key");
  const before = loadSecretKeyring({}, file).keyring;
  const sealed = await before.seal("v", "p");
  const { kid, previousKids } = rotateKeyFile(file);
  assert.deepEqual(previousKids, [before.currentKid]);
  const after = loadSecretKeyring({ keyFile: file }, file).keyring;
  assert.equal(after.currentKid, kid);
  assert.equal(await after.open(sealed, "p"), "v");
  assert.match(readFileSync(file, "utf8"), /^# Ferry secret keys/);
});

for (const provider of ["sqlite", "postgresql"] as const) {
  test(`${provider}: start-up seals plaintext, re-seals older keys, refuses unknown keys`, async (t) => {
    await withWorkspaceDatabase(
      provider,
      (reason) => t.skip(reason),
      async ({ db }) => {
        const oldKey = SecretKeyring.generateKey();
        const old = SecretKeyring.of(oldKey);
        const plainConfig = { url: "https://hooks.example.com/services/plain-secret" };
        await db.notificationChannel.create({
          data: {
            id: "ch-plain",
            workspaceId: FIXTURE.workspaceId,
            name: "plain",
            kind: "slack",
            configJson: JSON.stringify(plainConfig),
          },
        });
        const oldConfig = { url: "https://hooks.example.com/x", secret: "old-signing-secret" };
        await db.notificationChannel.create({
          data: {
            id: "ch-old",
            workspaceId: FIXTURE.workspaceId,
            name: "old",
            kind: "webhook",
            configJson: await sealChannelConfig(old, "ch-old", "webhook", oldConfig),
          },
        });
        await db.setting.create({ data: { key: SESSION_KEY_SETTING, value: "cGxhaW4tc2Vzc2lvbi1rZXktMzItYnl0ZXMtbG9uZyEh" } });

        const stranger = SecretKeyring.of(SecretKeyring.generateKey());
        await assert.rejects(sealStoredSecrets(db, stranger), /not configured/);

        const keyring = SecretKeyring.of(SecretKeyring.generateKey(), [oldKey]);
        assert.deepEqual(await sealStoredSecrets(db, keyring), { sealed: 2, resealed: 1 });
        assert.deepEqual(await sealStoredSecrets(db, keyring), { sealed: 0, resealed: 0 }, "nothing left to do");

        const rows = await db.notificationChannel.findMany({ orderBy: { id: "asc" } });
        for (const row of rows) {
          assert.ok(!row.configJson.includes("secret"), row.configJson);
          assert.equal(storedChannelTarget(row.kind, row.configJson), "https://hooks.example.com/…");
        }
        const [oldRow, plainRow] = rows;
        assert.ok(oldRow && plainRow);
        assert.deepEqual(await openChannelConfig(keyring, oldRow), oldConfig);
        assert.deepEqual(await openChannelConfig(keyring, plainRow), plainConfig);
        // Sealed for its own row: the old channel's value does not open as the plain one's.
        await assert.rejects(openChannelConfig(keyring, { id: "ch-plain", configJson: oldRow.configJson }));
        assert.equal(channelPurpose("x"), "notification-channel:x");

        const setting = await db.setting.findUniqueOrThrow({ where: { key: SESSION_KEY_SETTING } });
        assert.equal(sealedKeyId(setting.value), keyring.currentKid);
        const key = await sessionKey(db, keyring);
        assert.equal(Buffer.from(key).toString("base64url"), "cGxhaW4tc2Vzc2lvbi1rZXktMzItYnl0ZXMtbG9uZyEh");
      },
    );
  });
}

test("a new session key is stored sealed", async (t) => {
  await withWorkspaceDatabase(
    "sqlite",
    (reason) => t.skip(reason),
    async ({ db }) => {
      const keyring = SecretKeyring.of(SecretKeyring.generateKey());
      const key = await sessionKey(db, keyring);
      assert.equal(key.length, 32);
      const row = await db.setting.findUniqueOrThrow({ where: { key: SESSION_KEY_SETTING } });
      assert.equal(sealedKeyId(row.value), keyring.currentKid);
      assert.ok(!row.value.includes(Buffer.from(key).toString("base64url")));
      assert.deepEqual(await sessionKey(db, keyring), key, "the same key on the next start");
    },
  );
});

test("a key file holding no key is refused", () => {
  const file = join(tempDir(), "empty.key");
  writeFileSync(file, "# nothing\n", { mode: 0o600 });
  assert.throws(() => readKeyFile(file), /holds no key/);
});
