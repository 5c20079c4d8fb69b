/**
 * Divergence guard: a step whose loss (or gradient norm) is NaN or infinite is skipped — no
 * optimizer update — and reported; `maxConsecutive` such steps in a row stop the run with a
 * clear message instead of silently training on garbage.
 */
export class DivergenceError extends Error {
  override name = 'DivergenceError';
}

export interface GuardVerdict {
  /** True when the step's update must be skipped. */
  skip: boolean;
  /** A human-readable note when the step was skipped. */
  message?: string;
}

export class DivergenceGuard {
  private consecutive = 0;
  /** Skipped steps over the whole run. */
  skipped = 0;

  constructor(readonly maxConsecutive = 5) {
    if (!Number.isInteger(maxConsecutive) || maxConsecutive < 1)
      throw new RangeError(`divergence guard: the limit must be a positive integer, got ${maxConsecutive}`);
  }

  /** Judges step `step` from its loss and gradient norm; throws DivergenceError at the limit. */
  check(step: number, loss: number, gradNorm: number): GuardVerdict {
    const badLoss = !Number.isFinite(loss);
    const badGrad = !Number.isFinite(gradNorm);
    if (!badLoss && !badGrad) {
      this.consecutive = 0;
      return { skip: false };
    }
    this.consecutive++;
    this.skipped++;
    const what = badLoss ? `loss is ${loss}` : `gradient norm is ${gradNorm}`;
    const message =
      `step ${step}: ${what}; ` + `skipped the update (${this.consecutive} in a row, limit ${this.maxConsecutive})`;
    if (this.consecutive >= this.maxConsecutive) {
      throw new DivergenceError(
        `training diverged: ${this.consecutive} steps in a row had a non-finite loss or gradient ` +
          `(last: ${what} at step ${step}). ` +
          'Lower the learning rate (--lr), lengthen the warmup (--warmup) or tighten clipping (--clip), then resume ' +
          'from the last checkpoint.',
      );
    }
    return { skip: true, message };
  }

  state(): { consecutive: number; skipped: number } {
    return { consecutive: this.consecutive, skipped: this.skipped };
  }

  restore(state: { consecutive: number; skipped: number }): void {
    this.consecutive = state.consecutive;
    this.skipped = state.skipped;
  }
}
