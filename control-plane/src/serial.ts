/**
 * Runs `work` when kicked, one run at a time: kicks that arrive during a run merge into one
 * more run after it. Used by the background workers (scheduler, backfiller, notifier) so that
 * bursts of changes cost one pass, never overlapping passes.
 */
export class SerialPass {
  private running = false;
  private again = false;
  private stopped = false;

  constructor(
    private readonly work: () => Promise<unknown>,
    private readonly onError: (err: unknown) => void,
  ) {}

  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    setImmediate(() => {
      void (async () => {
        try {
          do {
            this.again = false;
            await this.work();
          } while (this.again && !this.stopped);
        } catch (err) {
          this.onError(err);
        } finally {
          this.running = false;
        }
      })();
    });
  }

  stop(): void {
    this.stopped = true;
  }

  /** Accepts kicks again after `stop()` (a replica that leads again). */
  resume(): void {
    this.stopped = false;
  }
}
