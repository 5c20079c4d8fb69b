/**
 * Next-byte logits for S byte streams coded side by side (one batch row each), computed
 * incrementally with the model's KV cache so coding is linear in the input, not quadratic.
 *
 * Row s sees the tokens fed[s][0..t] (fed[s][0] is the start token, fed[s][t+1] the stream's byte
 * t) and predicts byte t. Each step feeds one token per row. When the cache holds `context` tokens,
 * it is rebuilt from the last `overlap` tokens in one prefill call, so every prediction sees
 * between `overlap` and `context` tokens. In online mode the model first takes one training step on
 * the last `context` tokens of every row (all already coded), so the decoder, which has decoded
 * them by then, takes the identical step. The learning rate may decay with the steps taken
 * (lr / (1 + step / lrDecaySteps)): early steps move a fresh model fast, later ones refine it
 * without the noise of a large rate on small batches.
 */
import { Tensor } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import { noGrad } from '../autograd/grad-mode.js';
import type { Andromeda } from '../model/andromeda.js';
import type { KVCache } from '../model/kv-cache.js';
import { AdamW } from '../optim/adamw.js';
import { clipGradNorm } from '../optim/clip.js';

export interface StreamPredictorOptions {
  readonly context: number;
  readonly overlap: number;
  /** Online training; undefined: the model stays fixed. */
  readonly training?: OnlineTraining;
}

export interface OnlineTraining {
  readonly learningRate: number;
  /** The learning rate of step k is learningRate / (1 + k / lrDecaySteps); undefined: constant. */
  readonly lrDecaySteps?: number;
}

/** The learning rate of online step `step` (0-based). */
export function onlineLearningRate(t: OnlineTraining, step: number): number {
  return t.lrDecaySteps === undefined ? t.learningRate : t.learningRate / (1 + step / t.lrDecaySteps);
}

/** Gradient-norm cap of the online steps: one bad window must not wreck the model both sides share. */
const ONLINE_CLIP_NORM = 1;

export class StreamPredictor {
  private cache: KVCache | null = null;
  private readonly optimizer: AdamW | null;
  /** Training steps taken (online mode). */
  trainingSteps = 0;

  /** `fed[s]` is row s's token history; the predictor reads fed[s][0..t] at step t. */
  constructor(
    private readonly model: Andromeda,
    private readonly fed: readonly Int32Array[],
    private readonly o: StreamPredictorOptions,
  ) {
    if (!Number.isInteger(o.context) || o.context < 2)
      throw new RangeError(`context must be an integer ≥ 2, got ${o.context}`);
    if (!Number.isInteger(o.overlap) || o.overlap < 1 || o.overlap >= o.context)
      throw new RangeError(`overlap must be an integer from 1 to ${o.context - 1} (the context − 1), got ${o.overlap}`);
    if (o.context > model.config.maxSeqLen)
      throw new RangeError(
        `context ${o.context} exceeds the model's maximum sequence length ${model.config.maxSeqLen}`,
      );
    this.optimizer =
      o.training === undefined
        ? null
        : new AdamW(
            model.namedParameters().map(([, p]) => p),
            { lr: o.training.learningRate, weightDecay: 0 },
          );
  }

  get streams(): number {
    return this.fed.length;
  }

  /** Logits [streams × vocab] predicting byte t of every stream (fed[.][0..t] must be filled). */
  logitsAt(t: number): Float32Array {
    if (this.cache === null || this.cache.length >= this.o.context) {
      if (this.cache !== null && this.optimizer) this.train(t);
      this.cache?.dispose();
      this.cache = this.model.createKVCache(this.streams, { capacity: this.o.context });
      return this.forward(this.columns(Math.max(0, t + 1 - this.o.overlap), t + 1));
    }
    return this.forward(this.columns(t, t + 1));
  }

  dispose(): void {
    this.cache?.dispose();
    this.cache = null;
    this.optimizer?.dispose();
  }

  /** fed[.][from..to) as an int32 [streams, to − from] batch. */
  private columns(from: number, to: number): Int32Array {
    const width = to - from;
    const out = new Int32Array(this.streams * width);
    this.fed.forEach((row, s) => out.set(row.subarray(from, to), s * width));
    return out;
  }

  private forward(tokens: Int32Array): Float32Array {
    const cache = this.cache!;
    const width = tokens.length / this.streams;
    return tidy(() =>
      noGrad(() => {
        const input = Tensor.fromArray(tokens, [this.streams, width], 'int32', this.model.device);
        return Float32Array.from(this.model.forward(input, { kvCache: cache, logits: 'last' }).toArray());
      }),
    );
  }

  private train(t: number): void {
    const from = Math.max(0, t + 1 - this.o.context);
    if (t + 1 - from < 2) return;
    const optimizer = this.optimizer!;
    const tokens = this.columns(from, t + 1);
    tidy(() => {
      const input = Tensor.fromArray(tokens, [this.streams, t + 1 - from], 'int32', this.model.device);
      this.model.loss(input).backward();
    });
    clipGradNorm(optimizer.parameters, ONLINE_CLIP_NORM);
    optimizer.setHyper('lr', onlineLearningRate(this.o.training!, this.trainingSteps));
    optimizer.step();
    optimizer.zeroGrad();
    this.trainingSteps++;
  }
}
