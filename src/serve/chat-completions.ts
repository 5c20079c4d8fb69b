/**
 * POST /v1/chat/completions: the conversation rendered by the model's chat template (./chat-template.ts),
 * `n` replies, streamed as `chat.completion.chunk` deltas (the first carries the role) or returned as
 * one `chat.completion`, with logprobs in chat's shape ({content: [{token, logprob, bytes,
 * top_logprobs}]}).
 */
import type { FastifyReply } from 'fastify';
import type { Tokenizer } from '../data/tokenizer/tokenizer.js';
import { ChatTemplateError, type ChatTemplate } from './chat-template.js';
import { invalidRequest, modelNotFound } from './errors.js';
import type { ChatCompletionRequest, ChatTokenLogprob, Usage } from './openai-schema.js';
import {
  GenerationRun,
  completionBudget,
  responseId,
  samplingParams,
  type ChoiceOutcome,
  type GenerationPlan,
  type ReportedToken,
  type ServeContext,
  usageField,
} from './generation.js';
import { tokenByteList, tokenText } from './token-text.js';
import { ChunkJson } from './chunk-json.js';

function chatLogprobs(tokens: readonly ReportedToken[], tokenizer: Tokenizer): ChatTokenLogprob[] {
  return tokens.map((t) => ({
    token: tokenText(tokenizer, t.tokenId),
    logprob: t.logprob,
    bytes: tokenByteList(tokenizer, t.tokenId),
    top_logprobs: t.topLogprobs.map((top) => ({
      token: tokenText(tokenizer, top.tokenId),
      logprob: top.logprob,
      bytes: tokenByteList(tokenizer, top.tokenId),
    })),
  }));
}

export async function handleChatCompletion(
  ctx: ServeContext,
  template: ChatTemplate,
  body: ChatCompletionRequest,
  reply: FastifyReply,
): Promise<void> {
  if (body.model !== ctx.modelId) throw modelNotFound(body.model, ctx.modelId);
  if (body.max_tokens != null && body.max_completion_tokens != null && body.max_tokens !== body.max_completion_tokens)
    throw invalidRequest(
      'Give max_completion_tokens or max_tokens (its older name), not both with different values.',
      'max_completion_tokens',
    );
  const topLogprobs = body.top_logprobs ?? 0;
  if (topLogprobs > 0 && !body.logprobs)
    throw invalidRequest("'top_logprobs' requires 'logprobs' to be true.", 'top_logprobs');
  let context: Int32Array;
  try {
    context = template.encode(body.messages);
  } catch (error) {
    if (error instanceof ChatTemplateError) throw invalidRequest(error.message, 'messages');
    throw error;
  }
  const asked = body.max_completion_tokens ?? body.max_tokens;
  const param = body.max_completion_tokens != null ? 'max_completion_tokens' : 'max_tokens';
  const maxTokens = completionBudget(ctx.limits, asked, param, context.length, 'messages');
  const wantLogprobs = body.logprobs ?? false;
  const id = responseId('chatcmpl');
  const created = Math.floor(Date.now() / 1000);
  const base = { id, object: 'chat.completion.chunk', created, model: ctx.modelId };
  const deltaChunk = (
    index: number,
    delta: { role?: string; content: string },
    logprobs: { content: ChatTokenLogprob[] } | null,
  ): Record<string, unknown> => ({
    ...base,
    choices: [{ index, delta, logprobs, finish_reason: null }],
    ...usageField(plan),
  });
  /** Per choice: its content chunks after the first, without logprobs, serialized around the text. */
  const contentChunks: ChunkJson[] = [];
  const plan: GenerationPlan = {
    contexts: [context],
    n: body.n ?? 1,
    params: {
      ...samplingParams(body, template.stops),
      maxTokens,
      // The template decides how the context starts (its bos_token).
      startWithEos: false,
      logprobs: wantLogprobs,
      topLogprobs,
    },
    stream: body.stream ?? false,
    includeUsage: body.stream_options?.include_usage ?? false,
    logprobs: wantLogprobs,
    chunk(index, text, tokens, first) {
      if (!first && text === '' && tokens.length === 0) return null;
      if (!first && !wantLogprobs)
        return (contentChunks[index] ??= new ChunkJson((t) => deltaChunk(index, { content: t }, null))).of(text);
      const delta = first ? { role: 'assistant', content: text } : { content: text };
      return JSON.stringify(
        deltaChunk(index, delta, wantLogprobs ? { content: chatLogprobs(tokens, ctx.tokenizer) } : null),
      );
    },
    finishChunk(index, finishReason) {
      return {
        ...base,
        choices: [{ index, delta: {}, logprobs: null, finish_reason: finishReason }],
        ...usageField(this),
      };
    },
    usageChunk(usage: Usage) {
      return { ...base, choices: [], usage };
    },
    response(choices: ChoiceOutcome[], usage: Usage) {
      return {
        id,
        object: 'chat.completion',
        created,
        model: ctx.modelId,
        choices: choices.map((c) => ({
          index: c.index,
          message: { role: 'assistant', content: c.text },
          logprobs: wantLogprobs ? { content: chatLogprobs(c.tokens, ctx.tokenizer) } : null,
          finish_reason: c.finishReason,
        })),
        usage,
      };
    },
  };
  await new GenerationRun(ctx, plan, reply).run();
}
