/**
 * The next-token cross-entropy of a packed batch: the loss the trainer minimises and the
 * held-out evaluation measures.
 */
import { Tensor } from '../tensor/tensor.js';
import { crossEntropy } from '../ops/nn.js';
import { reshape } from '../ops/layout.js';
import type { Batch } from '../data/packing.js';
import type { LanguageModel } from './model.js';

export interface BatchTensors {
  inputs: Tensor;
  targets: Tensor;
  segmentIds?: Tensor;
  positions?: Tensor;
}

/** Uploads a packed batch (in the current tidy scope). */
export function batchTensors(batch: Batch, device: string, segments: boolean): BatchTensors {
  const shape = [batch.batchSize, batch.seqLen];
  return {
    inputs: Tensor.fromArray(batch.inputs, shape, 'int32', device),
    targets: Tensor.fromArray(batch.targets, shape, 'int32', device),
    segmentIds: segments ? Tensor.fromArray(batch.segmentIds, shape, 'int32', device) : undefined,
    positions: segments ? Tensor.fromArray(batch.positions, shape, 'int32', device) : undefined,
  };
}

/** Next-token cross-entropy of one batch (mean or sum over every target). */
export function batchLoss(
  model: LanguageModel,
  t: BatchTensors,
  reduction: 'mean' | 'sum',
  o: { activationCheckpointing?: boolean } = {},
): Tensor {
  const logits = model.forward(t.inputs, {
    segmentIds: t.segmentIds,
    positions: t.positions,
    activationCheckpointing: o.activationCheckpointing,
  });
  const vocab = logits.shape[logits.rank - 1]!;
  const flat = reshape(logits, [t.targets.size, vocab]);
  return crossEntropy(flat, reshape(t.targets, [t.targets.size]), { reduction });
}
