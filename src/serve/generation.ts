/**
 * Runs the sequences of one completions or chat completions request on the engine and answers it: as
 * server-sent events while tokens come (`data: {chunk}` per token, `data: [DONE]` at the end), or as one
 * JSON response when all are done. The endpoints (./completions.ts, ./chat-completions.ts) supply the
 * contexts, the engine parameters and the shapes of their chunks and responses; this module owns what
 * they share: submitting every choice, cancelling them all the moment the client goes away, usage,
 * finish reasons, and the latency metrics.
 */
import { randomBytes, randomInt } from 'node:crypto';
import type { FastifyReply } from 'fastify';
import { QueueFullError, type GenerationParams, type InferenceEngine } from '../inference/engine.js';
import type { GenerationResult, GenerationStream, TokenEvent } from '../inference/generation-stream.js';
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
  engine: InferenceEngine;
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
  /** Streaming: the chunk for one choice's new text (and its tokens, when logprobs are on); null to send none. */
  chunk(index: number, text: string, tokens: ReportedToken[], first: boolean): Record<string, unknown> | null;
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

/** Submits every choice; on any refusal, cancels those already submitted and throws the API error. */
function submitAll(ctx: ServeContext, plan: GenerationPlan, signal: AbortSignal): GenerationStream[] {
  if (ctx.closing) throw unavailable('The server is shutting down.');
  const streams: GenerationStream[] = [];
  try {
    for (const context of plan.contexts)
      for (let j = 0; j < plan.n; j++) {
        // Every choice samples differently, reproducibly from the request's seed.
        streams.push(ctx.engine.submit(context, { ...plan.params, seed: (plan.params.seed ?? 0) + j, signal }));
      }
    return streams;
  } catch (error) {
    for (const stream of streams) stream.cancel();
    if (error instanceof QueueFullError) throw queueFull(ctx.limits.queueLimit);
    if (error instanceof RangeError) throw invalidRequest(error.message);
    throw error;
  }
}

function finishReasonOf(result: GenerationResult): FinishReason {
  if (result.finishReason === 'error') throw internalError(`generation failed: ${result.error?.message ?? 'unknown'}`);
  // The client has not gone (its own cancellation answers nothing): the engine was closed under it.
  if (result.finishReason === 'cancelled') throw unavailable('The server is shutting down.');
  return result.finishReason === 'stop' ? 'stop' : 'length';
}

export class GenerationRun {
  private readonly startedAt: number;
  private readonly abort = new AbortController();
  private readonly stopTokenIds: ReadonlySet<number>;

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
      if (!this.reply.raw.writableFinished) this.abort.abort();
    };
    const streams = submitAll(this.ctx, this.plan, this.abort.signal);
    this.reply.raw.once('close', onClose);
    // Gone while the request was read and checked: nothing to answer.
    if (this.reply.raw.destroyed) this.abort.abort();
    this.ctx.metrics.inFlight++;
    try {
      if (this.plan.stream) await this.streamResponse(streams);
      else await this.jsonResponse(streams);
    } finally {
      this.ctx.metrics.inFlight--;
      this.reply.raw.off('close', onClose);
      for (const stream of streams) stream.cancel();
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

  private noteFirstToken(state: { firstAt: number | null }): void {
    if (state.firstAt !== null) return;
    state.firstAt = performance.now();
    this.ctx.metrics.timeToFirstToken.observe((state.firstAt - this.startedAt) / 1000);
  }

  private async jsonResponse(streams: GenerationStream[]): Promise<void> {
    const first = { firstAt: null as number | null };
    const collected = await Promise.all(
      streams.map(async (stream) => {
        const tokens: ReportedToken[] = [];
        for await (const event of stream) {
          this.noteFirstToken(first);
          const token = this.reported(event);
          if (token) tokens.push(token);
        }
        return { tokens, result: await stream.result };
      }),
    );
    if (this.abort.signal.aborted) return;
    const choices = collected.map(({ tokens, result }, index) => ({
      index,
      text: result.text,
      finishReason: finishReasonOf(result),
      tokens,
    }));
    const body = this.plan.response(choices, this.usage(collected.map((c) => c.result)));
    await this.reply.code(200).send(body);
  }

  private async streamResponse(streams: GenerationStream[]): Promise<void> {
    const raw = this.reply.raw;
    this.reply.hijack();
    raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    const send = (data: unknown): void => {
      if (!raw.destroyed && !this.abort.signal.aborted) raw.write(`data: ${JSON.stringify(data)}\n\n`);
    };
    const first = { firstAt: null as number | null };
    let failure: ApiError | null = null;
    const results = await Promise.all(
      streams.map(async (stream, index) => {
        let lastAt: number | null = null;
        let sentFirst = false;
        try {
          for await (const event of stream) {
            const now = performance.now();
            this.noteFirstToken(first);
            if (lastAt !== null) this.ctx.metrics.interTokenLatency.observe((now - lastAt) / 1000);
            lastAt = now;
            const token = this.reported(event);
            const chunk = this.plan.chunk(index, event.text, token ? [token] : [], !sentFirst);
            if (chunk) {
              send(chunk);
              sentFirst = true;
            }
          }
        } catch (error) {
          failure ??= internalError(`generation failed: ${(error as Error).message}`);
        }
        const result = await stream.result;
        if (result.finishReason === 'error')
          failure ??= internalError(`generation failed: ${result.error?.message ?? 'unknown'}`);
        else if (result.finishReason === 'cancelled') {
          if (!this.abort.signal.aborted) failure ??= unavailable('The server is shutting down.');
        } else {
          const opening = sentFirst ? null : this.plan.chunk(index, '', [], true);
          if (opening) send(opening);
          send(this.plan.finishChunk(index, finishReasonOf(result)));
        }
        return result;
      }),
    );
    if (this.abort.signal.aborted || raw.destroyed) {
      raw.destroy();
      return;
    }
    if (failure) send((failure as ApiError).toBody());
    else {
      const usage = this.usage(results);
      if (this.plan.includeUsage) send(this.plan.usageChunk(usage));
    }
    raw.end('data: [DONE]\n\n');
  }
}
