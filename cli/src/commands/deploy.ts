import { relative, resolve, sep } from "node:path";
import { pathToFileURL } from "node:url";
import { decoratedFlowDefs, flowsInModule, type ScheduleSpecInput } from "@ferry/sdk";
import { z } from "zod";
import { CliError } from "../config.ts";

export interface DeploymentSpec {
  name: string;
  flowName: string;
  description?: string;
  entrypoint: string;
  paramsSchema: Record<string, unknown>;
  workPool: string;
  tags: string[];
  retries: number;
  retryDelayMs: number;
  timeoutMs?: number;
  concurrencyLimit?: number;
  collisionStrategy: "ENQUEUE" | "CANCEL_NEW";
  /** The flow's declared schedules (the deployment's deploy-made schedules become exactly these). */
  schedules: ScheduleSpecInput[];
}

/**
 * Imports a flow module and describes a deployment per flow it exports. The entrypoint is
 * stored relative to `workDir`: agents resolve it against their own working directory.
 */
export async function discoverDeployments(
  file: string,
  options: { workDir: string; pool?: string | undefined; tags?: string[] | undefined },
): Promise<DeploymentSpec[]> {
  const absolute = resolve(file);
  const entrypoint = relative(resolve(options.workDir), absolute).split(sep).join("/");
  if (entrypoint.startsWith("..")) {
    throw new CliError(`${file} is outside the working directory ${options.workDir}; agents resolve entrypoints relative to it`);
  }
  const before = decoratedFlowDefs().length;
  let moduleExports: Record<string, unknown>;
  try {
    moduleExports = (await import(pathToFileURL(absolute).href)) as Record<string, unknown>;
  } catch (err) {
    throw new CliError(`could not import ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const flows = flowsInModule(moduleExports);
  const hidden = decoratedFlowDefs()
    .slice(before)
    .filter((d) => !flows.has(d.name));
  if (hidden.length) {
    throw new CliError(
      `${file}: flow ${hidden.map((d) => `"${d.name}"`).join(", ")} is a method of a class the module does not export; export the class`,
    );
  }
  if (flows.size === 0) throw new CliError(`${file} exports no flows`);
  return [...flows.values()].map(({ def }) => ({
    name: def.name,
    flowName: def.name,
    ...(def.description ? { description: def.description } : {}),
    entrypoint,
    paramsSchema: def.params
      ? (z.toJSONSchema(def.params, { io: "input", unrepresentable: "any" }) as Record<string, unknown>)
      : { type: "object" },
    workPool: options.pool ?? def.workPool,
    tags: [...new Set([...def.tags, ...(options.tags ?? [])])],
    retries: def.retries,
    retryDelayMs: def.retryDelayMs,
    ...(def.timeoutMs ? { timeoutMs: def.timeoutMs } : {}),
    ...(def.concurrencyLimit ? { concurrencyLimit: def.concurrencyLimit } : {}),
    collisionStrategy: def.collisionStrategy,
    schedules: def.schedules,
  }));
}
