import assert from "node:assert/strict";
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import {
  addressAllowed,
  checkUrl,
  classifyAddress,
  egressPolicy,
  PUBLIC_EGRESS,
  REASONS,
  type Resolver,
  send,
  shownReason,
} from "./egress.ts";

describe("classifyAddress", () => {
  const cases: [string, string][] = [
    // IPv4, every encoding the URL parser accepts
    ["127.0.0.1", "loopback"],
    ["127.255.255.254", "loopback"],
    ["2130706433", "loopback"],
    ["0x7f000001", "loopback"],
    ["0x7f.1", "loopback"],
    ["0177.0.0.1", "loopback"],
    ["127.1", "loopback"],
    ["0.0.0.0", "unspecified"],
    ["0", "unspecified"],
    ["10.0.0.1", "private"],
    ["172.16.5.4", "private"],
    ["172.31.255.255", "private"],
    ["192.168.1.1", "private"],
    ["100.64.0.1", "shared"],
    ["100.127.255.254", "shared"],
    ["169.254.1.1", "link-local"],
    ["169.254.169.254", "metadata"],
    ["0xa9fea9fe", "metadata"],
    ["2852039166", "metadata"],
    ["100.100.100.200", "metadata"],
    ["192.0.0.192", "metadata"],
    ["224.0.0.1", "multicast"],
    ["239.255.255.250", "multicast"],
    ["255.255.255.255", "reserved"],
    ["240.0.0.1", "reserved"],
    ["192.0.2.1", "reserved"],
    ["198.18.0.1", "reserved"],
    // IPv6
    ["::1", "loopback"],
    ["[::1]", "loopback"],
    ["0:0:0:0:0:0:0:1", "loopback"],
    ["::", "unspecified"],
    ["::ffff:127.0.0.1", "loopback"],
    ["[::ffff:7f00:1]", "loopback"],
    ["::ffff:10.0.0.1", "private"],
    ["::ffff:169.254.169.254", "metadata"],
    ["64:ff9b::7f00:1", "loopback"], // NAT64 of 127.0.0.1
    ["64:ff9b::a9fe:a9fe", "metadata"],
    ["64:ff9b:1::1", "reserved"], // local-use NAT64: any prefix format
    ["fc00::1", "unique-local"],
    ["fd12:3456::1", "unique-local"],
    ["fd00:ec2::254", "metadata"],
    ["fe80::1", "link-local"],
    ["ff02::1", "multicast"],
    ["2001:db8::1", "reserved"],
    ["2001:0:4136:e378:8000:63bf:3fff:fdd2", "reserved"], // Teredo
    ["2002:7f00:1::1", "reserved"], // 6to4 of 127.0.0.1
    ["100::1", "reserved"],
    // public
    ["8.8.8.8", "public"],
    ["1.1.1.1", "public"],
    ["100.63.255.255", "public"],
    ["100.128.0.0", "public"],
    ["172.32.0.1", "public"],
    ["::ffff:8.8.8.8", "public"],
    ["64:ff9b::808:808", "public"],
    ["2001:4860:4860::8888", "public"],
    ["2606:4700:4700::1111", "public"],
    // not addresses
    ["localhost", "invalid"],
    ["fe80::1%eth0", "invalid"],
    ["", "invalid"],
  ];
  for (const [address, expected] of cases) {
    it(`${address || '""'} is ${expected}`, () => assert.equal(classifyAddress(address), expected));
  }
});

describe("addressAllowed", () => {
  it("allows public addresses only by default", () => {
    assert.equal(addressAllowed(PUBLIC_EGRESS, "8.8.8.8"), true);
    assert.equal(addressAllowed(PUBLIC_EGRESS, "2606:4700:4700::1111"), true);
    for (const a of ["127.0.0.1", "10.0.0.1", "::1", "::ffff:127.0.0.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "fd00::1"])
      assert.equal(addressAllowed(PUBLIC_EGRESS, a), false, a);
  });
  it("private egress opens private ranges but not metadata services", () => {
    const policy = egressPolicy({ allowPrivate: true });
    for (const a of ["127.0.0.1", "10.0.0.1", "::1", "fd12::1", "100.64.0.1"]) assert.equal(addressAllowed(policy, a), true, a);
    assert.equal(addressAllowed(policy, "169.254.169.254"), false);
    assert.equal(addressAllowed(policy, "::ffff:169.254.169.254"), false);
    assert.equal(addressAllowed(policy, "fd00:ec2::254"), false);
  });
  it("allow-list CIDRs open exactly their range, also through mapped forms", () => {
    const policy = egressPolicy({ allow: ["10.1.0.0/16", "192.168.1.7", "fd00:1::/32", "169.254.169.254/32"] });
    assert.equal(addressAllowed(policy, "10.1.2.3"), true);
    assert.equal(addressAllowed(policy, "::ffff:10.1.2.3"), true);
    assert.equal(addressAllowed(policy, "10.2.0.1"), false);
    assert.equal(addressAllowed(policy, "192.168.1.7"), true);
    assert.equal(addressAllowed(policy, "192.168.1.8"), false);
    assert.equal(addressAllowed(policy, "fd00:1::5"), true);
    assert.equal(addressAllowed(policy, "fd00:2::5"), false);
    assert.equal(addressAllowed(policy, "169.254.169.254"), true, "an explicit entry opens a metadata address");
    assert.equal(addressAllowed(policy, "127.0.0.1"), false);
  });
  it("allow-list hosts open whatever they resolve to, for that host only", () => {
    const policy = egressPolicy({ allow: ["hooks.internal", "*.corp.example", "Upper.Example."] });
    assert.equal(addressAllowed(policy, "10.9.9.9", "hooks.internal"), true);
    assert.equal(addressAllowed(policy, "10.9.9.9", "HOOKS.internal."), true);
    assert.equal(addressAllowed(policy, "10.9.9.9", "a.b.corp.example"), true);
    assert.equal(addressAllowed(policy, "10.9.9.9", "upper.example"), true);
    assert.equal(addressAllowed(policy, "10.9.9.9", "corp.example.evil"), false);
    assert.equal(addressAllowed(policy, "10.9.9.9", "evilcorp.example"), false);
    assert.equal(addressAllowed(policy, "10.9.9.9", "other.internal"), false);
    assert.equal(addressAllowed(policy, "10.9.9.9"), false);
  });
  it("refuses allow-list entries that are nothing", () => {
    assert.throws(() => egressPolicy({ allow: ["10.0.0.0/33"] }), /not a CIDR/);
    assert.throws(() => egressPolicy({ allow: ["http://x"] }), /not a CIDR/);
    assert.throws(() => egressPolicy({ allow: [""] }), /not a CIDR/);
  });
});

describe("checkUrl", () => {
  const refused = (url: string, policy = PUBLIC_EGRESS) => {
    const r = checkUrl(policy, url);
    return r.ok ? null : r.reason;
  };
  it("refuses other schemes and credentials", () => {
    for (const u of ["ftp://example.com/", "file:///etc/passwd", "gopher://example.com/", "javascript:alert(1)", "not a url"])
      assert.equal(refused(u), REASONS.scheme, u);
    assert.equal(refused("https://user:pw@example.com/"), REASONS.credentials);
  });
  it("refuses private literals in every encoding", () => {
    for (const u of [
      "http://127.0.0.1:8080/",
      "http://2130706433:8080/",
      "http://0x7f.0.0.1/",
      "http://0177.0.0.1/",
      "http://127.1/",
      "http://0/",
      "http://0.0.0.0/",
      "http://[::1]:9000/",
      "http://[::ffff:127.0.0.1]/",
      "http://[64:ff9b::a9fe:a9fe]/",
      "http://10.0.0.1/",
      "http://169.254.169.254/latest/meta-data/",
      "http://100.64.0.1/",
      "http://[fd00::1]/",
      "http://localhost:3000/",
      "http://LOCALHOST./",
      "http://api.localhost/",
    ])
      assert.equal(refused(u), REASONS.address, u);
  });
  it("lets public hosts and literals through (DNS is checked at connect time)", () => {
    for (const u of [
      "https://hooks.slack.com/services/x",
      "https://events.pagerduty.com/v2/enqueue",
      "http://8.8.8.8/",
      "https://[2606:4700:4700::1111]/",
    ])
      assert.equal(refused(u), null, u);
  });
  it("follows the operator's opt-in", () => {
    assert.equal(refused("http://127.0.0.1:1/", egressPolicy({ allowPrivate: true })), null);
    assert.equal(refused("http://localhost:1/", egressPolicy({ allowPrivate: true })), null);
    assert.equal(refused("http://169.254.169.254/", egressPolicy({ allowPrivate: true })), REASONS.address);
    assert.equal(refused("http://10.1.0.5/", egressPolicy({ allow: ["10.1.0.0/16"] })), null);
  });
});

describe("send", () => {
  const requests: { url: string; headers: IncomingHttpHeaders }[] = [];
  const SECRET = "top-secret-internal-body";
  const server = createServer((req, res) => {
    requests.push({ url: req.url ?? "", headers: req.headers });
    req.resume();
    req.on("end", () => {
      if (req.url === "/ok") return res.writeHead(200).end(SECRET);
      if (req.url === "/redirect") return res.writeHead(302, { location: "http://127.0.0.1:1/" }).end(SECRET);
      if (req.url === "/slow") return; // never answers
      if (req.url === "/huge") {
        // An endless body: the sender must not wait for it.
        res.writeHead(500, `reason ${SECRET}`);
        const chunk = Buffer.alloc(64 * 1024, 65);
        const pump = () => {
          while (res.write(chunk)) {}
          res.once("drain", pump);
        };
        res.on("error", () => undefined);
        return pump();
      }
      res.writeHead(500, `custom reason ${SECRET}`).end(SECRET);
    });
  });
  let base = "";
  let port = 0;
  before(async () => {
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    port = (server.address() as AddressInfo).port;
    base = `http://127.0.0.1:${port}`;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });
  const local = egressPolicy({ allow: ["127.0.0.1/32"] });
  const post = (url: string) => ({ url, headers: { "content-type": "application/json" }, body: "{}" });

  it("refuses private targets without a connection", async () => {
    const before = requests.length;
    for (const url of [`${base}/ok`, `http://2130706433:${port}/ok`, `http://[::ffff:127.0.0.1]:${port}/ok`]) {
      const r = await send(PUBLIC_EGRESS, post(url));
      assert.deepEqual(r, { ok: false, status: null, error: REASONS.address }, url);
    }
    const r = await send(PUBLIC_EGRESS, post(`http://localhost:${port}/ok`));
    assert.equal(r.error, REASONS.address);
    assert.equal(requests.length, before, "no request reached the receiver");
  });

  it("with private egress allowed, reaches the address every encoding stands for", async () => {
    const open = egressPolicy({ allowPrivate: true });
    for (const url of [`http://2130706433:${port}/ok`, `http://0x7f.1:${port}/ok`, `http://localhost:${port}/ok`]) {
      const before = requests.length;
      const r = await send(open, post(url));
      assert.equal(r.ok, true, `${url}: ${JSON.stringify(r)}`);
      assert.equal(requests.length, before + 1);
    }
  });

  it("refuses a host when any of its addresses is not public", async () => {
    const resolve: Resolver = async () => [
      { address: "8.8.8.8", family: 4 },
      { address: "127.0.0.1", family: 4 },
    ];
    const r = await send(PUBLIC_EGRESS, post(`http://mixed.example:${port}/ok`), { resolve });
    assert.equal(r.error, REASONS.resolve);
    const failing: Resolver = async () => {
      throw Object.assign(new Error("getaddrinfo ENOTFOUND"), { code: "ENOTFOUND" });
    };
    const nx = await send(PUBLIC_EGRESS, post("http://nx.example/"), { resolve: failing });
    assert.equal(nx.error, REASONS.resolve, "an unknown host and a private one read the same");
  });

  it("reports the status only, never the body or the receiver's reason phrase", async () => {
    const ok = await send(local, post(`${base}/ok`));
    assert.deepEqual({ ...ok, detail: undefined }, { ok: true, status: 200, error: null, detail: undefined });
    const bad = await send(local, post(`${base}/fail`));
    assert.equal(bad.status, 500);
    assert.equal(bad.error, "HTTP 500 Internal Server Error");
    assert.ok(!JSON.stringify(bad).includes(SECRET));
  });

  it("does not read an endless body", async () => {
    const started = Date.now();
    const r = await send(local, post(`${base}/huge`), { timeoutMs: 5_000 });
    assert.equal(r.error, "HTTP 500 Internal Server Error");
    assert.ok(Date.now() - started < 2_000);
  });

  it("does not follow redirects", async () => {
    const r = await send(local, post(`${base}/redirect`));
    assert.equal(r.status, 302);
    assert.equal(r.error, "HTTP 302 Found (redirects are not followed)");
  });

  it("says only 'could not connect' for a closed port and for a silent one", async () => {
    const closed = await send(egressPolicy({ allowPrivate: true }), post("http://127.0.0.1:1/"));
    const silent = await send(local, post(`${base}/slow`), { timeoutMs: 300 });
    assert.equal(closed.error, REASONS.connect);
    assert.equal(silent.error, REASONS.connect);
    assert.deepEqual({ ...closed, detail: "" }, { ...silent, detail: "" });
  });

  it("connects to the address it checked: one resolution, pinned (no rebinding)", async () => {
    let calls = 0;
    // First answer allowed, any later one would be private: a rebinding resolver.
    const resolve: Resolver = async () => {
      calls += 1;
      return [{ address: calls === 1 ? "127.0.0.1" : "10.0.0.1", family: 4 }];
    };
    const before = requests.length;
    const r = await send(local, post(`http://hooks.test:${port}/ok`), { resolve });
    assert.equal(r.ok, true, JSON.stringify(r));
    assert.equal(calls, 1);
    assert.equal(requests.length, before + 1);
    assert.equal(requests.at(-1)?.headers.host, `hooks.test:${port}`, "the Host header names the host, not the address");
  });

  it("an allow-listed host may resolve to a private address", async () => {
    const resolve: Resolver = async () => [{ address: "127.0.0.1", family: 4 }];
    const r = await send(egressPolicy({ allow: ["hooks.test"] }), post(`http://hooks.test:${port}/ok`), { resolve });
    assert.equal(r.ok, true);
    const other = await send(egressPolicy({ allow: ["hooks.test"] }), post(`http://other.test:${port}/ok`), { resolve });
    assert.equal(other.error, REASONS.resolve);
  });
});

describe("shownReason", () => {
  it("keeps fixed reasons and statuses, strips what older versions stored", () => {
    assert.equal(shownReason(null), null);
    assert.equal(shownReason("HTTP 500 Internal Server Error"), "HTTP 500 Internal Server Error");
    assert.equal(shownReason("HTTP 302 Found (redirects are not followed)"), "HTTP 302 Found (redirects are not followed)");
    assert.equal(shownReason(REASONS.resolve), REASONS.resolve);
    assert.equal(shownReason("the channel is disabled", ["the channel is disabled"]), "the channel is disabled");
    assert.equal(shownReason('HTTP 500: {"secret":"aws-key"}'), "HTTP 500");
    assert.equal(shownReason("fetch failed: connect ECONNREFUSED 127.0.0.1:1"), REASONS.connect);
    assert.equal(shownReason("The operation was aborted due to timeout"), REASONS.connect);
  });
});
