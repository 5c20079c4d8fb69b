/**
 * Speculative decoding inside the inference engine: every sequence of a continuous batch that samples in a
 * step may have a small draft model propose tokens that the target scores in the same paged forward.
 *
 * Each engine step then runs:
 *   1. the draft over every row of the step (prefill chunks and decodes alike, so its cache follows the
 *      target's), plus the one position it may lag behind; the last row of each proposing sequence gives its
 *      first proposal;
 *   2. k − 1 more batched draft forwards, one row per sequence still proposing (replayed as decode graphs
 *      when every one of them is greedy);
 *   3. ONE ragged target forward: the step's rows, each proposing sequence's rows followed by its proposals,
 *      logits of all of them;
 *   4. acceptance per sequence (./speculative-acceptance.ts, as speculativeGenerate does): greedy requests
 *      keep the longest run of proposals equal to the target's argmax, then the target's token; sampled
 *      requests follow the rejection rule with draws from their own seeded generator, so a request's
 *      output depends on its seed alone, never on what else is in the batch.
 *
 * The draft's cache is a second pool over the same block tables (the block manager's accounting counts both
 * models' bytes per block): allocation, prefix sharing, preemption and cancellation free or share both at
 * once, and a shared block holds both models' K/V. Rejected positions simply stay past the context length in
 * both pools; token-shift tails have shifts + k slots (./runners.ts, speculativeRing).
 *
 * With graphs on, a step in which every sequence decodes one token and every request is greedy replays its
 * draft catch-up (1.) and its target forward (3.) as captured graphs, each sequence bringing a fixed number of
 * rows (./speculative-graphs.ts): only argmax ids come back, and the JavaScript of hundreds of kernel launches
 * runs once per bucket instead of once per step. A device that refuses the capture leaves them eager.
 *
 * Requests the acceptance rule cannot reproduce exactly — log-probabilities (of tokens the target never
 * sampled one at a time), repetition/frequency/presence penalties (whose counts change within a run) and
 * min-p (which the host distribution lacks) — are sampled by the device sampler from their single logit row
 * in the same forward, as without a draft.
 */
import { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import { narrow } from '../ops/layout.js';
import type { Andromeda } from '../model/andromeda.js';
import type { SampledToken, StepEntry, StepLayout } from './scheduler.js';
import type { Sequence } from './sequence.js';
import { RequestSampling, sampleRows } from './device-sampling.js';
import { PagedRunner } from './paged-runner.js';
import { buildForwardLayout, type ForwardPart } from './step-layout.js';
import { speculativeRing } from './runners.js';
import {
  acceptGreedy,
  acceptSampled,
  denseDistribution,
  sampleFrom,
  type Acceptance,
} from './speculative-acceptance.js';
import type { SpeculativeGraphs } from './speculative-graphs.js';

export interface SpeculativeDecoderOptions {
  /** Proposals per step (k ≥ 1). */
  tokens: number;
  /** Blocks of the pool (the block manager's), block size, sampled columns: those of the target's runner. */
  numBlocks: number;
  blockSize: number;
  vocab: number;
  blockTable: (sequence: Sequence) => readonly number[];
  /** Most sequences in a step (the graphs are bucketed up to it). */
  maxBatch: number;
  /**
   * Replay the draft's greedy proposal rounds as captured decode graphs (./decode-graphs.ts), and greedy
   * decode steps' draft catch-up and target forward as captured graphs (./speculative-graphs.ts).
   */
  graphs: boolean;
}

/** Speculative decoding counters (engine.stats().speculative). */
export interface SpeculativeStats {
  /** Proposals per step. */
  draftTokens: number;
  /** Target forwards that scored proposals. */
  steps: number;
  /** Proposals scored, and of them accepted: the acceptance rate is accepted / proposed. */
  proposed: number;
  accepted: number;
  /** Target forwards, and draft catch-ups, replayed as captured graphs (./speculative-graphs.ts). */
  graphVerifications: number;
  graphCatchUps: number;
}

/** Draws of a greedy row (the target's and draft's argmax on the device). */
const GREEDY = new RequestSampling({ temperature: 0 });

/** A sequence speculating in this step. */
interface Proposer {
  entry: StepEntry;
  sampling: RequestSampling;
  greedy: boolean;
  proposals: number[];
  /** The draft's distribution of each proposal (sampled requests). */
  draftDistributions: Float64Array[];
}

export class SpeculativeDecoder {
  readonly draftTokens: number;
  private readonly draft: PagedRunner;
  private readonly generators = new WeakMap<RequestSampling, Generator>();
  private readonly counters = { steps: 0, proposed: 0, accepted: 0, graphVerifications: 0, graphCatchUps: 0 };
  /** The target's forward over 1 + k rows per sequence, argmax of every row (null: graphs off). */
  private readonly verifyGraphs: SpeculativeGraphs | null;
  /** The draft's first forward over 2 rows per sequence, argmax of the last (null: graphs off). */
  private readonly catchUpGraphs: SpeculativeGraphs | null;

  constructor(
    draftModel: Andromeda,
    private readonly target: PagedRunner,
    private readonly o: SpeculativeDecoderOptions,
  ) {
    this.draftTokens = o.tokens;
    this.draft = new PagedRunner(draftModel, {
      numBlocks: o.numBlocks,
      blockSize: o.blockSize,
      vocab: o.vocab,
      maxBatch: o.maxBatch,
      graphs: o.graphs,
      ring: speculativeRing(draftModel, o.tokens),
    });
    if (o.graphs) {
      const rows = 1 + o.tokens;
      this.verifyGraphs = target.speculativeGraphs(rows, rows, 'speculative verification graphs');
      this.catchUpGraphs = this.draft.speculativeGraphs(2, 1, 'speculative draft catch-up graphs');
    } else this.verifyGraphs = this.catchUpGraphs = null;
  }

  /** Whether speculative decoding reproduces this request's sampling exactly (else it samples as usual). */
  static serves(sampling: RequestSampling): boolean {
    return !sampling.logprobs && !sampling.penalized && sampling.options.minP === 0;
  }

  /**
   * Proposals scored when `sequence` next samples: k, fewer when its token limit is nearer (a step yields at
   * most proposals + 1 tokens), none for requests the draft does not serve.
   */
  proposalsFor(sequence: Sequence, sampling: RequestSampling): number {
    if (!SpeculativeDecoder.serves(sampling)) return 0;
    return Math.max(0, Math.min(this.draftTokens, sequence.limits.maxTokens - sequence.generated - 1));
  }

  /** Graphs the draft has captured so far (its decode and catch-up graphs). */
  get capturedGraphs(): number {
    return this.draft.capturedGraphs;
  }

  stats(): SpeculativeStats {
    return { draftTokens: this.draftTokens, ...this.counters };
  }

  /**
   * Runs a scheduled step: the draft's forwards, the target's, and acceptance. Returns the run of tokens of
   * every sampling sequence, in the order of `step.sampling` (scheduler.completeRuns applies them).
   */
  run(step: StepLayout, samplingOf: (sequence: Sequence) => RequestSampling): SampledToken[][] {
    const proposers = new Map<Sequence, Proposer>();
    for (const entry of step.entries) {
      const sampling = samplingOf(entry.sequence);
      if (entry.samples && SpeculativeDecoder.serves(sampling))
        proposers.set(entry.sequence, {
          entry,
          sampling,
          greedy: sampling.options.temperature === 0,
          proposals: [],
          draftDistributions: [],
        });
    }
    // Every sequence decoding one token, greedily: the shapes that captured graphs replay.
    const fixedShape = step.entries.every((e) => e.count === 1 && proposers.get(e.sequence)?.greedy === true);
    this.propose(step, proposers, fixedShape);
    const runs = (fixedShape && this.verifyByGraph(step, proposers)) || this.verify(step, proposers, samplingOf);
    const proposing = [...proposers.values()].filter((p) => p.proposals.length > 0);
    if (proposing.length > 0) this.counters.steps++;
    return runs;
  }

  dispose(): void {
    this.draft.dispose();
  }

  /** The draft's forwards: catches its cache up with the step's rows and draws every proposal. */
  private propose(step: StepLayout, proposers: Map<Sequence, Proposer>, fixedShape: boolean): void {
    const { blockTable, blockSize } = this.o;
    const wants = (entry: StepEntry, round: number): boolean =>
      proposers.has(entry.sequence) && entry.proposals > round;
    for (let round = 0; round < this.draftTokens; round++) {
      if (round === 0 && fixedShape && this.catchUpByGraph(step, proposers)) continue;
      let parts: ForwardPart[];
      if (round === 0) {
        // Every row of the step, from where the draft's cache ends (it may lag one position behind).
        parts = step.entries.map((entry) => {
          const { sequence } = entry;
          const start = sequence.draftComputed;
          return { sequence, start, count: entry.start + entry.count - start, logits: wants(entry, 0) ? 1 : 0 };
        });
      } else {
        // The previous proposal of every sequence still proposing, at the position after it.
        parts = step.entries
          .filter((entry) => wants(entry, round))
          .map((entry) => {
            const proposer = proposers.get(entry.sequence)!;
            const start = entry.start + entry.count + round - 1;
            return { sequence: entry.sequence, start, count: 1, beyond: proposer.proposals, logits: 1 };
          });
        if (parts.length === 0) break;
      }
      const layout = buildForwardLayout(parts, blockTable, blockSize);
      const drawing = step.entries.filter((entry) => wants(entry, round)).map((e) => proposers.get(e.sequence)!);
      if (round > 0 && drawing.every((p) => p.greedy)) {
        // One row per sequence, every one greedy: a decode step as the draft's runner replays it.
        const decode: StepLayout = { ...layout, entries: [], sampling: [], decodeOnly: true };
        const tokens = this.draft.run(
          decode,
          drawing.map(() => GREEDY),
        );
        drawing.forEach((p, i) => p.proposals.push(tokens[i]!.tokenId));
        for (const part of parts) part.sequence.draftComputed = part.start + part.count;
        continue;
      }
      tidy(() => {
        const logits = this.draft.logits(layout);
        const tokens = this.choose(
          logits,
          drawing,
          (p) => p.greedy,
          (p, row) => {
            const q = denseDistribution(row, p.sampling.options, this.o.vocab);
            p.draftDistributions.push(q);
            return sampleFrom(q, this.generatorOf(p.sampling));
          },
        );
        drawing.forEach((p, i) => p.proposals.push(tokens[i]!));
      });
      for (const part of parts) part.sequence.draftComputed = part.start + part.count;
    }
  }

  /** The target's forward over the step's rows and every proposal, then acceptance. */
  private verify(
    step: StepLayout,
    proposers: Map<Sequence, Proposer>,
    samplingOf: (sequence: Sequence) => RequestSampling,
  ): SampledToken[][] {
    const parts: ForwardPart[] = step.entries.map((entry) => {
      const proposer = proposers.get(entry.sequence);
      const count = entry.count + (proposer?.proposals.length ?? 0);
      const logits = proposer ? 1 + proposer.proposals.length : entry.samples ? 1 : 0;
      return { sequence: entry.sequence, start: entry.start, count, beyond: proposer?.proposals, logits };
    });
    const layout = buildForwardLayout(parts, this.o.blockTable, this.o.blockSize);
    // Logit rows of the requests sampled as usual first, then those of the speculating ones.
    const usual: Sequence[] = [];
    const usualRows: number[] = [];
    const speculativeRows: number[] = [];
    parts.forEach((part, s) => {
      const end = layout.queryStart[s + 1]!;
      const rows = Array.from({ length: part.logits }, (_, i) => end - part.logits + i);
      if (proposers.has(part.sequence)) speculativeRows.push(...rows);
      else if (part.logits > 0) {
        usual.push(part.sequence);
        usualRows.push(...rows);
      }
    });
    layout.logitRows = Int32Array.from([...usualRows, ...speculativeRows]);
    const runs = new Map<Sequence, SampledToken[]>();
    tidy(() => {
      const logits = this.target.logits(layout);
      if (usual.length > 0) {
        const sampled = sampleRows(narrow(logits, 0, 0, usual.length), usual.map(samplingOf), this.o.vocab);
        usual.forEach((sequence, i) => runs.set(sequence, [sampled[i]!]));
      }
      if (proposers.size === 0) return;
      const speculative = narrow(logits, 0, usual.length, speculativeRows.length);
      // Each proposer's rows, one per proposal plus the one after them all, as [sequence, its first row].
      const rowsOf: [Proposer, number][] = [];
      let row = 0;
      for (const proposer of proposers.values()) {
        rowsOf.push([proposer, row]);
        row += proposer.proposals.length + 1;
      }
      const choices = this.targetChoices(speculative, rowsOf);
      for (const [proposer, first] of rowsOf) {
        const { proposals } = proposer;
        const acceptance = proposer.greedy
          ? acceptGreedy(proposals, choices.ids.subarray(first, first + proposals.length + 1))
          : acceptSampled(
              proposals,
              proposer.draftDistributions,
              (i) => denseDistribution(choices.row(first + i), proposer.sampling.options, this.o.vocab),
              this.generatorOf(proposer.sampling),
            );
        runs.set(proposer.entry.sequence, this.settle(proposer, acceptance));
      }
    });
    return step.sampling.map((sequence) => runs.get(sequence)!);
  }

  /**
   * The draft's first forward of a fixed-shape step as a captured graph: two rows per sequence, its last
   * token's position and the one before, which the draft either lags behind on (after a step that accepted
   * every proposal) or recomputes without storing its K/V. False when it cannot (a sequence at position 0, no
   * graphs, a refused capture): the caller runs the forward eagerly.
   */
  private catchUpByGraph(step: StepLayout, proposers: Map<Sequence, Proposer>): boolean {
    const { entries } = step;
    if (!this.catchUpGraphs || entries.some((e) => e.start === 0 || e.sequence.draftComputed < e.start - 1))
      return false;
    const ids = this.catchUpGraphs.run(
      entries.map(({ sequence, start }) => ({
        first: start - 1,
        tokens: [sequence.tokens[start - 1]!, sequence.tokens[start]!],
        stores: { from: sequence.draftComputed < start ? 0 : 1, to: 2 },
        blockTable: this.o.blockTable(sequence),
      })),
    );
    if (!ids) return false;
    entries.forEach((entry, s) => {
      if (entry.proposals > 0) proposers.get(entry.sequence)!.proposals.push(ids[s]!);
      entry.sequence.draftComputed = entry.start + 1;
    });
    this.counters.graphCatchUps++;
    return true;
  }

  /**
   * The target's forward of a fixed-shape step as a captured graph: 1 + k rows per sequence (its last token
   * and its proposals, padded when it has fewer), the argmax of every row, greedy acceptance. Null when it
   * cannot (no graphs, a refused capture): the caller verifies eagerly.
   */
  private verifyByGraph(step: StepLayout, proposers: Map<Sequence, Proposer>): SampledToken[][] | null {
    if (!this.verifyGraphs) return null;
    const rows = 1 + this.draftTokens;
    const ids = this.verifyGraphs.run(
      step.entries.map(({ sequence, start }) => {
        const { proposals } = proposers.get(sequence)!;
        const tokens = new Array<number>(rows).fill(0);
        tokens[0] = sequence.tokens[start]!;
        tokens.splice(1, proposals.length, ...proposals);
        return {
          first: start,
          tokens,
          stores: { from: 0, to: 1 + proposals.length },
          blockTable: this.o.blockTable(sequence),
        };
      }),
    );
    if (!ids) return null;
    const runs = new Map<Sequence, SampledToken[]>();
    step.entries.forEach(({ sequence }, s) => {
      const proposer = proposers.get(sequence)!;
      const first = s * rows;
      const targetChoices = ids.subarray(first, first + proposer.proposals.length + 1);
      runs.set(sequence, this.settle(proposer, acceptGreedy(proposer.proposals, targetChoices)));
    });
    this.counters.graphVerifications++;
    return step.sampling.map((sequence) => runs.get(sequence)!);
  }

  /** Counts a verification's outcome; returns the sequence's run of tokens. */
  private settle(proposer: Proposer, { accepted, next }: Acceptance): SampledToken[] {
    this.counters.proposed += proposer.proposals.length;
    this.counters.accepted += accepted;
    return [...proposer.proposals.slice(0, accepted), next].map((tokenId) => ({ tokenId }));
  }

  /**
   * The target's argmax of every row (on the device: only ids come back) and, when a proposer samples, the
   * rows themselves on the host.
   */
  private targetChoices(
    logits: Tensor,
    rowsOf: readonly [Proposer, number][],
  ): { ids: Int32Array; row: (r: number) => Float32Array } {
    const rows = logits.shape[0]!;
    const greedyIds = sampleRows(logits, new Array<RequestSampling>(rows).fill(GREEDY), this.o.vocab);
    const ids = Int32Array.from(greedyIds, (t) => t.tokenId);
    const sampled = rowsOf.some(([p]) => !p.greedy);
    const host = sampled ? (logits.toArray() as Float32Array) : null;
    const width = logits.shape[1]!;
    return { ids, row: (r) => host!.subarray(r * width, r * width + this.o.vocab) };
  }

  /**
   * One token per row of `logits` (one row per drawer): the device's argmax for greedy drawers, `draw` from
   * the row on the host for the others.
   */
  private choose<T>(
    logits: Tensor,
    drawers: readonly T[],
    greedy: (drawer: T) => boolean,
    draw: (drawer: T, row: Float32Array) => number,
  ): number[] {
    if (drawers.length === 0) return [];
    const ids = sampleRows(
      logits,
      drawers.map(() => GREEDY),
      this.o.vocab,
    );
    const host = drawers.every(greedy) ? null : (logits.toArray() as Float32Array);
    const width = logits.shape[1]!;
    return drawers.map((drawer, i) =>
      greedy(drawer) ? ids[i]!.tokenId : draw(drawer, host!.subarray(i * width, i * width + this.o.vocab)),
    );
  }

  private generatorOf(sampling: RequestSampling): Generator {
    let generator = this.generators.get(sampling);
    if (!generator) this.generators.set(sampling, (generator = new Generator(sampling.seed)));
    return generator;
  }
}
