/**
 * The step runner over a paged KV cache (Andromeda.forwardPaged): each step uploads its layout, writes
 * the new positions' K/V into the pool and samples the logit rows on the device. Decode-only steps go
 * through a captured graph per batch-size bucket when graphs are on (./decode-graphs.ts), and so may the
 * fixed-shape forwards of speculative steps (./speculative-graphs.ts).
 *
 * The pool has one block more than the block manager hands out: a scratch block that padding rows of
 * graph steps write into, so they never touch a sequence's blocks.
 */
import { Tensor } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import type { Andromeda } from '../model/andromeda.js';
import type { PagedKVCache } from '../model/paged-kv-cache.js';
import type { PagedStep } from '../model/paged-step.js';
import type { SampledToken, StepLayout } from './scheduler.js';
import type { ForwardLayout } from './step-layout.js';
import type { StepRunner } from './step-runner.js';
import { idsOnly, sampleRows, type RequestSampling } from './device-sampling.js';
import { DecodeGraphs, type DecodeReplayTiming, type LaunchedDecode } from './decode-graphs.js';
import { SpeculativeGraphs } from './speculative-graphs.js';

export interface PagedRunnerOptions {
  numBlocks: number;
  blockSize: number;
  /** Columns that may be sampled (the tokenizer's vocabulary). */
  vocab: number;
  maxBatch: number;
  /** Replay decode steps as captured graphs. */
  graphs: boolean;
  /**
   * Token-shift tail slots per block (default: the model's shifts): shifts + k when steps score k draft
   * proposals, so that the rejected positions a step writes never overwrite a slot the next step reads.
   */
  ring?: number;
}

export class PagedRunner implements StepRunner {
  readonly kvCache = 'paged';
  readonly numBlocks: number;
  readonly cache: PagedKVCache;
  private readonly graphs: DecodeGraphs | null;
  private readonly speculativeGraphSets: SpeculativeGraphs[] = [];

  constructor(
    private readonly model: Andromeda,
    private readonly o: PagedRunnerOptions,
  ) {
    this.numBlocks = o.numBlocks;
    this.cache = model.createPagedKVCache(o.numBlocks + 1, { blockSize: o.blockSize, ring: o.ring });
    this.graphs = o.graphs
      ? new DecodeGraphs(model, this.cache, { scratchBlock: o.numBlocks, vocab: o.vocab, maxBatch: o.maxBatch })
      : null;
  }

  /** Whether decode-only steps replay captured graphs. */
  get replaysGraphs(): boolean {
    return this.graphs !== null;
  }

  /** Graphs captured so far (one per batch-size and table-width bucket used, of each kind of step). */
  get capturedGraphs(): number {
    return (this.graphs?.size ?? 0) + this.speculativeGraphSets.reduce((n, g) => n + g.size, 0);
  }

  /** How the replayed decode steps spent their time (null without graphs). */
  get decodeReplayTiming(): DecodeReplayTiming | null {
    return this.graphs?.timing ?? null;
  }

  run(step: StepLayout, rows: readonly RequestSampling[]): SampledToken[] {
    const launched = this.launch(step, rows, null);
    if (launched) return this.collect(launched);
    this.graphs?.interrupt();
    return tidy(() => sampleRows(this.logits(step), rows, this.o.vocab));
  }

  launch(step: StepLayout, rows: readonly RequestSampling[], after: LaunchedDecode | null): LaunchedDecode | null {
    if (!this.graphs || !step.decodeOnly || !idsOnly(rows)) return null;
    return this.graphs.launch(step, rows, after);
  }

  collect(launched: LaunchedDecode): SampledToken[] {
    if (!this.graphs) throw new Error('paged runner: collect without decode graphs');
    return this.graphs.collect(launched);
  }

  /**
   * Graphs of steps in which every sequence brings `rows` rows and wants the argmax of its last `logits`
   * (./speculative-graphs.ts), over this runner's model and cache; null when this runner replays no graphs.
   * The runner disposes of them.
   */
  speculativeGraphs(rows: number, logits: number, what: string): SpeculativeGraphs | null {
    if (!this.graphs) return null;
    const graphs = new SpeculativeGraphs(this.model, this.cache, {
      scratchBlock: this.o.numBlocks,
      vocab: this.o.vocab,
      maxBatch: this.o.maxBatch,
      rows,
      logits,
      what,
    });
    this.speculativeGraphSets.push(graphs);
    return graphs;
  }

  /**
   * Runs the forward of `step` (writing its rows' K/V into the cache) and returns the logits of its logit
   * rows, [R, model vocabulary]: the caller disposes of them (or runs this inside a tidy scope).
   */
  logits(step: ForwardLayout): Tensor {
    return tidy(() => {
      const device = this.model.device;
      const upload = (values: Int32Array, shape: number[]): Tensor => Tensor.fromArray(values, shape, 'int32', device);
      // A step that samples nothing (prefill chunks only) still needs a logit row for the forward's shape.
      const logitRows = step.logitRows.length > 0 ? step.logitRows : Int32Array.of(step.tokens.length - 1);
      const paged: PagedStep = {
        tokens: upload(step.tokens, [step.tokens.length]),
        batch: {
          maxQueryLen: step.maxQueryLen,
          maxContextLen: step.maxContextLen,
          queryStart: upload(step.queryStart, [step.numSeqs + 1]),
          contextLens: upload(step.contextLens, [step.numSeqs]),
          blockTables: upload(step.blockTables, [step.numSeqs, step.maxBlocksPerSeq]),
          host: { queryStart: step.queryStart, contextLens: step.contextLens, blockTables: step.blockTables },
        },
        slots: upload(step.slots, [step.tokens.length]),
        logitRows: upload(logitRows, [logitRows.length]),
      };
      return this.model.forwardPaged(paged, this.cache);
    });
  }

  dispose(): void {
    this.graphs?.dispose();
    for (const graphs of this.speculativeGraphSets) graphs.dispose();
    this.cache.dispose();
  }
}
