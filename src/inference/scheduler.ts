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
 */
import { BlockManager } from './block-manager.js';
import type { Sequence, TokenEvent, TokenLogprobs } from './sequence.js';

export interface SchedulerOptions {
  /** Most sequences in one step (and running at once). */
  maxBatch: number;
  /** Most tokens (query rows) in one step: decodes count one, prefill chunks their length. */
  tokenBudget: number;
  /** Most requests waiting for their first step; more are refused. */
  maxQueue: number;
  /** Clock for deadlines, in ms (tests pass their own). */
  now?: () => number;
}

/** One sequence's part of a step: its positions start .. start + count − 1. */
export interface StepEntry {
  sequence: Sequence;
  start: number;
  count: number;
  /** Whether this step reaches the end of its tokens, so its last row's logits pick the next token. */
  samples: boolean;
}

/**
 * A step of the paged forward, host side (int32 arrays, uploaded by the model runner). Field meanings
 * are those of PagedBatchArgs and PagedStep in the inference contract.
 */
export interface StepLayout {
  entries: StepEntry[];
  numSeqs: number;
  blockSize: number;
  /** Tokens of every query row, sequence after sequence, [T]. */
  tokens: Int32Array;
  /** [numSeqs + 1]: sequence s owns rows queryStart[s] .. queryStart[s + 1] − 1. */
  queryStart: Int32Array;
  /** [numSeqs]: positions of sequence s in the cache once this step's are written. */
  contextLens: Int32Array;
  /** [numSeqs, maxBlocksPerSeq], −1 past a sequence's table. */
  blockTables: Int32Array;
  maxBlocksPerSeq: number;
  maxQueryLen: number;
  maxContextLen: number;
  /** [T]: pool row of every row's position. */
  slots: Int32Array;
  /** [R]: rows whose logits pick a next token, in the order of `sampling`. */
  logitRows: Int32Array;
  /** The sequence of each logit row. */
  sampling: Sequence[];
  /** True when every sequence decodes exactly one token (the step a CUDA graph can replay). */
  decodeOnly: boolean;
}

/** A sampled token and, when asked, its log-probabilities. */
export interface SampledToken extends Partial<TokenLogprobs> {
  tokenId: number;
}

/** Thrown by `add` when the queue is full: the caller should retry later (HTTP 503/429). */
export class QueueFullError extends Error {
  constructor(limit: number) {
    super(`the inference queue is full (${limit} requests waiting); try again later`);
    this.name = 'QueueFullError';
  }
}

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
      const count = Math.min(sequence.tokens.length - sequence.computed, budget);
      let victim: Sequence | null = null;
      while (!this.blocks.ensureCapacity(sequence.id, sequence.computed + count)) {
        victim = this.running[this.running.length - 1]!;
        this.preempt(victim);
        preempted = true;
        if (victim === sequence) break;
      }
      if (victim === sequence) break;
      entries.push(this.entry(sequence, count));
      budget -= count;
    }
    // New sequences wait while running ones are short of blocks: admitting one would only be preempted.
    while (!preempted && budget > 0 && this.waiting.length > 0 && this.running.length < this.options.maxBatch) {
      const sequence = this.waiting[0]!;
      const cached = this.blocks.startSequence(sequence.id, sequence.tokens);
      const count = Math.min(sequence.tokens.length - cached, budget);
      if (!this.blocks.ensureCapacity(sequence.id, cached + count)) {
        this.blocks.freeSequence(sequence.id);
        break;
      }
      this.waiting.shift();
      const bs = this.blocks.blockSize;
      this.counters.prefixQueriedBlocks += Math.floor((sequence.tokens.length - 1) / bs);
      this.counters.prefixHitBlocks += cached / bs;
      this.counters.prefixHitTokens += cached;
      sequence.computed = cached;
      sequence.status = 'running';
      this.running.push(sequence);
      entries.push(this.entry(sequence, count));
      budget -= count;
    }
    return entries.length === 0 ? null : this.layout(entries);
  }

  /**
   * Applies a step's results: its positions are now in the cache, and `sampled[r]` is the next token of
   * `step.sampling[r]`. Sequences that ended since the step was scheduled (cancelled) are skipped.
   */
  complete(step: StepLayout, sampled: readonly SampledToken[]): void {
    if (sampled.length !== step.sampling.length)
      throw new RangeError(`scheduler: ${sampled.length} sampled tokens for ${step.sampling.length} logit rows`);
    for (const { sequence, start, count } of step.entries) {
      if (sequence.status !== 'running') continue;
      sequence.computed = start + count;
      this.blocks.markComputed(sequence.id, sequence.tokens, sequence.computed);
    }
    step.sampling.forEach((sequence, r) => {
      if (sequence.status === 'running') this.accept(sequence, sampled[r]!);
    });
  }

  private entry(sequence: Sequence, count: number): StepEntry {
    return { sequence, start: sequence.computed, count, samples: sequence.computed + count === sequence.tokens.length };
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
    sequence.computed = 0;
    sequence.status = 'waiting';
    sequence.preemptions++;
    this.counters.preemptions++;
    this.waiting.unshift(sequence);
  }

  private finish(sequence: Sequence, reason: NonNullable<Sequence['finishReason']>, error?: Error): void {
    if (sequence.status === 'finished') return;
    this.remove(sequence.status === 'running' ? this.running : this.waiting, sequence);
    this.blocks.freeSequence(sequence.id);
    sequence.status = 'finished';
    sequence.finishReason = reason;
    sequence.sink.finish(reason, error);
  }

  private remove(list: Sequence[], sequence: Sequence): void {
    const at = list.indexOf(sequence);
    if (at >= 0) list.splice(at, 1);
  }

  private layout(entries: StepEntry[]): StepLayout {
    const bs = this.blocks.blockSize;
    const numSeqs = entries.length;
    const totalRows = entries.reduce((n, e) => n + e.count, 0);
    let maxBlocksPerSeq = 1;
    let maxQueryLen = 0;
    let maxContextLen = 0;
    for (const e of entries) {
      maxBlocksPerSeq = Math.max(maxBlocksPerSeq, this.blocks.blockTable(e.sequence.id).length);
      maxQueryLen = Math.max(maxQueryLen, e.count);
      maxContextLen = Math.max(maxContextLen, e.start + e.count);
    }
    const tokens = new Int32Array(totalRows);
    const slots = new Int32Array(totalRows);
    const queryStart = new Int32Array(numSeqs + 1);
    const contextLens = new Int32Array(numSeqs);
    const blockTables = new Int32Array(numSeqs * maxBlocksPerSeq).fill(-1);
    const logitRows: number[] = [];
    const sampling: Sequence[] = [];
    let row = 0;
    entries.forEach((e, s) => {
      const table = this.blocks.blockTable(e.sequence.id);
      blockTables.set(table, s * maxBlocksPerSeq);
      queryStart[s] = row;
      contextLens[s] = e.start + e.count;
      for (let p = e.start; p < e.start + e.count; p++, row++) {
        tokens[row] = e.sequence.tokens[p]!;
        slots[row] = table[Math.floor(p / bs)]! * bs + (p % bs);
      }
      if (e.samples) {
        logitRows.push(row - 1);
        sampling.push(e.sequence);
      }
    });
    queryStart[numSeqs] = row;
    return {
      entries,
      numSeqs,
      blockSize: bs,
      tokens,
      queryStart,
      contextLens,
      blockTables,
      maxBlocksPerSeq,
      maxQueryLen,
      maxContextLen,
      slots,
      logitRows: Int32Array.from(logitRows),
      sampling,
      decodeOnly: entries.every((e) => e.count === 1 && e.samples),
    };
  }
}
