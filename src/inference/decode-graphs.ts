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
import { narrow, reshape } from '../ops/layout.js';
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

/**
 * The device buffers one graph reads and writes. Every int32 input is a view of one buffer, so a step
 * uploads its inputs in two copies (the int32 inputs and the float32 sampling parameters).
 */
interface GraphBuffers {
  /** int32: every int32 input below, back to back. */
  ints: Tensor;
  tokens: Tensor;
  queryStart: Tensor;
  contextLens: Tensor;
  blockTables: Tensor;
  slots: Tensor;
  logitRows: Tensor;
  seeds: Tensor;
  steps: Tensor;
  params: Tensor;
  /** The sampled ids, written by the graph. */
  ids: Tensor;
}

/** Offsets (in int32 elements) of the inputs inside GraphBuffers.ints. */
interface IntLayout {
  tokens: number;
  queryStart: number;
  contextLens: number;
  blockTables: number;
  slots: number;
  logitRows: number;
  seeds: number;
  steps: number;
  total: number;
}

function intLayout(batch: number, width: number): IntLayout {
  const sizes = [batch, batch + 1, batch, batch * width, batch, batch, 2 * batch, batch];
  const at: number[] = [];
  let total = 0;
  for (const n of sizes) {
    at.push(total);
    total += n;
  }
  const [tokens, queryStart, contextLens, blockTables, slots, logitRows, seeds, steps] = at as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  return { tokens, queryStart, contextLens, blockTables, slots, logitRows, seeds, steps, total };
}

interface CapturedStep {
  batch: number;
  width: number;
  layout: IntLayout;
  buffers: GraphBuffers;
  graph: DeviceGraph;
  /** The parameters uploaded last (they rarely change from step to step: uploaded only when they do). */
  lastParams: Float32Array | null;
}

/** The smallest bucket ≥ n: powers of two up to maxBatch, then maxBatch. */
export function batchBucket(n: number, maxBatch: number): number {
  let b = 1;
  while (b < n) b *= 2;
  return Math.min(b, maxBatch);
}

/** Greedy: the sampling parameters of padding rows. */
const PADDING_PARAMS = [0, 0, 1, 0, 1, 0, 0];

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
    this.uploadInputs(captured, step, rows);
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
    const layout = intLayout(batch, width);
    const ints = zeros([layout.total], 'int32', device).keep();
    const view = (at: number, shape: number[]): Tensor => {
      const flat = narrow(
        ints,
        0,
        at,
        shape.reduce((a, b) => a * b, 1),
      );
      const shaped = reshape(flat, shape);
      if (shaped !== flat) flat.dispose();
      return shaped.keep();
    };
    const buffers: GraphBuffers = {
      ints,
      tokens: view(layout.tokens, [batch]),
      queryStart: view(layout.queryStart, [batch + 1]),
      contextLens: view(layout.contextLens, [batch]),
      blockTables: view(layout.blockTables, [batch, width]),
      slots: view(layout.slots, [batch]),
      logitRows: view(layout.logitRows, [batch]),
      seeds: view(layout.seeds, [batch, 2]),
      steps: view(layout.steps, [batch]),
      params: zeros([batch, SAMPLING_PARAM_COUNT], 'float32', device).keep(),
      ids: zeros([batch], 'int32', device).keep(),
    };
    const captured: CapturedStep = {
      batch,
      width,
      layout,
      buffers,
      graph: null as unknown as DeviceGraph,
      lastParams: null,
    };
    // Valid inputs (all padding) before capturing: the fresh buffers never hold values a replay could misread.
    this.uploadInputs(captured, null, []);
    const step: PagedStep = {
      tokens: buffers.tokens,
      batch: {
        maxQueryLen: 1,
        maxContextLen: width * this.cache.blockSize,
        queryStart: buffers.queryStart,
        contextLens: buffers.contextLens,
        blockTables: buffers.blockTables,
      },
      slots: buffers.slots,
      logitRows: buffers.logitRows,
    };
    const engine = ints.engine;
    captured.graph = engine.captureGraph(() =>
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
    this.captured.set(key, captured);
    return captured;
  }

  /**
   * Writes a step into the graph's buffers (null: no step, every row padding). Rows past the step's
   * sequences are padding: one position (0) in the scratch block, sampled greedily, their ids dropped.
   */
  private uploadInputs(captured: CapturedStep, step: StepLayout | null, rows: readonly RequestSampling[]): void {
    const { batch, width, layout, buffers } = captured;
    const n = step?.numSeqs ?? 0;
    const scratch = this.o.scratchBlock;
    const host = new Int32Array(layout.total);
    // One query row per sequence, real or padding.
    for (let i = 0; i <= batch; i++) host[layout.queryStart + i] = i;
    host.fill(-1, layout.blockTables, layout.blockTables + batch * width);
    const params = new Float32Array(batch * SAMPLING_PARAM_COUNT);
    if (step) {
      const inputs = samplingInputs(rows);
      host.set(step.tokens, layout.tokens);
      host.set(step.contextLens, layout.contextLens);
      for (let s = 0; s < n; s++) {
        const table = step.blockTables.subarray(s * step.maxBlocksPerSeq, (s + 1) * step.maxBlocksPerSeq);
        host.set(table, layout.blockTables + s * width);
      }
      host.set(step.slots, layout.slots);
      host.set(step.logitRows, layout.logitRows);
      host.set(seedWords(inputs.seeds), layout.seeds);
      host.set(inputs.steps, layout.steps);
      params.set(inputs.params);
    }
    for (let i = n; i < batch; i++) {
      host[layout.contextLens + i] = 1;
      host[layout.blockTables + i * width] = scratch;
      host[layout.slots + i] = scratch * this.cache.blockSize;
      host[layout.logitRows + i] = i;
      params.set(PADDING_PARAMS, i * SAMPLING_PARAM_COUNT);
    }
    const put = (t: Tensor, values: Int32Array | Float32Array): void =>
      t.engine.upload(t.storage.handle, t.offset * 4, values);
    put(buffers.ints, host);
    if (!captured.lastParams || !sameValues(captured.lastParams, params)) {
      put(buffers.params, params);
      captured.lastParams = params;
    }
  }
}

function sameValues(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
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
