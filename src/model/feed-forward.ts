import type { Tensor } from '../tensor/tensor.js';
import { gelu, mul, silu } from '../ops/elementwise.js';
import { narrow } from '../ops/layout.js';
import { linear } from '../ops/matmul.js';
import { biasGelu } from '../ops/fused/bias-gelu.js';
import { Module } from '../nn/module.js';
import { Linear } from '../nn/linear.js';
import type { ParameterOptions } from '../nn/parameter.js';
import { feedForwardInnerDim, type AndromedaConfig, type FeedForwardActivation } from './config.js';

/**
 * Linear(dim, inner) → GELU (exact) → Linear(inner, dim), with biases unless feedForwardBias is false. The
 * gated variants (SwiGLU, GEGLU) project to 2·inner features [value, gate] and use value · act(gate), as
 * x-transformers' GLU does; Llama's MLP down(silu(gate(x)) · up(x)) is SwiGLU with its up projection as the
 * value rows and its gate projection as the gate rows, without biases.
 */
export class FeedForward extends Module {
  readonly activation: FeedForwardActivation;
  readonly innerDim: number;
  readonly input: Linear;
  readonly output: Linear;

  constructor(config: AndromedaConfig, o: ParameterOptions = {}) {
    super();
    this.activation = config.ffActivation;
    this.innerDim = feedForwardInnerDim(config);
    const gated = this.activation !== 'gelu';
    const linear = { ...o, bias: config.feedForwardBias, initialize: false };
    this.input = this.addModule('input', new Linear(config.dim, gated ? 2 * this.innerDim : this.innerDim, linear));
    this.output = this.addModule('output', new Linear(this.innerDim, config.dim, linear));
  }

  forward(x: Tensor): Tensor {
    const bias = this.input.bias;
    // Plain GELU: the first layer's bias is added inside the fused bias + GELU op, not by the product.
    if (this.activation === 'gelu' && bias) return this.output.forward(biasGelu(linear(x, this.input.weight), bias));
    const h = this.input.forward(x);
    let activated: Tensor;
    if (this.activation === 'gelu') activated = gelu(h);
    else {
      const value = narrow(h, -1, 0, this.innerDim);
      const gate = narrow(h, -1, this.innerDim, this.innerDim);
      activated = mul(value, this.activation === 'swiglu' ? silu(gate) : gelu(gate));
    }
    return this.output.forward(activated);
  }
}
