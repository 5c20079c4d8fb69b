import type { Tensor } from '../tensor/tensor.js';
import type { Generator } from '../tensor/random.js';
import { embedding } from '../ops/nn.js';
import { Module } from './module.js';
import { constantTensor, fillNormal, type ParameterOptions } from './parameter.js';

export interface EmbeddingOptions extends ParameterOptions {
  initialize?: boolean;
  generator?: Generator;
}

/** A lookup table [count, dim]: int32 ids of any shape → [...ids.shape, dim]. */
export class Embedding extends Module {
  constructor(
    readonly count: number,
    readonly dim: number,
    o: EmbeddingOptions = {},
  ) {
    super();
    this.addParameter('weight', constantTensor([count, dim], 0, o));
    if (o.initialize ?? true) this.resetParameters(o.generator);
  }

  get weight(): Tensor {
    return this.param('weight');
  }

  /** Standard normal (PyTorch's default for nn.Embedding). */
  resetParameters(generator?: Generator): void {
    fillNormal(this.weight, 1, generator);
  }

  forward(ids: Tensor): Tensor {
    return embedding(this.weight, ids);
  }
}
