import { register } from "node:module";
import { dirname } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { MessageChannel, type MessagePort } from "node:worker_threads";
import type { LoadedFile } from "../protocol/ipc.ts";

/**
 * Records the user-project source files this process loads from now on (see
 * module-hooks.mjs), so a warm flow process can tell the agent which files its code came from.
 */
export class LoadedFiles {
  private readonly files: LoadedFile[] = [];
  private readonly port: MessagePort;
  private nextBarrier = 0;
  private readonly barriers = new Map<number, () => void>();

  constructor() {
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    port1.on("message", (message: unknown) => this.onMessage(message));
    port1.unref();
    // The SDK's own files belong to the agent's installation, not to the user's code version.
    const sdkRoot = pathToFileURL(`${dirname(dirname(fileURLToPath(import.meta.url)))}/`).href;
    register(new URL("./module-hooks.mjs", import.meta.url), {
      data: { port: port2, excludedPrefixes: [sdkRoot] },
      transferList: [port2],
    });
  }

  private onMessage(message: unknown): void {
    if (typeof message !== "object" || message === null) return;
    const m = message as { type?: unknown; id?: unknown } & Partial<LoadedFile>;
    if (m.type === "flushed" && typeof m.id === "number") {
      this.barriers.get(m.id)?.();
      this.barriers.delete(m.id);
    } else if (m.type === "file" && typeof m.path === "string") {
      this.files.push({ path: m.path, size: m.size ?? 0, mtimeMs: m.mtimeMs ?? 0, ctimeMs: m.ctimeMs ?? 0, ino: m.ino ?? 0 });
    }
  }

  /** Every file loaded so far (messages from the loader thread are ordered: a barrier comes after them). */
  async list(): Promise<LoadedFile[]> {
    const id = this.nextBarrier++;
    const done = new Promise<void>((resolve) => this.barriers.set(id, resolve));
    this.port.ref();
    this.port.postMessage({ type: "flush", id });
    await done;
    this.port.unref();
    return [...this.files];
  }
}
