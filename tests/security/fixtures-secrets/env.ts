// A flow that prints what a malicious or careless flow would: the agent's credentials, if its
// environment holds them. Copied into a temporary project as flows/env.ts.
import { flow } from "@ferry/sdk";
import { z } from "zod";

export const printEnv = flow({ name: "print-env" }, async () => {
  console.log(`token=${process.env.FERRY_API_TOKEN ?? "(none)"}`);
  console.log(`aws=${process.env.AWS_SECRET_ACCESS_KEY ?? "(none)"}`);
  console.log(`stage=${process.env.STAGE ?? "(none)"} bucket=${process.env.PIPELINE_BUCKET ?? "(none)"}`);
  console.log(
    `ferry-vars=${Object.keys(process.env)
      .filter((k) => k.startsWith("FERRY_"))
      .sort()
      .join(",")}`,
  );
  console.log(`env-dump=${JSON.stringify(process.env)}`);
  return { ok: true };
});

/** A flow with a secret parameter (write-only in its schema): it gets the value, the API never shows it. */
export const secretParam = flow(
  {
    name: "secret-param",
    params: z.object({ table: z.string(), apiKey: z.string().meta({ writeOnly: true }) }),
  },
  async ({ table, apiKey }: { table: string; apiKey: string }) => {
    console.log(`table=${table} apiKey-received=${apiKey.length > 0}`);
    return { ok: true };
  },
);
