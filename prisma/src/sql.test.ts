import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import pg from "pg";
import { type OpenDatabase, openDatabase, type Provider } from "./database.ts";
import { allIn, inList, Mutex, type SqlQueries, sqlOf } from "./sql.ts";

const PG_ADMIN_URL = process.env.FERRY_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

/** A migrated database of `provider`, or the reason it cannot be had (no PostgreSQL server). */
async function open(provider: Provider): Promise<{ database: OpenDatabase; close(): Promise<void> } | string> {
  if (provider === "sqlite") {
    const dir = mkdtempSync(join(tmpdir(), "ferry-sql-"));
    const database = await openDatabase(`file:${join(dir, "t.db")}`);
    return {
      database,
      close: async () => {
        await database.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: 5_000 });
  try {
    await admin.connect();
  } catch (err) {
    const reason = `PostgreSQL not reachable at ${PG_ADMIN_URL}: ${(err as Error).message}`;
    if (process.env.FERRY_REQUIRE_POSTGRES === "1") throw new Error(reason);
    return reason;
  }
  const name = `ferry_sql_${randomBytes(6).toString("hex")}`;
  await admin.query(`CREATE DATABASE "${name}"`);
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  const database = await openDatabase(url.toString());
  return {
    database,
    close: async () => {
      await database.close();
      await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await admin.end();
    },
  };
}

test("Mutex: turns in order, locked while held or awaited", async () => {
  const m = new Mutex();
  const order: number[] = [];
  const a = await m.acquire();
  assert.equal(m.locked, true);
  const b = m.acquire().then((release) => {
    order.push(2);
    release();
  });
  order.push(1);
  a();
  await b;
  assert.deepEqual(order, [1, 2]);
  assert.equal(m.locked, false);
});

test("inList pads to a few sizes with the last value, so few statement texts exist", () => {
  assert.deepEqual(inList(["a"]), { placeholders: "?", params: ["a"] });
  assert.deepEqual(inList(["a", "b"]).params, ["a", "b", "b", "b"]);
  assert.equal(inList(Array.from({ length: 17 }, (_, i) => `v${i}`)).params.length, 64);
  assert.equal(inList(Array.from({ length: 500 }, (_, i) => `v${i}`)).params.length, 500);
  assert.equal(inList(Array.from({ length: 501 }, (_, i) => `v${i}`)).params.length, 1000);
  const sizes = new Set(Array.from({ length: 500 }, (_, i) => inList(Array.from({ length: i + 1 }, () => "x")).params.length));
  assert.deepEqual([...sizes], [1, 4, 16, 64, 256, 500]);
  assert.throws(() => inList([]), /at least one value/);
});

for (const provider of ["sqlite", "postgresql"] as const) {
  describe(`direct SQL on ${provider}`, async () => {
    const opened = await open(provider);
    if (typeof opened === "string") {
      test(`skipped: ${opened}`, { skip: opened }, () => {});
      return;
    }
    after(() => opened.close());
    const { db } = opened.database;
    const sql = sqlOf(db);
    await db.workspace.create({ data: { id: "ws", name: "w", slug: "w" } });
    /** A flow of workspace `ws` named after its id, written through `q`. */
    const insertFlow = (q: SqlQueries, id: string, at: Date) =>
      q.run(`INSERT INTO "Flow" ("id", "workspaceId", "name", "updatedAt") VALUES (?, ?, ?, ?)`, [id, "ws", id, at]);

    test("the executor is the client's, placeholders and values round-trip, times read back as Prisma wrote them", async () => {
      assert.equal(sqlOf(db).provider, provider);
      const at = new Date("2026-12-06T10:11:12.345Z");
      await db.flow.create({ data: { id: "f1", workspaceId: "ws", name: "one", createdAt: at } });
      const row = await sql.get<{ id: string; createdAt: Date; n: number }>(
        `SELECT "id", "createdAt", (SELECT COUNT(*) FROM "Flow") AS "n" FROM "Flow" WHERE "id" = ? AND "workspaceId" = ?`,
        ["f1", "ws"],
      );
      assert.equal(row?.id, "f1");
      assert.equal(row?.n, 1);
      assert.ok(row?.createdAt instanceof Date);
      assert.equal(row?.createdAt.toISOString(), at.toISOString());
      // Written by us, read by Prisma.
      await sql.run(`INSERT INTO "Flow" ("id", "workspaceId", "name", "createdAt", "updatedAt") VALUES (?, ?, ?, ?, ?)`, [
        "f2",
        "ws",
        "two",
        at,
        at,
      ]);
      const viaPrisma = await db.flow.findUniqueOrThrow({ where: { id: "f2" } });
      assert.equal(viaPrisma.createdAt.toISOString(), at.toISOString());
      assert.equal(await sql.get(`SELECT "id" FROM "Flow" WHERE "id" = ?`, ["nope"]), undefined);
    });

    test("an IN list padded with its last value finds what the exact list finds", async () => {
      const ids = ["f1", "f2", "nope"];
      const list = inList(ids);
      const rows = await sql.all<{ id: string }>(
        `SELECT "id" FROM "Flow" WHERE "id" IN (${list.placeholders}) ORDER BY "id"`,
        list.params,
      );
      assert.deepEqual(
        rows.map((r) => r.id),
        ["f1", "f2"],
      );
    });

    test("allIn looks up more values than one statement holds, in several", async () => {
      const at = new Date();
      await sql.transaction(async (tx) => {
        for (let i = 0; i < 1_200; i++) await insertFlow(tx, `many-${i}`, at);
      });
      const ids = [...Array.from({ length: 1_200 }, (_, i) => `many-${i}`), "many-none"];
      const rows = await allIn<{ id: string }>(sql, (list) => `SELECT "id" FROM "Flow" WHERE "id" IN (${list})`, ids);
      assert.equal(rows.length, 1_200);
      assert.equal(new Set(rows.map((r) => r.id)).size, 1_200);
    });

    test("bad parameters get a clear error and change nothing", async () => {
      if (provider === "sqlite") {
        await assert.rejects(sql.run(`SELECT ?`, [["a", "b"]]), /SQLite has no array parameters/);
      }
      await assert.rejects(
        sql.transaction(async (tx) => {
          await insertFlow(tx, "bad-1", new Date());
          await tx.run(`INSERT INTO "Flow" ("id", "workspaceId", "name", "updatedAt") VALUES (?, ?, ?, ?)`, ["bad-2", "ws"]);
        }),
      );
      assert.equal(await db.flow.count({ where: { id: { startsWith: "bad-" } } }), 0);
    });

    test("columns come back typed as Prisma returns them: Boolean as boolean, text that looks like a time stays text", async () => {
      await db.notificationChannel.create({
        data: { id: "c1", workspaceId: "ws", name: "2026-12-06T10:11:12.345Z", kind: "webhook", configJson: "{}", active: false },
      });
      const row = await sql.get<{ name: unknown; active: unknown; createdAt: unknown }>(
        `SELECT "name", "active", "createdAt" FROM "NotificationChannel" WHERE "id" = ?`,
        ["c1"],
      );
      assert.equal(row?.name, "2026-12-06T10:11:12.345Z");
      assert.equal(row?.active, false);
      assert.ok(row?.createdAt instanceof Date);
    });

    test("a transaction commits when it resolves and rolls back when it throws", async () => {
      const at = new Date();
      await sql.transaction(async (tx) => {
        await insertFlow(tx, "f3", at);
      });
      await assert.rejects(
        sql.transaction(async (tx) => {
          await insertFlow(tx, "f4", at);
          throw new Error("changed my mind");
        }),
        /changed my mind/,
      );
      const ids = (await sql.all<{ id: string }>(`SELECT "id" FROM "Flow" WHERE "id" IN (?, ?)`, ["f3", "f4"])).map((r) => r.id);
      assert.deepEqual(ids, ["f3"]);
      // A failing statement rolls back the statements before it too.
      await assert.rejects(
        sql.transaction(async (tx) => {
          await insertFlow(tx, "f5", at);
          await insertFlow(tx, "f3", at);
        }),
      );
      assert.equal(await db.flow.count({ where: { id: "f5" } }), 0);
    });

    test("concurrent transactions: each commits or rolls back as a whole", async () => {
      const at = new Date();
      const outcomes = await Promise.allSettled(
        Array.from({ length: 20 }, (_, i) =>
          sql.transaction(async (tx) => {
            await insertFlow(tx, `g${i}-a`, at);
            await insertFlow(tx, `g${i}-b`, at);
            if (i % 5 === 2) throw new Error(`job ${i} fails`);
            // A unique violation inside a job rolls back that job alone.
            if (i % 5 === 3) await insertFlow(tx, "g0-a", at);
            return i;
          }),
        ),
      );
      const failed = outcomes.flatMap((o, i) => (o.status === "rejected" ? [i] : []));
      assert.deepEqual(failed, [2, 3, 7, 8, 12, 13, 17, 18]);
      const stored = await db.flow.findMany({ where: { id: { startsWith: "g" } }, select: { id: true } });
      const expected = Array.from({ length: 20 }, (_, i) => i)
        .filter((i) => !failed.includes(i))
        .flatMap((i) => [`g${i}-a`, `g${i}-b`]);
      assert.deepEqual(stored.map((r) => r.id).sort(), expected.sort());
      // Something committed is durable for the next reader at once.
      assert.equal((await sql.get<{ n: number }>(`SELECT COUNT(*) AS "n" FROM "Flow" WHERE "id" LIKE 'g%'`))?.n, expected.length);
    });

    test("Prisma's transactions and ours never mix, in either order", async () => {
      const at = new Date();
      let releasePrisma!: () => void;
      const prismaHolds = new Promise<void>((resolve) => {
        releasePrisma = resolve;
      });
      let prismaStarted!: () => void;
      const started = new Promise<void>((resolve) => {
        prismaStarted = resolve;
      });
      // Prisma's interactive transaction stays open while ours is asked for, then rolls back.
      const prismaTx = db
        .$transaction(async (tx) => {
          await tx.flow.create({ data: { id: "p1", workspaceId: "ws", name: "prisma-1" } });
          prismaStarted();
          await prismaHolds;
          throw new Error("prisma rolls back");
        })
        .catch((err: Error) => err.message);
      await started;
      const ours = sql.transaction(async (tx) => {
        await insertFlow(tx, "o1", at);
        // Ours waited for Prisma's to end: only our row is visible inside it.
        return tx.get<{ n: number }>(`SELECT COUNT(*) AS "n" FROM "Flow" WHERE "id" = ?`, ["o1"]);
      });
      setTimeout(releasePrisma, 50);
      assert.equal(await prismaTx, "prisma rolls back");
      assert.equal((await ours)?.n, 1);
      const after = await db.flow.findMany({ where: { id: { in: ["p1", "o1"] } }, select: { id: true } });
      assert.deepEqual(
        after.map((r) => r.id),
        ["o1"],
      );
      // Ours rolls back while Prisma's plain write waits: Prisma's write survives.
      let oursOpen!: () => void;
      const opened = new Promise<void>((resolve) => {
        oursOpen = resolve;
      });
      const rolledBack = sql
        .transaction(async (tx) => {
          await insertFlow(tx, "o2", at);
          oursOpen();
          await new Promise((r) => setTimeout(r, 30));
          throw new Error("ours rolls back");
        })
        .catch((err: Error) => err.message);
      await opened;
      await db.flow.create({ data: { id: "p2", workspaceId: "ws", name: "prisma-2" } });
      assert.equal(await rolledBack, "ours rolls back");
      const final = await db.flow.findMany({ where: { id: { in: ["p2", "o2"] } }, select: { id: true } });
      assert.deepEqual(
        final.map((r) => r.id),
        ["p2"],
      );
    });
  });
}
