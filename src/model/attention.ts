import type { Tensor } from '../tensor/tensor.js';
import { attention } from '../ops/attention.js';
import { permute, reshape } from '../ops/layout.js';
import { linearSharedInput } from '../ops/matmul.js';
import { headNorm } from '../ops/fused/head-norm.js';
import { Module } from '../nn/module.js';
import { Linear } from '../nn/linear.js';
import { RMSNorm } from '../nn/rms-norm.js';
import { constantTensor, type ParameterOptions } from '../nn/parameter.js';
import type { AndromedaConfig } from './config.js';
import { HEAD_NORM_MAX_DIM, type FusedAttentionShape } from '../engine/engine.js';
import { rotaryForKeys, type RotarySettings } from './rotary.js';
import type { LayerState } from './context.js';
import type { PagedAttentionFeatures, PagedLayer } from './paged-forward.js';

/**
 * Why the paged forward cannot run this config's attention on any engine, or null when it can. The paged kernels
 * take one rotary table for all sequences: dynamic NTK and LongRoPE (frequencies that follow each sequence's
 * length) run through the dense forward instead. A sliding window and logit soft-capping depend on the engine
 * (Engine.fusedAttentionUnsupported with `window` / `softCap`: the CPU's paged kernel has both, CUDA's neither).
 */
export function pagedAttentionUnsupported(c: AndromedaConfig): string | null {
  if (c.rotary?.dynamicNtk) return 'dynamic NTK rotary scaling';
  if (c.rotary?.longRope) return 'LongRoPE rotary scaling (frequencies chosen by sequence length)';
  return null;
}

/** The shape an engine's paged kernel must take for this config (Engine.fusedAttentionUnsupported). */
export function pagedAttentionShape(c: AndromedaConfig): FusedAttentionShape {
  return {
    kernel: 'paged',
    heads: c.heads,
    headDim: c.headDim,
    rotaryDim: c.rotary?.dim ?? 0,
    alibi: c.alibiHeads > 0,
    window: c.slidingWindow !== null,
    softCap: c.attentionSoftCap !== null,
  };
}

/**
 * Whether decoding over a KV cache gives what the whole sequence's forward gives. Not with dynamic NTK: its
 * frequencies follow the sequence's length at every step, so the deeper layers' cached keys and values, computed
 * from hidden states of shorter lengths, go stale (as in transformers' incremental decoding), and the tokens would
 * depend on how the prompt was chunked. (LongRoPE changes its frequencies once, and Andromeda.forward recomputes
 * the cache then.)
 */
export function denseCacheExact(c: AndromedaConfig): boolean {
  return !c.rotary?.dynamicNtk;
}

/**
 * Self-attention: q/k/v/output projections (biases on q/k/v with qkvBias, on the output with
 * attentionOutputBias); multi-head, grouped-query or multi-query (kvHeads); optional qk-norm, either
 * x-transformers' (L2-normalised q and k, scale qkNormScale, learned per-head scales) or Qwen3's (qkRmsNorm:
 * a learned RMSNorm over each head, before rotary); rotary + xPos, ALiBi, the sliding window and masks
 * applied by the attention op.
 */
export class SelfAttention extends Module {
  readonly query: Linear;
  readonly key: Linear;
  readonly value: Linear;
  readonly output: Linear;
  /** Qwen3's per-head RMS norms of q and k (qkRmsNorm), or null. */
  readonly queryNorm: RMSNorm | null = null;
  readonly keyNorm: RMSNorm | null = null;
  private readonly heads: number;
  private readonly kvHeads: number;
  private readonly headDim: number;
  private readonly qkNorm: boolean;
  private readonly dimScale: boolean;
  private readonly scale: number;
  private readonly softCap: number | null;
  private readonly pagedUnsupported: string | null;

  /** `window`: this layer's sliding window (see layerWindow), null for none. */
  constructor(
    config: AndromedaConfig,
    private readonly window: number | null,
    private readonly rotary: RotarySettings | null,
    private readonly slopes: Float64Array | null,
    o: ParameterOptions = {},
  ) {
    super();
    const { dim, heads, kvHeads, headDim } = config;
    this.heads = heads;
    this.kvHeads = kvHeads;
    this.headDim = headDim;
    const projection = { ...o, bias: config.qkvBias, initialize: false };
    this.query = this.addModule('query', new Linear(dim, heads * headDim, projection));
    this.key = this.addModule('key', new Linear(dim, kvHeads * headDim, projection));
    this.value = this.addModule('value', new Linear(dim, kvHeads * headDim, projection));
    this.output = this.addModule(
      'output',
      new Linear(heads * headDim, dim, { ...o, bias: config.attentionOutputBias, initialize: false }),
    );
    if (config.qkRmsNorm) {
      this.queryNorm = this.addModule('queryNorm', new RMSNorm(headDim, { ...o, eps: config.normEps }));
      this.keyNorm = this.addModule('keyNorm', new RMSNorm(headDim, { ...o, eps: config.normEps }));
    }
    this.softCap = config.attentionSoftCap;
    this.pagedUnsupported = pagedAttentionUnsupported(config);
    this.qkNorm = config.qkNorm;
    this.dimScale = config.qkNormDimScale;
    if (this.dimScale) {
      this.addParameter('queryScale', constantTensor([heads, headDim], 1, o));
      this.addParameter('keyScale', constantTensor([heads, headDim], 1, o));
    }
    const baseScale = config.qkNorm ? config.qkNormScale : (config.attentionScale ?? headDim ** -0.5);
    this.scale = baseScale * (rotary?.scaleMultiplier ?? 1);
  }

  /** x [batch, n, dim] → [batch, n, dim]. */
  forward(x: Tensor, state: LayerState): Tensor {
    const [b, n] = x.shape as [number, number];
    const heads = (t: Tensor, count: number): Tensor => reshape(t, [b, n, count, this.headDim]);
    const split = (t: Tensor, count: number): Tensor => permute(heads(t, count), [0, 2, 1, 3]);
    // qk-norm: L2 norm (and the learned query scale) fused with the move to the heads' layout.
    let q: Tensor, k: Tensor;
    if (this.qkNorm) {
      q = headNorm(heads(this.query.forward(x), this.heads), this.dimScale ? this.param('queryScale') : null);
      k = headNorm(heads(this.key.forward(x), this.kvHeads));
    } else if (this.queryNorm && this.keyNorm) {
      // Qwen3's order: project, RMS-normalise each head, then rotate (the attention op rotates).
      q = permute(this.queryNorm.forward(heads(this.query.forward(x), this.heads)), [0, 2, 1, 3]);
      k = permute(this.keyNorm.forward(heads(this.key.forward(x), this.kvHeads)), [0, 2, 1, 3]);
    } else {
      q = split(this.query.forward(x), this.heads);
      k = split(this.key.forward(x), this.kvHeads);
    }
    let v = split(this.value.forward(x), this.kvHeads);
    let queryOffset: number | undefined;
    if (state.cache) {
      const all = state.cache.append(k, v);
      k = all.keys;
      v = all.values;
      queryOffset = all.queryOffset;
    }
    const { positions, segments, implementation } = state.sequence;
    const out = attention(q, k, v, {
      scale: this.scale,
      causal: true,
      queryOffset,
      keyScale: this.dimScale ? this.param('keyScale') : null,
      rotary: this.rotary && rotaryForKeys(this.rotary, k.shape[2]!),
      window: this.window,
      softCap: this.softCap,
      alibiSlopes: this.slopes,
      queryPositions: positions,
      keyPositions: positions,
      querySegments: segments,
      keySegments: segments,
      implementation,
    });
    const merged = reshape(permute(out, [0, 2, 1, 3]), [b, n, this.heads * this.headDim]);
    return this.output.forward(merged);
  }

  /**
   * x [T, dim], the rows of a paged step → [T, dim]: this step's keys and values go to the layer's pools at
   * their slots, then the queries attend over the pools (src/model/paged-forward.ts).
   */
  forwardPaged(x: Tensor, layer: PagedLayer): Tensor {
    if (this.pagedUnsupported) throw new Error(`forwardPaged: the paged attention has no ${this.pagedUnsupported}`);
    const rows = x.shape[0]!;
    // headNorm's [batch, n, heads, dim] → [batch, heads, n, dim] with n = 1 keeps the rows' [T, heads, dim] layout.
    const headRows = (t: Tensor, count: number, weight: Tensor | null, rmsNorm: RMSNorm | null): Tensor => {
      if (this.qkNorm)
        return reshape(headNorm(reshape(t, [rows, 1, count, this.headDim]), weight), [rows, count, this.headDim]);
      const split = reshape(t, [rows, count, this.headDim]);
      return rmsNorm ? rmsNorm.forward(split) : split;
    };
    const [qRows, kRows, vRows] = this.projectQueryKeyValue(x);
    const queryWeight = this.dimScale ? this.param('queryScale') : null;
    // qk-norm rides on the step's K/V write (one launch) where the head dim allows; otherwise it runs first.
    const fused = this.qkNorm && this.headDim <= HEAD_NORM_MAX_DIM;
    const split = (t: Tensor, count: number) => reshape(t, [rows, count, this.headDim]);
    const q = fused ? split(qRows!, this.heads) : headRows(qRows!, this.heads, queryWeight, this.queryNorm);
    const k = fused ? split(kRows!, this.kvHeads) : headRows(kRows!, this.kvHeads, null, this.keyNorm);
    const attended = layer.writeStepInputs(q, k, split(vRows!, this.kvHeads), fused ? { queryWeight } : null);
    const out = layer.attend(attended, this.pagedFeatures());
    return this.output.forward(reshape(out, [rows, this.heads * this.headDim]));
  }

  /** x's query, key and value rows: without biases, one product of x with the three weights (one launch on CUDA). */
  private projectQueryKeyValue(x: Tensor): Tensor[] {
    const projections = [this.query, this.key, this.value];
    if (projections.some((p) => p.bias)) return projections.map((p) => p.forward(x));
    return linearSharedInput(
      x,
      projections.map((p) => p.weight),
    );
  }

  private pagedFeatures(): PagedAttentionFeatures {
    return {
      heads: this.heads,
      kvHeads: this.kvHeads,
      headDim: this.headDim,
      scale: this.scale,
      keyScale: this.dimScale ? this.param('keyScale') : null,
      rotary: this.rotary,
      slopes: this.slopes,
      window: this.window,
      softCap: this.softCap,
    };
  }
}
