/**
 * SSRF through notification channels: the attacker workspace aims channels at the control
 * plane's loopback, private ranges, the cloud metadata address and encodings of them, then asks
 * for a test notification and reads its delivery history. By default nothing reaches a private
 * receiver; with `--allow-private-egress` it does, and still no byte of what it answered comes
 * back, and a closed port cannot be told from a silent one.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import {
  createServer as createHttpServer,
  type Server as HttpServer,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import { type AddressInfo, createServer as createTcpServer, type Socket, type Server as TcpServer } from "node:net";
import { hostname } from "node:os";
import { after, before, describe, test } from "node:test";
import { openDatabase } from "@ferry/prisma";
import { PROVIDERS, postgresUnavailable, waitUntil } from "../e2e/harness.ts";
import { type Tenant, type Tenants, useTenants } from "./tenants.ts";

const SECRET = `internal-secret-${randomUUID()}`;

/** Internal services as an attacker would like to read them: every answer carries the secret. */
async function internalReceivers() {
  const hits: string[] = [];
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    hits.push(req.url ?? "/");
    req.resume();
    req.on("end", () => {
      const headers = { "content-type": "text/plain", "x-secret": SECRET };
      if (req.url === "/ok") return res.writeHead(200, headers).end(SECRET);
      if (req.url === "/redirect") return res.writeHead(302, { ...headers, location: `http://10.0.0.1/${SECRET}` }).end(SECRET);
      res.writeHead(500, `reason ${SECRET}`, headers).end(SECRET.repeat(100));
    });
  };
  const listen = async (server: HttpServer | TcpServer, host: string): Promise<number | undefined> => {
    try {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(0, host, () => resolve());
      });
      return (server.address() as AddressInfo).port;
    } catch {
      return undefined; // no IPv6 loopback here: those cases are skipped
    }
  };
  const v4 = createHttpServer(handler);
  const v6 = createHttpServer(handler);
  // Accepts connections and never answers: a "filtered"-looking port once connected.
  const sockets = new Set<Socket>();
  const silent = createTcpServer((s) => {
    sockets.add(s);
    s.on("error", () => undefined);
  });
  const v4Port = await listen(v4, "127.0.0.1");
  const v6Port = await listen(v6, "::1");
  const silentPort = await listen(silent, "127.0.0.1");
  // A port nothing listens on.
  const closed = createTcpServer();
  const closedPort = await listen(closed, "127.0.0.1");
  await new Promise<void>((r) => closed.close(() => r()));
  return {
    hits,
    v4Port: v4Port as number,
    v6Port,
    silentPort: silentPort as number,
    closedPort: closedPort as number,
    close: async () => {
      for (const s of sockets) s.destroy();
      v4.closeAllConnections();
      v6.closeAllConnections();
      await Promise.all([v4, v6, silent].map((s) => new Promise<void>((r) => (s.listening ? s.close(() => r()) : r()))));
    },
  };
}

type Receivers = Awaited<ReturnType<typeof internalReceivers>>;

/** Every way of writing "this machine" or "the operator's network" a channel URL may use. */
function privateUrls(rx: Receivers): string[] {
  return [
    `http://127.0.0.1:${rx.v4Port}/`,
    `http://2130706433:${rx.v4Port}/`,
    `http://0x7f.0.0.1:${rx.v4Port}/`,
    `http://0177.0.0.1:${rx.v4Port}/`,
    `http://127.1:${rx.v4Port}/`,
    `http://0.0.0.0:${rx.v4Port}/`,
    `http://[::ffff:127.0.0.1]:${rx.v4Port}/`,
    `http://localhost:${rx.v4Port}/`,
    ...(rx.v6Port ? [`http://[::1]:${rx.v6Port}/`] : []),
    "http://10.0.0.1/",
    "http://192.168.0.1/",
    "http://100.64.0.1/",
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://[fd00:ec2::254]/",
    "http://[64:ff9b::a9fe:a9fe]/",
  ];
}

/** What a tenant may read about its channels' deliveries, as one string to search. */
async function tenantView(tenant: Tenant): Promise<string> {
  const [channels, deliveries] = await Promise.all([
    tenant.api.notifications.channels.query(),
    tenant.api.notifications.deliveries.query({ limit: 500 }),
  ]);
  return JSON.stringify({ channels, deliveries });
}

/**
 * A channel whose URL the database holds as given, past the check made when saving: how a
 * channel saved before this policy, or one whose host's DNS answer changed, looks at send time.
 */
async function storedChannel(t: Tenants, tenant: Tenant, name: string, url: string) {
  const made = await tenant.api.notifications.createChannel.mutate({
    kind: "webhook",
    name,
    url: "https://hooks.example.com/placeholder",
    secret: "a-long-enough-secret",
  });
  const { db, close } = await openDatabase(t.database.url, { migrate: false });
  try {
    await db.notificationChannel.update({
      where: { id: made.id },
      data: { configJson: JSON.stringify({ url, secret: "a-long-enough-secret" }) },
    });
  } finally {
    await close();
  }
  return made;
}

/** Queues a delivery on a channel as a failed run would (rule and row), for the sender to pick up. */
async function queueDelivery(t: Tenants, tenant: Tenant, channel: string): Promise<string> {
  const rule = await tenant.api.notifications.createRule.mutate({ channel, events: ["FAILED"] });
  const { db, close } = await openDatabase(t.database.url, { migrate: false });
  try {
    const ruleRow = await db.notificationRule.findUniqueOrThrow({ where: { id: rule.id } });
    const id = `dlv-${randomUUID()}`;
    const alert = {
      event: "FAILED",
      workspaceId: ruleRow.workspaceId,
      deployment: "d",
      flow: "f",
      run: { id: "r", name: "run-r", state: "FAILED", stateName: "Failed", message: null, attempt: 1 },
      url: null,
      at: new Date().toISOString(),
      dedupKey: id,
    };
    await db.notificationDelivery.create({
      data: {
        id,
        workspaceId: ruleRow.workspaceId,
        ruleId: rule.id,
        channelId: ruleRow.channelId,
        event: "FAILED",
        eventKey: id,
        alertJson: JSON.stringify(alert),
        nextAttemptAt: new Date(),
      },
    });
    return id;
  } finally {
    await close();
  }
}

async function attempted(tenant: Tenant, ids: string[]) {
  return waitUntil(
    "the deliveries were attempted",
    async () => {
      const list = await tenant.api.notifications.deliveries.query({ limit: 500 });
      const mine = list.filter((d) => ids.includes(d.id));
      return mine.length === ids.length && mine.every((d) => d.attempts >= 1) ? mine : undefined;
    },
    30_000,
  );
}

for (const provider of PROVIDERS) {
  const skip = provider === "postgresql" ? await postgresUnavailable() : undefined;

  describe(`egress: public addresses only by default (${provider})`, { skip }, () => {
    let rx: Receivers;
    before(async () => {
      rx = await internalReceivers();
    });
    after(async () => {
      await rx?.close();
    });
    const t = useTenants(provider, skip);

    test("a channel aimed at a private, loopback or metadata address is refused when saved", async () => {
      for (const url of privateUrls(rx)) {
        await assert.rejects(
          t.attacker.api.notifications.createChannel.mutate({ kind: "slack", name: `s-${randomUUID()}`, url }),
          /not public/,
          url,
        );
      }
      await assert.rejects(
        t.attacker.api.notifications.createChannel.mutate({
          kind: "pagerduty",
          name: "pd",
          routingKey: "k",
          url: `http://127.0.0.1:${rx.v4Port}/`,
        }),
        /not public/,
      );
      await assert.rejects(
        t.attacker.api.notifications.createChannel.mutate({ kind: "webhook", name: "f", url: "file:///etc/passwd" }),
        /http\(s\) URL/,
      );
      assert.deepEqual(rx.hits, []);
    });

    test("at send time a host resolving to loopback, and stored private URLs, are refused: no request, no body", async () => {
      const name = hostname(); // resolves to this machine (/etc/hosts), passes the check made when saving
      const byName = await t.attacker.api.notifications.createChannel.mutate({
        kind: "webhook",
        name: "by-host-name",
        url: `http://${name}:${rx.v4Port}/`,
        secret: "a-long-enough-secret",
      });
      const channels = [byName];
      for (const [i, url] of privateUrls(rx).entries()) channels.push(await storedChannel(t, t.attacker, `stored-${i}`, url));

      for (const c of channels) {
        const result = await t.attacker.api.notifications.testChannel.mutate({ id: c.id });
        assert.equal(result.ok, false);
        assert.equal(result.status, null);
        assert.match(String(result.error), /^refused: /, JSON.stringify(result));
      }
      const ids = [];
      for (const c of channels) ids.push(await queueDelivery(t, t.attacker, c.name));
      for (const d of await attempted(t.attacker, ids)) {
        assert.equal(d.responseStatus, null);
        assert.match(String(d.lastError), /^refused: /);
      }
      assert.deepEqual(rx.hits, [], "no request reached an internal receiver");
      assert.ok(!(await tenantView(t.attacker)).includes(SECRET));
    });
  });

  describe(`egress: --allow-private-egress (${provider})`, { skip }, () => {
    let rx: Receivers;
    before(async () => {
      rx = await internalReceivers();
    });
    after(async () => {
      await rx?.close();
    });
    const t = useTenants(provider, skip, undefined, { serverArgs: ["--allow-private-egress"] });
    const channel = (name: string, url: string) =>
      t.attacker.api.notifications.createChannel.mutate({ kind: "webhook", name, url, secret: "a-long-enough-secret" });

    test("a private receiver is reached, but only its status comes back", async () => {
      const targets = [
        `http://127.0.0.1:${rx.v4Port}`,
        `http://2130706433:${rx.v4Port}`,
        `http://localhost:${rx.v4Port}`,
        ...(rx.v6Port ? [`http://[::1]:${rx.v6Port}`] : []),
      ];
      for (const [i, base] of targets.entries()) {
        const before = rx.hits.length;
        const fail = await t.attacker.api.notifications.testChannel.mutate({
          id: (await channel(`fail-${i}`, `${base}/fail`)).id,
        });
        assert.deepEqual(fail, { ok: false, status: 500, error: "HTTP 500 Internal Server Error" }, base);
        const ok = await t.attacker.api.notifications.testChannel.mutate({ id: (await channel(`ok-${i}`, `${base}/ok`)).id });
        assert.deepEqual(ok, { ok: true, status: 200, error: null }, base);
        assert.equal(rx.hits.length, before + 2, `${base} was reached`);
      }
      const redirect = await t.attacker.api.notifications.testChannel.mutate({
        id: (await channel("redirect", `http://127.0.0.1:${rx.v4Port}/redirect`)).id,
      });
      assert.deepEqual(redirect, { ok: false, status: 302, error: "HTTP 302 Found (redirects are not followed)" });

      const ids = [await queueDelivery(t, t.attacker, "fail-0"), await queueDelivery(t, t.attacker, "ok-0")];
      const deliveries = await attempted(t.attacker, ids);
      const failed = deliveries.find((d) => d.channel === "fail-0");
      assert.equal(failed?.responseStatus, 500);
      assert.equal(failed?.lastError, "HTTP 500 Internal Server Error");
      assert.equal(deliveries.find((d) => d.channel === "ok-0")?.status, "SENT");
      assert.ok(!(await tenantView(t.attacker)).includes(SECRET), "no byte of an answer is shown to the tenant");
    });

    test("a closed port and a silent one read the same: 'could not connect'", async () => {
      const closed = await t.attacker.api.notifications.testChannel.mutate({
        id: (await channel("closed", `http://127.0.0.1:${rx.closedPort}/`)).id,
      });
      const silent = await t.attacker.api.notifications.testChannel.mutate({
        id: (await channel("silent", `http://127.0.0.1:${rx.silentPort}/`)).id,
      });
      assert.deepEqual(closed, { ok: false, status: null, error: "could not connect" });
      assert.deepEqual(silent, closed);
      const ids = [await queueDelivery(t, t.attacker, "closed")];
      const [d] = await attempted(t.attacker, ids);
      assert.equal(d?.lastError, "could not connect");
    });

    test("cloud metadata addresses stay refused", async () => {
      for (const url of [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://[fd00:ec2::254]/",
      ])
        await assert.rejects(channel(`md-${randomUUID()}`, url), /not public/, url);
      const stored = await storedChannel(t, t.attacker, "md-stored", "http://169.254.169.254/latest/meta-data/");
      const result = await t.attacker.api.notifications.testChannel.mutate({ id: stored.id });
      assert.deepEqual(result, { ok: false, status: null, error: "refused: the address is not public" });
    });
  });
}
