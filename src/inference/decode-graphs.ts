/**
 * Decode steps replayed as captured graphs (Engine.captureGraph): the forward over the paged cache and
 * the sampling of every row, recorded once per bucket and replayed with new inputs.
 *
 * A graph fixes its launch shapes, so steps are padded to a bucket: the batch to the next of 1, 2, 4, 8 …
 * (the last bucket is maxBatch), the block-table width to the next power of two. Padding rows are
 * sequences of one position in the scratch block (which no sequence owns), so they compute harmlessly and
 * their tokens are dropped. Every input lives in a device buffer that the graph reads: before each replay
 * the step's values are uploaded into those buffers, and after it the sampled ids are read back — the
 * only host round trip of a decode step. A device that refuses to capture the step (an op that cannot be
 * captured) leaves decode steps eager from then on rather than failing them.
 */
import { Tensor } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import { zeros } from '../ops/creation.js';
import { narrow, reshape } from '../ops/layout.js';
import type { DeviceGraph, Engine, PendingDownload, Strided } from '../engine/engine.js';
import { SAMPLING_PARAM_COUNT, sampleTokens, type SampleTokensOptions } from '../ops/sampling.js';
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

const INPUTS = ['tokens', 'queryStart', 'contextLens', 'blockTables', 'slots', 'logitRows', 'seeds', 'steps'] as const;
type Input = (typeof INPUTS)[number];

/**
 * The device buffers one graph reads and writes. Every int32 input is a view of one buffer, so a step
 * uploads its inputs in two copies (the int32 inputs and the float32 sampling parameters).
 */
interface CapturedStep {
  batch: number;
  width: number;
  /** int32: every input, back to back (offsets in `at`). */
  ints: Tensor;
  at: Record<Input, number>;
  views: Record<Input, Tensor>;
  params: Tensor;
  /** The sampled ids, written by the graph. */
  ids: Tensor;
  graph: DeviceGraph;
  /** The parameters uploaded last (they rarely change from step to step: uploaded only when they do). */
  lastParams: Float32Array | null;
}

/**
 * One int32 device buffer holding inputs of the given shapes back to back, and a view of it per input: a
 * graph's inputs then upload in one copy.
 */
export function int32Views<K extends string>(
  names: readonly K[],
  shapes: Record<K, number[]>,
  device: string,
): { buffer: Tensor; at: Record<K, number>; views: Record<K, Tensor> } {
  const at = {} as Record<K, number>;
  let total = 0;
  for (const name of names) {
    at[name] = total;
    total += shapes[name].reduce((a, b) => a * b, 1);
  }
  const buffer = zeros([total], 'int32', device).keep();
  const views = {} as Record<K, Tensor>;
  for (const name of names) {
    const shape = shapes[name];
    const flat = narrow(
      buffer,
      0,
      at[name],
      shape.reduce((a, b) => a * b, 1),
    );
    const shaped = reshape(flat, shape);
    if (shaped !== flat) flat.dispose();
    views[name] = shaped.keep();
  }
  return { buffer, at, views };
}

/**
 * Captures `fn` as a graph, or returns null when the device refuses (an op of the step that cannot be
 * captured): the caller then runs its steps eagerly for good, and a warning says why once.
 */
export function captureOrNull(engine: Engine, fn: () => void, what: string): DeviceGraph | null {
  try {
    return engine.captureGraph(fn);
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    process.emitWarning(`${what}: the capture failed (${reason}); these steps run without graphs from now on`, {
      code: 'ANDROMEDA_GRAPH_CAPTURE',
    });
    return null;
  }
}

/** The int32 inputs of a paged step that a graph reads (views of its one input buffer). */
export type PagedStepViews = Record<
  'tokens' | 'queryStart' | 'contextLens' | 'blockTables' | 'slots' | 'logitRows',
  Tensor
>;

/**
 * Captures the paged forward over `views` (up to `maxQueryLen` query rows per sequence, block tables `width`
 * blocks wide) and the device sampling of its `count` logit rows into `ids`; null when the device refuses.
 */
export function captureSampledForward(
  model: Andromeda,
  cache: PagedKVCache,
  o: {
    views: PagedStepViews;
    maxQueryLen: number;
    width: number;
    vocab: number;
    sampler: SampleTokensOptions;
    ids: Tensor;
    count: number;
    what: string;
  },
): DeviceGraph | null {
  const { views } = o;
  const step: PagedStep = {
    tokens: views.tokens,
    batch: {
      maxQueryLen: o.maxQueryLen,
      maxContextLen: o.width * cache.blockSize,
      queryStart: views.queryStart,
      contextLens: views.contextLens,
      blockTables: views.blockTables,
    },
    slots: views.slots,
    logitRows: views.logitRows,
  };
  const engine = o.ids.engine;
  return captureOrNull(
    engine,
    () =>
      tidy(() => {
        const logits = model.forwardPaged(step, cache);
        const sampled = sampleTokens(samplingLogits(logits, o.vocab), o.sampler);
        engine.copy(sampled.ids.strided(o.what), o.ids.strided(o.what), [o.count]);
      }),
    o.what,
  );
}

/** The smallest bucket ≥ n: powers of two up to maxBatch, then maxBatch. */
export function batchBucket(n: number, maxBatch: number): number {
  let b = 1;
  while (b < n) b *= 2;
  return Math.min(b, maxBatch);
}

/** Greedy: the sampling parameters of padding rows. */
const PADDING_PARAMS = [0, 0, 1, 0, 1, 0, 0];

/**
 * Where replayed decode steps' time goes, seen from the host: `waitMs` the host spent blocked on a replay's ids;
 * `hostGapMs` from one replay's ids to the next replay's launch, summed over the `gaps` replays launched with the
 * device idle (the host's scheduling, streaming and uploads, which the device waits for); `overlapped` the replays
 * launched while the one before was still running (./engine.ts runs ahead), which leave the device no gap.
 */
export interface DecodeReplayTiming {
  replays: number;
  waitMs: number;
  gaps: number;
  hostGapMs: number;
  overlapped: number;
}

/** A host gap longer than this is idleness between requests, not a step's overhead. */
const MAX_STEP_GAP_MS = 50;

/** A decode step replayed on the device whose sampled ids the host has not read yet (DecodeGraphs.launch). */
export interface LaunchedDecode {
  readonly numSeqs: number;
  /** The graph's ids buffer: the next step's tokens when that step is launched before these are read. */
  readonly ids: Tensor;
  readonly read: PendingDownload;
}

export class DecodeGraphs {
  private readonly captured = new Map<string, CapturedStep>();
  private readonly time: DecodeReplayTiming = { replays: 0, waitMs: 0, gaps: 0, hostGapMs: 0, overlapped: 0 };
  private lastIdsAt: number | null = null;
  /** Replays launched and not collected yet. */
  private inFlight = 0;
  /** Set when a capture failed: the device refuses an op of the step, so every step runs eagerly from then on. */
  private refused = false;

  constructor(
    private readonly model: Andromeda,
    private readonly cache: PagedKVCache,
    private readonly o: DecodeGraphsOptions,
  ) {}

  get size(): number {
    return this.captured.size;
  }

  /** The replays' timing so far (a copy). */
  get timing(): DecodeReplayTiming {
    return { ...this.time };
  }

  /**
   * Replays a decode-only step and returns without reading its ids (null when the device refused a capture).
   * With `after` — a step launched before and not collected yet, whose sequences are this step's in the same
   * order — each row's token is the id the device drew for the same row of `after` (the host's `step.tokens`
   * are not read), and each row draws with its counter one past `rows[r]`'s, which has not yet counted `after`'s
   * draw: so a step can be launched before the host knows its tokens.
   */
  launch(step: StepLayout, rows: readonly RequestSampling[], after: LaunchedDecode | null): LaunchedDecode | null {
    if (this.refused) return null;
    const n = step.numSeqs;
    if (after && after.numSeqs !== n)
      throw new RangeError(`decode graphs: a step of ${n} sequences after one of ${after.numSeqs}`);
    const batch = batchBucket(n, this.o.maxBatch);
    let width = 1;
    while (width < step.maxBlocksPerSeq) width *= 2;
    const captured = this.graphFor(batch, width);
    if (!captured) return null;
    const began = performance.now();
    if (this.inFlight > 0) this.time.overlapped++;
    else if (this.lastIdsAt !== null && began - this.lastIdsAt < MAX_STEP_GAP_MS) {
      this.time.gaps++;
      this.time.hostGapMs += began - this.lastIdsAt;
    }
    this.uploadInputs(captured, step, rows, after ? 1 : 0);
    const engine = captured.ids.engine;
    if (after) engine.copy(firstElements(after.ids, n), firstElements(captured.views.tokens, n), [n]);
    captured.graph.replay();
    const read = engine.downloadLater(captured.ids.storage.handle, captured.ids.offset * 4, n * 4);
    this.inFlight++;
    this.time.replays++;
    return { numSeqs: n, ids: captured.ids, read };
  }

  /**
   * The runner ran a step of another kind (a prefill, eagerly): the next replay's wait for the host is not a decode
   * step's gap.
   */
  interrupt(): void {
    this.lastIdsAt = null;
  }

  /** Waits for a launched step's ids: the tokens of its sequences, in order. */
  collect(launched: LaunchedDecode): SampledToken[] {
    const waitFrom = performance.now();
    this.inFlight--;
    const ids = new Int32Array(launched.read.wait());
    this.lastIdsAt = performance.now();
    this.time.waitMs += this.lastIdsAt - waitFrom;
    return Array.from({ length: launched.numSeqs }, (_, i) => ({ tokenId: ids[i]! }));
  }

  dispose(): void {
    for (const captured of this.captured.values()) {
      captured.graph.dispose();
      disposeBuffers(captured);
    }
    this.captured.clear();
  }

  private graphFor(batch: number, width: number): CapturedStep | null {
    const key = `${batch}x${width}`;
    const existing = this.captured.get(key);
    if (existing) return existing;
    const device = this.model.device;
    const shapes: Record<Input, number[]> = {
      tokens: [batch],
      queryStart: [batch + 1],
      contextLens: [batch],
      blockTables: [batch, width],
      slots: [batch],
      logitRows: [batch],
      seeds: [batch, 2],
      steps: [batch],
    };
    const { buffer: ints, at, views } = int32Views(INPUTS, shapes, device);
    const captured: CapturedStep = {
      batch,
      width,
      ints,
      at,
      views,
      params: zeros([batch, SAMPLING_PARAM_COUNT], 'float32', device).keep(),
      ids: zeros([batch], 'int32', device).keep(),
      graph: null as unknown as DeviceGraph,
      lastParams: null,
    };
    // Valid inputs (all padding) before capturing: the fresh buffers never hold values a replay could misread.
    this.uploadInputs(captured, null, []);
    const graph = captureSampledForward(this.model, this.cache, {
      views,
      maxQueryLen: 1,
      width,
      vocab: this.o.vocab,
      sampler: { params: captured.params, seeds: views.seeds, steps: views.steps },
      ids: captured.ids,
      count: batch,
      what: 'decode graphs',
    });
    if (!graph) {
      this.refused = true;
      disposeBuffers(captured);
      return null;
    }
    captured.graph = graph;
    this.captured.set(key, captured);
    return captured;
  }

  /**
   * Writes a step into the graph's buffers (null: no step, every row padding), each row's draw counter
   * `drawsAhead` past its request's. Rows past the step's sequences are padding: one position (0) in the scratch
   * block, sampled greedily, their ids dropped.
   */
  private uploadInputs(
    captured: CapturedStep,
    step: StepLayout | null,
    rows: readonly RequestSampling[],
    drawsAhead = 0,
  ): void {
    const { batch, width, at, ints } = captured;
    const n = step?.numSeqs ?? 0;
    const scratch = this.o.scratchBlock;
    const host = new Int32Array(ints.size);
    // One query row per sequence, real or padding.
    for (let i = 0; i <= batch; i++) host[at.queryStart + i] = i;
    host.fill(-1, at.blockTables, at.blockTables + batch * width);
    const params = new Float32Array(batch * SAMPLING_PARAM_COUNT);
    if (step) {
      const inputs = samplingInputs(rows);
      host.set(step.tokens, at.tokens);
      host.set(step.contextLens, at.contextLens);
      for (let s = 0; s < n; s++) {
        const table = step.blockTables.subarray(s * step.maxBlocksPerSeq, (s + 1) * step.maxBlocksPerSeq);
        host.set(table, at.blockTables + s * width);
      }
      host.set(step.slots, at.slots);
      host.set(step.logitRows, at.logitRows);
      host.set(seedWords(inputs.seeds), at.seeds);
      for (let s = 0; s < n; s++) host[at.steps + s] = inputs.steps[s]! + drawsAhead;
      params.set(inputs.params);
    }
    for (let i = n; i < batch; i++) {
      host[at.contextLens + i] = 1;
      host[at.blockTables + i * width] = scratch;
      host[at.slots + i] = scratch * this.cache.blockSize;
      host[at.logitRows + i] = i;
      params.set(PADDING_PARAMS, i * SAMPLING_PARAM_COUNT);
    }
    const put = (t: Tensor, values: Int32Array | Float32Array): void =>
      t.engine.upload(t.storage.handle, t.offset * 4, values);
    put(ints, host);
    if (!captured.lastParams || !sameValues(captured.lastParams, params)) {
      put(captured.params, params);
      captured.lastParams = params;
    }
  }
}

/** The first `n` elements of a one-dimensional tensor of at least `n`, as a strided operand. */
function firstElements(t: Tensor, n: number): Strided {
  if (t.shape.length !== 1 || t.shape[0]! < n) throw new RangeError(`decode graphs: ${n} elements of a [${t.shape}]`);
  return t.strided('decode graphs');
}

function disposeBuffers(captured: CapturedStep): void {
  for (const t of [...Object.values(captured.views), captured.ints, captured.params, captured.ids]) t.dispose();
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
