import { registerFallbackResolution } from "@ferry/sdk/runner/resolution";
import { CommanderError } from "commander";
import { CliError } from "./config.ts";
import { buildProgram } from "./program.ts";

registerFallbackResolution();

try {
  await buildProgram().parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode);
  if (err instanceof CliError) {
    process.stderr.write(`error: ${err.message}\n`);
    process.exit(err.exitCode);
  }
  const issues = (err as { data?: { issues?: unknown } }).data?.issues;
  process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
  if (Array.isArray(issues) && issues.length && !(err instanceof Error && err.message.includes(String(issues[0])))) {
    for (const i of issues) process.stderr.write(`  - ${String(i)}\n`);
  }
  process.exit(1);
}
