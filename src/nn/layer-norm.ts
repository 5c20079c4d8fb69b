import type { Tensor } from '../tensor/tensor.js';
import { layerNorm } from '../ops/nn.js';
import { Module } from './module.js';
import { constantTensor, type ParameterOptions } from './parameter.js';

export interface LayerNormOptions extends ParameterOptions {
  eps?: number;
}

/** Layer norm over the last axis with a learned weight (init 1) and bias (init 0). */
export class LayerNorm extends Module {
  readonly eps: number;

  constructor(readonly dim: number, o: LayerNormOptions = {}) {
    super();
    this.eps = o.eps ?? 1e-5;
    this.addParameter('weight', constantTensor([dim], 1, o));
    this.addParameter('bias', constantTensor([dim], 0, o));
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.param('weight'), this.param('bias'), this.eps);
  }
}
