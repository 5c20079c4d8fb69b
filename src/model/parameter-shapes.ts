/**
 * The model's parameter names and shapes computed from the config alone, so sizes of large models
 * can be known without allocating them. tests/model/presets.test.ts checks that this matches the
 * parameters the model actually creates.
 */
import { feedForwardInnerDim, type AndromedaConfig } from './config.js';

export function parameterShapes(c: AndromedaConfig): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  const norm = (prefix: string): void => {
    shapes.set(`${prefix}.weight`, [c.dim]);
    if (c.norm === 'layernorm') shapes.set(`${prefix}.bias`, [c.dim]);
  };
  const inner = feedForwardInnerDim(c);
  const gated = c.ffActivation !== 'gelu';
  shapes.set('embedding.weight', [c.vocabSize, c.dim]);
  for (let i = 0; i < c.depth; i++) {
    const block = `blocks.${i}`;
    if (c.parallelBlocks) norm(`${block}.norm`);
    else norm(`${block}.attentionNorm`);
    shapes.set(`${block}.attention.query.weight`, [c.heads * c.headDim, c.dim]);
    if (c.qkvBias) shapes.set(`${block}.attention.query.bias`, [c.heads * c.headDim]);
    shapes.set(`${block}.attention.key.weight`, [c.kvHeads * c.headDim, c.dim]);
    if (c.qkvBias) shapes.set(`${block}.attention.key.bias`, [c.kvHeads * c.headDim]);
    shapes.set(`${block}.attention.value.weight`, [c.kvHeads * c.headDim, c.dim]);
    if (c.qkvBias) shapes.set(`${block}.attention.value.bias`, [c.kvHeads * c.headDim]);
    shapes.set(`${block}.attention.output.weight`, [c.dim, c.heads * c.headDim]);
    if (c.attentionOutputBias) shapes.set(`${block}.attention.output.bias`, [c.dim]);
    if (c.qkRmsNorm) {
      shapes.set(`${block}.attention.queryNorm.weight`, [c.headDim]);
      shapes.set(`${block}.attention.keyNorm.weight`, [c.headDim]);
    }
    if (c.qkNormDimScale) {
      shapes.set(`${block}.attention.queryScale`, [c.heads, c.headDim]);
      shapes.set(`${block}.attention.keyScale`, [c.heads, c.headDim]);
    }
    if (c.scaleResidual)
      shapes.set(c.parallelBlocks ? `${block}.residualScale` : `${block}.attentionResidualScale`, [c.dim]);
    if (!c.parallelBlocks) norm(`${block}.feedForwardNorm`);
    if (c.sandwichNorm) {
      norm(`${block}.attentionOutputNorm`);
      norm(`${block}.feedForwardOutputNorm`);
    }
    shapes.set(`${block}.feedForward.input.weight`, [gated ? 2 * inner : inner, c.dim]);
    if (c.feedForwardBias) shapes.set(`${block}.feedForward.input.bias`, [gated ? 2 * inner : inner]);
    shapes.set(`${block}.feedForward.output.weight`, [c.dim, inner]);
    if (c.feedForwardBias) shapes.set(`${block}.feedForward.output.bias`, [c.dim]);
    if (c.scaleResidual && !c.parallelBlocks) shapes.set(`${block}.feedForwardResidualScale`, [c.dim]);
  }
  if (c.normPosition === 'pre') norm('finalNorm');
  if (!c.tiedEmbeddings) {
    shapes.set('logits.weight', [c.vocabSize, c.dim]);
    shapes.set('logits.bias', [c.vocabSize]);
  }
  return shapes;
}

/** Number of parameter elements of the config's model. */
export function countParameters(c: AndromedaConfig): number {
  let n = 0;
  for (const shape of parameterShapes(c).values()) n += shape.reduce((a, b) => a * b, 1);
  return n;
}
