/**
 * Mixed precision with float32 master weights.
 *
 * The parameters the optimizer updates (the masters) and the AdamW moments are always float32.
 * With a bfloat16 compute dtype the trainer keeps a second copy of the model cast to bfloat16:
 * forward and backward run on that copy; its gradients become the masters' gradients
 * (`pushGradients`: moved, not copied — clipping and AdamW read any float dtype, and bfloat16 widens to
 * float32 exactly), clipping and AdamW work on the masters, and AdamW writes the updated masters back
 * into the copy (`shadows`, given to AdamW.setShadows; `pullWeights` does it separately). Everything
 * goes through the tensor API, so any engine whose kernels take bfloat16 can use it; "auto" picks
 * bfloat16 on CUDA and float32 on the CPU.
 */
import type { Tensor } from '../tensor/tensor.js';
import type { DType } from '../tensor/dtype.js';
import type { LanguageModel, ModelFamily } from './model.js';

export interface Precision {
  /** Dtype of the forward/backward computation. */
  compute: DType;
  /** Dtype of parameters and optimizer state. */
  master: 'float32';
}

export function resolvePrecision(requested: string, device: string, family: ModelFamily<any>): Precision {
  const supports = (dtype: DType) => dtype === 'float32' || (family.supportsComputeDType?.(dtype, device) ?? false);
  if (requested === 'auto') {
    return { compute: device.startsWith('cuda') && supports('bfloat16') ? 'bfloat16' : 'float32', master: 'float32' };
  }
  if (requested !== 'float32' && requested !== 'bfloat16')
    throw new Error(`--dtype must be auto, float32 or bfloat16, got "${requested}"`);
  if (!supports(requested))
    throw new Error(
      `--dtype ${requested}: this model cannot compute in ${requested} on ${device}; use --dtype float32`,
    );
  return { compute: requested, master: 'float32' };
}

/** Pairs a float32 master model with its low-precision compute copy. */
export class MasterWeights {
  private readonly pairs: Array<{ name: string; master: Tensor; compute: Tensor }>;

  constructor(
    readonly master: LanguageModel,
    readonly compute: LanguageModel,
  ) {
    const computeByName = new Map(compute.namedParameters());
    this.pairs = master.namedParameters().map(([name, m]) => {
      const c = computeByName.get(name);
      if (!c) throw new Error(`mixed precision: the compute copy has no parameter ${name}`);
      return { name, master: m, compute: c };
    });
  }

  /** Builds the compute copy of `master` in `dtype` (a second model of the same config) and syncs it. */
  static create(
    family: ModelFamily<any>,
    config: unknown,
    master: LanguageModel,
    dtype: DType,
    device: string,
  ): MasterWeights {
    const compute = family.create(config as never, { seed: 0, device });
    if (!compute.to) {
      compute.dispose();
      throw new Error(`mixed precision: this model family cannot cast its parameters to ${dtype}`);
    }
    compute.to(dtype);
    const mw = new MasterWeights(master, compute);
    mw.pullWeights();
    return mw;
  }

  /** compute ← cast(master), after every optimizer step. */
  pullWeights(): void {
    for (const { master, compute } of this.pairs) {
      if (master.size > 0)
        master.engine.copy(master.strided('mixed precision'), compute.strided('mixed precision'), master.shape);
    }
  }

  /** master.grad ← compute.grad (the tensor itself, in the compute dtype); the compute copy has none after. */
  pushGradients(): void {
    for (const { master, compute } of this.pairs) {
      const g = compute.grad;
      if (!g) continue;
      master.grad?.dispose();
      master.grad = g;
      compute.grad = null;
    }
  }

  /** master → compute copy, for AdamW.setShadows: each step then updates the copy with the masters. */
  shadows(): Map<Tensor, Tensor> {
    return new Map(this.pairs.map(({ master, compute }) => [master, compute]));
  }

  dispose(): void {
    this.compute.dispose();
  }
}
