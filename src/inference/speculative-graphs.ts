/**
 * Speculative steps replayed as captured graphs (Engine.captureGraph): a paged forward in which every sequence
 * brings the same number of rows, and the device argmax of each sequence's last rows, recorded once per bucket
 * and replayed with new inputs. Two forwards of a greedy speculative step have that shape
 * (./speculative-decoder.ts):
 *
 *   the target's verification   1 + k rows per sequence (its last token, its proposals), argmax of every row;
 *   the draft's catch-up        2 rows per sequence (the position it may lag behind, its last token), argmax
 *                               of the last.
 *
 * A sequence with fewer rows of its own (fewer proposals near its token limit, a draft that does not lag)
 * fills the rest with rows whose K/V go to the scratch block instead of its blocks. Such a row past the
 * sequence's last token is harmless: causal attention hides it from the earlier rows, and its token-shift tail
 * lands where a step with every proposal writes rejected positions (the ring leaves room for k of them). A row
 * before the draft's cache end recomputes a position the draft holds: only its tail is written again, with the
 * value the draft computed for it before (up to rounding, which could change a proposal, never an output).
 *
 * As in ./decode-graphs.ts, the batch is padded to the next of 1, 2, 4, 8 … (maxBatch last) with sequences
 * in the scratch block and the block-table width to the next power of two; every input is uploaded into the
 * graph's buffers in one copy, and one read brings the argmax ids back.
 */
import { Tensor } from '../tensor/tensor.js';
import { zeros } from '../ops/creation.js';
import type { DeviceGraph } from '../engine/engine.js';
import { samplingParams } from '../ops/sampling.js';
import type { Andromeda } from '../model/andromeda.js';
import type { PagedKVCache } from '../model/paged-kv-cache.js';
import { batchBucket, captureSampledForward, int32Views } from './decode-graphs.js';

export interface SpeculativeGraphsOptions {
  /** A pool block no sequence owns: rows that store nothing and padding sequences write there. */
  scratchBlock: number;
  /** Columns the argmax ranges over. */
  vocab: number;
  maxBatch: number;
  /** Query rows of every sequence. */
  rows: number;
  /** Of them, the last `logits` have their argmax read back. */
  logits: number;
  /** Names the graphs in the warning of a failed capture. */
  what: string;
}

/** One sequence of a step: its rows are positions first .. first + rows − 1. */
export interface FixedRowsSequence {
  first: number;
  /** The token of every row. */
  tokens: ArrayLike<number>;
  /** Rows from .. to − 1 store their K/V in the sequence's blocks; the others store them in the scratch block. */
  stores: { from: number; to: number };
  /** The sequence's blocks in position order (those its stored rows reach at least). */
  blockTable: readonly number[];
}

const INPUTS = ['tokens', 'queryStart', 'contextLens', 'blockTables', 'slots', 'logitRows'] as const;
type Input = (typeof INPUTS)[number];

interface CapturedStep {
  batch: number;
  width: number;
  /** int32: every input, back to back (offsets in `at`), uploaded in one copy. */
  ints: Tensor;
  at: Record<Input, number>;
  /** The views of `ints` the graph reads, and the sampler's constant buffers. */
  owned: Tensor[];
  /** The argmax ids, written by the graph. */
  ids: Tensor;
  graph: DeviceGraph;
}

export class SpeculativeGraphs {
  private readonly captured = new Map<string, CapturedStep>();
  /** Set when a capture failed: the device refuses an op of the step, so every step runs eagerly from then on. */
  private refused = false;

  constructor(
    private readonly model: Andromeda,
    private readonly cache: PagedKVCache,
    private readonly o: SpeculativeGraphsOptions,
  ) {
    if (!(Number.isInteger(o.rows) && o.rows >= 1 && Number.isInteger(o.logits) && o.logits >= 1 && o.logits <= o.rows))
      throw new RangeError(`${o.what}: rows per sequence ${o.rows} and logit rows ${o.logits} need 1 ≤ logits ≤ rows`);
  }

  /** Graphs captured so far (one per batch-size and table-width bucket used). */
  get size(): number {
    return this.captured.size;
  }

  /**
   * Replays the step of `sequences` (at most maxBatch): the argmax of each one's last `logits` rows, sequence
   * after sequence; null when the device refused a capture (the caller runs the step eagerly).
   */
  run(sequences: readonly FixedRowsSequence[]): Int32Array | null {
    const { rows, logits, maxBatch, what } = this.o;
    const n = sequences.length;
    if (n < 1 || n > maxBatch) throw new RangeError(`${what}: ${n} sequences in a step of at most ${maxBatch}`);
    if (this.refused) return null;
    const bs = this.cache.blockSize;
    let blocks = Math.ceil(rows / bs);
    for (const [s, sequence] of sequences.entries()) {
      if (sequence.tokens.length !== rows)
        throw new RangeError(`${what}: sequence ${s} brings ${sequence.tokens.length} tokens, not ${rows}`);
      blocks = Math.max(blocks, sequence.blockTable.length, Math.ceil((sequence.first + rows) / bs));
    }
    let width = 1;
    while (width < blocks) width *= 2;
    const captured = this.graphFor(batchBucket(n, maxBatch), width);
    if (!captured) return null;
    this.upload(captured, sequences);
    captured.graph.replay();
    const ids = captured.ids.toArray() as Int32Array;
    return ids.subarray(0, n * logits);
  }

  dispose(): void {
    for (const { graph, ints, owned, ids } of this.captured.values()) {
      graph.dispose();
      for (const t of [...owned, ints, ids]) t.dispose();
    }
    this.captured.clear();
  }

  private graphFor(batch: number, width: number): CapturedStep | null {
    const key = `${batch}x${width}`;
    const existing = this.captured.get(key);
    if (existing) return existing;
    const { rows, logits, vocab } = this.o;
    const device = this.model.device;
    const sizes: Record<Input, number[]> = {
      tokens: [batch * rows],
      queryStart: [batch + 1],
      contextLens: [batch],
      blockTables: [batch, width],
      slots: [batch * rows],
      logitRows: [batch * logits],
    };
    const { buffer: ints, at, views } = int32Views(INPUTS, sizes, device);
    const sampled = batch * logits;
    const sampler = {
      params: samplingParams(new Array(sampled).fill({ temperature: 0 }), device).keep(),
      seeds: zeros([sampled, 2], 'int32', device).keep(),
      steps: zeros([sampled], 'int32', device).keep(),
    };
    const ids = zeros([sampled], 'int32', device).keep();
    const owned = [...Object.values(views), ...Object.values(sampler)];
    const captured: CapturedStep = { batch, width, ints, at, owned, ids, graph: null as unknown as DeviceGraph };
    // Valid inputs (all padding) before capturing: the fresh buffers never hold values a replay could misread.
    this.upload(captured, []);
    const graph = captureSampledForward(this.model, this.cache, {
      views,
      maxQueryLen: rows,
      width,
      vocab,
      sampler,
      ids,
      count: sampled,
      what: this.o.what,
    });
    if (!graph) {
      this.refused = true;
      for (const t of [...owned, ints, ids]) t.dispose();
      return null;
    }
    captured.graph = graph;
    this.captured.set(key, captured);
    return captured;
  }

  /**
   * Writes a step into the graph's buffers. Sequences past the step's are padding: `rows` positions from 0 in
   * the scratch block, their ids dropped.
   */
  private upload(captured: CapturedStep, sequences: readonly FixedRowsSequence[]): void {
    const { batch, width, ints, at } = captured;
    const { rows, logits, scratchBlock } = this.o;
    const bs = this.cache.blockSize;
    const scratchSlot = (position: number): number => scratchBlock * bs + (position % bs);
    const host = new Int32Array(ints.size);
    host.fill(-1, at.blockTables, at.blockTables + batch * width);
    for (let s = 0; s < batch; s++) {
      const sequence = sequences[s];
      const first = sequence?.first ?? 0;
      host[at.queryStart + s] = s * rows;
      host[at.contextLens + s] = first + rows;
      for (let i = 0; i < logits; i++) host[at.logitRows + s * logits + i] = (s + 1) * rows - logits + i;
      const table = at.blockTables + s * width;
      if (sequence) host.set(sequence.blockTable, table);
      else host.fill(scratchBlock, table, table + Math.ceil(rows / bs));
      for (let i = 0; i < rows; i++) {
        const row = s * rows + i;
        const position = first + i;
        host[at.tokens + row] = sequence?.tokens[i] ?? 0;
        host[at.slots + row] = scratchSlot(position);
        if (sequence && i >= sequence.stores.from && i < sequence.stores.to) {
          const block = sequence.blockTable[Math.floor(position / bs)];
          if (block === undefined)
            throw new RangeError(`${this.o.what}: sequence ${s} has no block for position ${position}`);
          host[at.slots + row] = block * bs + (position % bs);
        }
      }
    }
    host[at.queryStart + batch] = batch * rows;
    ints.engine.upload(ints.storage.handle, ints.offset * 4, host);
  }
}
