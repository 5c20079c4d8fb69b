/**
 * JSON schemas of the request bodies of OpenAI's completions and chat completions endpoints, as this
 * server accepts them, and the TypeScript shapes of the requests and responses. Fastify validates every
 * body against these schemas before a handler sees it, so handlers only check what a schema cannot
 * express (e.g. the model's context length). Unknown parameters are refused rather than ignored: a
 * client that asks for something this server does not do (logit_bias, tools, ...) learns so at once.
 */

/** Longest stop string: stop strings are matched against the text after every token. */
export const MAX_STOP_LENGTH = 256;
/** OpenAI's limit on the number of stop strings. */
export const MAX_STOP_STRINGS = 4;
/** Most completions per prompt (n). */
export const MAX_CHOICES = 16;
/** Most top log-probabilities per token (the engine's limit, and OpenAI's for chat). */
export const MAX_TOP_LOGPROBS = 20;
/** Most prompts in one completions request, and messages in one chat request. */
export const MAX_PROMPTS = 64;
export const MAX_MESSAGES = 1024;
/** Token counts and ids are int32 everywhere (positions too). */
const MAX_TOKEN_COUNT = 2 ** 31 - 1;

const stopSchema = {
  anyOf: [
    { type: 'string', minLength: 1, maxLength: MAX_STOP_LENGTH },
    {
      type: 'array',
      maxItems: MAX_STOP_STRINGS,
      items: { type: 'string', minLength: 1, maxLength: MAX_STOP_LENGTH },
    },
    { type: 'null' },
  ],
};

/**
 * Parameters both endpoints share: OpenAI's, plus vLLM's top_k, min_p, repetition_penalty and
 * ignore_eos (generate past the end-of-document token: fixed-length outputs for benchmarks).
 */
const samplingProperties = {
  model: { type: 'string', minLength: 1, maxLength: 256 },
  stream: { type: ['boolean', 'null'] },
  stream_options: {
    type: ['object', 'null'],
    additionalProperties: false,
    properties: { include_usage: { type: 'boolean' } },
  },
  n: { type: ['integer', 'null'], minimum: 1, maximum: MAX_CHOICES },
  max_tokens: { type: ['integer', 'null'], minimum: 1, maximum: MAX_TOKEN_COUNT },
  temperature: { type: ['number', 'null'], minimum: 0, maximum: 2 },
  top_p: { type: ['number', 'null'], exclusiveMinimum: 0, maximum: 1 },
  top_k: { type: ['integer', 'null'], minimum: -1, maximum: MAX_TOKEN_COUNT },
  min_p: { type: ['number', 'null'], minimum: 0, maximum: 1 },
  presence_penalty: { type: ['number', 'null'], minimum: -2, maximum: 2 },
  frequency_penalty: { type: ['number', 'null'], minimum: -2, maximum: 2 },
  repetition_penalty: { type: ['number', 'null'], exclusiveMinimum: 0, maximum: 10 },
  seed: { type: ['integer', 'null'], minimum: -(2 ** 53) + 1, maximum: 2 ** 53 - 1 },
  stop: stopSchema,
  ignore_eos: { type: ['boolean', 'null'] },
  user: { type: 'string', maxLength: 256 },
} as const;

const tokenIds = { type: 'array', minItems: 1, items: { type: 'integer', minimum: 0, maximum: MAX_TOKEN_COUNT } };

export const completionRequestSchema = {
  type: 'object',
  required: ['model', 'prompt'],
  additionalProperties: false,
  properties: {
    ...samplingProperties,
    prompt: {
      anyOf: [
        { type: 'string' },
        { type: 'array', minItems: 1, maxItems: MAX_PROMPTS, items: { type: 'string' } },
        tokenIds,
        { type: 'array', minItems: 1, maxItems: MAX_PROMPTS, items: tokenIds },
      ],
    },
    logprobs: { type: ['integer', 'null'], minimum: 0, maximum: MAX_TOP_LOGPROBS },
  },
} as const;

const textPart = {
  type: 'object',
  required: ['type', 'text'],
  additionalProperties: false,
  properties: { type: { const: 'text' }, text: { type: 'string' } },
};

export const chatCompletionRequestSchema = {
  type: 'object',
  required: ['model', 'messages'],
  additionalProperties: false,
  properties: {
    ...samplingProperties,
    messages: {
      type: 'array',
      minItems: 1,
      maxItems: MAX_MESSAGES,
      items: {
        type: 'object',
        required: ['role', 'content'],
        additionalProperties: false,
        properties: {
          role: { enum: ['system', 'developer', 'user', 'assistant'] },
          content: { anyOf: [{ type: 'string' }, { type: 'array', items: textPart }] },
          name: { type: 'string', maxLength: 256 },
        },
      },
    },
    max_completion_tokens: { type: ['integer', 'null'], minimum: 1, maximum: MAX_TOKEN_COUNT },
    logprobs: { type: ['boolean', 'null'] },
    top_logprobs: { type: ['integer', 'null'], minimum: 0, maximum: MAX_TOP_LOGPROBS },
  },
} as const;

type Nullable<T> = T | null | undefined;

export interface SamplingRequest {
  model: string;
  stream?: Nullable<boolean>;
  stream_options?: Nullable<{ include_usage?: boolean }>;
  n?: Nullable<number>;
  max_tokens?: Nullable<number>;
  temperature?: Nullable<number>;
  top_p?: Nullable<number>;
  top_k?: Nullable<number>;
  min_p?: Nullable<number>;
  presence_penalty?: Nullable<number>;
  frequency_penalty?: Nullable<number>;
  repetition_penalty?: Nullable<number>;
  seed?: Nullable<number>;
  stop?: Nullable<string | string[]>;
  ignore_eos?: Nullable<boolean>;
  user?: string;
}

export interface CompletionRequest extends SamplingRequest {
  prompt: string | string[] | number[] | number[][];
  logprobs?: Nullable<number>;
}

export interface ChatMessage {
  role: 'system' | 'developer' | 'user' | 'assistant';
  content: string | { type: 'text'; text: string }[];
  name?: string;
}

export interface ChatCompletionRequest extends SamplingRequest {
  messages: ChatMessage[];
  max_completion_tokens?: Nullable<number>;
  logprobs?: Nullable<boolean>;
  top_logprobs?: Nullable<number>;
}

export type FinishReason = 'stop' | 'length';

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** Completions' logprobs (the legacy shape: parallel arrays). */
export interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: number[];
  top_logprobs: Record<string, number>[] | null;
  text_offset: number[];
}

export interface ChatTokenLogprob {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: { token: string; logprob: number; bytes: number[] }[];
}

/**
 * Turns a schema validation failure (Ajv's errors) into one sentence naming the parameter, in
 * OpenAI's style, and the parameter's name for the error's `param`.
 */
export function describeValidationError(
  errors: readonly { instancePath: string; keyword: string; message?: string; params: Record<string, unknown> }[],
): { message: string; param: string | null } {
  // With anyOf, Ajv reports each branch's failure and then the anyOf itself: the anyOf is the clearer one.
  const error = errors.find((e) => e.keyword === 'anyOf') ?? errors[0];
  if (!error) return { message: 'The request body is invalid.', param: null };
  const path = error.instancePath
    .split('/')
    .filter(Boolean)
    .map((part, i) => (/^\d+$/.test(part) ? `[${part}]` : i === 0 ? part : `.${part}`))
    .join('');
  const param = path || null;
  if (error.keyword === 'additionalProperties') {
    const name = String(error.params.additionalProperty);
    const full = path ? `${path}.${name}` : name;
    return { message: `Unrecognized request argument supplied: ${full}`, param: full };
  }
  if (error.keyword === 'required') {
    const name = String(error.params.missingProperty);
    const full = path ? `${path}.${name}` : name;
    return { message: `Missing required parameter: '${full}'.`, param: full };
  }
  if (!param) return { message: `Invalid request body: it ${error.message ?? 'is invalid'}.`, param: null };
  if (error.keyword === 'anyOf') return { message: `Invalid type or value for '${param}'.`, param };
  return { message: `Invalid value for '${param}': it ${error.message ?? 'is invalid'}.`, param };
}
