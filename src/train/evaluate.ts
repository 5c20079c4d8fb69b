/**
 * Held-out evaluation: mean next-token cross-entropy over a fixed sequence of held-out rows
 * (no gradients, each batch in its own tidy scope) and the same loss in bits per UTF-8 byte.
 */
import { tidy } from '../tensor/scope.js';
import { noGrad } from '../autograd/grad-mode.js';
import { makeBatch } from '../data/packing.js';
import type { TrainingData } from '../data/training-data.js';
import type { LanguageModel } from './model.js';
import { batchLoss, batchTensors } from './next-token-loss.js';

export interface EvalResult {
  /** Mean loss in nats per token. */
  loss: number;
  /** Targets scored. */
  tokens: number;
  /** UTF-8 bytes of the targets scored (end-of-document tokens count 0). */
  bytes: number;
  /** Total loss over the targets in bits, divided by their bytes. */
  bitsPerByte: number;
  /** The unigram baseline on the same targets (NaN without unigram costs). */
  unigramLoss: number;
  unigramBitsPerByte: number;
  seconds: number;
}

/** Target id that is not scored (the cross-entropy's default ignore index). */
const IGNORE = -100;

export interface EvaluateOptions {
  seqLen: number;
  batchSize: number;
  segments: boolean;
  device: string;
  /** Score about this many targets (whole rows spread evenly over the held-out split); 0 = all. */
  maxTokens: number;
  /** −ln p(t) of the unigram baseline per id, to score the same targets under it. */
  unigramCosts?: Float64Array;
  onBatch?: (done: number, total: number) => void;
}

/** A held-out row: tokens [start, start + seqLen] with the first `skip` targets not scored. */
export interface HeldOutRow {
  start: number;
  skip: number;
}

/**
 * Rows of seqLen + 1 held-out tokens (overlapping by one). A full evaluation (maxTokens 0) scores
 * every token after the first exactly once: consecutive rows, plus a last row ending at the end of
 * the split whose targets already scored are skipped. With a token limit: that many rows evenly
 * spaced over the split (a sample of every source, not just the first), always the same ones.
 */
export function heldOutRows(length: number, seqLen: number, maxTokens: number): HeldOutRow[] {
  const available = length > seqLen ? Math.floor((length - 1) / seqLen) : 0;
  if (maxTokens > 0 && maxTokens < length - 1) {
    const wanted = Math.min(available, Math.max(1, Math.ceil(maxTokens / seqLen)));
    return Array.from({ length: wanted }, (_, i) => ({
      start: Math.floor((i * available) / wanted) * seqLen,
      skip: 0,
    }));
  }
  const rows = Array.from({ length: available }, (_, i) => ({ start: i * seqLen, skip: 0 }));
  const remaining = length - 1 - available * seqLen;
  if (available > 0 && remaining > 0) rows.push({ start: length - 1 - seqLen, skip: seqLen - remaining });
  return rows;
}

export function evaluate(model: LanguageModel, data: TrainingData, o: EvaluateOptions): EvalResult {
  const started = Date.now();
  const rows = heldOutRows(data.heldOut.length, o.seqLen, o.maxTokens);
  if (rows.length === 0)
    throw new Error(
      `the held-out split has ${data.heldOut.length} tokens, fewer than seqLen + 1 = ${o.seqLen + 1}; hold out more ` +
        `text or use a shorter --seq-len`,
    );
  const { tokenizer } = data;
  const tokenBytes = new Float64Array(tokenizer.vocabSize);
  for (let t = 0; t < tokenizer.vocabSize; t++)
    tokenBytes[t] = t === tokenizer.eosId ? 0 : tokenizer.tokenBytes(t).length;
  let total = 0;
  let tokens = 0;
  let bytes = 0;
  let unigram = 0;
  model.eval();
  try {
    for (let first = 0; first < rows.length; first += o.batchSize) {
      const chosen = rows.slice(first, first + o.batchSize);
      const batch = makeBatch(
        chosen.map((r) => data.heldOut.read(r.start, o.seqLen + 1)),
        { seqLen: o.seqLen, eosId: tokenizer.eosId, segments: o.segments },
      );
      chosen.forEach((r, i) => batch.targets.fill(IGNORE, i * o.seqLen, i * o.seqLen + r.skip));
      total += tidy(() => noGrad(() => batchLoss(model, batchTensors(batch, o.device, o.segments), 'sum').item()));
      for (const t of batch.targets) {
        if (t === IGNORE) continue;
        bytes += tokenBytes[t] ?? 0;
        if (o.unigramCosts) unigram += o.unigramCosts[t];
        tokens++;
      }
      o.onBatch?.(Math.min(first + o.batchSize, rows.length), rows.length);
    }
  } finally {
    model.train();
  }
  return {
    loss: total / tokens,
    tokens,
    bytes,
    bitsPerByte: bytes > 0 ? total / (Math.LN2 * bytes) : NaN,
    unigramLoss: o.unigramCosts ? unigram / tokens : NaN,
    unigramBitsPerByte: o.unigramCosts && bytes > 0 ? unigram / (Math.LN2 * bytes) : NaN,
    seconds: (Date.now() - started) / 1000,
  };
}
