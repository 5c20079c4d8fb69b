import type { Tensor } from '../tensor/tensor.js';
import type { Generator } from '../tensor/random.js';
import { linear } from '../ops/matmul.js';
import { Module } from './module.js';
import { constantTensor, fillConstant, fillUniform, type ParameterOptions } from './parameter.js';

export interface LinearOptions extends ParameterOptions {
  bias?: boolean;
  /** Skip the default initialisation (the owner fills the values). Default true. */
  initialize?: boolean;
  generator?: Generator;
}

/** y = x·Wᵀ + b with weight [out, in] and optional bias [out]. */
export class Linear extends Module {
  readonly hasBias: boolean;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    o: LinearOptions = {},
  ) {
    super();
    this.hasBias = o.bias ?? true;
    this.addParameter('weight', constantTensor([outFeatures, inFeatures], 0, o));
    if (this.hasBias) this.addParameter('bias', constantTensor([outFeatures], 0, o));
    if (o.initialize ?? true) this.resetParameters(o.generator);
  }

  get weight(): Tensor {
    return this.param('weight');
  }
  get bias(): Tensor | null {
    return this.hasBias ? this.param('bias') : null;
  }

  /** PyTorch's default: weight and bias uniform in ±1/sqrt(in). */
  resetParameters(generator?: Generator): void {
    const bound = this.inFeatures > 0 ? 1 / Math.sqrt(this.inFeatures) : 0;
    fillUniform(this.weight, bound, generator);
    if (this.bias) fillUniform(this.bias, bound, generator);
  }

  /** Zero bias (used by initialisations that only set the weight). */
  zeroBias(): void {
    if (this.bias) fillConstant(this.bias, 0);
  }

  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }
}
