import { Tensor } from '../tensor/tensor.js';
import {
  DTYPE_BYTES,
  bf16BitsToFloat,
  f16BitsToFloat,
  floatToBf16Bits,
  floatToF16Bits,
  type DType,
} from '../tensor/dtype.js';
import { formatShape } from '../tensor/shape.js';
import { Generator } from '../tensor/random.js';
import { isGradEnabled, noGrad } from '../autograd/grad-mode.js';
import { hostInts } from '../tensor/host-ints.js';
import { linear } from '../ops/matmul.js';
import { narrow, reshape } from '../ops/layout.js';
import { mul, tanh } from '../ops/elementwise.js';
import { crossEntropy } from '../ops/nn.js';
import { chunkedLinearCrossEntropy, lossIsChunked } from '../ops/chunked-cross-entropy.js';
import { Module, ModuleList } from '../nn/module.js';
import { Embedding } from '../nn/embedding.js';
import { Linear } from '../nn/linear.js';
import { assertModelFitsMemory, resolveConfig, type AndromedaConfig, type AndromedaConfigInput } from './config.js';
import { presetInput } from './presets.js';
import { headSlopes } from './alibi.js';
import { rotarySettings } from './rotary.js';
import { makeBlock, type Block } from './block.js';
import { blockRunner } from './block-runner.js';
import { makeNorm, type Norm } from './norm.js';
import { KVCache, type KVCacheOptions } from './kv-cache.js';
import type { AndromedaForwardOptions } from './forward-options.js';
import { initializeAndromeda } from './init.js';
import { tidy } from '../tensor/scope.js';
import { PagedKVCache, type PagedKVCacheLayout } from './paged-kv-cache.js';
import { PagedForward, gatherRows, type PagedForwardOptions } from './paged-forward.js';
import { checkPagedStep, type PagedStep } from './paged-step.js';
import { layerState, sequenceContext, type SequenceContext } from './context.js';

export interface AndromedaOptions {
  device?: string;
  dtype?: DType;
  /** Seed of the initialisation (default 0). */
  seed?: number;
  generator?: Generator;
  /** False: leave parameters at their constant fill (for loading a checkpoint right after). */
  initialize?: boolean;
}

export interface LossOptions extends AndromedaForwardOptions {
  /**
   * Targets [batch, n] for every input position (packed training data); without them the loss is
   * next-token prediction within `tokens`: logits[:, :-1] against tokens[:, 1:].
   */
  targets?: Tensor;
  /** Target value that contributes no loss. Default −100. */
  ignoreIndex?: number;
}

/**
 * The Andromeda decoder: token embedding → blocks → final norm (pre-norm only) → logits, as in
 * shared/spec/andromeda-model.md. Construct from a config or a preset; parameters are owned by the
 * model (free them with dispose()).
 */
export class Andromeda extends Module {
  readonly config: AndromedaConfig;
  readonly embedding: Embedding;
  readonly blocks: ModuleList<Block>;
  readonly finalNorm: Norm | null;
  readonly logits: Linear | null;

  constructor(config: AndromedaConfigInput | AndromedaConfig, o: AndromedaOptions = {}) {
    super();
    this.config = resolveConfig(config as AndromedaConfigInput);
    const c = this.config;
    assertModelFitsMemory(c, DTYPE_BYTES[o.dtype ?? 'float32']);
    const p = { dtype: o.dtype, device: o.device };
    const rotary = rotarySettings(c);
    const slopes = c.alibiHeads > 0 ? headSlopes(c.heads, c.alibiHeads) : null;
    this.embedding = this.addModule('embedding', new Embedding(c.vocabSize, c.dim, { ...p, initialize: false }));
    this.blocks = this.addModule(
      'blocks',
      new ModuleList(Array.from({ length: c.depth }, (_, layer) => makeBlock(c, layer, rotary, slopes, p))),
    );
    this.finalNorm = c.normPosition === 'pre' ? this.addModule('finalNorm', makeNorm(c, p)) : null;
    this.logits = c.tiedEmbeddings
      ? null
      : this.addModule('logits', new Linear(c.dim, c.vocabSize, { ...p, initialize: false }));
    if (o.initialize ?? true) initializeAndromeda(this, o.generator ?? new Generator(o.seed ?? 0));
  }

  /** A model of a named preset (`andromeda-3b`, `orca`, `small`, `tiny`) with optional overrides. */
  static fromPreset(name: string, overrides: Partial<AndromedaConfigInput> = {}, o: AndromedaOptions = {}): Andromeda {
    return new Andromeda(presetInput(name, overrides), o);
  }

  get device(): string {
    return this.embedding.weight.device;
  }

  get dtype(): DType {
    return this.embedding.weight.dtype;
  }

  /** tokens int32 [batch, n] → logits [batch, n, vocabSize] ([batch, 1, vocabSize] with logits: 'last'). */
  forward(tokens: Tensor, o: AndromedaForwardOptions = {}): Tensor {
    return this.logitsOf(this.hiddenStates(tokens, o));
  }

  /**
   * tokens → the last layer's output (after the final norm), [batch, n, dim] ([batch, 1, dim] with logits: 'last'):
   * what the output head turns into logits (see outputHead).
   */
  hiddenStates(tokens: Tensor, o: AndromedaForwardOptions): Tensor {
    const [batch, n] = this.checkForwardInputs(tokens, o);
    if (o.kvCache && this.config.rotary?.longRope)
      return noGrad(() => this.longRopeCachedStates(tokens, o.kvCache!, batch, n, o));
    const run = (): Tensor => this.run(tokens, sequenceContext(batch, n, o, this.device), o);
    // Decoding never trains: without autograd the block runner frees each block's intermediates.
    return o.kvCache ? noGrad(run) : run();
  }

  /**
   * Cached decoding under LongRoPE. Once a sequence outgrows the original length every position is computed
   * with the long factors, so what the cache holds from before (keys and values, and the hidden states that
   * made the deeper layers' ones) is stale: the step that crosses recomputes the whole sequence into the
   * emptied cache, as transformers' Phi-3 generation does, and returns the new positions' states.
   */
  private longRopeCachedStates(tokens: Tensor, cache: KVCache, batch: number, n: number, o: AndromedaForwardOptions) {
    const original = this.config.rotary!.longRope!.originalMaxSeqLen;
    const before = cache.length;
    cache.recordTokens(hostInts(tokens) ?? (tokens.toArray() as Int32Array), n);
    if (!(before > 0 && before <= original && before + n > original))
      return this.run(tokens, sequenceContext(batch, n, o, this.device), o);
    cache.clearPositions();
    const length = before + n;
    const all = Tensor.fromArray(cache.recordedTokens(), [batch, length], 'int32', this.device);
    try {
      const x = this.run(all, sequenceContext(batch, length, o, this.device), o);
      return o.logits === 'last' ? x : narrow(x, 1, before, n);
    } finally {
      all.dispose();
    }
  }

  /** embedding → blocks → final norm; how each block holds its memory is the runner's business. */
  private run(tokens: Tensor, sequence: SequenceContext, o: AndromedaForwardOptions): Tensor {
    const runBlock = blockRunner(o.activationCheckpointing ?? false);
    let x = this.scaleEmbeddings(this.embedding.forward(tokens));
    for (let layer = 0; layer < this.blocks.length; layer++)
      x = runBlock(this.blocks.at(layer), x, layerState(sequence, o.kvCache, layer));
    if (o.logits === 'last') x = lastPosition(x);
    return this.finalNorm ? this.finalNorm.forward(x) : x;
  }

  /**
   * Embeddings times the config's embeddingScale (Gemma's sqrt(dim)), the factor rounded to the model's dtype
   * first as transformers does; unchanged when the scale is 1.
   */
  private scaleEmbeddings(x: Tensor): Tensor {
    const scale = this.config.embeddingScale;
    if (scale === 1) return x;
    const scaled = mul(x, roundToDType(scale, this.dtype));
    if (!isGradEnabled()) x.dispose();
    return scaled;
  }

  /**
   * The weight [vocab, dim] and bias of the logits projection (the token embedding when tied), and the soft-cap
   * applied to its output (null for none).
   */
  get outputHead(): { weight: Tensor; bias: Tensor | null; softCap: number | null } {
    const softCap = this.config.logitSoftCap;
    return this.logits
      ? { weight: this.logits.weight, bias: this.logits.bias, softCap }
      : { weight: this.embedding.weight, bias: null, softCap };
  }

  private logitsOf(x: Tensor): Tensor {
    const logits = this.logits ? this.logits.forward(x) : linear(x, this.embedding.weight);
    const cap = this.config.logitSoftCap;
    if (cap === null) return logits;
    const free = !isGradEnabled();
    const divided = mul(logits, 1 / cap);
    if (free) logits.dispose();
    const squashed = tanh(divided);
    if (free) divided.dispose();
    const capped = mul(squashed, cap);
    if (free) squashed.dispose();
    return capped;
  }

  /** [batch, n] of the tokens, once tokens and options are known to fit this model (nothing allocated yet). */
  private checkForwardInputs(tokens: Tensor, o: AndromedaForwardOptions): [number, number] {
    tokens.assertAlive('Andromeda.forward', 'tokens');
    if (tokens.dtype !== 'int32' || tokens.rank !== 2) {
      throw new TypeError(
        `Andromeda.forward: tokens must be int32 [batch, n], got ${tokens.dtype} ${formatShape(tokens.shape)}`,
      );
    }
    const [batch, n] = tokens.shape as [number, number];
    if (o.logits !== undefined && o.logits !== 'all' && o.logits !== 'last') {
      throw new RangeError(`Andromeda.forward: logits must be 'all' or 'last', got '${String(o.logits)}'`);
    }
    const cache = o.kvCache;
    if (cache) {
      if (o.segmentIds || o.positions)
        throw new Error(
          'Andromeda.forward: a KV cache decodes one document per row: segmentIds and positions are not supported ' +
            'with it',
        );
      if (cache.batch !== batch)
        throw new RangeError(`Andromeda.forward: the KV cache holds ${cache.batch} rows but tokens have ${batch}`);
      if (cache.layers.length !== this.config.depth)
        throw new RangeError(
          `Andromeda.forward: the KV cache has ${cache.layers.length} layers, the model ${this.config.depth}`,
        );
    }
    return [batch, n];
  }

  /**
   * Mean cross-entropy (see LossOptions); a scalar tensor. Next-token loss computes logits only for
   * the predicting positions (the hidden states are narrowed, not the logits, so the logits are made
   * once, contiguous, and their gradient needs no padding).
   */
  loss(tokens: Tensor, o: LossOptions = {}): Tensor {
    if (o.targets) return this.headLoss(this.hiddenStates(tokens, o), o.targets, o.ignoreIndex);
    const [batch, n] = tokens.shape as [number, number];
    if (n < 2) throw new RangeError(`Andromeda.loss: next-token loss needs at least 2 tokens per row, got ${n}`);
    const predicting = narrow(this.hiddenStates(tokens, o), 1, 0, n - 1);
    // Targets from the host copy of tokens uploaded from host memory (checked without a device read).
    const host = hostInts(tokens);
    const targets = host
      ? Tensor.fromArray(nextTokenTargets(host, batch, n), [batch, n - 1], 'int32', tokens.device)
      : narrow(tokens, 1, 1, n - 1).contiguous();
    return this.headLoss(predicting, targets, o.ignoreIndex);
  }

  /**
   * Mean cross-entropy of the logits of `hidden` [..., dim] against `targets` [...]. Above one block of
   * rows the logits are formed a block at a time (chunked-cross-entropy.ts): a long context's full
   * logits and their gradient would otherwise be the largest tensors of the step.
   */
  private headLoss(hidden: Tensor, targets: Tensor, ignoreIndex: number | undefined): Tensor {
    const rows = targets.size;
    if (!lossIsChunked(rows)) return crossEntropy(this.logitsOf(hidden), targets, { ignoreIndex });
    if (hidden.size !== rows * this.config.dim)
      throw new RangeError(
        `Andromeda.loss: targets ${formatShape(targets.shape)} do not match hidden states ${formatShape(hidden.shape)}`,
      );
    const { weight, bias, softCap } = this.outputHead;
    return chunkedLinearCrossEntropy(reshape(hidden, [rows, this.config.dim]), weight, bias, reshape(targets, [rows]), {
      ignoreIndex,
      softCap,
    });
  }

  /**
   * One step of the inference engine over a paged KV cache (src/model/paged-step.ts): the ragged batch's new
   * tokens [T] run through every block as [T, dim] rows, their keys, values and token-shift tails are written
   * to the cache, and logits [R, vocab] come out for the rows `step.logitRows`. No autograd, nothing read back
   * from the device (token ids out of the vocabulary embed as zeros: the caller checks them), so a decode step
   * can be captured as a CUDA graph.
   */
  forwardPaged(step: PagedStep, cache: PagedKVCache, o: PagedForwardOptions = {}): Tensor {
    this.checkPagedInputs(step, cache);
    return noGrad(() =>
      tidy(() => {
        const forward = new PagedForward(step, cache, o);
        try {
          let x = this.scaleEmbeddings(gatherRows(this.embedding.weight, step.tokens));
          const layers = Array.from({ length: this.blocks.length }, (_, layer) => forward.layer(cache.layer(layer)));
          for (let layer = 0; layer < this.blocks.length; layer++) {
            const input = x;
            const next = layers[layer + 1] ?? null;
            x = tidy(() => this.blocks.at(layer).forwardPaged(input, layers[layer]!, next));
            if (x !== input) input.dispose();
          }
          let hidden = gatherRows(x, step.logitRows);
          x.dispose();
          if (this.finalNorm) hidden = this.finalNorm.forward(hidden);
          return this.logitsOf(hidden);
        } finally {
          forward.dispose();
        }
      }),
    );
  }

  /** Pools for `numBlocks` blocks on this model's device and dtype (see PagedKVCache for the layout). */
  createPagedKVCache(numBlocks: number, o: Omit<PagedKVCacheLayout, 'dtype'> = {}): PagedKVCache {
    return new PagedKVCache(this.config, numBlocks, { ...o, dtype: this.dtype, device: this.device });
  }

  /** Checks that the step and the cache fit this model (nothing allocated, nothing read back). */
  private checkPagedInputs(step: PagedStep, cache: PagedKVCache): void {
    const what = 'Andromeda.forwardPaged';
    if (cache.isDisposed) throw new Error(`${what}: the paged KV cache has been disposed`);
    const c = this.config;
    const mismatch = (
      [
        ['layers', cache.depth, c.depth],
        ['KV heads', cache.kvHeads, c.kvHeads],
        ['head dim', cache.headDim, c.headDim],
        ['model dim', cache.dim, c.dim],
        ['token shifts', cache.shifts, c.shiftTokens],
      ] as const
    ).find(([, got, want]) => got !== want);
    if (mismatch)
      throw new RangeError(`${what}: the cache has ${mismatch[1]} ${mismatch[0]}, the model ${mismatch[2]}`);
    if (cache.dtype !== this.dtype || cache.device !== this.device)
      throw new TypeError(
        `${what}: the cache is ${cache.dtype} on ${cache.device}, the model ${this.dtype} on ${this.device}`,
      );
    checkPagedStep(step, this.device, what);
  }

  /** An empty cache for incremental decoding of `batch` rows on this model's device and dtype. */
  createKVCache(batch: number, o: Omit<KVCacheOptions, 'device' | 'dtype'> = {}): KVCache {
    return new KVCache(this.config, batch, { ...o, device: this.device, dtype: this.dtype });
  }
}

/** x[:, n−1:n] of [batch, n, dim]; without autograd the rest of x is freed at once. */
function lastPosition(x: Tensor): Tensor {
  const n = x.shape[1]!;
  if (n === 1) return x;
  const last = narrow(x, 1, n - 1, 1);
  if (!isGradEnabled()) x.dispose();
  return last;
}

/** `value` as a scalar of `dtype` holds it. */
function roundToDType(value: number, dtype: DType): number {
  if (dtype === 'float32') return Math.fround(value);
  if (dtype === 'bfloat16') return bf16BitsToFloat(floatToBf16Bits(value));
  if (dtype === 'float16') return f16BitsToFloat(floatToF16Bits(value));
  return value;
}

/** tokens[:, 1:] of a [batch, n] row-major array. */
function nextTokenTargets(tokens: Int32Array, batch: number, n: number): Int32Array {
  const out = new Int32Array(batch * (n - 1));
  for (let b = 0; b < batch; b++) out.set(tokens.subarray(b * n + 1, (b + 1) * n), b * (n - 1));
  return out;
}
