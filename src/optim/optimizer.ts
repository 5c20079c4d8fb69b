import type { Tensor } from '../tensor/tensor.js';

/** A set of parameters sharing hyperparameters (e.g. no weight decay for norms and biases). */
export interface ParamGroup<H> {
  params: Tensor[];
  hyper: H;
}

/** Serializable optimizer state: per-parameter tensors as host arrays plus scalars. */
export interface OptimizerState {
  kind: string;
  step: number;
  groups: unknown[];
  /**
   * Per parameter (in group order), each named state buffer as a host array: float32 values, or int32 words
   * (packed 8-bit codes) saved bit for bit.
   */
  slots: Partial<Record<string, number[] | Float32Array | Int32Array>>[];
}

/** Options of one optimizer step. */
export interface StepOptions {
  /** Multiplies every gradient first (host-side clipping's factor, loss-scale removal); default 1. */
  gradScale?: number;
  /**
   * Global-norm clipping inside the step (Engine AdamWArgs.clip), for optimizers whose `clipsOnDevice` is true:
   * Σg² as a float64 tensor of one element on the parameters' engine, and the norm to clip to.
   */
  clip?: { sumOfSquares: Tensor; maxNorm: number };
}

export abstract class Optimizer<H extends object> {
  readonly groups: ParamGroup<H>[];
  stepCount = 0;

  constructor(groups: ParamGroup<H>[]) {
    const seen = new Set<Tensor>();
    for (const g of groups) {
      for (const p of g.params) {
        if (seen.has(p)) throw new Error(`optimizer: parameter ${p.name ?? p.toString()} appears in two groups`);
        if (!p.requiresGrad)
          throw new Error(`optimizer: parameter ${p.name ?? p.toString()} does not require a gradient`);
        seen.add(p);
      }
    }
    this.groups = groups;
  }

  get parameters(): Tensor[] {
    return this.groups.flatMap((g) => g.params);
  }

  /** Applies one update from the parameters' `.grad` (parameters without a gradient are skipped). */
  abstract step(options?: StepOptions): void;

  /** Whether step() takes `options.clip` (the fused AdamW steps do; src/optim/clip.ts's clipAndStep uses it). */
  get clipsOnDevice(): boolean {
    return false;
  }

  /** Refuses a step's clipping arguments before the step is counted or anything is enqueued. */
  protected checkStepOptions(options: StepOptions, who: string): void {
    const clip = options.clip;
    if (!clip) return;
    if (!this.clipsOnDevice)
      throw new Error(`${who}: no clipping on the device (clipsOnDevice is false); pass gradScale`);
    if (clip.sumOfSquares.dtype !== 'float64' || clip.sumOfSquares.size !== 1)
      throw new Error(`${who}: the sum of squares must be float64 of one element, got ${clip.sumOfSquares.toString()}`);
    if (!(clip.maxNorm > 0)) throw new RangeError(`${who}: the norm to clip to must be positive, got ${clip.maxNorm}`);
  }

  /** Takes back the count of a step the device skipped (its gradient norm was not finite), as if never called. */
  forgetSkippedStep(): void {
    if (this.stepCount > 0) this.stepCount--;
  }

  zeroGrad(): void {
    for (const p of this.parameters) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  abstract stateDict(): OptimizerState;
  abstract loadStateDict(state: OptimizerState): void;
  abstract dispose(): void;

  /** Sets one hyperparameter (e.g. the learning rate from a schedule) on every group. */
  setHyper<K extends keyof H>(key: K, value: H[K]): void {
    for (const g of this.groups) g.hyper[key] = value;
  }
}
