import type { Tensor } from '../tensor/tensor.js';
import { rmsNorm } from '../ops/nn.js';
import type { AddNormOptions } from '../ops/fused/add-norm.js';
import type { ResidualInput } from './layer-norm.js';
import { Module } from './module.js';
import { constantTensor, type ParameterOptions } from './parameter.js';

export interface RMSNormOptions extends ParameterOptions {
  eps?: number;
}

/** x / sqrt(mean(x²) + eps) · weight over the last axis (weight init 1, no bias). */
export class RMSNorm extends Module {
  readonly eps: number;

  constructor(
    readonly dim: number,
    o: RMSNormOptions = {},
  ) {
    super();
    this.eps = o.eps ?? 1e-6;
    this.addParameter('weight', constantTensor([dim], 1, o));
  }

  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.param('weight'), this.eps);
  }

  /**
   * The fused add + norm ops' options (addNorm / addThenNorm, src/model/residual.ts) for this norm after the
   * residual connection `r`.
   */
  residualOptions(r: ResidualInput): AddNormOptions {
    return {
      rms: true,
      weight: this.param('weight'),
      eps: this.eps,
      residualScale: r.scale,
      residualConstant: r.constant,
    };
  }
}
