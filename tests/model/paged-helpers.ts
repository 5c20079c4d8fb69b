// Helpers of the paged-forward tests (CPU here, CUDA in tests/gpu/paged-forward.test.ts): models whose constant
// parameters are moved off their constants, block tables handed out in a scrambled order, paged steps built from
// host arrays, and the dense references (the whole sequence recomputed).
import { Tensor } from '../../src/tensor/tensor.js';
import type { DType } from '../../src/tensor/dtype.js';
import { tidy } from '../../src/tensor/scope.js';
import { noGrad } from '../../src/autograd/grad-mode.js';
import { Andromeda } from '../../src/model/andromeda.js';
import type { AndromedaConfigInput } from '../../src/model/config.js';
import type { PagedKVCache } from '../../src/model/paged-kv-cache.js';
import { buildPagedStep, type PagedSequenceChunk } from '../../src/model/paged-step.js';
import type { PagedForwardOptions } from '../../src/model/paged-forward.js';
import { randomTokens, values } from './helpers.js';

/**
 * The model of `config` with every constant-initialised parameter (norm weights and biases, residual scales,
 * qk-norm scales) moved off its constant, so that a kernel ignoring one of them cannot pass unnoticed.
 */
export function testModel(
  config: AndromedaConfigInput,
  seed: number,
  o: { device?: string; dtype?: DType } = {},
): Andromeda {
  const model = new Andromeda(config, { seed, ...o });
  const randoms = randomTokens(1 << 16, 1 << 16, seed);
  let next = 0;
  const changed = new Map<string, Tensor>();
  for (const [name, p] of model.namedParameters()) {
    const v = p.toArray();
    if (v.length === 0 || v.some((x) => x !== v[0])) continue;
    const moved = Float64Array.from(v, (x) => x + 0.4 * (randoms[next++ % randoms.length]! / (1 << 16) - 0.5));
    changed.set(name, Tensor.fromArray(moved, p.shape, 'float32'));
  }
  model.loadStateDict(changed, { strict: false });
  for (const t of changed.values()) t.dispose();
  return model;
}

/** Hands out pool blocks in a scrambled order, so block tables are never the identity. */
export class BlockAllocator {
  private readonly free: number[];
  constructor(numBlocks: number, seed: number) {
    this.free = Array.from({ length: numBlocks }, (_, i) => i);
    let s = seed;
    for (let i = this.free.length - 1; i > 0; i--) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      const j = s % (i + 1);
      [this.free[i], this.free[j]] = [this.free[j]!, this.free[i]!];
    }
  }
  take(count: number): number[] {
    if (count > this.free.length) throw new Error(`test allocator: ${count} blocks asked, ${this.free.length} left`);
    return this.free.splice(0, count);
  }
}

/** A sequence as the test tracks it: its tokens so far, how many are cached, its blocks. */
export interface TestSequence {
  tokens: number[];
  cached: number;
  blocks: number[];
}

/** Runs one paged step for `chunks` (sequence, how many new tokens); returns logits of the rows asked for. */
export function pagedStep(
  model: Andromeda,
  cache: PagedKVCache,
  allocator: BlockAllocator,
  work: [TestSequence, number][],
  logits: 'last' | 'all',
  o: PagedForwardOptions = {},
): Float64Array {
  const chunks: PagedSequenceChunk[] = work.map(([seq, n]) => {
    const needed = Math.ceil((seq.cached + n) / cache.blockSize);
    if (needed > seq.blocks.length) seq.blocks.push(...allocator.take(needed - seq.blocks.length));
    return { tokens: seq.tokens.slice(seq.cached, seq.cached + n), cached: seq.cached, blockTable: seq.blocks };
  });
  const step = buildPagedStep(chunks, { blockSize: cache.blockSize, logits, device: model.device });
  try {
    const out = tidy(() => values(model.forwardPaged(step, cache, o)));
    for (const [seq, n] of work) seq.cached += n;
    return out;
  } finally {
    step.dispose();
  }
}

export function denseLogits(model: Andromeda, tokens: ArrayLike<number>): Float64Array {
  return tidy(() =>
    noGrad(() =>
      values(model.forward(Tensor.fromArray(Int32Array.from(tokens), [1, tokens.length], 'int32', model.device))),
    ),
  );
}

export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}

/** 64 greedy tokens by recomputing the whole sequence at every step (the uncached reference). */
export function greedyByRecomputation(model: Andromeda, prompt: number[], steps: number): number[] {
  const tokens = [...prompt];
  const vocab = model.config.vocabSize;
  for (let s = 0; s < steps; s++) {
    const all = denseLogits(model, tokens);
    tokens.push(argmax(all.subarray(all.length - vocab)));
  }
  return tokens.slice(prompt.length);
}
