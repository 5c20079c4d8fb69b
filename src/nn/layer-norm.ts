import type { Tensor } from '../tensor/tensor.js';
import { layerNorm } from '../ops/nn.js';
import type { AddNormOptions } from '../ops/fused/add-norm.js';
import { Module } from './module.js';
import { constantTensor, type ParameterOptions } from './parameter.js';

export interface LayerNormOptions extends ParameterOptions {
  eps?: number;
}

/** How a residual stream enters a norm: branch + residual · scale · constant. */
export interface ResidualInput {
  /** Learned per-feature scale [dim], or null. */
  readonly scale: Tensor | null;
  readonly constant: number;
}

/** Layer norm over the last axis with a learned weight (init 1) and bias (init 0). */
export class LayerNorm extends Module {
  readonly eps: number;

  constructor(
    readonly dim: number,
    o: LayerNormOptions = {},
  ) {
    super();
    this.eps = o.eps ?? 1e-5;
    this.addParameter('weight', constantTensor([dim], 1, o));
    this.addParameter('bias', constantTensor([dim], 0, o));
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.param('weight'), this.param('bias'), this.eps);
  }

  /**
   * The fused add + norm ops' options (addNorm / addThenNorm, src/model/residual.ts) for this norm after the
   * residual connection `r`.
   */
  residualOptions(r: ResidualInput): AddNormOptions {
    const [weight, bias] = [this.param('weight'), this.param('bias')];
    return { weight, bias, eps: this.eps, residualScale: r.scale, residualConstant: r.constant };
  }
}
