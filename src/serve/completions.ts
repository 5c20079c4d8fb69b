/**
 * POST /v1/completions: text completion of one or several prompts (text or token ids), `n` choices
 * each, streamed or not, with the legacy logprobs shape (parallel arrays of tokens, their
 * log-probabilities, the top alternatives and text offsets).
 */
import type { FastifyReply } from 'fastify';
import type { Tokenizer } from '../data/tokenizer/tokenizer.js';
import { modelNotFound } from './errors.js';
import type { CompletionLogprobs, CompletionRequest, Usage } from './openai-schema.js';
import {
  GenerationRun,
  completionBudget,
  promptIds,
  responseId,
  samplingParams,
  type ChoiceOutcome,
  type GenerationPlan,
  type ReportedToken,
  type ServeContext,
  usageField,
} from './generation.js';
import { tokenText } from './token-text.js';
import { ChunkJson } from './chunk-json.js';

/** Contexts of the prompt(s): each starts with the end-of-document token, as documents do in training. */
function contextsOf(prompt: CompletionRequest['prompt'], tokenizer: Tokenizer): Int32Array[] {
  const withStart = (ids: Int32Array): Int32Array => {
    const context = new Int32Array(ids.length + 1);
    context[0] = tokenizer.eosId;
    context.set(ids, 1);
    return context;
  };
  if (typeof prompt === 'string') return [withStart(tokenizer.encode(prompt))];
  if (prompt.every((p) => typeof p === 'string'))
    return (prompt as string[]).map((p) => withStart(tokenizer.encode(p)));
  if (prompt.every((p) => typeof p === 'number'))
    return [withStart(promptIds(prompt as number[], tokenizer.vocabSize, 'prompt'))];
  return (prompt as number[][]).map((ids, i) => withStart(promptIds(ids, tokenizer.vocabSize, `prompt[${i}]`)));
}

function legacyLogprobs(tokens: readonly ReportedToken[], tokenizer: Tokenizer, offset: number): CompletionLogprobs {
  const strings = tokens.map((t) => tokenText(tokenizer, t.tokenId));
  const offsets: number[] = [];
  for (const s of strings) {
    offsets.push(offset);
    offset += s.length;
  }
  return {
    tokens: strings,
    token_logprobs: tokens.map((t) => t.logprob),
    top_logprobs: tokens.map((t) =>
      Object.fromEntries(t.topLogprobs.map((top) => [tokenText(tokenizer, top.tokenId), top.logprob])),
    ),
    text_offset: offsets,
  };
}

export async function handleCompletion(ctx: ServeContext, body: CompletionRequest, reply: FastifyReply): Promise<void> {
  if (body.model !== ctx.modelId) throw modelNotFound(body.model, ctx.modelId);
  const contexts = contextsOf(body.prompt, ctx.tokenizer);
  const longest = Math.max(...contexts.map((c) => c.length));
  const maxTokens = completionBudget(ctx.limits, body.max_tokens, 'max_tokens', longest, 'prompt');
  const topLogprobs = body.logprobs ?? null;
  const id = responseId('cmpl');
  const created = Math.floor(Date.now() / 1000);
  const base = { id, object: 'text_completion', created, model: ctx.modelId };
  const n = body.n ?? 1;
  const textChunk = (index: number, text: string, logprobs: CompletionLogprobs | null): Record<string, unknown> => ({
    ...base,
    choices: [{ index, text, logprobs, finish_reason: null }],
    ...usageField(plan),
  });
  /** Per choice: its chunks without logprobs, serialized around the text. */
  const plainChunks: ChunkJson[] = [];
  /** Per choice: characters streamed so far, the text offset of its next tokens (logprobs). */
  const streamedLength: number[] = [];
  const plan: GenerationPlan = {
    contexts,
    n,
    params: {
      ...samplingParams(body, []),
      maxTokens,
      startWithEos: false,
      logprobs: topLogprobs !== null,
      topLogprobs: topLogprobs ?? 0,
    },
    stream: body.stream ?? false,
    includeUsage: body.stream_options?.include_usage ?? false,
    logprobs: topLogprobs !== null,
    chunk(index, text, tokens) {
      if (text === '' && tokens.length === 0) return null;
      if (topLogprobs === null)
        return (plainChunks[index] ??= new ChunkJson((t) => textChunk(index, t, null))).of(text);
      const offset = streamedLength[index] ?? 0;
      streamedLength[index] = offset + text.length;
      return JSON.stringify(textChunk(index, text, legacyLogprobs(tokens, ctx.tokenizer, offset)));
    },
    finishChunk(index, finishReason) {
      return {
        ...base,
        choices: [{ index, text: '', logprobs: null, finish_reason: finishReason }],
        ...usageField(this),
      };
    },
    usageChunk(usage: Usage) {
      return { ...base, choices: [], usage };
    },
    response(choices: ChoiceOutcome[], usage: Usage) {
      return {
        ...base,
        choices: choices.map((c) => ({
          index: c.index,
          text: c.text,
          logprobs: topLogprobs === null ? null : legacyLogprobs(c.tokens, ctx.tokenizer, 0),
          finish_reason: c.finishReason,
        })),
        usage,
      };
    },
  };
  await new GenerationRun(ctx, plan, reply).run();
}
