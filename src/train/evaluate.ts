/**
 * Held-out evaluation: mean next-token cross-entropy over a fixed sequence of held-out rows
 * (no gradients, each batch in its own tidy scope) and the same loss in bits per UTF-8 byte.
 */
import { Tensor } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import { noGrad } from '../autograd/grad-mode.js';
import { crossEntropy } from '../ops/nn.js';
import { reshape } from '../ops/layout.js';
import type { Batch } from '../data/packing.js';
import type { TrainingData } from '../data/training-data.js';
import type { DType } from '../tensor/dtype.js';
import type { LanguageModel } from './model.js';

export interface EvalResult {
  /** Mean loss in nats per token. */
  loss: number;
  /** Targets scored. */
  tokens: number;
  bitsPerByte: number;
  seconds: number;
}

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
export function batchLoss(model: LanguageModel, t: BatchTensors, reduction: 'mean' | 'sum', computeDType?: DType): Tensor {
  const logits = model.forward(t.inputs, { segmentIds: t.segmentIds, positions: t.positions, computeDType });
  const vocab = logits.shape[logits.rank - 1]!;
  const flat = reshape(logits, [t.targets.size, vocab]);
  return crossEntropy(flat, reshape(t.targets, [t.targets.size]), { reduction });
}

export interface EvaluateOptions {
  seqLen: number;
  batchSize: number;
  segments: boolean;
  device: string;
  /** Score at most this many targets (whole batches, from the start of the held-out split); 0 = all. */
  maxTokens: number;
  computeDType?: DType;
  onBatch?: (done: number, total: number) => void;
}

export function evaluate(model: LanguageModel, data: TrainingData, o: EvaluateOptions): EvalResult {
  const started = Date.now();
  const rowsAvailable = data.heldOut.length > o.seqLen ? Math.floor((data.heldOut.length - 1) / o.seqLen) : 0;
  if (rowsAvailable === 0) throw new Error(`the held-out split has ${data.heldOut.length} tokens, fewer than seqLen + 1 = ${o.seqLen + 1}; hold out more text or use a shorter --seq-len`);
  const maxRows = o.maxTokens > 0 ? Math.max(1, Math.ceil(o.maxTokens / o.seqLen)) : rowsAvailable;
  const rows = Math.min(rowsAvailable, maxRows);
  const maxBatches = Math.ceil(rows / o.batchSize);
  let total = 0;
  let tokens = 0;
  let done = 0;
  model.eval();
  try {
    for (const batch of data.heldOutBatches({ seqLen: o.seqLen, batchSize: o.batchSize, segments: o.segments, maxBatches })) {
      let use = batch;
      const keepRows = Math.min(batch.batchSize, rows - done);
      if (keepRows < batch.batchSize) use = trimBatch(batch, keepRows);
      total += tidy(() => noGrad(() => batchLoss(model, batchTensors(use, o.device, o.segments), 'sum', o.computeDType).item()));
      tokens += use.batchSize * use.seqLen;
      done += use.batchSize;
      o.onBatch?.(done, rows);
      if (done >= rows) break;
    }
  } finally {
    model.train();
  }
  const loss = total / tokens;
  // Bytes per token of the held-out split as a whole (exact for a full evaluation).
  const bytesPerToken = data.heldOutBytesPerToken;
  return { loss, tokens, bitsPerByte: bytesPerToken > 0 ? loss / (Math.LN2 * bytesPerToken) : NaN, seconds: (Date.now() - started) / 1000 };
}

function trimBatch(b: Batch, rows: number): Batch {
  const n = rows * b.seqLen;
  return {
    batchSize: rows,
    seqLen: b.seqLen,
    tokens: b.tokens.subarray(0, rows * (b.seqLen + 1)),
    inputs: b.inputs.subarray(0, n),
    targets: b.targets.subarray(0, n),
    segmentIds: b.segmentIds.subarray(0, n),
    positions: b.positions.subarray(0, n),
  };
}
