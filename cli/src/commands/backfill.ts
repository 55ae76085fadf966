import type { FerryClient } from "@ferry/control-plane/client";

type BackfillView = Awaited<ReturnType<FerryClient["backfills"]["get"]["query"]>>;

const FINISHED = ["COMPLETED", "FAILED", "CRASHED", "CANCELLED"];

/** "[#########-----------]  412/1,000  running 10 · failed 2 · skipped 3" */
export function progressLine(b: BackfillView, width = 30): string {
  const done = FINISHED.reduce((a, s) => a + (b.runs[s] ?? 0), 0) + b.skipped;
  const total = Math.max(1, b.total);
  const filled = Math.min(width, Math.round((done / total) * width));
  const running = (b.runs.RUNNING ?? 0) + (b.runs.PENDING ?? 0) + (b.runs.SCHEDULED ?? 0);
  const failed = (b.runs.FAILED ?? 0) + (b.runs.CRASHED ?? 0);
  const parts = [
    `${done.toLocaleString("en-US")}/${b.total.toLocaleString("en-US")}`,
    `active ${running}`,
    ...(failed ? [`failed ${failed}`] : []),
    ...(b.skipped ? [`skipped ${b.skipped}`] : []),
    b.status.toLowerCase(),
  ];
  return `[${"#".repeat(filled)}${"-".repeat(width - filled)}]  ${parts.join(" · ")}`;
}

/** Follows a backfill until it ends: a progress bar on a terminal, a line every few seconds otherwise. */
export async function followBackfill(
  api: FerryClient,
  id: string,
  out: NodeJS.WriteStream = process.stdout,
): Promise<BackfillView> {
  const tty = out.isTTY;
  let lastPrinted = 0;
  for (;;) {
    const b = await api.backfills.get.query({ id });
    const line = progressLine(b);
    const ended = b.status !== "RUNNING";
    if (tty) out.write(`\r${line}\u001b[K`);
    else if (ended || Date.now() - lastPrinted > 5_000) {
      out.write(`${line}\n`);
      lastPrinted = Date.now();
    }
    if (ended) {
      if (tty) out.write("\n");
      return b;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}
