import type { Tensor } from '../tensor/tensor.js';
import { add, mul } from '../ops/elementwise.js';
import { Module } from '../nn/module.js';
import { LayerNorm, type ResidualInput } from '../nn/layer-norm.js';
import { RMSNorm } from '../nn/rms-norm.js';
import { constantTensor, type ParameterOptions } from '../nn/parameter.js';
import type { AndromedaConfig } from './config.js';
import { SelfAttention } from './attention.js';
import { FeedForward } from './feed-forward.js';
import { shiftTokens } from '../ops/fused/token-shift.js';
import { shiftTokensWithHistory } from './token-shift.js';
import type { RotarySettings } from './rotary.js';
import type { LayerState } from './context.js';
import type { ShiftSlot } from './kv-cache.js';

export type Norm = LayerNorm | RMSNorm;

export function makeNorm(config: AndromedaConfig, o: ParameterOptions): Norm {
  return config.norm === 'rmsnorm' ? new RMSNorm(config.dim, { ...o, eps: config.normEps }) : new LayerNorm(config.dim, { ...o, eps: config.normEps });
}

/**
 * One layer: an attention sub-layer then a feed-forward sub-layer, each
 *   pre-norm:  x = branch(shift(norm(x))) + x · s · c
 *   post-norm: x = norm(branch(shift(x)) + x · s · c)
 * with s the learned residual scale (scaleResidual) and c the residual constant (DeepNorm). A residual
 * add and the norm that reads it run as one fused op (src/ops/fused/add-norm.ts).
 * Parallel blocks (pre-norm): x = attn(shift(norm(x))) + ff(shift(norm(x))) + x · s · c.
 */
export class Block extends Module {
  readonly attention: SelfAttention;
  readonly feedForward: FeedForward;
  /** Parallel blocks have one shared norm; sequential ones one per sub-layer. */
  private readonly sharedNorm: Norm | null = null;
  private readonly attentionNorm: Norm | null = null;
  private readonly feedForwardNorm: Norm | null = null;
  private readonly config: AndromedaConfig;

  constructor(config: AndromedaConfig, rotary: RotarySettings | null, slopes: Float64Array | null, o: ParameterOptions = {}) {
    super();
    this.config = config;
    const scale = (name: string): void => { this.addParameter(name, constantTensor([config.dim], 1, o)); };
    if (config.parallelBlocks) {
      this.sharedNorm = this.addModule('norm', makeNorm(config, o));
      this.attention = this.addModule('attention', new SelfAttention(config, rotary, slopes, o));
      if (config.scaleResidual) scale('residualScale');
      this.feedForward = this.addModule('feedForward', new FeedForward(config, o));
      return;
    }
    this.attentionNorm = this.addModule('attentionNorm', makeNorm(config, o));
    this.attention = this.addModule('attention', new SelfAttention(config, rotary, slopes, o));
    if (config.scaleResidual) scale('attentionResidualScale');
    this.feedForwardNorm = this.addModule('feedForwardNorm', makeNorm(config, o));
    this.feedForward = this.addModule('feedForward', new FeedForward(config, o));
    if (config.scaleResidual) scale('feedForwardResidualScale');
  }

  forward(x: Tensor, state: LayerState): Tensor {
    const c = this.config;
    if (c.parallelBlocks) {
      const h = this.sharedNorm!.forward(x);
      const a = this.attention.forward(this.shift(h, state, 'attention'), state);
      const f = this.feedForward.forward(this.shift(h, state, 'feedForward'));
      return add(add(a, f), this.residual(x, 'residualScale'));
    }
    if (c.normPosition === 'pre') {
      // The attention residual and the feed-forward norm share one fused pass; the feed-forward
      // residual is added here and normalised by the next layer (or the final norm).
      const a = this.attention.forward(this.shift(this.attentionNorm!.forward(x), state, 'attention'), state);
      const { sum, out: h } = this.feedForwardNorm!.forwardResidualWithSum(a, x, this.residualInput('attentionResidualScale'));
      const f = this.feedForward.forward(this.shift(h, state, 'feedForward'));
      return add(f, this.residual(sum, 'feedForwardResidualScale'));
    }
    // Post-norm: each residual add and its norm are one fused op.
    const a = this.attention.forward(this.shift(x, state, 'attention'), state);
    x = this.attentionNorm!.forwardResidual(a, x, this.residualInput('attentionResidualScale'));
    const f = this.feedForward.forward(this.shift(x, state, 'feedForward'));
    return this.feedForwardNorm!.forwardResidual(f, x, this.residualInput('feedForwardResidualScale'));
  }

  private residualInput(scaleName: string): ResidualInput {
    return { scale: this.config.scaleResidual ? this.param(scaleName) : null, constant: this.config.residualConstant };
  }

  private residual(x: Tensor, scaleName: string): Tensor {
    let r = x;
    if (this.config.scaleResidual) r = mul(r, this.param(scaleName));
    if (this.config.residualConstant !== 1) r = mul(r, this.config.residualConstant);
    return r;
  }

  private shift(h: Tensor, state: LayerState, slot: ShiftSlot): Tensor {
    const shifts = this.config.shiftTokens;
    if (shifts === 0) return h;
    if (state.cache) {
      const { shifted, history } = shiftTokensWithHistory(h, shifts, state.cache.history(slot));
      state.cache.setHistory(slot, history);
      return shifted;
    }
    const segments = state.sequence.segments;
    return shiftTokens(h, shifts, segments?.host ?? null, segments?.device ?? null);
  }
}
