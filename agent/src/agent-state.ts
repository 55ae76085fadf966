import { randomUUID } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";

const StateFile = z.object({ agentId: z.string().min(1).max(100) });

export interface AgentState {
  agentId: string;
  /** Gives the state directory up (removes the lock). */
  release(): void;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Opens an agent's state directory: its stable id (kept in agent.json, so a restarted agent
 * is the same agent to the control plane) and a lock file, so two agents never share one
 * journal.
 */
export function openAgentState(dir: string, agentId?: string): AgentState {
  mkdirSync(dir, { recursive: true });
  const lock = join(dir, "agent.lock");
  if (existsSync(lock)) {
    const pid = Number(readFileSync(lock, "utf8").trim());
    if (Number.isInteger(pid) && pid !== process.pid && alive(pid)) {
      throw new Error(
        `another agent (pid ${pid}) is using the state directory ${dir}; give this one another --name or --state-dir`,
      );
    }
  }
  writeFileSync(lock, `${process.pid}\n`);
  const file = join(dir, "agent.json");
  let id = agentId;
  if (!id && existsSync(file)) {
    const parsed = StateFile.safeParse(JSON.parse(readFileSync(file, "utf8")));
    if (parsed.success) id = parsed.data.agentId;
  }
  id ??= randomUUID();
  writeFileSync(file, `${JSON.stringify({ agentId: id })}\n`);
  return {
    agentId: id,
    release() {
      if (existsSync(lock) && readFileSync(lock, "utf8").trim() === String(process.pid)) rmSync(lock);
    },
  };
}
