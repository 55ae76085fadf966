import { z } from "zod";

export const Limit = z.number().int().min(1).max(500).default(50);
export const IdInput = z.object({ id: z.string().min(1).max(100) });

export { parseJson } from "../json.ts";
