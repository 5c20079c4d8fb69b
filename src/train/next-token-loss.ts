/**
 * The next-token cross-entropy of a packed batch: the loss the trainer minimises and the
 * held-out evaluation measures.
 */
import { Tensor } from '../tensor/tensor.js';
import { crossEntropy } from '../ops/nn.js';
import { chunkedLinearCrossEntropy, lossIsChunked } from '../ops/chunked-cross-entropy.js';
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

export interface BatchLossOptions {
  activationCheckpointing?: boolean;
  /**
   * How the loss meets the vocabulary: 'chunked' computes it from the hidden states a block of
   * `chunkRows` rows at a time (never every logit at once), 'full' from the whole logits tensor.
   * Default 'auto': chunked when the batch has more rows than one block and the model exposes its
   * output head, since then the full logits and their gradient are what a long context cannot hold.
   */
  loss?: 'auto' | 'chunked' | 'full';
  /** Rows per block of the chunked loss (default DEFAULT_CROSS_ENTROPY_CHUNK_ROWS). */
  chunkRows?: number;
}

/** Whether batchLoss computes the loss block by block for `rows` target rows. */
export function usesChunkedLoss(model: LanguageModel, rows: number, o: BatchLossOptions = {}): boolean {
  const mode = o.loss ?? 'auto';
  const capable = model.hiddenStates !== undefined && model.outputHead !== undefined;
  if (mode === 'chunked' && !capable)
    throw new Error(
      'batchLoss: this model does not expose its hidden states and output head, so its loss cannot be chunked',
    );
  if (mode === 'auto') return capable && lossIsChunked(rows, o.chunkRows);
  return mode === 'chunked';
}

/**
 * Next-token cross-entropy of one batch (mean or sum over every target; targets equal to −100, the
 * packer's boundary mask, count for nothing), the same value whichever way `o.loss` computes it.
 */
export function batchLoss(
  model: LanguageModel,
  t: BatchTensors,
  reduction: 'mean' | 'sum',
  o: BatchLossOptions = {},
): Tensor {
  const forwardOptions = {
    segmentIds: t.segmentIds,
    positions: t.positions,
    activationCheckpointing: o.activationCheckpointing,
  };
  const rows = t.targets.size;
  const targets = reshape(t.targets, [rows]);
  if (usesChunkedLoss(model, rows, o)) {
    const hidden = model.hiddenStates!(t.inputs, forwardOptions);
    const flat = reshape(hidden, [rows, hidden.shape[hidden.rank - 1]!]);
    const head = model.outputHead!;
    return chunkedLinearCrossEntropy(flat, head.weight, head.bias, targets, {
      reduction,
      chunkRows: o.chunkRows,
      softCap: head.softCap ?? null,
    });
  }
  const logits = model.forward(t.inputs, forwardOptions);
  const vocab = logits.shape[logits.rank - 1]!;
  const flat = reshape(logits, [rows, vocab]);
  return crossEntropy(flat, targets, { reduction });
}
