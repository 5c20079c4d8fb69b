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
  abstract step(options?: { gradScale?: number }): void;

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
