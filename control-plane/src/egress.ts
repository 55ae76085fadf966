/**
 * Outbound calls the control plane makes on a tenant's behalf (notification channels): the
 * egress policy and the one function that sends.
 *
 * A tenant chooses the URL, so without care the control plane would call its own loopback,
 * the cloud metadata service or the operator's private network for them (SSRF). The rules:
 * - only http(s) URLs without credentials;
 * - every address the host resolves to must be public (IPv4 and IPv6; IPv4-mapped and NAT64
 *   addresses are judged by the IPv4 address they carry), unless the operator allows private
 *   egress or allow-lists a CIDR or a host;
 * - the connection goes to an address that was checked: the checked addresses are pinned
 *   through the socket's `lookup`, so a DNS answer that changes between check and connect
 *   (rebinding) is never used;
 * - redirects are not followed, the whole call has one deadline, and the response body is never
 *   read: the caller gets the status and a short reason, never what the receiver said, and every
 *   failure before an answer is "could not connect" (closed and filtered ports look the same).
 *
 * @example
 * const policy = egressPolicy({ allow: ["10.1.0.0/16", "hooks.internal"] });
 * const result = await send(policy, { url, headers: { "content-type": "application/json" }, body });
 * // { ok: false, status: 500, error: "HTTP 500 Internal Server Error" }
 */
import { lookup as dnsLookup } from "node:dns/promises";
import { type ClientRequest, request as httpRequest, type IncomingMessage, STATUS_CODES } from "node:http";
import { request as httpsRequest } from "node:https";
import type { LookupFunction } from "node:net";
import ipaddr from "ipaddr.js";

type Address = ipaddr.IPv4 | ipaddr.IPv6;
type Cidr = [Address, number];

/** What an address is, as far as egress is concerned. Everything but `public` is refused by default. */
export type AddressClass =
  | "public"
  | "loopback"
  | "private"
  | "link-local"
  | "unique-local"
  | "shared" // carrier-grade NAT, 100.64.0.0/10
  | "metadata" // a cloud provider's instance metadata service
  | "unspecified"
  | "multicast"
  | "reserved" // broadcast, documentation, benchmarking, future use, protocol assignments, tunnels
  | "invalid";

/**
 * Addresses of cloud instance-metadata services (they hand out the machine's credentials).
 * Refused even with private egress allowed: only an allow-list CIDR that covers one opens it.
 */
const METADATA: readonly string[] = [
  "169.254.169.254/32", // AWS, GCP, Azure, OpenStack, DigitalOcean…
  "169.254.170.2/32", // AWS ECS task metadata
  "100.100.100.200/32", // Alibaba Cloud
  "192.0.0.192/32", // Oracle Cloud
  "fd00:ec2::254/128", // AWS over IPv6
];

/** IPv4 special-purpose blocks (IANA registry), first match wins. */
const IPV4: readonly [string, AddressClass][] = [
  ["0.0.0.0/8", "unspecified"], // "this network": 0.0.0.0 reaches the local host on Linux
  ["10.0.0.0/8", "private"],
  ["100.64.0.0/10", "shared"],
  ["127.0.0.0/8", "loopback"],
  ["169.254.0.0/16", "link-local"],
  ["172.16.0.0/12", "private"],
  ["192.0.0.0/24", "reserved"],
  ["192.0.2.0/24", "reserved"],
  ["192.88.99.0/24", "reserved"],
  ["192.168.0.0/16", "private"],
  ["198.18.0.0/15", "reserved"],
  ["198.51.100.0/24", "reserved"],
  ["203.0.113.0/24", "reserved"],
  ["224.0.0.0/4", "multicast"],
  ["240.0.0.0/4", "reserved"], // includes 255.255.255.255
];

/**
 * IPv6 blocks inside global unicast (2000::/3) that are not public. Outside 2000::/3 nothing is
 * public except what carries an IPv4 address (mapped, NAT64), judged by that address.
 */
const IPV6_IN_GLOBAL: readonly [string, AddressClass][] = [
  ["2001::/23", "reserved"], // protocol assignments, Teredo (hides an IPv4 address), ORCHID, benchmarking
  ["2001:db8::/32", "reserved"],
  ["2002::/16", "reserved"], // 6to4: carries an IPv4 address a relay would reach
  ["3fff::/20", "reserved"],
];
const IPV6_OUTSIDE_GLOBAL: readonly [string, AddressClass][] = [
  ["::/128", "unspecified"],
  ["::1/128", "loopback"],
  ["fc00::/7", "unique-local"],
  ["fe80::/10", "link-local"],
  ["ff00::/8", "multicast"],
];

const cidr = (text: string): Cidr => ipaddr.parseCIDR(text);
const IPV4_RANGES = IPV4.map(([c, k]) => [cidr(c), k] as const);
const IPV6_IN_GLOBAL_RANGES = IPV6_IN_GLOBAL.map(([c, k]) => [cidr(c), k] as const);
const IPV6_OUTSIDE_GLOBAL_RANGES = IPV6_OUTSIDE_GLOBAL.map(([c, k]) => [cidr(c), k] as const);
const METADATA_RANGES = METADATA.map(cidr);
const GLOBAL_UNICAST = cidr("2000::/3");
const NAT64 = cidr("64:ff9b::/96");

function matches(address: Address, [net, bits]: Cidr): boolean {
  return address.kind() === net.kind() && address.match(net, bits);
}

/** The IPv4 address an IPv6 address stands for (IPv4-mapped, NAT64 well-known prefix), if any. */
function embeddedIPv4(address: ipaddr.IPv6): ipaddr.IPv4 | undefined {
  if (address.isIPv4MappedAddress()) return address.toIPv4Address();
  if (matches(address, NAT64)) {
    const bytes = address.toByteArray().slice(12);
    return new ipaddr.IPv4(bytes);
  }
  return undefined;
}

/** Parses an address in any form the URL parser or a resolver may give (brackets allowed). */
function parseAddress(text: string): Address | undefined {
  const bare = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
  // ipaddr.js reads IPv4 in decimal, octal and hex forms too ("2130706433", "0x7f.1"), as the URL parser does.
  if (!ipaddr.isValid(bare)) return undefined;
  const parsed = ipaddr.parse(bare);
  // A zone id ("fe80::1%eth0") names an interface: never a public destination.
  if (parsed.kind() === "ipv6" && (parsed as ipaddr.IPv6).zoneId) return undefined;
  return parsed;
}

/**
 * Classifies an IP address (IPv4 in any encoding, IPv6 with or without brackets).
 *
 * @example
 * classifyAddress("::ffff:127.0.0.1"); // "loopback"
 * classifyAddress("2130706433"); // "loopback"
 * classifyAddress("8.8.8.8"); // "public"
 */
export function classifyAddress(text: string): AddressClass {
  const parsed = parseAddress(text);
  if (!parsed) return "invalid";
  return classify(parsed);
}

function classify(address: Address): AddressClass {
  if (METADATA_RANGES.some((r) => matches(address, r))) return "metadata";
  if (address.kind() === "ipv4") {
    for (const [range, kind] of IPV4_RANGES) if (matches(address, range)) return kind;
    return "public";
  }
  const v6 = address as ipaddr.IPv6;
  const v4 = embeddedIPv4(v6);
  if (v4) return classify(v4);
  if (matches(v6, GLOBAL_UNICAST)) {
    for (const [range, kind] of IPV6_IN_GLOBAL_RANGES) if (matches(v6, range)) return kind;
    return "public";
  }
  for (const [range, kind] of IPV6_OUTSIDE_GLOBAL_RANGES) if (matches(v6, range)) return kind;
  return "reserved";
}

/** Who may be called beyond public addresses: the operator's choice (`ferry server start` flags). */
export interface EgressPolicy {
  /** Private, loopback, link-local… addresses allowed (not metadata services unless allow-listed). */
  readonly allowPrivate: boolean;
  readonly allowCidrs: readonly Cidr[];
  /** Lower-case host names, without a trailing dot; "*.example" covers every subdomain of example. */
  readonly allowHosts: readonly string[];
}

/** Public addresses only: the default of a hosted control plane. */
export const PUBLIC_EGRESS: EgressPolicy = { allowPrivate: false, allowCidrs: [], allowHosts: [] };

const HOST_NAME = /^(\*\.)?([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

/**
 * Builds a policy from the operator's flags; throws on an allow-list entry that is neither a
 * CIDR, an address nor a host name.
 *
 * @example
 * egressPolicy({ allow: ["10.1.0.0/16", "192.168.1.7", "hooks.internal", "*.corp.example"] });
 */
export function egressPolicy(options: { allowPrivate?: boolean; allow?: readonly string[] } = {}): EgressPolicy {
  const allowCidrs: Cidr[] = [];
  const allowHosts: string[] = [];
  for (const raw of options.allow ?? []) {
    const entry = raw.trim().toLowerCase();
    if (ipaddr.isValidCIDR(entry)) {
      allowCidrs.push(ipaddr.parseCIDR(entry));
      continue;
    }
    const address = parseAddress(entry);
    if (address) {
      allowCidrs.push([address, address.kind() === "ipv4" ? 32 : 128]);
      continue;
    }
    const host = entry.replace(/\.$/, "");
    if (!HOST_NAME.test(host)) throw new Error(`egress allow-list: "${raw}" is not a CIDR, an address or a host name`);
    allowHosts.push(host);
  }
  return { allowPrivate: !!options.allowPrivate, allowCidrs, allowHosts };
}

function hostAllowed(policy: EgressPolicy, host: string): boolean {
  const name = host.toLowerCase().replace(/\.$/, "");
  return policy.allowHosts.some((h) => (h.startsWith("*.") ? name.endsWith(h.slice(1)) : name === h));
}

/** May the control plane connect to this address (reached through `host`)? */
export function addressAllowed(policy: EgressPolicy, address: string, host?: string): boolean {
  const parsed = parseAddress(address);
  if (!parsed) return false;
  if (host !== undefined && hostAllowed(policy, host)) return true;
  // An allow-listed CIDR is judged against the address itself and the IPv4 address it may carry.
  const v4 = parsed.kind() === "ipv6" ? embeddedIPv4(parsed as ipaddr.IPv6) : undefined;
  if (policy.allowCidrs.some((r) => matches(parsed, r) || (v4 !== undefined && matches(v4, r)))) return true;
  const kind = classify(parsed);
  if (kind === "public") return true;
  if (kind === "metadata" || kind === "invalid") return false;
  return policy.allowPrivate;
}

/** The reasons a tenant may see: short, fixed, never what a receiver or the network said. */
export const REASONS = {
  scheme: "refused: not an http(s) URL",
  credentials: "refused: credentials in the URL are not supported",
  address: "refused: the address is not public",
  resolve: "refused: the host did not resolve to a public address",
  connect: "could not connect",
} as const;

/** A URL the policy refuses before any network access, or the parsed URL. */
export type UrlCheck = { ok: true; url: URL } | { ok: false; reason: string };

/**
 * What can be decided without DNS: the scheme, credentials, a literal address (in any encoding
 * the URL parser accepts) and `localhost`. Used when a channel is saved, for a clear error early;
 * the decision that counts is taken again at connect time, after resolving.
 */
export function checkUrl(policy: EgressPolicy, text: string): UrlCheck {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return { ok: false, reason: REASONS.scheme };
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return { ok: false, reason: REASONS.scheme };
  if (url.username || url.password) return { ok: false, reason: REASONS.credentials };
  if (parseAddress(url.hostname)) {
    return addressAllowed(policy, url.hostname) ? { ok: true, url } : { ok: false, reason: REASONS.address };
  }
  const name = url.hostname.replace(/\.$/, "");
  // RFC 6761: localhost names are loopback whatever DNS says; refuse them before resolving.
  if ((name === "localhost" || name.endsWith(".localhost")) && !policy.allowPrivate && !hostAllowed(policy, name))
    return { ok: false, reason: REASONS.address };
  return { ok: true, url };
}

/** Resolves a host name to every address it has (the resolver is injectable for tests). */
export type Resolver = (host: string) => Promise<{ address: string; family: number }[]>;

const systemResolver: Resolver = (host) => dnsLookup(host, { all: true, verbatim: true });

export interface OutgoingRequest {
  url: string;
  /** POST unless told otherwise. */
  method?: string;
  headers: Record<string, string>;
  body: string;
}

/**
 * The outcome of a call as a tenant may see it: `error` is one of a few fixed reasons or
 * "HTTP <status> <standard text>". `detail` is for the operator's log only (it may name the
 * network error) and must never be returned to a tenant.
 */
export interface SendResult {
  ok: boolean;
  status: number | null;
  error: string | null;
  detail?: string;
}

export interface SendOptions {
  /** Deadline for the whole call: resolve, connect, TLS, sending, the response's status line. */
  timeoutMs?: number;
  resolve?: Resolver;
}

/**
 * Sends one request under the policy: checks the URL, resolves the host once, refuses unless
 * every address is allowed, connects only to those addresses, and reports the status without
 * reading the response body.
 */
export async function send(policy: EgressPolicy, req: OutgoingRequest, options: SendOptions = {}): Promise<SendResult> {
  const checked = checkUrl(policy, req.url);
  if (!checked.ok) return { ok: false, status: null, error: checked.reason };
  const { url } = checked;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const deadline = AbortSignal.timeout(timeoutMs);
  const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;

  let pinned: { address: string; family: number }[];
  const literal = parseAddress(host);
  if (literal) {
    // A literal address, checked by checkUrl already. Connect to the address as it was classified,
    // written the one way net.connect reads as an address (so it is never looked up as a name).
    pinned = [{ address: literal.toString(), family: literal.kind() === "ipv4" ? 4 : 6 }];
  } else {
    try {
      const resolved = await raceDeadline((options.resolve ?? systemResolver)(host), deadline);
      // Every address must pass, not just one: the connection may be made to any of them.
      if (resolved.length === 0 || !resolved.every((a) => addressAllowed(policy, a.address, host)))
        return {
          ok: false,
          status: null,
          error: REASONS.resolve,
          detail: `resolved to ${resolved.map((a) => a.address).join(", ")}`,
        };
      pinned = resolved;
    } catch (err) {
      return { ok: false, status: null, error: REASONS.resolve, detail: errorDetail(err) };
    }
  }

  // The socket's lookup answers with the checked addresses only: no second DNS query to rebind.
  const lookup: LookupFunction = (_hostname, opts, callback) => {
    const first = pinned[0];
    if (!first) return callback(new Error("no address"), "", 4);
    if (opts.all) return callback(null, pinned);
    callback(null, first.address, first.family);
  };

  return new Promise<SendResult>((resolvePromise) => {
    let settled = false;
    const finish = (result: SendResult) => {
      if (settled) return;
      settled = true;
      deadline.removeEventListener("abort", onAbort);
      resolvePromise(result);
    };
    const requestFn = url.protocol === "https:" ? httpsRequest : httpRequest;
    const onAbort = () => {
      outgoing.destroy();
      finish({ ok: false, status: null, error: REASONS.connect, detail: `no answer within ${timeoutMs} ms` });
    };
    const outgoing: ClientRequest = requestFn(
      {
        protocol: url.protocol,
        hostname: literal ? literal.toString() : host,
        port: url.port || undefined,
        path: `${url.pathname}${url.search}`,
        method: req.method ?? "POST",
        headers: { ...req.headers, "content-length": String(Buffer.byteLength(req.body)) },
        lookup,
        // A fresh connection per call: a pooled socket could be one to another, earlier checked host.
        agent: false,
        maxHeaderSize: 16 * 1024,
      },
      (res: IncomingMessage) => {
        const status = res.statusCode ?? 0;
        // The body is never read: drop the connection as soon as the status is known.
        res.destroy();
        outgoing.destroy();
        const ok = status >= 200 && status < 300;
        const text = `HTTP ${status}${STATUS_CODES[status] ? ` ${STATUS_CODES[status]}` : ""}`;
        finish({
          ok,
          status,
          error: ok ? null : status >= 300 && status < 400 ? `${text} (redirects are not followed)` : text,
        });
      },
    );
    if (deadline.aborted) return onAbort();
    deadline.addEventListener("abort", onAbort, { once: true });
    outgoing.on("error", (err) => finish({ ok: false, status: null, error: REASONS.connect, detail: errorDetail(err) }));
    outgoing.end(req.body);
  });
}

function raceDeadline<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new Error("deadline passed while resolving"));
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

function errorDetail(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: unknown }).code;
  return typeof code === "string" ? `${code}: ${err.message}` : err.message;
}

const SAFE_HTTP = /^HTTP \d{3}( [A-Za-z' -]+)?( \(redirects are not followed\))?$/;

/**
 * A stored error as a tenant may see it. Errors recorded before this module existed may hold a
 * receiver's body ("HTTP 500: <body>") or a network error naming a port's state: only the status
 * survives of the first, the second becomes "could not connect". `known` lists other fixed
 * messages the caller stores itself.
 */
export function shownReason(text: string | null, known: readonly string[] = []): string | null {
  if (text === null) return null;
  if (SAFE_HTTP.test(text) || known.includes(text) || (Object.values(REASONS) as string[]).includes(text)) return text;
  const status = /^HTTP (\d{3})\b/.exec(text)?.[1];
  return status ? `HTTP ${status}` : REASONS.connect;
}
