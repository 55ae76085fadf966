/**
 * Reconnect delays: exponential with "equal jitter" (a random delay between half the
 * exponential cap and the cap), so many agents that lost the same control plane do not
 * reconnect in lockstep, yet none retries immediately.
 */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly baseMs = 250,
    private readonly maxMs = 15_000,
    private readonly random: () => number = Math.random,
  ) {}

  next(): number {
    const cap = Math.min(this.maxMs, this.baseMs * 2 ** this.attempt);
    this.attempt++;
    return Math.round(cap / 2 + (this.random() * cap) / 2);
  }

  reset(): void {
    this.attempt = 0;
  }
}
