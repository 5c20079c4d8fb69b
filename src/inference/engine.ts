/**
 * InferenceEngine: many generation requests at once over one model.
 *
 * ```ts
 * const engine = new InferenceEngine(model, tokenizer, { maxBatch: 32 });
 * const stream = engine.submit('Call me Ishmael.', { maxTokens: 100, temperature: 0.7, stop: ['\n\n'] });
 * for await (const { text } of stream) process.stdout.write(text);
 * const { finishReason, usage } = await stream.result;
 * await engine.close();
 * ```
 *
 * Requests are queued and run by continuous batching (./scheduler.ts) over a paged KV cache whose blocks
 * the block manager accounts (./block-manager.ts): each step of the model serves every running request
 * at once — decodes, and prefill chunks of new prompts within a token budget — and requests join and
 * leave between steps. The engine runs steps while there is work, yielding to the event loop after each
 * one, so a server on the same thread keeps answering. Each request samples with its own parameters
 * and seed on the device (./device-sampling.ts) and streams its text as whole characters, stop strings held back
 * (./stop-text.ts).
 *
 * With a draft model (`draft` option), every sampling sequence has the draft propose tokens that the target
 * scores in the same step (./speculative-decoder.ts): the output is the target's own (identical under greedy,
 * the same distribution when sampling), several tokens per step when the draft guesses well.
 */
import type { Tokenizer } from '../data/tokenizer/tokenizer.js';
import type { LanguageModel } from '../train/model.js';
import type { Andromeda } from '../model/andromeda.js';
import { BlockManager, type BlockUsage } from './block-manager.js';
import { Scheduler, type SampledToken, type StepLayout } from './scheduler.js';
import { Sequence, type SequenceLimits } from './sequence.js';
import { StopTextFilter } from './stop-text.js';
import { validateSamplingParams, type SamplingParams } from './sampling-params.js';
import { RequestSampling } from './device-sampling.js';
import { GenerationStream } from './generation-stream.js';
import { createStepRunner, pagedAndromedaOf } from './runners.js';
import { PagedRunner } from './paged-runner.js';
import { SpeculativeDecoder, type SpeculativeStats } from './speculative-decoder.js';
import type { KVCacheKind, StepRunner } from './step-runner.js';
import { ThroughputMeter } from './throughput.js';
import type { DecodeReplayTiming, LaunchedDecode } from './decode-graphs.js';

export { GenerationStream };
export { QueueFullError } from './scheduler.js';
export type { GenerationResult, GenerationUsage, FinishReason, TokenEvent } from './generation-stream.js';
export type { SamplingParams } from './sampling-params.js';
export type { SpeculativeStats } from './speculative-decoder.js';

/** Parameters of one request: sampling (see SamplingParams) and limits. */
export interface GenerationParams extends SamplingParams {
  /**
   * Most tokens to generate. Default 256. Capped to what the cache pool holds for this request alone, so
   * a request never waits for memory it could not get.
   */
  maxTokens?: number;
  /** Generation ends before the first of these strings in the decoded text; the stop string is not emitted. */
  stop?: string | readonly string[];
  /** Token ids that end generation (in addition to the end-of-document token). */
  stopTokenIds?: readonly number[];
  /** Keep generating past the end-of-document token. Default false. */
  ignoreEos?: boolean;
  /** Start the context with the end-of-document token, as documents start in training. Default true. */
  startWithEos?: boolean;
  /** The request ends with finishReason 'timeout' this many milliseconds after submit. */
  timeoutMs?: number;
  /** Aborting it cancels the request (finishReason 'cancelled'). */
  signal?: AbortSignal;
}

export interface InferenceEngineOptions {
  /** Positions per cache block: a power of two ≤ 256. Default 32. */
  blockSize?: number;
  /** Blocks in the cache pool. Default: what `memoryBytes` holds. */
  numBlocks?: number;
  /** Bytes of the KV-cache pool when numBlocks is not given. Default 1 GiB. */
  memoryBytes?: number;
  /** Most requests running at once (rows of one step). Default 64. */
  maxBatch?: number;
  /** Most tokens in one step (decodes + prefill chunks); longer prompts are prefilled in chunks. Default 512. */
  tokenBudget?: number;
  /** Most requests waiting; `submit` throws QueueFullError beyond. Default 1024. */
  maxQueue?: number;
  /** Share the cache blocks of identical prompt prefixes between requests. Default true. */
  prefixSharing?: boolean;
  /** Replay decode steps as CUDA graphs (one per batch-size bucket) on CUDA devices. Default true. */
  cudaGraphs?: boolean;
  /**
   * Take the graph path on the CPU engine too, whose graphs replay by running the step again: it tests
   * the path (fixed buffers, padding, bucketing) without a GPU, at the cost of the padding rows. Default false.
   */
  graphsOnCpu?: boolean;
  /**
   * Launch each replayed decode step before reading the tokens of the step it follows (the device feeds them
   * over), so the host's work between steps overlaps the device's. A sequence that stops then computes one
   * position for nothing. Default true.
   */
  overlapSteps?: boolean;
  /**
   * Speculative decoding: a smaller model over the same tokenizer proposes `tokens` tokens (1 to 15) per
   * step for every request it can serve (no logprobs, penalties or min-p: those sample as usual), which the
   * model verifies in one forward. Its cache shares the block tables: each block holds both models' K/V,
   * and `memoryBytes` pays for both. The default tokenBudget grows to maxBatch · (tokens + 1).
   */
  draft?: { model: EngineModel; tokens: number };
}

export interface EngineStats {
  /** Requests waiting for their first step (or preempted and waiting to be recomputed). */
  waiting: number;
  running: number;
  /** Cache blocks: used by requests, cached (free but reusable by a matching prefix), free. */
  blocks: BlockUsage & { blockSize: number };
  prefixCache: {
    /** Full context blocks looked up when requests were admitted. */
    queriedBlocks: number;
    /** Of them, found in the pool (not computed again). */
    hitBlocks: number;
    hitTokens: number;
  };
  /** Times a running request lost its blocks to memory pressure and was recomputed later. */
  preemptions: number;
  /** Steps run so far. */
  steps: number;
  /** Tokens generated so far, all requests. */
  generatedTokens: number;
  /** Generated tokens per second over the last few seconds. */
  tokensPerSecond: number;
  /** Milliseconds from submit to first token: of the last request that got one, and the mean over all. */
  timeToFirstTokenMs: { last: number | null; mean: number | null };
  /** Whether the model runs over the paged cache. */
  paged: boolean;
  /**
   * How the model's keys and values are kept (KVCacheKind): a cache per sequence for models whose attention the
   * paged kernel lacks, none (recomputation) for models without a cached forward and for dynamic NTK.
   */
  kvCache: KVCacheKind;
  /**
   * Graphs captured so far (one per batch-size and block-table-width bucket used): decode graphs, the
   * draft's, and speculative steps' (speculative.graphVerifications counts their replays).
   */
  graphs: number;
  /**
   * Replayed decode steps, per step in milliseconds: `waitMs` the host spent blocked on the step's sampled ids;
   * `hostGapMs` from one step's ids to the launch of the next when that launch left the device idle (the host's
   * scheduling and uploads), null when none did; `overlapped` the share of steps launched while the one before
   * still ran (overlapSteps), which leave the device no gap. Null before any replay or without graphs.
   */
  decodeReplays: { steps: number; waitMs: number; hostGapMs: number | null; overlapped: number } | null;
  /** Speculative decoding's counters, when the engine has a draft model (else null). */
  speculative: SpeculativeStats | null;
}

/** Most proposals per step: beyond this nearly every step is cut short by a rejection. */
export const MAX_DRAFT_TOKENS = 15;

const DEFAULTS = {
  blockSize: 32,
  memoryBytes: 2 ** 30,
  maxBatch: 64,
  tokenBudget: 512,
  maxQueue: 1024,
  maxTokens: 256,
};

/** A model as the engine accepts it: a LanguageModel (e.g. from a checkpoint) of any family. */
export type EngineModel = LanguageModel;

export class InferenceEngine {
  readonly tokenizer: Tokenizer;
  private readonly modelVocab: number;
  private readonly runner: StepRunner;
  private readonly blocks: BlockManager;
  private readonly scheduler: Scheduler;
  private readonly speculative: SpeculativeDecoder | null = null;
  private readonly samplers = new Map<Sequence, RequestSampling>();
  private readonly throughput = new ThroughputMeter();
  private nextId = 1;
  private steps = 0;
  private generatedTokens = 0;
  private firstTokens = { count: 0, totalMs: 0, lastMs: null as number | null };
  private loop: Promise<void> | null = null;
  private closed = false;
  private readonly overlapSteps: boolean;
  /** The decode step launched before the host read the tokens of the step it follows (runStep). */
  private ahead: { layout: StepLayout; launched: LaunchedDecode } | null = null;

  /**
   * The engine puts the model in eval mode and owns the cache it allocates (freed by `close`); the
   * model itself stays the caller's.
   */
  constructor(model: EngineModel, tokenizer: Tokenizer, options: InferenceEngineOptions = {}) {
    const draft = options.draft ? checkDraft(options.draft, model, tokenizer) : null;
    const o = {
      ...DEFAULTS,
      ...options,
      tokenBudget:
        options.tokenBudget ??
        Math.max(DEFAULTS.tokenBudget, (options.maxBatch ?? DEFAULTS.maxBatch) * ((draft?.tokens ?? 0) + 1)),
    };
    for (const [name, value] of Object.entries({ maxBatch: o.maxBatch, maxQueue: o.maxQueue })) {
      if (!Number.isInteger(value) || value < 1)
        throw new RangeError(`InferenceEngine: ${name} must be a positive integer, got ${value}`);
    }
    const bs = o.blockSize;
    if (!Number.isInteger(bs) || bs < 1 || bs > 256 || (bs & (bs - 1)) !== 0)
      throw new RangeError(`InferenceEngine: blockSize must be a power of two from 1 to 256, got ${bs}`);
    const rowsPerSequence = (draft?.tokens ?? 0) + 1;
    if (!Number.isInteger(o.tokenBudget) || o.tokenBudget < o.maxBatch * rowsPerSequence)
      throw new RangeError(
        draft
          ? `InferenceEngine: tokenBudget must be an integer ≥ maxBatch · (draft tokens + 1) = ` +
              `${o.maxBatch * rowsPerSequence}, so every running request can verify its proposals in each step, ` +
              `got ${o.tokenBudget}`
          : `InferenceEngine: tokenBudget must be an integer ≥ maxBatch (${o.maxBatch}), got ${o.tokenBudget}`,
      );
    if (options.numBlocks !== undefined && (!Number.isInteger(options.numBlocks) || options.numBlocks < 1))
      throw new RangeError(`InferenceEngine: numBlocks must be a positive integer, got ${options.numBlocks}`);
    if (!(Number.isFinite(o.memoryBytes) && o.memoryBytes > 0))
      throw new RangeError(`InferenceEngine: memoryBytes must be a positive number, got ${o.memoryBytes}`);
    if (tokenizer.vocabSize > model.vocabSize)
      throw new RangeError(
        `InferenceEngine: the tokenizer's vocabulary (${tokenizer.vocabSize}) exceeds the model's (${model.vocabSize})`,
      );
    this.tokenizer = tokenizer;
    this.modelVocab = model.vocabSize;
    this.overlapSteps = options.overlapSteps ?? true;
    model.eval();
    this.runner = createStepRunner(model, {
      blockSize: o.blockSize,
      numBlocks: options.numBlocks,
      memoryBytes: o.memoryBytes,
      vocab: tokenizer.vocabSize,
      maxBatch: o.maxBatch,
      cudaGraphs: options.cudaGraphs ?? true,
      graphsOnCpu: options.graphsOnCpu ?? false,
      draft: draft ?? undefined,
    });
    try {
      // Shared prefixes save work only where K/V live in the pool the block manager accounts.
      const prefixSharing = (o.prefixSharing ?? true) && this.runner.kvCache === 'paged';
      const blocks = (this.blocks = new BlockManager(this.runner.numBlocks, o.blockSize, prefixSharing));
      if (draft) {
        if (!(this.runner instanceof PagedRunner)) throw new Error('InferenceEngine: the draft needs a paged target');
        options.draft!.model.eval();
        this.speculative = new SpeculativeDecoder(draft.model, this.runner, {
          tokens: draft.tokens,
          numBlocks: this.runner.numBlocks,
          blockSize: o.blockSize,
          vocab: tokenizer.vocabSize,
          blockTable: (sequence) => blocks.blockTable(sequence.id),
          maxBatch: o.maxBatch,
          graphs: this.runner.replaysGraphs,
        });
      }
      const speculative = this.speculative;
      this.scheduler = new Scheduler(this.blocks, {
        maxBatch: o.maxBatch,
        tokenBudget: o.tokenBudget,
        maxQueue: o.maxQueue,
        draftCache: speculative !== null,
        onRelease: (sequence) => this.runner.release?.(sequence),
        lookahead: speculative
          ? (sequence) => speculative.proposalsFor(sequence, this.samplers.get(sequence)!)
          : undefined,
      });
    } catch (e) {
      this.speculative?.dispose();
      this.runner.dispose();
      throw e;
    }
  }

  /**
   * Queues a request. `prompt` is text (tokenized) or token ids. Throws at once, before anything is
   * queued, on bad parameters (RangeError naming the parameter), a request that could never fit the
   * cache, a full queue (QueueFullError) or a closed engine.
   */
  submit(prompt: string | Int32Array, params: GenerationParams = {}): GenerationStream {
    if (this.closed) throw new Error('InferenceEngine: the engine is closed');
    const context = this.contextOf(prompt, params.startWithEos ?? true);
    const limits = this.limitsOf(params, context.length);
    const id = this.nextId++;
    let sequence: Sequence | null = null;
    const stream = new GenerationStream(id, context.length, () => {
      if (sequence && this.scheduler.cancel(sequence)) this.wake();
    });
    const onAbort = (): void => stream.cancel();
    const sink = stream.sink;
    sequence = new Sequence(id, context, limits, {
      token: (event) => {
        if (sequence!.generated === 1) this.recordFirstToken(stream);
        sink.token(event);
      },
      finish: (reason, error) => {
        params.signal?.removeEventListener('abort', onAbort);
        this.samplers.delete(sequence!);
        sink.finish(reason, error);
      },
    });
    this.samplers.set(sequence, new RequestSampling(params));
    try {
      this.scheduler.add(sequence);
    } catch (e) {
      this.samplers.delete(sequence);
      throw e;
    }
    if (params.signal) {
      if (params.signal.aborted) stream.cancel();
      else params.signal.addEventListener('abort', onAbort, { once: true });
    }
    this.wake();
    return stream;
  }

  stats(): EngineStats {
    const counters = this.scheduler.stats();
    return {
      waiting: this.scheduler.waitingCount,
      running: this.scheduler.runningCount,
      blocks: { ...this.blocks.usage(), blockSize: this.blocks.blockSize },
      prefixCache: {
        queriedBlocks: counters.prefixQueriedBlocks,
        hitBlocks: counters.prefixHitBlocks,
        hitTokens: counters.prefixHitTokens,
      },
      preemptions: counters.preemptions,
      steps: this.steps,
      generatedTokens: this.generatedTokens,
      tokensPerSecond: this.throughput.rate(),
      timeToFirstTokenMs: {
        last: this.firstTokens.lastMs,
        mean: this.firstTokens.count === 0 ? null : this.firstTokens.totalMs / this.firstTokens.count,
      },
      paged: this.runner.kvCache === 'paged',
      kvCache: this.runner.kvCache,
      graphs: this.runner.capturedGraphs + (this.speculative?.capturedGraphs ?? 0),
      decodeReplays: replayStats(this.runner.decodeReplayTiming ?? null),
      speculative: this.speculative?.stats() ?? null,
    };
  }

  /** Cancels every request, waits for the step in progress, and frees the cache. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) {
      await this.loop;
      return;
    }
    this.closed = true;
    this.scheduler.abortAll('cancelled');
    await this.loop;
    this.speculative?.dispose();
    this.runner.dispose();
  }

  /**
   * The request's limits. The token limit is capped to what the pool holds for this request alone (the
   * last generated token needs no cache position), so any accepted request can finish.
   */
  private limitsOf(params: GenerationParams, contextLength: number): SequenceLimits {
    validateSamplingParams(params);
    const requested = params.maxTokens ?? DEFAULTS.maxTokens;
    if (!Number.isInteger(requested) || requested < 0)
      throw new RangeError(`maxTokens must be an integer ≥ 0, got ${requested}`);
    const capacity = this.blocks.numBlocks * this.blocks.blockSize;
    if (contextLength > capacity)
      throw new RangeError(
        `the prompt takes ${contextLength} positions, more than the ${capacity} of the cache pool ` +
          `(${this.blocks.numBlocks} blocks of ${this.blocks.blockSize})`,
      );
    const maxTokens = Math.min(requested, capacity - contextLength + 1);
    const stops = params.stop === undefined ? [] : typeof params.stop === 'string' ? [params.stop] : [...params.stop];
    for (const s of stops)
      if (typeof s !== 'string' || s === '')
        throw new RangeError(`stop strings must be non-empty strings, got ${JSON.stringify(s)}`);
    const stopTokenIds = new Set<number>(params.ignoreEos ? [] : [this.tokenizer.eosId]);
    for (const id of params.stopTokenIds ?? []) {
      if (!Number.isInteger(id) || id < 0 || id >= this.tokenizer.vocabSize)
        throw new RangeError(
          `stopTokenIds: ${id} is not a token id of the tokenizer (0 to ${this.tokenizer.vocabSize - 1})`,
        );
      stopTokenIds.add(id);
    }
    const { timeoutMs } = params;
    if (timeoutMs !== undefined && !(Number.isFinite(timeoutMs) && timeoutMs > 0))
      throw new RangeError(`timeoutMs must be a positive number, got ${timeoutMs}`);
    return {
      maxTokens,
      stopTokenIds,
      stopText: new StopTextFilter(this.tokenizer, stops),
      deadline: timeoutMs === undefined ? null : Date.now() + timeoutMs,
    };
  }

  private contextOf(prompt: string | Int32Array, startWithEos: boolean): Int32Array {
    let ids: Int32Array;
    if (typeof prompt === 'string') ids = this.tokenizer.encode(prompt);
    else if (prompt instanceof Int32Array) {
      const vocab = this.modelVocab;
      const bad = prompt.findIndex((id) => id < 0 || id >= vocab);
      if (bad >= 0)
        throw new RangeError(`prompt token ${bad} is ${prompt[bad]}, outside the model's vocabulary 0 to ${vocab - 1}`);
      ids = prompt;
    } else throw new TypeError('prompt must be a string or an Int32Array of token ids');
    if (!startWithEos && ids.length > 0) return ids;
    const context = new Int32Array(ids.length + 1);
    context[0] = this.tokenizer.eosId;
    context.set(ids, 1);
    return context;
  }

  /** Starts the step loop if it is idle and there is work. */
  private wake(): void {
    if (this.loop || this.closed || !this.scheduler.hasWork) return;
    this.loop = this.runLoop().finally(() => {
      this.loop = null;
      // Work submitted while the loop was ending.
      this.wake();
    });
  }

  private async runLoop(): Promise<void> {
    // Start after the current task, so that requests submitted together share the first step.
    await yieldToEventLoop();
    try {
      while (!this.closed && this.scheduler.hasWork) {
        this.step();
        await yieldToEventLoop();
      }
    } finally {
      // The sequences the step ahead ran for ended (or the engine closed): its work is done for nothing.
      this.dropAhead();
    }
  }

  /** One step: schedule (or take the step launched ahead), run the model, sample, hand the tokens on. */
  private step(): void {
    const ahead = this.ahead;
    this.ahead = null;
    const layout = ahead?.layout ?? this.scheduler.schedule();
    if (!layout) return;
    // Undefined for a sequence that ended while a step launched ahead ran for it: its tokens are dropped.
    const rows = layout.sampling.map((sequence) => this.samplers.get(sequence));
    let runs: SampledToken[][];
    try {
      runs = this.runStep(layout, rows, ahead?.launched ?? null);
      runs.forEach((run, r) => run.forEach((token) => rows[r]?.accept(token.tokenId)));
    } catch (e) {
      const error = e instanceof Error ? e : new Error(String(e));
      this.dropAhead();
      this.scheduler.fail(
        layout.entries.map((entry) => entry.sequence),
        error,
      );
      return;
    }
    this.steps++;
    const before = layout.sampling.reduce((n, sequence) => n + sequence.generated, 0);
    this.scheduler.completeRuns(layout, runs);
    const generated = layout.sampling.reduce((n, sequence) => n + sequence.generated, 0) - before;
    this.generatedTokens += generated;
    this.throughput.add(generated);
  }

  /**
   * Runs a step (or collects the one launched ahead for it). A decode step the runner can launch without waiting
   * has the step after it launched before its own tokens are read (Scheduler.scheduleAhead), so the host's work
   * between the two — reading, streaming, scheduling — overlaps the device's instead of idling it.
   */
  private runStep(
    layout: StepLayout,
    rows: readonly (RequestSampling | undefined)[],
    launchedAhead: LaunchedDecode | null,
  ): SampledToken[][] {
    if (this.speculative) return this.speculative.run(layout, (sequence) => this.samplers.get(sequence)!);
    const launched = launchedAhead ?? this.runner.launch?.(layout, everyRow(rows), null) ?? null;
    if (!launched) return this.runner.run(layout, everyRow(rows)).map((token) => [token]);
    let aheadError: unknown = null;
    try {
      // scheduleAhead refuses a step with a sequence that has ended, so every row has its state here.
      const next = this.overlapSteps ? this.scheduler.scheduleAhead(layout) : null;
      const following = next && this.runner.launch!(next, everyRow(rows), launched);
      if (next && following) this.ahead = { layout: next, launched: following };
    } catch (e) {
      aheadError = e;
    }
    // Collected whatever happened above: a read left pending would hold one of the device's few slots.
    const tokens = this.runner.collect!(launched);
    if (aheadError) throw aheadError;
    return tokens.map((token) => [token]);
  }

  /** Waits out the step launched ahead, if any, and forgets it. */
  private dropAhead(): void {
    const ahead = this.ahead;
    this.ahead = null;
    if (!ahead) return;
    try {
      this.runner.collect!(ahead.launched);
    } catch {
      // Its sequences have ended or failed already; a device error shows again on the next step.
    }
  }

  private recordFirstToken(stream: GenerationStream): void {
    const ms = stream.elapsedMs;
    this.firstTokens.count++;
    this.firstTokens.totalMs += ms;
    this.firstTokens.lastMs = ms;
  }
}

/**
 * The draft option checked against the model and tokenizer, before anything is allocated: a model with a
 * paged forward on the target's device, whose vocabulary covers the tokenizer's.
 */
function checkDraft(
  draft: NonNullable<InferenceEngineOptions['draft']>,
  model: EngineModel,
  tokenizer: Tokenizer,
): { model: Andromeda; tokens: number } {
  const { tokens } = draft;
  if (!Number.isInteger(tokens) || tokens < 1 || tokens > MAX_DRAFT_TOKENS)
    throw new RangeError(
      `InferenceEngine: draft.tokens must be an integer from 1 to ${MAX_DRAFT_TOKENS}, got ${tokens}`,
    );
  if (draft.model === model)
    throw new RangeError('InferenceEngine: the draft must be a different model than the target');
  const paged = pagedAndromedaOf(draft.model);
  if (!paged)
    throw new RangeError(
      'InferenceEngine: the draft model does not decode over a paged KV cache (an Andromeda model whose ' +
        'attention the paged kernels support), which speculative decoding needs',
    );
  if (tokenizer.vocabSize > paged.config.vocabSize)
    throw new RangeError(
      `InferenceEngine: the tokenizer's vocabulary (${tokenizer.vocabSize}) exceeds the draft model's ` +
        `(${paged.config.vocabSize})`,
    );
  const device = (m: EngineModel): string => m.namedParameters()[0]?.[1].device ?? 'cpu';
  if (device(draft.model) !== device(model))
    throw new RangeError(`InferenceEngine: the draft is on ${device(draft.model)}, the model on ${device(model)}`);
  return { model: paged, tokens };
}

/** The rows of a step whose sequences are all running (each has its sampling state). */
function everyRow(rows: readonly (RequestSampling | undefined)[]): RequestSampling[] {
  const missing = rows.indexOf(undefined);
  if (missing >= 0) throw new Error(`InferenceEngine: row ${missing} of the step has no running request`);
  return rows as RequestSampling[];
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Per-step means of the decode replays' timing (EngineStats.decodeReplays). */
function replayStats(t: DecodeReplayTiming | null): EngineStats['decodeReplays'] {
  if (!t || t.replays === 0) return null;
  return {
    steps: t.replays,
    waitMs: t.waitMs / t.replays,
    hostGapMs: t.gaps === 0 ? null : t.hostGapMs / t.gaps,
    overlapped: t.overlapped / t.replays,
  };
}
