/**
 * Errors in OpenAI's shape — `{"error": {"message", "type", "param", "code"}}` — with the HTTP status
 * OpenAI gives the same fault, so that every OpenAI client reports them as it would OpenAI's own.
 */

export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    /** Extra response headers (e.g. Retry-After). */
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }

  toBody(): OpenAIErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** 400: the request is malformed or a value is out of range. */
export function invalidRequest(message: string, param: string | null = null, code: string | null = null): ApiError {
  return new ApiError(400, 'invalid_request_error', message, param, code);
}

/** 400: prompt plus requested tokens exceed what the model (or this server) can hold. */
export function contextLengthExceeded(message: string, param: string): ApiError {
  return new ApiError(400, 'invalid_request_error', message, param, 'context_length_exceeded');
}

export function unauthorized(): ApiError {
  return new ApiError(
    401,
    'invalid_request_error',
    'Incorrect or missing API key: send it as "Authorization: Bearer <key>".',
    null,
    'invalid_api_key',
  );
}

export function modelNotFound(model: string, served: string): ApiError {
  return new ApiError(
    404,
    'invalid_request_error',
    `The model '${model}' does not exist; this server serves '${served}'.`,
    'model',
    'model_not_found',
  );
}

export function routeNotFound(method: string, url: string): ApiError {
  return new ApiError(404, 'invalid_request_error', `Unknown request URL: ${method} ${url}.`, null, 'unknown_url');
}

export function bodyTooLarge(limit: number): ApiError {
  return new ApiError(
    413,
    'invalid_request_error',
    `The request body is larger than this server's limit of ${limit} bytes (--body-limit).`,
    null,
    'request_too_large',
  );
}

/** 429: the queue of waiting requests is full; the client should retry (the OpenAI SDK does, after Retry-After). */
export function queueFull(limit: number): ApiError {
  return new ApiError(
    429,
    'rate_limit_error',
    `The server is busy: ${limit} requests are already waiting (--queue-limit). Retry shortly.`,
    null,
    'queue_full',
    { 'retry-after': '1' },
  );
}

/** 503: the server is shutting down and takes no new requests. */
export function unavailable(message: string): ApiError {
  return new ApiError(503, 'server_error', message, null, 'unavailable');
}

export function internalError(message: string): ApiError {
  return new ApiError(500, 'server_error', message, null, null);
}
