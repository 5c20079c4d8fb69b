/** Tokens per second over a sliding window of recent steps. */
export class ThroughputMeter {
  private readonly samples: { at: number; tokens: number }[] = [];

  constructor(
    private readonly windowMs = 5000,
    private readonly now: () => number = Date.now,
  ) {}

  add(tokens: number): void {
    this.samples.push({ at: this.now(), tokens });
    this.prune();
  }

  /** Tokens per second over the window (0 before two steps fall inside it). */
  rate(): number {
    this.prune();
    if (this.samples.length < 2) return 0;
    const seconds = (this.samples[this.samples.length - 1]!.at - this.samples[0]!.at) / 1000;
    // The first step's tokens were produced before the window's first timestamp.
    const tokens = this.samples.reduce((n, s) => n + s.tokens, 0) - this.samples[0]!.tokens;
    return seconds > 0 ? tokens / seconds : 0;
  }

  private prune(): void {
    const oldest = this.now() - this.windowMs;
    while (this.samples.length > 0 && this.samples[0]!.at < oldest) this.samples.shift();
  }
}
