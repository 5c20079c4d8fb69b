import type { Tensor } from '../tensor/tensor.js';
import { add, gelu, mul, silu, tanh } from '../ops/elementwise.js';
import { narrow } from '../ops/layout.js';
import { linearBiasGelu } from '../ops/fused/bias-gelu.js';
import { isGradEnabled } from '../autograd/grad-mode.js';
import { Module } from '../nn/module.js';
import { Linear } from '../nn/linear.js';
import type { ParameterOptions } from '../nn/parameter.js';
import { feedForwardInnerDim, type AndromedaConfig, type FeedForwardActivation } from './config.js';

/**
 * Linear(dim, inner) → GELU (exact) → Linear(inner, dim), with biases unless feedForwardBias is false. The
 * gated variants (SwiGLU, GEGLU) project to 2·inner features [value, gate] and use value · act(gate), as
 * x-transformers' GLU does; Llama's MLP down(silu(gate(x)) · up(x)) is SwiGLU with its up projection as the
 * value rows and its gate projection as the gate rows, without biases. With geluApproximation 'tanh' every GELU
 * is PyTorch's tanh form (Gemma's GeGLU).
 */
export class FeedForward extends Module {
  readonly activation: FeedForwardActivation;
  readonly geluApproximation: 'none' | 'tanh';
  readonly innerDim: number;
  readonly input: Linear;
  readonly output: Linear;

  constructor(config: AndromedaConfig, o: ParameterOptions = {}) {
    super();
    this.activation = config.ffActivation;
    this.geluApproximation = config.geluApproximation;
    this.innerDim = feedForwardInnerDim(config);
    const gated = this.activation !== 'gelu';
    const linear = { ...o, bias: config.feedForwardBias, initialize: false };
    this.input = this.addModule('input', new Linear(config.dim, gated ? 2 * this.innerDim : this.innerDim, linear));
    this.output = this.addModule('output', new Linear(this.innerDim, config.dim, linear));
  }

  forward(x: Tensor): Tensor {
    const bias = this.input.bias;
    const exactGelu = this.geluApproximation === 'none';
    // Plain GELU: the first layer's bias is added inside the fused bias + GELU op, not by the product.
    if (this.activation === 'gelu' && bias && exactGelu)
      return this.output.forward(linearBiasGelu(x, this.input.weight, bias));
    const h = this.input.forward(x);
    const geluOf = exactGelu ? gelu : tanhGelu;
    let activated: Tensor;
    if (this.activation === 'gelu') activated = geluOf(h);
    else {
      const value = narrow(h, -1, 0, this.innerDim);
      const gate = narrow(h, -1, this.innerDim, this.innerDim);
      activated = mul(value, this.activation === 'swiglu' ? silu(gate) : geluOf(gate));
    }
    return this.output.forward(activated);
  }
}

/**
 * PyTorch's gelu(approximate='tanh'): 0.5·x·(1 + tanh(sqrt(2/π)·(x + 0.044715·x³))), composed from elementwise
 * ops (no engine has it as one kernel: the composition makes nine passes over the gate). Without autograd
 * each intermediate is freed as soon as the next is made, so a long prefill holds two of them, not nine.
 */
export function tanhGelu(x: Tensor): Tensor {
  const steps: ((t: Tensor) => Tensor)[] = [
    (t) => mul(t, x),
    (t) => mul(t, x),
    (t) => mul(t, 0.044715),
    (t) => add(t, x),
    (t) => mul(t, Math.sqrt(2 / Math.PI)),
    tanh,
    (t) => add(t, 1),
    (t) => mul(t, x),
    (t) => mul(t, 0.5),
  ];
  const free = !isGradEnabled();
  let y = x;
  for (const step of steps) {
    const next = step(y);
    if (free && y !== x) y.dispose();
    y = next;
  }
  return y;
}
