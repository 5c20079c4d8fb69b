/**
 * Continuous batching: which sequences run in the next step of the model, and with which tokens.
 *
 * Every step takes, in order: the running sequences (oldest first) — one token each when decoding, a
 * chunk of their remaining context when prefilling — then waiting sequences (first come, first served),
 * until the step's token budget or the batch limit is reached. A prompt longer than the budget is
 * prefilled over several steps, interleaved with the other sequences' decodes, so no long prompt
 * stalls the streams already running. Sequences join and leave at every step.
 *
 * When the pool has no blocks left for a running sequence, the newest running sequence is preempted:
 * its blocks are released at once and it goes back to the front of the queue, to be recomputed later
 * from its context and the tokens it had generated (those it shares with the cache, e.g. its own
 * released blocks if nobody reused them, are found again by prefix sharing rather than recomputed).
 *
 * The scheduler turns each step into the host-side layout of a paged forward (tokens, query starts,
 * context lengths, block tables, cache slots, logit rows), and applies the sampled tokens afterwards:
 * stop token ids, stop strings, the token limit and the deadline end a request; its blocks are freed as
 * soon as it ends, including by cancellation.
 *
 * With speculative decoding (./speculative-decoder.ts), a step that samples a sequence may also score
 * draft proposals: the scheduler reserves cache positions for them (`lookahead`), counts them against the
 * token budget, and accepts a run of tokens per sequence afterwards. A sequence whose rows and proposals
 * do not fit the step's remaining budget waits for the next step rather than proposing fewer, so the
 * proposals (and the draws of a sampled request) never depend on what else shares the step.
 */
import { BlockManager } from './block-manager.js';
import { QueueFullError } from './queue-full-error.js';
import type { Sequence, TokenEvent, TokenLogprobs } from './sequence.js';
import { buildForwardLayout, type ForwardLayout } from './step-layout.js';

export interface SchedulerOptions {
  /** Most sequences in one step (and running at once). */
  maxBatch: number;
  /** Most tokens (query rows) in one step: decodes count one, prefill chunks their length. */
  tokenBudget: number;
  /** Most requests waiting for their first step; more are refused. */
  maxQueue: number;
  /** Clock for deadlines, in ms (tests pass their own). */
  now?: () => number;
  /**
   * Draft proposals a step that samples `sequence` scores after its last row (speculative decoding; default
   * none). Their positions are reserved in the cache and count against the token budget.
   */
  lookahead?: (sequence: Sequence) => number;
  /**
   * Whether a draft model keeps a cache over the same block tables (sequence.draftComputed): a block is then
   * shared with later sequences only once both caches hold it.
   */
  draftCache?: boolean;
  /** Called when a running sequence lets its blocks go: it finished, or was preempted (StepRunner.release). */
  onRelease?: (sequence: Sequence) => void;
}

/** One sequence's part of a step: its positions start .. start + count − 1. */
export interface StepEntry {
  sequence: Sequence;
  start: number;
  count: number;
  /** Whether this step reaches the end of its tokens, so its last row's logits pick the next token. */
  samples: boolean;
  /** Draft proposals scored after the last row (positions reserved; 0 unless sampling speculatively). */
  proposals: number;
}

/** A scheduled step: the layout of its paged forward (without proposals) and what it runs for whom. */
export interface StepLayout extends ForwardLayout {
  entries: StepEntry[];
  /** The sequence of each logit row. */
  sampling: Sequence[];
  /** True when every sequence decodes exactly one token and nothing more (the step a CUDA graph can replay). */
  decodeOnly: boolean;
}

/** A sampled token and, when asked, its log-probabilities. */
export interface SampledToken extends Partial<TokenLogprobs> {
  tokenId: number;
}

export { QueueFullError };

/** The token a step scheduled ahead holds for the one the device draws (any id of the vocabulary would do). */
const AHEAD_PLACEHOLDER = [0];

export interface SchedulerCounters {
  preemptions: number;
  /** Full context blocks looked up in the pool when sequences were admitted, and the hits. */
  prefixQueriedBlocks: number;
  prefixHitBlocks: number;
  /** Tokens whose K/V came from the pool instead of being computed. */
  prefixHitTokens: number;
}

export class Scheduler {
  private readonly waiting: Sequence[] = [];
  /** In admission order: the last is the newest, preempted first. */
  private readonly running: Sequence[] = [];
  private readonly now: () => number;
  private readonly counters: SchedulerCounters = {
    preemptions: 0,
    prefixQueriedBlocks: 0,
    prefixHitBlocks: 0,
    prefixHitTokens: 0,
  };

  constructor(
    readonly blocks: BlockManager,
    readonly options: SchedulerOptions,
  ) {
    const { maxBatch, tokenBudget, maxQueue } = options;
    if (!Number.isInteger(maxBatch) || maxBatch < 1)
      throw new RangeError(`scheduler: maxBatch must be a positive integer, got ${maxBatch}`);
    if (!Number.isInteger(tokenBudget) || tokenBudget < maxBatch)
      throw new RangeError(
        `scheduler: tokenBudget must be an integer ≥ maxBatch (${maxBatch}) so every running sequence can ` +
          `decode in each step, got ${tokenBudget}`,
      );
    if (!Number.isInteger(maxQueue) || maxQueue < 1)
      throw new RangeError(`scheduler: maxQueue must be a positive integer, got ${maxQueue}`);
    this.now = options.now ?? Date.now;
  }

  get waitingCount(): number {
    return this.waiting.length;
  }

  get runningCount(): number {
    return this.running.length;
  }

  get hasWork(): boolean {
    return this.waiting.length > 0 || this.running.length > 0;
  }

  stats(): SchedulerCounters {
    return { ...this.counters };
  }

  /**
   * Queues a request. Throws QueueFullError when `maxQueue` requests wait already, and a RangeError
   * when the request could not fit the pool even alone (it would never finish).
   */
  add(sequence: Sequence): void {
    if (sequence.status !== 'waiting' || sequence.computed !== 0)
      throw new Error(`scheduler: sequence ${sequence.id} was already scheduled`);
    const needed = this.blocks.blocksFor(sequence.maxCachedPositions);
    if (needed > this.blocks.numBlocks)
      throw new RangeError(
        `a context of ${sequence.promptLength} tokens plus up to ${sequence.limits.maxTokens} generated ones needs ` +
          `${needed} blocks of ${this.blocks.blockSize} positions, more than the pool's ${this.blocks.numBlocks}`,
      );
    if (this.waiting.length >= this.options.maxQueue) throw new QueueFullError(this.options.maxQueue);
    if (sequence.limits.maxTokens === 0) {
      this.finish(sequence, 'length');
      return;
    }
    this.waiting.push(sequence);
  }

  /** Ends a request now and frees its blocks; false when it had already finished. */
  cancel(sequence: Sequence): boolean {
    if (sequence.status === 'finished') return false;
    this.finish(sequence, 'cancelled');
    return true;
  }

  /** Ends every request (the engine closing, or a failed step) with `reason`. */
  abortAll(reason: 'cancelled' | 'error', error?: Error): void {
    for (const sequence of [...this.running, ...this.waiting]) this.finish(sequence, reason, error);
  }

  /** Ends the given sequences (e.g. those of a step whose forward failed). */
  fail(sequences: readonly Sequence[], error: Error): void {
    for (const sequence of sequences) if (sequence.status !== 'finished') this.finish(sequence, 'error', error);
  }

  /** The next step, or null when there is nothing to run. */
  schedule(): StepLayout | null {
    this.expireDeadlines();
    const entries: StepEntry[] = [];
    let budget = this.options.tokenBudget;
    let preempted = false;
    for (let i = 0; i < this.running.length && budget > 0; i++) {
      const sequence = this.running[i]!;
      const rows = this.rowsFor(sequence, sequence.computed, budget);
      if (!rows) continue;
      const { count, proposals } = rows;
      let victim: Sequence | null = null;
      while (!this.blocks.ensureCapacity(sequence.id, sequence.computed + count + proposals)) {
        victim = this.running[this.running.length - 1]!;
        this.preempt(victim);
        preempted = true;
        if (victim === sequence) break;
      }
      if (victim === sequence) break;
      entries.push(this.entry(sequence, count, proposals));
      budget -= count + proposals;
    }
    // New sequences wait while running ones are short of blocks: admitting one would only be preempted.
    while (!preempted && budget > 0 && this.waiting.length > 0 && this.running.length < this.options.maxBatch) {
      const sequence = this.waiting[0]!;
      const cached = this.blocks.startSequence(sequence.id, sequence.tokens);
      const rows = this.rowsFor(sequence, cached, budget);
      if (!rows || !this.blocks.ensureCapacity(sequence.id, cached + rows.count + rows.proposals)) {
        this.blocks.freeSequence(sequence.id);
        break;
      }
      const { count, proposals } = rows;
      this.waiting.shift();
      const bs = this.blocks.blockSize;
      this.counters.prefixQueriedBlocks += Math.floor((sequence.tokens.length - 1) / bs);
      this.counters.prefixHitBlocks += cached / bs;
      this.counters.prefixHitTokens += cached;
      sequence.computed = cached;
      sequence.draftComputed = cached;
      sequence.status = 'running';
      this.running.push(sequence);
      entries.push(this.entry(sequence, count, proposals));
      budget -= count + proposals;
    }
    return entries.length === 0 ? null : this.layout(entries);
  }

  /**
   * The decode step that follows `step` while `step` is still on the device and its tokens are unknown: every
   * sequence of `step` decodes its next position, fed the token the device drew for it (the runner copies it; the
   * layout's tokens there are placeholders). Null unless that is surely the step `schedule` would make — `step`
   * decodes every running sequence, nobody waits to join, no sequence reaches its token limit or deadline with
   * `step`'s token — and the pool has the blocks without preempting anyone. A sequence that `step`'s token ends
   * (a stop) computed one position for nothing: `completeRuns` skips it, and the position it wrote lies past its
   * end, in a block that is not full and so never shared.
   */
  scheduleAhead(step: StepLayout): StepLayout | null {
    if (!step.decodeOnly || this.waiting.length > 0 || step.entries.length !== this.running.length) return null;
    const now = this.now();
    for (const { sequence } of step.entries) {
      const { maxTokens, deadline } = sequence.limits;
      if (sequence.status !== 'running' || sequence.generated + 1 >= maxTokens) return null;
      if ((deadline !== null && now >= deadline) || (this.options.lookahead?.(sequence) ?? 0) > 0) return null;
    }
    // Blocks a sequence takes here and keeps if another is refused are the ones its next step needs anyway.
    for (const { sequence, start } of step.entries)
      if (!this.blocks.ensureCapacity(sequence.id, start + 2)) return null;
    return this.layout(
      step.entries.map(({ sequence, start }) => ({
        sequence,
        start: start + 1,
        count: 1,
        samples: true,
        proposals: 0,
      })),
      true,
    );
  }

  /**
   * The rows a sequence with `computed` positions cached runs within `budget`, and the proposals scored
   * after them when they reach its last token; null when not even one row fits (with its proposals, when
   * that row samples).
   */
  private rowsFor(sequence: Sequence, computed: number, budget: number): { count: number; proposals: number } | null {
    const remaining = sequence.tokens.length - computed;
    const proposals = this.options.lookahead?.(sequence) ?? 0;
    if (remaining + proposals <= budget) return { count: remaining, proposals };
    // The rows would reach the last token without room for its proposals: stop one short of it.
    const count = Math.min(remaining - 1, budget);
    return count > 0 ? { count, proposals: 0 } : null;
  }

  /**
   * Applies a step's results: its positions are now in the cache, and `sampled[r]` is the next token of
   * `step.sampling[r]`. Sequences that ended since the step was scheduled (cancelled) are skipped.
   */
  complete(step: StepLayout, sampled: readonly SampledToken[]): void {
    this.completeRuns(
      step,
      sampled.map((token) => [token]),
    );
  }

  /**
   * Applies a step whose sequences may each yield a run of tokens (speculative decoding): `runs[r]` follows
   * `step.sampling[r]`, every token but the last being an accepted proposal whose position the step wrote
   * into the cache. A run is cut where a limit ends its sequence.
   */
  completeRuns(step: StepLayout, runs: readonly (readonly SampledToken[])[]): void {
    if (runs.length !== step.sampling.length)
      throw new RangeError(`scheduler: ${runs.length} sampled runs for ${step.sampling.length} logit rows`);
    for (const { sequence, start, count } of step.entries) {
      if (sequence.status === 'running') sequence.computed = start + count;
    }
    step.sampling.forEach((sequence, r) => {
      const run = runs[r]!;
      if (run.length === 0) throw new RangeError(`scheduler: an empty run for sequence ${sequence.id}`);
      for (let i = 0; i < run.length && sequence.status === 'running'; i++) {
        this.accept(sequence, run[i]!);
        // Accepted proposals were scored, so their positions are in the cache; the last token is fed next step.
        if (i < run.length - 1) sequence.computed++;
      }
    });
    for (const { sequence } of step.entries) {
      if (sequence.status !== 'running') continue;
      let cached = sequence.computed;
      if (this.options.draftCache) cached = sequence.draftComputed = Math.min(sequence.draftComputed, cached);
      this.blocks.markComputed(sequence.id, sequence.tokens, cached);
    }
  }

  private entry(sequence: Sequence, count: number, proposals: number): StepEntry {
    const samples = sequence.computed + count === sequence.tokens.length;
    return { sequence, start: sequence.computed, count, samples, proposals: samples ? proposals : 0 };
  }

  /**
   * Adds a sampled token to a sequence, emits it, and ends the sequence when a limit says so. Every
   * sampled token is emitted once, a stop token too (its own text never is: its event carries only text
   * held back before it, e.g. a character whose bytes it interrupted).
   */
  private accept(sequence: Sequence, sampled: SampledToken): void {
    const { limits, sink } = sequence;
    if (!Number.isInteger(sampled.tokenId) || sampled.tokenId < 0) {
      // The sampler's answer for a row whose every logit is −∞ or NaN.
      this.finish(sequence, 'error', new Error('the model gave no finite logit to sample from'));
      return;
    }
    sequence.tokens.push(sampled.tokenId);
    let reason: 'stop' | 'length' | null = null;
    let text: string;
    if (limits.stopTokenIds.has(sampled.tokenId)) {
      reason = 'stop';
      text = limits.stopText.finish().text;
    } else {
      const piece = limits.stopText.push(sampled.tokenId);
      text = piece.text;
      if (piece.stopped) reason = 'stop';
      else if (sequence.generated >= limits.maxTokens) {
        const tail = limits.stopText.finish();
        text += tail.text;
        reason = tail.stopped ? 'stop' : 'length';
      }
    }
    const event: TokenEvent = { tokenId: sampled.tokenId, text };
    if (sampled.logprob !== undefined) event.logprob = sampled.logprob;
    if (sampled.topLogprobs !== undefined) event.topLogprobs = sampled.topLogprobs;
    sink.token(event);
    if (reason) this.finish(sequence, reason);
  }

  private expireDeadlines(): void {
    const now = this.now();
    for (const sequence of [...this.running, ...this.waiting]) {
      const { deadline } = sequence.limits;
      if (deadline !== null && now >= deadline) this.finish(sequence, 'timeout');
    }
  }

  private preempt(sequence: Sequence): void {
    this.remove(this.running, sequence);
    this.blocks.freeSequence(sequence.id);
    this.options.onRelease?.(sequence);
    sequence.computed = 0;
    sequence.draftComputed = 0;
    sequence.status = 'waiting';
    sequence.preemptions++;
    this.counters.preemptions++;
    this.waiting.unshift(sequence);
  }

  private finish(sequence: Sequence, reason: NonNullable<Sequence['finishReason']>, error?: Error): void {
    if (sequence.status === 'finished') return;
    this.remove(sequence.status === 'running' ? this.running : this.waiting, sequence);
    this.blocks.freeSequence(sequence.id);
    this.options.onRelease?.(sequence);
    sequence.status = 'finished';
    sequence.finishReason = reason;
    sequence.sink.finish(reason, error);
  }

  private remove(list: Sequence[], sequence: Sequence): void {
    const at = list.indexOf(sequence);
    if (at >= 0) list.splice(at, 1);
  }

  /** The step of `entries`; `ahead`: each runs one position past its tokens, fed a placeholder (scheduleAhead). */
  private layout(entries: StepEntry[], ahead = false): StepLayout {
    const forward = buildForwardLayout(
      entries.map((e) => ({
        sequence: e.sequence,
        start: e.start,
        count: e.count,
        logits: e.samples ? 1 : 0,
        beyond: ahead ? AHEAD_PLACEHOLDER : undefined,
      })),
      (sequence) => this.blocks.blockTable(sequence.id),
      this.blocks.blockSize,
    );
    return {
      ...forward,
      entries,
      sampling: entries.filter((e) => e.samples).map((e) => e.sequence),
      decodeOnly: entries.every((e) => e.count === 1 && e.samples && e.proposals === 0),
    };
  }
}
