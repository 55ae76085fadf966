import type { FerryClient } from "@ferry/control-plane/client";

type Schedules = Awaited<ReturnType<FerryClient["schedules"]["list"]["query"]>>;

/** A schedule in one line: "cron 0 2 * * * (Europe/Paris)" or "every 15m from 2026-…". */
export function describeSchedule(s: Schedules[number]): string {
  if (s.kind === "cron") return `cron ${s.cron} (${s.timezone})`;
  const secs = s.intervalSeconds ?? 0;
  const every =
    secs % 86_400 === 0
      ? `${secs / 86_400}d`
      : secs % 3600 === 0
        ? `${secs / 3600}h`
        : secs % 60 === 0
          ? `${secs / 60}m`
          : `${secs}s`;
  return `every ${every} from ${typeof s.anchor === "string" ? s.anchor : ""}`;
}

export function scheduleRows(list: Schedules) {
  return list.map((s) => ({
    id: s.id,
    deployment: s.deployment,
    when: describeSchedule(s),
    active: s.active ? "yes" : "paused",
    catchup: s.catchup,
    source: s.source,
    next: s.active ? (s.nextSlots[0] ?? "-") : "-",
  }));
}
