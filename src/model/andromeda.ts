import { Tensor } from '../tensor/tensor.js';
import { DTYPE_BYTES, type DType } from '../tensor/dtype.js';
import { formatShape } from '../tensor/shape.js';
import { Generator } from '../tensor/random.js';
import { isGradEnabled, noGrad } from '../autograd/grad-mode.js';
import { tidy } from '../tensor/scope.js';
import { hostInts } from '../tensor/host-ints.js';
import { linear } from '../ops/matmul.js';
import { narrow } from '../ops/layout.js';
import { crossEntropy } from '../ops/nn.js';
import { checkpoint } from '../ops/checkpoint.js';
import type { TokenIndexInput } from '../ops/attention.js';
import { Module, ModuleList } from '../nn/module.js';
import { Embedding } from '../nn/embedding.js';
import { Linear } from '../nn/linear.js';
import { assertModelFitsMemory, resolveConfig, type AndromedaConfig, type AndromedaConfigInput } from './config.js';
import { presetInput } from './presets.js';
import { headSlopes } from './alibi.js';
import { rotarySettings } from './rotary.js';
import { Block, makeNorm, type Norm } from './block.js';
import { KVCache, type KVCacheOptions } from './kv-cache.js';
import { initializeAndromeda } from './init.js';
import type { SequenceContext } from './context.js';

export interface AndromedaOptions {
  device?: string;
  dtype?: DType;
  /** Seed of the initialisation (default 0). */
  seed?: number;
  generator?: Generator;
  /** False: leave parameters at their constant fill (for loading a checkpoint right after). */
  initialize?: boolean;
}

/** A [batch, n] int32 per-token index, as host values or a tensor. */
export type TokenIndices = Int32Array | Tensor;

export interface ForwardOptions {
  /** Document ids for packed sequences: attention and token shift stay within a document. */
  segmentIds?: TokenIndices;
  /** Positions for rotary, xPos and ALiBi; by default 0.. (or, with segmentIds, counting from each document's start). */
  positions?: TokenIndices;
  /** Decode incrementally: tokens continue the cached sequence (runs without autograd). */
  kvCache?: KVCache;
  /** Force the fused or the reference attention; default 'auto'. */
  attention?: 'auto' | 'fused' | 'reference';
  /**
   * 'all' (default): logits for every position, [batch, n, vocab]. 'last': only for each row's last
   * position, [batch, 1, vocab] — what generation needs after a prompt, without the [n, vocab] head.
   */
  logits?: 'all' | 'last';
  /**
   * Activation checkpointing: keep only each block's input during training and recompute the block in
   * the backward pass (about one more forward per step, for a fraction of the activation memory).
   */
  checkpoint?: boolean;
}

export interface LossOptions extends ForwardOptions {
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
    this.blocks = this.addModule('blocks', new ModuleList(Array.from({ length: c.depth }, () => new Block(c, rotary, slopes, p))));
    this.finalNorm = c.normPosition === 'pre' ? this.addModule('finalNorm', makeNorm(c, p)) : null;
    this.logits = c.tiedEmbeddings ? null : this.addModule('logits', new Linear(c.dim, c.vocabSize, { ...p, initialize: false }));
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
  forward(tokens: Tensor, o: ForwardOptions = {}): Tensor {
    return this.logitsOf(this.hiddenStates(tokens, o));
  }

  /** tokens → the last layer's output (after the final norm), [batch, n, dim]. */
  private hiddenStates(tokens: Tensor, o: ForwardOptions): Tensor {
    if (o.kvCache) return noGrad(() => this.run(tokens, o));
    return this.run(tokens, o);
  }

  private logitsOf(x: Tensor): Tensor {
    return this.logits ? this.logits.forward(x) : linear(x, this.embedding.weight);
  }

  private run(tokens: Tensor, o: ForwardOptions): Tensor {
    tokens.assertAlive('Andromeda.forward', 'tokens');
    if (tokens.dtype !== 'int32' || tokens.rank !== 2) {
      throw new TypeError(`Andromeda.forward: tokens must be int32 [batch, n], got ${tokens.dtype} ${formatShape(tokens.shape)}`);
    }
    const [batch, n] = tokens.shape as [number, number];
    if (o.logits !== undefined && o.logits !== 'all' && o.logits !== 'last') {
      throw new RangeError(`Andromeda.forward: logits must be 'all' or 'last', got '${String(o.logits)}'`);
    }
    const cache = o.kvCache ?? null;
    if (cache) {
      if (o.segmentIds || o.positions) throw new Error('Andromeda.forward: a KV cache decodes one document per row: segmentIds and positions are not supported with it');
      if (cache.batch !== batch) throw new RangeError(`Andromeda.forward: the KV cache holds ${cache.batch} rows but tokens have ${batch}`);
      if (cache.layers.length !== this.config.depth) throw new RangeError(`Andromeda.forward: the KV cache has ${cache.layers.length} layers, the model ${this.config.depth}`);
    }
    const sequence = this.sequenceContext(batch, n, o);
    let x = this.embedding.forward(tokens);
    let layer = 0;
    // Without autograd nothing needs a layer's intermediates after it: free them layer by layer,
    // so inference memory is one layer's activations, not the whole stack's.
    const inference = !isGradEnabled();
    for (const block of this.blocks) {
      const context = { sequence, cache: cache?.layers[layer++] ?? null };
      const input = x;
      if (inference) x = tidy(() => block.forward(input, context));
      else if (o.checkpoint) x = checkpoint((h) => block.forward(h, context), input, block.parameters());
      else x = block.forward(input, context);
      if (inference && x !== input) input.dispose();
    }
    if (o.logits === 'last' && n > 1) {
      const last = narrow(x, 1, n - 1, 1);
      if (inference) x.dispose();
      x = last;
    }
    if (this.finalNorm) x = this.finalNorm.forward(x);
    return x;
  }

  private sequenceContext(batch: number, n: number, o: ForwardOptions): SequenceContext {
    const host = (t: TokenIndices | undefined, what: string): Int32Array | null => {
      if (!t) return null;
      const values = t instanceof Tensor ? t.toArray() : t;
      if (!(values instanceof Int32Array)) throw new TypeError(`Andromeda.forward: ${what} must be int32`);
      if (values.length !== batch * n) throw new RangeError(`Andromeda.forward: ${what} has ${values.length} values, expected [${batch}, ${n}]`);
      return values;
    };
    const segmentIds = host(o.segmentIds, 'segmentIds');
    let positions: TokenIndexInput | null = host(o.positions, 'positions');
    if (!positions && segmentIds) positions = positionsFromSegments(segmentIds, batch, n);
    const segments = segmentIds ? { host: segmentIds, device: Tensor.fromArray(segmentIds, [batch, n], 'int32', this.device) } : null;
    if (positions instanceof Int32Array) positions = { host: positions, device: Tensor.fromArray(positions, [batch, n], 'int32', this.device) };
    return { positions, segments, implementation: o.attention ?? 'auto' };
  }

  /**
   * Mean cross-entropy (see LossOptions); a scalar tensor. Next-token loss computes logits only for
   * the predicting positions (the hidden states are narrowed, not the logits, so the logits are made
   * once, contiguous, and their gradient needs no padding).
   */
  loss(tokens: Tensor, o: LossOptions = {}): Tensor {
    if (o.targets) return crossEntropy(this.forward(tokens, o), o.targets, { ignoreIndex: o.ignoreIndex });
    const [batch, n] = tokens.shape as [number, number];
    if (n < 2) throw new RangeError(`Andromeda.loss: next-token loss needs at least 2 tokens per row, got ${n}`);
    const predictions = this.logitsOf(narrow(this.hiddenStates(tokens, o), 1, 0, n - 1));
    // Targets from the host copy of tokens uploaded from host memory (checked without a device read).
    const host = hostInts(tokens);
    const targets = host
      ? Tensor.fromArray(nextTokenTargets(host, batch, n), [batch, n - 1], 'int32', tokens.device)
      : narrow(tokens, 1, 1, n - 1).contiguous();
    return crossEntropy(predictions, targets, { ignoreIndex: o.ignoreIndex });
  }

  /** An empty cache for incremental decoding of `batch` rows on this model's device and dtype. */
  createKVCache(batch: number, o: Omit<KVCacheOptions, 'device' | 'dtype'> = {}): KVCache {
    return new KVCache(this.config, batch, { ...o, device: this.device, dtype: this.dtype });
  }
}

/** tokens[:, 1:] of a [batch, n] row-major array. */
function nextTokenTargets(tokens: Int32Array, batch: number, n: number): Int32Array {
  const out = new Int32Array(batch * (n - 1));
  for (let b = 0; b < batch; b++) out.set(tokens.subarray(b * n + 1, (b + 1) * n), b * (n - 1));
  return out;
}

/** Positions counting from 0 at each change of segment id along a row. */
export function positionsFromSegments(segments: Int32Array, batch: number, n: number): Int32Array {
  const out = new Int32Array(batch * n);
  for (let b = 0; b < batch; b++) {
    let position = 0;
    for (let t = 0; t < n; t++) {
      if (t > 0 && segments[b * n + t] !== segments[b * n + t - 1]) position = 0;
      out[b * n + t] = position++;
    }
  }
  return out;
}
