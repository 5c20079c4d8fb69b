// A tiny bigram-plus-MLP language model implementing the trainer's LanguageModel interface, so the
// training loop, checkpoints and guard can be tested in milliseconds without the real model.
import '../../src/engine/index.js';
import { Module } from '../../src/nn/module.js';
import { Embedding } from '../../src/nn/embedding.js';
import { Linear } from '../../src/nn/linear.js';
import { LayerNorm } from '../../src/nn/layer-norm.js';
import { Generator } from '../../src/tensor/random.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { gelu, mul } from '../../src/ops/elementwise.js';
import type { ForwardOptions, LanguageModel, ModelFamily } from '../../src/train/model.js';

export interface ToyConfig {
  vocabSize: number;
  dim: number;
}

export class ToyModel extends Module implements LanguageModel {
  readonly emb: Embedding;
  readonly norm: LayerNorm;
  readonly hidden: Linear;
  readonly head: Linear;
  /** Forward calls made; `nanCalls` lists calls whose loss becomes NaN (guard tests). */
  calls = 0;
  nanCalls = new Set<number>();

  constructor(
    readonly config: ToyConfig,
    seed: number,
  ) {
    super();
    const generator = new Generator(seed);
    this.emb = this.addModule('emb', new Embedding(config.vocabSize, config.dim, { generator }));
    this.norm = this.addModule('norm', new LayerNorm(config.dim));
    this.hidden = this.addModule('hidden', new Linear(config.dim, config.dim, { generator }));
    this.head = this.addModule('head', new Linear(config.dim, config.vocabSize, { generator }));
  }

  get vocabSize(): number {
    return this.config.vocabSize;
  }

  forward(tokens: Tensor, _options: ForwardOptions = {}): Tensor {
    this.calls++;
    const x = this.norm.forward(this.emb.forward(tokens));
    const logits = this.head.forward(gelu(this.hidden.forward(x)));
    return this.nanCalls.has(this.calls) ? mul(logits, NaN) : logits;
  }

  override loadStateDict(state: ReadonlyMap<string, Tensor>): void {
    super.loadStateDict(state);
  }
}

export function toyFamily(dim = 16, hook?: (m: ToyModel) => void): ModelFamily<ToyConfig> {
  return {
    presets: () => ['toy'],
    supportsComputeDType: () => true,
    presetConfig: (_preset, vocabSize, overrides) => ({ vocabSize, dim, ...(overrides as Partial<ToyConfig>) }),
    create: (config, { seed }) => {
      const m = new ToyModel(config, seed);
      hook?.(m);
      return m;
    },
  };
}
