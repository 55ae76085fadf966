/**
 * Several control-plane replicas on one PostgreSQL database, with no broker but the database:
 *
 * - `ChangeRelay` forwards every committed change (changes.ts) to the other replicas with
 *   `NOTIFY` and hands theirs to the local feed, so a run created through replica A wakes the
 *   dispatcher of replica B (whose agent takes it), a cancel reaches the replica holding the
 *   agent's socket, and live views on any replica stay live.
 * - `Leadership` elects the one replica that runs the background loops (scheduler, lease
 *   reaper, retention, backfiller, notification delivery, trigger sweep) with a session-level
 *   advisory lock: the others wait in `pg_advisory_lock`, which returns the moment the leader's
 *   session ends (its process died or its connection broke), so nothing polls.
 *
 * With SQLite there is one process: the relay is not started and the process always leads.
 */
import { randomBytes } from "node:crypto";
import type { Provider } from "@ferry/prisma";
import pg from "pg";
import { z } from "zod";
import { Change, type ChangeFeed } from "./changes.ts";
import type { Logger } from "./logger.ts";

/** This process among the replicas (logged, and used to ignore our own notifications). */
export function newReplicaId(): string {
  return randomBytes(6).toString("hex");
}

/** PostgreSQL refuses NOTIFY payloads from 8000 bytes; stay well below. */
const MAX_PAYLOAD_BYTES = 7_000;
/** Changes waiting to be relayed while the connection is down are capped (the oldest are dropped). */
const MAX_PENDING = 10_000;

const Envelope = z.object({ o: z.string().max(40), c: z.array(z.unknown()).max(1_000) });

/** The `schema` parameter of a PostgreSQL URL (Prisma's convention), if any. */
function schemaOf(url: string): string {
  const query = url.split("?")[1];
  return (query === undefined ? null : new URLSearchParams(query).get("schema")) || "public";
}

/** One channel per schema: two Ferry installations in one database never hear each other. */
export function channelOf(url: string): string {
  return `ferry_changes_${schemaOf(url).replace(/[^a-zA-Z0-9_]/g, "_")}`.slice(0, 63).toLowerCase();
}

function connect(url: string): pg.Client {
  // keepAlive: a broken network is noticed by TCP even while no query runs.
  return new pg.Client({ connectionString: url, keepAlive: true, keepAliveInitialDelayMillis: 5_000 });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms).unref());

/**
 * Relays changes between replicas over LISTEN/NOTIFY. Local changes are merged per tick
 * (duplicates dropped) and sent in as few notifications as fit the payload limit; received
 * ones are validated and delivered to the local feed as `remote`. After the connection
 * drops and comes back, `onResync` runs: notifications sent meanwhile are lost, so what they
 * would have woken is woken once (the database still holds the truth).
 */
export class ChangeRelay {
  private client: pg.Client | undefined;
  private pending: string[] = [];
  private flushing = false;
  private flushQueued = false;
  private stopped = false;
  private connected = false;
  readonly channel: string;

  constructor(
    private readonly url: string,
    private readonly feed: ChangeFeed,
    private readonly replicaId: string,
    private readonly log: Logger,
    private readonly onResync: () => void,
  ) {
    this.channel = channelOf(url);
  }

  async start(): Promise<void> {
    this.feed.relay = (change) => this.enqueue(change);
    await this.open(false);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.feed.relay = undefined;
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => {});
  }

  private async open(resync: boolean): Promise<void> {
    let delay = 250;
    while (!this.stopped) {
      const client = connect(this.url);
      try {
        await client.connect();
        client.on("notification", (n) => this.onNotification(n.payload));
        client.on("error", (err) => this.log.warn({ err }, "change relay connection failed"));
        client.on("end", () => this.lost(client));
        await client.query(`LISTEN ${this.channel}`);
        if (this.stopped) {
          await client.end().catch(() => {});
          return;
        }
        this.client = client;
        this.connected = true;
        if (resync) {
          this.log.info("change relay reconnected");
          this.onResync();
        }
        this.flush();
        return;
      } catch (err) {
        await client.end().catch(() => {});
        if (!resync) throw err; // at start-up: fail loudly
        this.log.warn({ err, retryInMs: delay }, "change relay cannot connect");
        await sleep(delay);
        delay = Math.min(delay * 2, 10_000);
      }
    }
  }

  private lost(client: pg.Client): void {
    if (this.client !== client || this.stopped) return;
    this.client = undefined;
    this.connected = false;
    this.log.warn("change relay connection lost; reconnecting");
    void this.open(true);
  }

  private enqueue(change: Change): void {
    this.pending.push(JSON.stringify(change));
    if (this.pending.length > MAX_PENDING) this.pending.splice(0, this.pending.length - MAX_PENDING);
    if (!this.flushQueued) {
      this.flushQueued = true;
      setImmediate(() => {
        this.flushQueued = false;
        this.flush();
      });
    }
  }

  private flush(): void {
    if (this.flushing || !this.connected || !this.pending.length) return;
    this.flushing = true;
    void (async () => {
      try {
        while (this.pending.length && this.client) {
          const batch = [...new Set(this.pending)];
          this.pending = [];
          for (const payload of pack(this.replicaId, batch)) {
            await this.client?.query("SELECT pg_notify($1, $2)", [this.channel, payload]);
          }
        }
      } catch (err) {
        this.log.warn({ err }, "could not relay changes to the other replicas");
      } finally {
        this.flushing = false;
      }
    })();
  }

  private onNotification(payload: string | undefined): void {
    if (!payload) return;
    let envelope: z.infer<typeof Envelope>;
    try {
      envelope = Envelope.parse(JSON.parse(payload));
    } catch {
      this.log.warn({ bytes: payload.length }, "ignored a malformed change notification");
      return;
    }
    if (envelope.o === this.replicaId) return;
    for (const raw of envelope.c) {
      const change = Change.safeParse(raw);
      if (change.success) this.feed.receive(change.data);
      else this.log.warn({ issue: change.error.issues[0]?.message }, "ignored a malformed change");
    }
  }
}

/** Packs JSON-encoded changes into notification payloads under the size limit. */
export function pack(replicaId: string, changes: string[]): string[] {
  const head = `{"o":${JSON.stringify(replicaId)},"c":[`;
  const out: string[] = [];
  let current: string[] = [];
  let size = head.length + 2;
  for (const c of changes) {
    if (c.length + head.length + 2 > MAX_PAYLOAD_BYTES) continue; // cannot happen with the schema's bounds
    if (current.length && size + c.length + 1 > MAX_PAYLOAD_BYTES) {
      out.push(`${head}${current.join(",")}]}`);
      current = [];
      size = head.length + 2;
    }
    current.push(c);
    size += c.length + 1;
  }
  if (current.length) out.push(`${head}${current.join(",")}]}`);
  return out;
}

/** The advisory lock key of the leader (two 32-bit keys; the first names Ferry's leader lock). */
const LEADER_LOCK_CLASS = 0x46525259; // "FRRY"

/**
 * Which replica runs the background loops. `onElected` runs when this process takes the
 * lead, `onDeposed` when it loses it (its lock connection broke: another replica may already
 * lead, so the loops stop at once). With SQLite the process leads from the start.
 */
export class Leadership {
  private client: pg.Client | undefined;
  private health: NodeJS.Timeout | undefined;
  private stopped = false;
  private leading = false;

  constructor(
    private readonly provider: Provider,
    private readonly url: string,
    private readonly log: Logger,
    private readonly onElected: () => void,
    private readonly onDeposed: () => void,
    private readonly healthCheckMs = 2_000,
  ) {}

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    if (this.provider === "sqlite") {
      this.elected();
      return;
    }
    void this.campaign();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.health);
    if (this.leading) this.deposed();
    const client = this.client;
    this.client = undefined;
    // Ending the session releases the lock: another replica takes over at once.
    await client?.end().catch(() => {});
  }

  private elected(): void {
    this.leading = true;
    this.log.info("this replica leads the background work");
    this.onElected();
  }

  private deposed(): void {
    this.leading = false;
    this.onDeposed();
  }

  private async campaign(): Promise<void> {
    let delay = 250;
    while (!this.stopped) {
      const client = connect(this.url);
      this.client = client;
      let lost = false;
      const onLost = () => {
        if (lost) return;
        lost = true;
        clearInterval(this.health);
        if (this.leading && this.client === client) {
          this.log.warn("lost the leader lock connection; stopping the background work");
          this.deposed();
        }
      };
      client.on("error", (err) => {
        this.log.warn({ err }, "leader lock connection failed");
        onLost();
      });
      client.on("end", onLost);
      try {
        await client.connect();
        // A session waiting for the lock notices a vanished client (PostgreSQL 14+).
        await client.query("SET client_connection_check_interval = '5s'").catch(() => {});
        await client.query("SELECT pg_advisory_lock($1, hashtext($2))", [LEADER_LOCK_CLASS, schemaOf(this.url)]);
        if (this.stopped || lost) throw new Error("stopped while waiting for the leader lock");
        delay = 250;
        this.elected();
        // A connection can die silently (a partition): check it, and stop leading if it fails.
        await new Promise<void>((resolve) => {
          this.health = setInterval(() => {
            if (lost || this.stopped) {
              clearInterval(this.health);
              resolve();
              return;
            }
            const check = client.query("SELECT 1");
            const timeout = sleep(this.healthCheckMs * 2).then(() => "timeout" as const);
            void Promise.race([check.then(() => "ok" as const), timeout]).then(
              (r) => {
                if (r === "timeout") {
                  this.log.warn("the leader lock connection stopped answering");
                  onLost();
                  void client.end().catch(() => {});
                }
              },
              () => onLost(),
            );
          }, this.healthCheckMs);
          this.health.unref();
        });
      } catch (err) {
        if (!this.stopped) this.log.warn({ err, retryInMs: delay }, "could not hold the leader lock");
      }
      onLost();
      await client.end().catch(() => {});
      if (this.stopped) return;
      await sleep(delay);
      delay = Math.min(delay * 2, 10_000);
    }
  }
}
