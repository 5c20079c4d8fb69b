/**
 * One layer of the stack (shared/spec/andromeda-model.md, "The layer stack"), in one of three forms
 * chosen once from the config by makeBlock:
 *
 *   pre-norm (default)      x = attn(norm₁(x)) + x·s₁·c ;  x = ff(norm₂(x)) + x·s₂·c
 *   post-norm (DeepNorm)    x = norm₁(attn(x) + x·s₁·c) ;  x = norm₂(ff(x) + x·s₂·c)
 *   parallel (pre-norm)     x = attn(norm(x)) + ff(norm(x)) + x·s·c
 *   sandwich (pre-norm)     x = norm₃(attn(norm₁(x))) + x·s₁·c ;  x = norm₄(ff(norm₂(x))) + x·s₂·c
 *
 * s: a learned per-feature residual scale (scaleResidual), c: the residual constant (DeepNorm's
 * (2·depth)^¼, else 1). attn and ff read their input through the token shift (shiftTokens; identity
 * at 0). Wherever a residual sum meets a norm the two run as one fused op (./residual.ts).
 *
 * Each form is written once over its two branches (`combine`); the dense forward ([batch, n, dim]) and the
 * paged forward (the [T, dim] rows of a paged step) differ only in how a branch shifts and attends.
 */
import type { Tensor } from '../tensor/tensor.js';
import { add } from '../ops/elementwise.js';
import { Module } from '../nn/module.js';
import { constantTensor, type ParameterOptions } from '../nn/parameter.js';
import { layerWindow, type AndromedaConfig } from './config.js';
import { SelfAttention } from './attention.js';
import { FeedForward } from './feed-forward.js';
import { makeNorm, type Norm } from './norm.js';
import type { ResidualInput } from '../nn/layer-norm.js';
import { addResidual, addResidualNorm, addResidualThenNorm, type AddNormRunner } from './residual.js';
import { shiftTokens } from '../ops/fused/token-shift.js';
import { shiftTokensWithHistory } from './token-shift.js';
import type { RotarySettings } from './rotary.js';
import type { LayerState } from './context.js';
import type { ShiftSlot } from './kv-cache.js';
import type { PagedLayer } from './paged-forward.js';

/** The block form the config asks for, for layer `layer` (its index picks the layer's sliding window). */
export function makeBlock(
  config: AndromedaConfig,
  layer: number,
  rotary: RotarySettings | null,
  slopes: Float64Array | null,
  o: ParameterOptions = {},
): Block {
  const attention = new SelfAttention(config, layerWindow(config, layer), rotary, slopes, o);
  if (config.parallelBlocks) return new ParallelBlock(config, attention, o);
  if (config.sandwichNorm) return new SandwichNormBlock(config, attention, o);
  return config.normPosition === 'pre'
    ? new PreNormBlock(config, attention, o)
    : new PostNormBlock(config, attention, o);
}

/** The two sub-layers of a block, each reading its input through the token shift: attn(shift(h)), ff(shift(h)). */
export interface Branches {
  attend(h: Tensor): Tensor;
  feed(h: Tensor): Tensor;
  /**
   * How an add + norm whose output is the input of `next` (this block's feed-forward, or the next block's
   * attention) runs: a paged decode step token-shifts that output in the norm's pass. Undefined: the fused op.
   */
  addNormInto?(next: 'feedForward' | 'nextAttention'): AddNormRunner | undefined;
}

/** What every form shares: the two sub-layers, their token shift and the residual scales. */
export abstract class Block extends Module {
  abstract readonly attention: SelfAttention;
  abstract readonly feedForward: FeedForward;
  private readonly dim: number;
  private readonly shifts: number;
  private readonly scaleResidual: boolean;
  private readonly residualConstant: number;

  protected constructor(config: AndromedaConfig) {
    super();
    this.dim = config.dim;
    this.shifts = config.shiftTokens;
    this.scaleResidual = config.scaleResidual;
    this.residualConstant = config.residualConstant;
  }

  /** x [batch, n, dim] → [batch, n, dim]. */
  forward(x: Tensor, state: LayerState): Tensor {
    return this.combine(x, {
      attend: (h) => this.attention.forward(this.shift(h, state, 'attention'), state),
      feed: (h) => this.feedForward.forward(this.shift(h, state, 'feedForward')),
    });
  }

  /**
   * x [T, dim], the rows of a paged step → [T, dim] (no autograd: the pools are written in place). `next`: the
   * next block's layer of the step, whose attention input this block's last norm may shift in its pass.
   */
  forwardPaged(x: Tensor, layer: PagedLayer, next: PagedLayer | null = null): Tensor {
    return this.combine(x, {
      attend: (h) => this.attention.forwardPaged(layer.shift(h, 'attention'), layer),
      feed: (h) => this.feedForward.forward(layer.shift(h, 'feedForward')),
      addNormInto: (into) => (into === 'feedForward' ? layer.addNormFor('feedForward') : next?.addNormFor('attention')),
    });
  }

  /** The form's residuals and norms around its two branches. */
  protected abstract combine(x: Tensor, branches: Branches): Tensor;

  /** Registers the learned residual scale `name` (init 1) if the config learns one. */
  protected addResidualScale(name: string, o: ParameterOptions): void {
    if (this.scaleResidual) this.addParameter(name, constantTensor([this.dim], 1, o));
  }

  /** s and c of a residual connection (the parameter is looked up each time: `to()` replaces it). */
  protected residual(scaleName: string): ResidualInput {
    return { scale: this.scaleResidual ? this.param(scaleName) : null, constant: this.residualConstant };
  }

  /** Decoding continues the cached shift history; otherwise shifts stop at document boundaries. */
  private shift(h: Tensor, state: LayerState, slot: ShiftSlot): Tensor {
    if (this.shifts === 0) return h;
    if (state.cache) {
      const { shifted, history } = shiftTokensWithHistory(h, this.shifts, state.cache.history(slot));
      state.cache.setHistory(slot, history);
      return shifted;
    }
    const segments = state.sequence.segments;
    return shiftTokens(h, this.shifts, segments?.host ?? null, segments?.device ?? null);
  }
}

/** Attention then feed-forward, each with its own norm and residual scale. */
abstract class SequentialBlock extends Block {
  readonly attentionNorm: Norm;
  readonly attention: SelfAttention;
  readonly feedForwardNorm: Norm;
  readonly feedForward: FeedForward;

  constructor(config: AndromedaConfig, attention: SelfAttention, o: ParameterOptions) {
    super(config);
    this.attentionNorm = this.addModule('attentionNorm', makeNorm(config, o));
    this.attention = this.addModule('attention', attention);
    this.feedForwardNorm = this.addModule('feedForwardNorm', makeNorm(config, o));
    this.feedForward = this.addModule('feedForward', new FeedForward(config, o));
    this.addResidualScale('attentionResidualScale', o);
    this.addResidualScale('feedForwardResidualScale', o);
  }
}

/**
 * x = attn(norm₁(x)) + x·s₁·c ;  x = ff(norm₂(x)) + x·s₂·c
 * The attention's residual sum and norm₂ of it come out of one fused op; the feed-forward's sum is
 * normed by the next block (or the final norm).
 */
export class PreNormBlock extends SequentialBlock {
  protected combine(x: Tensor, branches: Branches): Tensor {
    const attended = branches.attend(this.attentionNorm.forward(x));
    const { stream, normed } = addResidualThenNorm(
      x,
      attended,
      this.residual('attentionResidualScale'),
      this.feedForwardNorm,
      branches.addNormInto?.('feedForward'),
    );
    return addResidual(stream, branches.feed(normed), this.residual('feedForwardResidualScale'));
  }
}

/**
 * x = norm₁(attn(x) + x·s₁·c) ;  x = norm₂(ff(x) + x·s₂·c) — DeepNorm's form; each sum and its norm are one fused op.
 */
export class PostNormBlock extends SequentialBlock {
  protected combine(x: Tensor, branches: Branches): Tensor {
    const intoFeedForward = branches.addNormInto?.('feedForward');
    x = addResidualNorm(
      x,
      branches.attend(x),
      this.residual('attentionResidualScale'),
      this.attentionNorm,
      intoFeedForward,
    );
    const intoNext = branches.addNormInto?.('nextAttention');
    return addResidualNorm(
      x,
      branches.feed(x),
      this.residual('feedForwardResidualScale'),
      this.feedForwardNorm,
      intoNext,
    );
  }
}

/**
 * x = norm₃(attn(norm₁(x))) + x·s₁·c ;  x = norm₄(ff(norm₂(x))) + x·s₂·c — Gemma 2's four norms: each branch's
 * output is normed before its residual add (transformers calls norm₃ post_attention_layernorm, unlike Llama's
 * meaning of the name). The attention's residual sum and norm₂ of it come out of one fused op.
 */
export class SandwichNormBlock extends SequentialBlock {
  readonly attentionOutputNorm: Norm;
  readonly feedForwardOutputNorm: Norm;

  constructor(config: AndromedaConfig, attention: SelfAttention, o: ParameterOptions) {
    super(config, attention, o);
    this.attentionOutputNorm = this.addModule('attentionOutputNorm', makeNorm(config, o));
    this.feedForwardOutputNorm = this.addModule('feedForwardOutputNorm', makeNorm(config, o));
  }

  protected combine(x: Tensor, branches: Branches): Tensor {
    const attended = this.attentionOutputNorm.forward(branches.attend(this.attentionNorm.forward(x)));
    const { stream, normed } = addResidualThenNorm(
      x,
      attended,
      this.residual('attentionResidualScale'),
      this.feedForwardNorm,
      branches.addNormInto?.('feedForward'),
    );
    const fed = this.feedForwardOutputNorm.forward(branches.feed(normed));
    return addResidual(stream, fed, this.residual('feedForwardResidualScale'));
  }
}

/** x = attn(norm(x)) + ff(norm(x)) + x·s·c — one norm feeds both branches. */
export class ParallelBlock extends Block {
  readonly norm: Norm;
  readonly attention: SelfAttention;
  readonly feedForward: FeedForward;

  constructor(config: AndromedaConfig, attention: SelfAttention, o: ParameterOptions) {
    super(config);
    this.norm = this.addModule('norm', makeNorm(config, o));
    this.attention = this.addModule('attention', attention);
    this.feedForward = this.addModule('feedForward', new FeedForward(config, o));
    this.addResidualScale('residualScale', o);
  }

  protected combine(x: Tensor, branches: Branches): Tensor {
    const h = this.norm.forward(x);
    return addResidual(x, add(branches.attend(h), branches.feed(h)), this.residual('residualScale'));
  }
}
