/**
 * The tensors a forward and backward pass of the Andromeda model allocate, op by op, as the autograd keeps them.
 *
 * Training runs the loss and its backward pass inside one scope (src/train/trainer.ts, tidy): every tensor the
 * forward pass creates stays allocated until the step's backward pass is over, whether or not a backward
 * function reads it, and the backward pass frees each intermediate gradient once it has been propagated
 * (src/autograd/tape.ts). So the forward pass's memory is the list below, per block, in the order the ops make
 * them: each entry is one tensor of `perRow` elements per token (rows = batch × sequence), in the compute
 * dtype unless marked float32 (norm statistics, attention's log-sum-exp).
 *
 *   norm (LayerNorm / RMSNorm)       output; float32 statistics per row (mean and rstd / rstd)
 *   token shift (shiftTokens > 0)    the shifted copy, once per sub-layer
 *   q, k, v projections              one tensor each
 *   qk-norm (L2, per head)           normalised q and k, already in the heads' layout; float32 norm per head
 *   attention (fused kernel)         q (and k, v with several KV heads) made contiguous in the heads' layout;
 *                                    the output; float32 log-sum-exp per head (src/ops/attention.ts)
 *   merge heads                      a contiguous copy of the output in [rows, heads · headDim]
 *   feed-forward                     input projection; GELU with bias fused (bias-gelu) or the GLU's product;
 *                                    the tanh GELU (Gemma's) keeps its nine composed ops' results; without
 *                                    gradients (the paged forward) the product, bias and GELU are one tensor
 *   residual + norm                  fused: the sum (pre-norm keeps it as the stream) and the normed output
 */
import { feedForwardInnerDim, type AndromedaConfig } from '../model/config.js';

export interface RowTensor {
  /** Elements per token. */
  perRow: number;
  float32?: boolean;
  what: string;
}

function normTensors(c: AndromedaConfig, what: string): RowTensor[] {
  return [
    { perRow: c.dim, what },
    { perRow: c.norm === 'layernorm' ? 2 : 1, float32: true, what: `${what} statistics` },
  ];
}

function shiftTensor(c: AndromedaConfig, what: string): RowTensor[] {
  return c.shiftTokens > 0 ? [{ perRow: c.dim, what: `token shift (${what})` }] : [];
}

function attentionTensors(c: AndromedaConfig, paged: boolean): RowTensor[] {
  const q = c.heads * c.headDim;
  const kv = c.kvHeads * c.headDim;
  const out: RowTensor[] = [
    { perRow: q, what: 'query projection' },
    { perRow: kv, what: 'key projection' },
  ];
  if (c.qkNorm) {
    out.push(
      { perRow: q, what: 'qk-norm query' },
      { perRow: c.heads, float32: true, what: 'qk-norm query norms' },
      { perRow: kv, what: 'qk-norm key' },
      { perRow: c.kvHeads, float32: true, what: 'qk-norm key norms' },
    );
  } else if (c.qkRmsNorm) {
    out.push(
      { perRow: q, what: 'query RMS norm' },
      { perRow: c.heads, float32: true, what: 'query RMS statistics' },
      { perRow: kv, what: 'key RMS norm' },
      { perRow: c.kvHeads, float32: true, what: 'key RMS statistics' },
    );
  }
  out.push({ perRow: kv, what: 'value projection' });
  // The paged forward keeps [rows, heads, headDim] (no move to the heads' layout, no log-sum-exp, no merge).
  if (paged) {
    out.push({ perRow: q, what: 'attention output' }, { perRow: c.dim, what: 'attention output projection' });
    return out;
  }
  // Moving [rows, heads, headDim] to the heads' layout is a view; the fused kernel copies it contiguous when a
  // head count above 1 makes the view strided (qk-norm writes q and k in the heads' layout already).
  if (!c.qkNorm && c.heads > 1) out.push({ perRow: q, what: 'query in heads layout' });
  if (!c.qkNorm && c.kvHeads > 1) out.push({ perRow: kv, what: 'key in heads layout' });
  if (c.kvHeads > 1) out.push({ perRow: kv, what: 'value in heads layout' });
  out.push(
    { perRow: q, what: 'attention output' },
    { perRow: c.heads, float32: true, what: 'attention log-sum-exp' },
    { perRow: q, what: 'merged heads' },
    { perRow: c.dim, what: 'attention output projection' },
  );
  return out;
}

/**
 * PyTorch's tanh GELU is composed of nine elementwise ops (src/model/feed-forward.ts, tanhGelu): under the
 * training scope all nine results stay, the last being the activation itself.
 */
function tanhGeluIntermediates(c: AndromedaConfig, inner: number): RowTensor[] {
  if (c.ffActivation === 'swiglu' || c.geluApproximation !== 'tanh') return [];
  return Array.from({ length: 8 }, (_, i) => ({ perRow: inner, what: `tanh GELU intermediate ${i + 1}` }));
}

/** `inference`: no gradients recorded, so the plain GELU's product and bias + GELU are one op (linearBiasGelu). */
function feedForwardTensors(c: AndromedaConfig, inference: boolean): RowTensor[] {
  const inner = feedForwardInnerDim(c);
  if (inference && c.ffActivation === 'gelu' && c.feedForwardBias && c.geluApproximation !== 'tanh')
    return [
      { perRow: inner, what: 'feed-forward input projection + bias + GELU' },
      { perRow: c.dim, what: 'feed-forward output projection' },
    ];
  if (c.ffActivation === 'gelu')
    return [
      { perRow: inner, what: 'feed-forward input projection' },
      ...tanhGeluIntermediates(c, inner),
      { perRow: inner, what: c.feedForwardBias && c.geluApproximation !== 'tanh' ? 'bias + GELU' : 'GELU' },
      { perRow: c.dim, what: 'feed-forward output projection' },
    ];
  return [
    { perRow: 2 * inner, what: 'feed-forward input projection (value, gate)' },
    ...tanhGeluIntermediates(c, inner),
    { perRow: inner, what: c.ffActivation === 'swiglu' ? 'SiLU(gate)' : 'GELU(gate)' },
    { perRow: inner, what: 'value · activated gate' },
    { perRow: c.dim, what: 'feed-forward output projection' },
  ];
}

/**
 * What one block's forward pass allocates, in the order its form (src/model/block.ts) runs the ops; `paged`: the
 * inference engine's paged forward over [rows, dim] (src/model/paged-forward.ts).
 */
export function blockTensors(c: AndromedaConfig, o: { paged?: boolean } = {}): RowTensor[] {
  const attention = attentionTensors(c, o.paged ?? false);
  if (c.parallelBlocks)
    return [
      ...normTensors(c, 'block norm'),
      ...shiftTensor(c, 'attention'),
      ...attention,
      ...shiftTensor(c, 'feed-forward'),
      ...feedForwardTensors(c, o.paged ?? false),
      { perRow: c.dim, what: 'attention + feed-forward' },
      { perRow: c.dim, what: 'residual sum' },
    ];
  if (c.normPosition === 'pre')
    return [
      ...normTensors(c, 'attention norm'),
      ...shiftTensor(c, 'attention'),
      ...attention,
      { perRow: c.dim, what: 'residual stream' },
      ...normTensors(c, 'feed-forward norm'),
      ...shiftTensor(c, 'feed-forward'),
      ...feedForwardTensors(c, o.paged ?? false),
      { perRow: c.dim, what: 'residual sum' },
    ];
  return [
    ...shiftTensor(c, 'attention'),
    ...attention,
    ...normTensors(c, 'residual + attention norm'),
    ...shiftTensor(c, 'feed-forward'),
    ...feedForwardTensors(c, o.paged ?? false),
    ...normTensors(c, 'residual + feed-forward norm'),
  ];
}

/** The embedding's output, the final norm and the logits of the predicting positions. */
export function headTensors(c: AndromedaConfig): { input: RowTensor[]; output: RowTensor[] } {
  return {
    input: [{ perRow: c.dim, what: 'embedding output' }],
    output: [
      ...(c.normPosition === 'pre' ? normTensors(c, 'final norm') : []),
      { perRow: c.vocabSize, what: 'logits' },
    ],
  };
}

/**
 * Gradients alive at once at the widest point of a block's backward pass, its feed-forward: the residual stream's
 * gradient, the gradient of the activated features, and the input projection's gradient. A GLU splits its input
 * projection with two narrows, whose backward passes each pad their part into a zero tensor of the full 2·inner
 * width before the two are summed: three such tensors at once.
 */
export function blockGradientTensors(c: AndromedaConfig): RowTensor[] {
  const inner = feedForwardInnerDim(c);
  const gradients: RowTensor[] = [
    { perRow: c.dim, what: 'residual gradient' },
    { perRow: inner, what: 'gradient of the activated features' },
  ];
  if (c.ffActivation === 'gelu') {
    gradients.push({ perRow: inner, what: 'gradient of the input projection' });
    // Back through the tanh GELU's chain: the chain's gradient, the input's gradient summed over its four uses,
    // and the partial being added to it (a GLU's padded gradients are wider than these).
    if (c.geluApproximation === 'tanh')
      gradients.push(
        { perRow: inner, what: "tanh GELU chain's gradient" },
        { perRow: inner, what: "tanh GELU input's summed gradient" },
        { perRow: inner, what: "tanh GELU input's partial gradient" },
      );
  } else
    gradients.push(
      { perRow: 2 * inner, what: 'value gradient, padded' },
      { perRow: 2 * inner, what: 'gate gradient, padded' },
      { perRow: 2 * inner, what: 'gradient of the input projection' },
    );
  return gradients;
}
