/**
 * Runs the sequences of one completions or chat completions request on the engine and answers it: as
 * server-sent events while tokens come (`data: {chunk}` per token, `data: [DONE]` at the end), or as one
 * JSON response when all are done. The endpoints (./completions.ts, ./chat-completions.ts) supply the
 * contexts, the engine parameters and the shapes of their chunks and responses; this module owns what
 * they share: submitting every choice, cancelling them all the moment the client goes away, usage,
 * finish reasons, and the latency metrics.
 *
 * Tokens arrive by listener (no promise per token), a whole engine step's at once (from the engine's
 * thread, one message per step: ./engine-link.ts); a response queues their events and writes them once
 * per step, in one write for all of its choices (a microtask after the step's tokens).
 */
import { randomBytes, randomInt } from 'node:crypto';
import type { FastifyReply } from 'fastify';
import type { GenerationParams } from '../inference/engine.js';
import { QueueFullError, type ServedEngine } from './served-engine.js';
import type {
  GenerationListener,
  GenerationResult,
  GenerationStream,
  TokenEvent,
} from '../inference/generation-stream.js';
import type { Tokenizer } from '../data/tokenizer/tokenizer.js';
import { ApiError, contextLengthExceeded, internalError, invalidRequest, queueFull, unavailable } from './errors.js';
import type { FinishReason, SamplingRequest, Usage } from './openai-schema.js';
import type { ServerMetrics } from './metrics.js';

export interface ServeLimits {
  /** Most tokens in a prompt (--max-prompt-tokens). */
  maxPromptTokens: number;
  /** Most tokens a request may generate per choice (--max-tokens); also the default. */
  maxTokens: number;
  /** Positions the model takes (its maxSeqLen): prompt plus completion must fit. */
  contextLength: number;
  /** The engine's queue length (--queue-limit), for the 429 message. */
  queueLimit: number;
}

/** What the endpoints share: the engine, the tokenizer, the served model's name, limits and metrics. */
export interface ServeContext {
  engine: ServedEngine;
  tokenizer: Tokenizer;
  modelId: string;
  limits: ServeLimits;
  metrics: ServerMetrics;
  /** Set once the server is closing: new requests get 503. */
  closing: boolean;
}

/** A generated token as the response reports it (for logprobs). */
export interface ReportedToken {
  tokenId: number;
  logprob: number;
  topLogprobs: { tokenId: number; logprob: number }[];
}

export interface ChoiceOutcome {
  index: number;
  text: string;
  finishReason: FinishReason;
  /** Tokens with log-probabilities (when asked for; stop tokens excluded). */
  tokens: ReportedToken[];
}

/** One endpoint's request, ready to run. */
export interface GenerationPlan {
  /** Context token ids of each prompt; each gets `n` choices (choice index = prompt × n + j). */
  contexts: Int32Array[];
  n: number;
  params: GenerationParams;
  stream: boolean;
  includeUsage: boolean;
  /** Whether tokens' log-probabilities are reported. */
  logprobs: boolean;
  /**
   * Streaming: the JSON of the chunk for one choice's new text (and its tokens, when logprobs are on);
   * null to send none. Called for every token, so serialized by the endpoint, which knows what changes.
   */
  chunk(index: number, text: string, tokens: readonly ReportedToken[], first: boolean): string | null;
  /** Streaming: the chunk that ends one choice. */
  finishChunk(index: number, finishReason: FinishReason): Record<string, unknown>;
  /** Streaming: the last chunk, with usage (stream_options.include_usage). */
  usageChunk(usage: Usage): Record<string, unknown>;
  /** Not streaming: the whole response. */
  response(choices: ChoiceOutcome[], usage: Usage): Record<string, unknown>;
}

/** With include_usage, OpenAI sends `usage: null` on every chunk before the last. */
export function usageField(plan: GenerationPlan): { usage?: null } {
  return plan.includeUsage ? { usage: null } : {};
}

export function responseId(prefix: string): string {
  return `${prefix}-${randomBytes(12).toString('hex')}`;
}

/** The Int32Array of a prompt given as token ids, each checked against the vocabulary. */
export function promptIds(ids: readonly number[], vocab: number, param: string): Int32Array {
  for (const id of ids)
    if (id >= vocab) throw invalidRequest(`Invalid token id ${id} in '${param}': the vocabulary is 0 to ${vocab - 1}.`);
  return Int32Array.from(ids);
}

/**
 * The token budget of a request: the asked max_tokens (or the server's default), checked against the
 * server's limit and the model's context length with the longest prompt. `param` names the token limit's
 * parameter and `promptParam` the prompt's, for the errors.
 */
export function completionBudget(
  limits: ServeLimits,
  asked: number | null | undefined,
  param: string,
  longestPrompt: number,
  promptParam: 'prompt' | 'messages',
): number {
  if (longestPrompt > limits.maxPromptTokens)
    throw contextLengthExceeded(
      `The prompt is ${longestPrompt} tokens, more than this server's limit of ${limits.maxPromptTokens} ` +
        `prompt tokens (--max-prompt-tokens).`,
      promptParam,
    );
  if (asked !== null && asked !== undefined && asked > limits.maxTokens)
    throw invalidRequest(
      `Invalid value for '${param}': ${asked} is more than this server's limit of ${limits.maxTokens} (--max-tokens).`,
      param,
    );
  const room = limits.contextLength - longestPrompt;
  const budget = asked ?? Math.min(limits.maxTokens, room);
  if (budget < 1 || longestPrompt + budget > limits.contextLength)
    throw contextLengthExceeded(
      `This model's maximum context length is ${limits.contextLength} tokens. However, you requested ` +
        `${longestPrompt + Math.max(budget, 1)} tokens (${longestPrompt} in the prompt, ${Math.max(budget, 1)} ` +
        `in the completion). Please reduce the length of the prompt or the completion.`,
      asked === null || asked === undefined ? promptParam : param,
    );
  return budget;
}

/** The engine's sampling parameters from the parameters both endpoints share. */
export function samplingParams(body: SamplingRequest, extraStops: readonly string[]): GenerationParams {
  const stop =
    body.stop === null || body.stop === undefined ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop;
  const params: GenerationParams = { stop: [...stop, ...extraStops] };
  if (body.temperature !== null && body.temperature !== undefined) params.temperature = body.temperature;
  if (body.top_p !== null && body.top_p !== undefined) params.topP = body.top_p;
  if (body.top_k !== null && body.top_k !== undefined) params.topK = Math.max(0, body.top_k);
  if (body.min_p !== null && body.min_p !== undefined) params.minP = body.min_p;
  if (body.presence_penalty !== null && body.presence_penalty !== undefined)
    params.presencePenalty = body.presence_penalty;
  if (body.frequency_penalty !== null && body.frequency_penalty !== undefined)
    params.frequencyPenalty = body.frequency_penalty;
  if (body.repetition_penalty !== null && body.repetition_penalty !== undefined)
    params.repetitionPenalty = body.repetition_penalty;
  if (body.ignore_eos) params.ignoreEos = true;
  // Without a seed every request samples afresh, as OpenAI's do; with one, it reproduces.
  params.seed = body.seed ?? randomInt(0, 2 ** 47);
  return params;
}

/** Submits every choice (all or none); a refusal becomes the API error. */
async function submitAll(ctx: ServeContext, plan: GenerationPlan, signal: AbortSignal): Promise<GenerationStream[]> {
  if (ctx.closing) throw unavailable('The server is shutting down.');
  // Every choice samples differently, reproducibly from the request's seed.
  const choices = plan.contexts.flatMap((context) =>
    Array.from({ length: plan.n }, (_, j) => ({
      context,
      params: { ...plan.params, seed: (plan.params.seed ?? 0) + j, signal },
    })),
  );
  try {
    return await ctx.engine.submitAll(choices);
  } catch (error) {
    if (error instanceof QueueFullError) throw queueFull(ctx.limits.queueLimit);
    if (error instanceof RangeError) throw invalidRequest(error.message);
    throw error;
  }
}

/** The finish reason of a choice that ended by itself (not cancelled, not failed). */
function finishReasonOf(result: GenerationResult): FinishReason {
  return result.finishReason === 'stop' ? 'stop' : 'length';
}

/** Why a choice that did not end by itself failed the request; null when it ended by itself. */
function failureOf(result: GenerationResult): ApiError | null {
  if (result.finishReason === 'error') return internalError(`generation failed: ${result.error?.message ?? 'unknown'}`);
  // The client has not gone (its own cancellation answers nothing): the engine was closed under it.
  if (result.finishReason === 'cancelled') return unavailable('The server is shutting down.');
  return null;
}

const NO_TOKENS: readonly ReportedToken[] = [];

/** One server-sent event carrying `data` (a JSON text, or [DONE]). */
const sseEvent = (data: string): string => `data: ${data}\n\n`;

/** One choice of a request as the run follows it. */
interface Choice {
  readonly index: number;
  readonly stream: GenerationStream;
  /** Its tokens with log-probabilities, when they are reported and the response is not streamed. */
  readonly tokens: ReportedToken[];
  result: GenerationResult | null;
  /** Whether a chunk of it was queued (chat's first chunk carries the role). */
  opened: boolean;
  /** Tokens it got since the last write, and when that write of its tokens was (for the inter-token latency). */
  unwritten: number;
  lastWrittenAt: number | null;
}

export class GenerationRun {
  private readonly startedAt: number;
  /** Aborted when the client goes away (and only then): every choice's request is given its signal. */
  private readonly abort = new AbortController();
  private readonly stopTokenIds: ReadonlySet<number>;
  private choices: Choice[] = [];
  private firstTokenNoted = false;
  /** Server-sent events not yet written, and whether a write after the current step is queued. */
  private pending = '';
  private writeQueued = false;
  private failure: ApiError | null = null;

  constructor(
    private readonly ctx: ServeContext,
    private readonly plan: GenerationPlan,
    private readonly reply: FastifyReply,
  ) {
    this.startedAt = performance.now();
    // Stop tokens end a choice without being part of its text, so its logprobs leave them out too.
    const stops = plan.params.stopTokenIds ?? [];
    this.stopTokenIds = new Set(plan.params.ignoreEos ? stops : [ctx.tokenizer.eosId, ...stops]);
  }

  /** Answers the request; resolves when the response is complete or the client has gone. */
  async run(): Promise<void> {
    // A client that goes away (closes the connection) cancels every sequence at once, freeing its blocks.
    const onClose = (): void => {
      if (!this.reply.raw.writableFinished) this.leave();
    };
    this.reply.raw.once('close', onClose);
    let streams: GenerationStream[];
    try {
      streams = await submitAll(this.ctx, this.plan, this.abort.signal);
    } catch (error) {
      this.reply.raw.off('close', onClose);
      throw error;
    }
    // Gone while the request was read and checked: nothing to answer.
    if (this.reply.raw.destroyed) this.leave();
    this.ctx.metrics.inFlight++;
    try {
      if (this.plan.stream) this.openEventStream();
      await this.follow(streams);
      if (this.plan.stream) this.endEventStream();
      else await this.jsonResponse();
    } finally {
      this.ctx.metrics.inFlight--;
      this.reply.raw.off('close', onClose);
      for (const stream of streams) stream.cancel();
    }
  }

  /** The client has gone: every choice is cancelled (through the signal their requests were given). */
  private leave(): void {
    this.abort.abort();
  }

  private get clientGone(): boolean {
    return this.abort.signal.aborted;
  }

  /** Listens to every choice; resolves when all have ended. */
  private follow(streams: GenerationStream[]): Promise<void> {
    return new Promise((resolve) => {
      let running = streams.length;
      this.choices = streams.map((stream, index) => ({
        index,
        stream,
        tokens: [],
        result: null,
        opened: false,
        unwritten: 0,
        lastWrittenAt: null,
      }));
      for (const choice of this.choices) {
        const listener: GenerationListener = {
          token: (event) => this.onToken(choice, event),
          end: (result) => {
            choice.result = result;
            try {
              if (this.plan.stream) this.onStreamedEnd(choice, result);
            } finally {
              // Counted whatever happens, or the response would wait for this choice forever.
              if (--running === 0) resolve();
            }
          },
        };
        choice.stream.listen(listener);
      }
    });
  }

  private onToken(choice: Choice, event: TokenEvent): void {
    if (!this.firstTokenNoted) {
      this.firstTokenNoted = true;
      this.ctx.metrics.timeToFirstToken.observe((performance.now() - this.startedAt) / 1000);
    }
    const token = this.reported(event);
    if (!this.plan.stream) {
      if (token) choice.tokens.push(token);
      return;
    }
    choice.unwritten++;
    const chunk = this.plan.chunk(choice.index, event.text, token ? [token] : NO_TOKENS, !choice.opened);
    if (chunk !== null) {
      choice.opened = true;
      this.pending += sseEvent(chunk);
    }
    this.queueWrite();
  }

  /** A streamed choice ended: its finish chunk, or the failure the response will end with. */
  private onStreamedEnd(choice: Choice, result: GenerationResult): void {
    const failure = failureOf(result);
    if (failure) {
      // A cancellation the client caused by leaving is no failure: nobody is left to tell.
      if (result.finishReason !== 'cancelled' || !this.clientGone) this.failure ??= failure;
      return;
    }
    const opening = choice.opened ? null : this.plan.chunk(choice.index, '', NO_TOKENS, true);
    if (opening !== null) this.pending += sseEvent(opening);
    this.pending += sseEvent(JSON.stringify(this.plan.finishChunk(choice.index, finishReasonOf(result))));
    this.queueWrite();
  }

  private queueWrite(): void {
    if (this.writeQueued) return;
    this.writeQueued = true;
    // The engine hands out a whole step's tokens before the microtasks run: one write carries them all.
    queueMicrotask(this.writePending);
  }

  private readonly writePending = (): void => {
    this.writeQueued = false;
    this.noteWritten();
    if (this.pending === '') return;
    const { raw } = this.reply;
    if (!raw.destroyed && !this.clientGone) {
      // Corked, the response's write goes out at once, in one system call with its chunk framing, instead
      // of Node uncorking on the next tick. (A pipelined response waiting for its socket buffers its writes.)
      const socket = raw.socket;
      socket?.cork();
      raw.write(this.pending);
      socket?.uncork();
    }
    this.pending = '';
  };

  /** The inter-token latencies of the tokens about to be written. */
  private noteWritten(): void {
    const now = performance.now();
    const latency = this.ctx.metrics.interTokenLatency;
    for (const choice of this.choices) {
      if (choice.unwritten === 0) continue;
      // Tokens written together reach the client together: all but the first of them after no wait.
      if (choice.lastWrittenAt !== null) latency.observe((now - choice.lastWrittenAt) / 1000);
      for (let i = 1; i < choice.unwritten; i++) latency.observe(0);
      choice.unwritten = 0;
      choice.lastWrittenAt = now;
    }
  }

  private usage(results: readonly GenerationResult[]): Usage {
    let prompt = 0;
    // The n choices of a prompt share its tokens: they count once, as OpenAI counts them.
    for (let p = 0; p < this.plan.contexts.length; p++) prompt += results[p * this.plan.n]!.usage.promptTokens;
    const completion = results.reduce((n, r) => n + r.usage.completionTokens, 0);
    this.ctx.metrics.promptTokens += prompt;
    this.ctx.metrics.completionTokens += completion;
    return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
  }

  private reported(event: TokenEvent): ReportedToken | null {
    if (!this.plan.logprobs || event.logprob === undefined || this.stopTokenIds.has(event.tokenId)) return null;
    return { tokenId: event.tokenId, logprob: event.logprob, topLogprobs: event.topLogprobs ?? [] };
  }

  private results(): GenerationResult[] {
    return this.choices.map((choice) => choice.result!);
  }

  private async jsonResponse(): Promise<void> {
    if (this.clientGone) return;
    const choices = this.choices.map(({ index, result, tokens }) => {
      const failure = failureOf(result!);
      if (failure) throw failure;
      return { index, text: result!.text, finishReason: finishReasonOf(result!), tokens };
    });
    const body = this.plan.response(choices, this.usage(this.results()));
    await this.reply.code(200).send(body);
  }

  private openEventStream(): void {
    this.reply.hijack();
    this.reply.raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
  }

  /** Every choice has ended: what is still queued, then the failure or the usage, then [DONE]. */
  private endEventStream(): void {
    const raw = this.reply.raw;
    if (this.clientGone || raw.destroyed) {
      raw.destroy();
      return;
    }
    this.noteWritten();
    let events = this.pending;
    this.pending = '';
    if (this.failure) events += sseEvent(JSON.stringify(this.failure.toBody()));
    else {
      const usage = this.usage(this.results());
      if (this.plan.includeUsage) events += sseEvent(JSON.stringify(this.plan.usageChunk(usage)));
    }
    raw.end(events + sseEvent('[DONE]'));
  }
}
