/**
 * Decode steps replayed as captured graphs (Engine.captureGraph): the forward over the paged cache and
 * the sampling of every row, recorded once per bucket and replayed with new inputs.
 *
 * A graph fixes its launch shapes, so steps are padded to a bucket: the batch to the next of 1, 2, 4, 8 …
 * (the last bucket is maxBatch), the block-table width to the next power of two. Padding rows are
 * sequences of one position in the scratch block (which no sequence owns), so they compute harmlessly and
 * their tokens are dropped. Every input lives in a device buffer that the graph reads: before each replay
 * the step's values are uploaded into those buffers, and after it the sampled ids are read back — the
 * only host round trip of a decode step.
 */
import { Tensor } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import { zeros } from '../ops/creation.js';
import type { DeviceGraph } from '../engine/engine.js';
import { SAMPLING_PARAM_COUNT, sampleTokens } from '../ops/sampling.js';
import type { Andromeda } from '../model/andromeda.js';
import type { PagedKVCache } from '../model/paged-kv-cache.js';
import type { PagedStep } from '../model/paged-step.js';
import type { SampledToken, StepLayout } from './scheduler.js';
import { samplingInputs, samplingLogits, type RequestSampling } from './device-sampling.js';

export interface DecodeGraphsOptions {
  /** A pool block no sequence owns: padding rows write there. */
  scratchBlock: number;
  /** Columns that may be sampled. */
  vocab: number;
  maxBatch: number;
}

/** The device buffers one graph reads and writes. */
interface GraphBuffers {
  tokens: Tensor;
  queryStart: Tensor;
  contextLens: Tensor;
  blockTables: Tensor;
  slots: Tensor;
  logitRows: Tensor;
  params: Tensor;
  seeds: Tensor;
  steps: Tensor;
  ids: Tensor;
}

interface CapturedStep {
  batch: number;
  width: number;
  buffers: GraphBuffers;
  graph: DeviceGraph;
}

/** The smallest bucket ≥ n: powers of two up to maxBatch, then maxBatch. */
export function batchBucket(n: number, maxBatch: number): number {
  let b = 1;
  while (b < n) b *= 2;
  return Math.min(b, maxBatch);
}

export class DecodeGraphs {
  private readonly captured = new Map<string, CapturedStep>();

  constructor(
    private readonly model: Andromeda,
    private readonly cache: PagedKVCache,
    private readonly o: DecodeGraphsOptions,
  ) {}

  get size(): number {
    return this.captured.size;
  }

  /** Runs a decode-only step (one query row per sequence, every one sampling, ids only). */
  run(step: StepLayout, rows: readonly RequestSampling[]): SampledToken[] {
    const n = step.numSeqs;
    const batch = batchBucket(n, this.o.maxBatch);
    let width = 1;
    while (width < step.maxBlocksPerSeq) width *= 2;
    const captured = this.graphFor(batch, width);
    this.upload(captured, step, rows);
    captured.graph.replay();
    const ids = captured.buffers.ids.toArray();
    return Array.from({ length: n }, (_, i) => ({ tokenId: ids[i]! }));
  }

  dispose(): void {
    for (const { graph, buffers } of this.captured.values()) {
      graph.dispose();
      for (const t of Object.values(buffers)) t.dispose();
    }
    this.captured.clear();
  }

  private graphFor(batch: number, width: number): CapturedStep {
    const key = `${batch}x${width}`;
    const existing = this.captured.get(key);
    if (existing) return existing;
    const device = this.model.device;
    const ints = (shape: number[]): Tensor => zeros(shape, 'int32', device).keep();
    const buffers: GraphBuffers = {
      tokens: ints([batch]),
      queryStart: ints([batch + 1]),
      contextLens: ints([batch]),
      blockTables: ints([batch, width]),
      slots: ints([batch]),
      logitRows: ints([batch]),
      params: zeros([batch, SAMPLING_PARAM_COUNT], 'float32', device).keep(),
      seeds: ints([batch, 2]),
      steps: ints([batch]),
      ids: ints([batch]),
    };
    // Valid padding everywhere while capturing (the CPU engine runs the function at capture).
    this.uploadPadding(buffers, batch, width, 0);
    const step: PagedStep = {
      tokens: buffers.tokens,
      batch: {
        numSeqs: batch,
        maxBlocksPerSeq: width,
        maxQueryLen: 1,
        maxContextLen: width * this.cache.blockSize,
        queryStart: buffers.queryStart,
        contextLens: buffers.contextLens,
        blockTables: buffers.blockTables,
      },
      slots: buffers.slots,
      logitRows: buffers.logitRows,
    };
    const engine = buffers.ids.engine;
    const graph = engine.captureGraph(() =>
      tidy(() => {
        const logits = this.model.forwardPaged(step, this.cache);
        const sampled = sampleTokens(samplingLogits(logits, this.o.vocab), {
          params: buffers.params,
          seeds: buffers.seeds,
          steps: buffers.steps,
        });
        engine.copy(sampled.ids.strided('decode graph'), buffers.ids.strided('decode graph'), [batch]);
      }),
    );
    const captured = { batch, width, buffers, graph };
    this.captured.set(key, captured);
    return captured;
  }

  /** Writes the step into the graph's buffers; rows past the step's sequences become padding. */
  private upload(captured: CapturedStep, step: StepLayout, rows: readonly RequestSampling[]): void {
    const { batch, width, buffers } = captured;
    const n = step.numSeqs;
    this.uploadPadding(buffers, batch, width, n);
    const put = (t: Tensor, values: Int32Array | Float32Array): void =>
      t.engine.upload(t.storage.handle, t.offset * 4, values);
    const tables = new Int32Array(n * width).fill(-1);
    for (let s = 0; s < n; s++)
      tables.set(step.blockTables.subarray(s * step.maxBlocksPerSeq, (s + 1) * step.maxBlocksPerSeq), s * width);
    const inputs = samplingInputs(rows);
    put(buffers.tokens, step.tokens);
    put(buffers.queryStart, step.queryStart.subarray(0, n));
    put(buffers.contextLens, step.contextLens);
    put(buffers.blockTables, tables);
    put(buffers.slots, step.slots);
    put(buffers.logitRows, step.logitRows);
    put(buffers.params, inputs.params);
    put(buffers.seeds, seedWords(inputs.seeds));
    put(buffers.steps, inputs.steps);
  }

  /**
   * Rows from `from` to the bucket's end as padding: one position (0) in the scratch block, greedy
   * sampling. queryStart runs 0, 1, …, batch (one query row per sequence) whatever the step.
   */
  private uploadPadding(buffers: GraphBuffers, batch: number, width: number, from: number): void {
    const pad = batch - from;
    const put = (t: Tensor, values: Int32Array | Float32Array, at: number): void =>
      t.engine.upload(t.storage.handle, (t.offset + at) * 4, values);
    const scratch = this.o.scratchBlock;
    put(
      buffers.queryStart,
      Int32Array.from({ length: batch + 1 }, (_, i) => i),
      0,
    );
    if (pad === 0) return;
    const table = new Int32Array(pad * width).fill(-1);
    for (let i = 0; i < pad; i++) table[i * width] = scratch;
    put(buffers.tokens, new Int32Array(pad), from);
    put(buffers.contextLens, new Int32Array(pad).fill(1), from);
    put(buffers.blockTables, table, from * width);
    put(buffers.slots, new Int32Array(pad).fill(scratch * this.cache.blockSize), from);
    put(
      buffers.logitRows,
      Int32Array.from({ length: pad }, (_, i) => from + i),
      from,
    );
    const params = new Float32Array(pad * SAMPLING_PARAM_COUNT);
    for (let i = 0; i < pad; i++) params.set([0, 0, 1, 0, 1, 0, 0], i * SAMPLING_PARAM_COUNT);
    put(buffers.params, params, from * SAMPLING_PARAM_COUNT);
    put(buffers.seeds, new Int32Array(pad * 2), from * 2);
    put(buffers.steps, new Int32Array(pad), from);
  }
}

/** Seeds as the sampler's (low, high) 32-bit words. */
function seedWords(seeds: readonly number[]): Int32Array {
  const words = new Int32Array(seeds.length * 2);
  seeds.forEach((seed, r) => {
    words[2 * r] = (seed % 2 ** 32) | 0;
    words[2 * r + 1] = Math.floor(seed / 2 ** 32) | 0;
  });
  return words;
}
