import type { Tensor } from '../tensor/tensor.js';
import { add } from '../ops/elementwise.js';
import { rmsNorm } from '../ops/nn.js';
import type { AddNormOptions } from '../ops/fused/add-norm.js';
import { LayerNorm, type ResidualInput } from '../nn/layer-norm.js';
import { RMSNorm, type RMSNormOptions } from '../nn/rms-norm.js';
import { assignValues, type ParameterOptions } from '../nn/parameter.js';
import type { AndromedaConfig } from './config.js';

/** The norm of the config (`norm`: layer norm or RMS norm, eps `normEps`) over `dim` features. */
export type Norm = LayerNorm | RMSNorm;

export function makeNorm(config: AndromedaConfig, o: ParameterOptions): Norm {
  if (config.norm === 'layernorm') return new LayerNorm(config.dim, { ...o, eps: config.normEps });
  return config.normWeightOffset !== 0
    ? new OffsetRMSNorm(config.dim, config.normWeightOffset, { ...o, eps: config.normEps })
    : new RMSNorm(config.dim, { ...o, eps: config.normEps });
}

/**
 * RMS norm scaling by (offset + weight) instead of weight: Gemma's x / rms(x) · (1 + w), whose stored weight
 * is the deviation from the offset (and decays towards it under weight decay). The weight starts at
 * 1 − offset, so a fresh norm scales by 1 like the plain one. The sum is formed per call (a [dim] vector) and
 * handed to the same norm ops, fused residual forms included; in a bf16 model it is rounded to bf16, where
 * transformers forms 1 + w in float32.
 */
export class OffsetRMSNorm extends RMSNorm {
  constructor(
    dim: number,
    readonly offset: number,
    o: RMSNormOptions = {},
  ) {
    super(dim, o);
    assignValues(this.param('weight'), new Float64Array(dim).fill(1 - offset));
  }

  private scale(): Tensor {
    return add(this.param('weight'), this.offset);
  }

  override forward(x: Tensor): Tensor {
    return rmsNorm(x, this.scale(), this.eps);
  }

  override residualOptions(r: ResidualInput): AddNormOptions {
    return { ...super.residualOptions(r), weight: this.scale() };
  }
}
