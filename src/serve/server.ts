/**
 * The HTTP server of `andromeda serve`: a Fastify app with OpenAI's endpoints over an inference engine.
 * It runs in its own thread (./http-thread.ts, started by ./start-server.ts) and reaches the engine in the
 * main thread through ./engine-link.ts.
 *
 *   GET  /                      the chat page (./page/index.html)
 *   GET  /health                200 {"status":"ok"} while serving; 503 while shutting down
 *   GET  /metrics               Prometheus text (./metrics.ts)
 *   GET  /v1/models[/:id]       the served model
 *   POST /v1/completions        ./completions.ts
 *   POST /v1/chat/completions   ./chat-completions.ts
 *
 * Defences, in the order a request meets them: Node's header and request timeouts (a slow-loris client
 * that trickles its request is cut off with 408), the API key on /v1/ (checked in constant time before
 * the body is read), the body size limit (413, enforced while reading), strict JSON parsing (400;
 * `__proto__` keys refused), schema validation without type coercion (400 naming the parameter), then
 * the handlers' own checks (context length, model name) before anything reaches the engine. Every
 * error leaves in OpenAI's error shape.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply } from 'fastify';
import type { ServedEngine } from './served-engine.js';
import type { Tokenizer } from '../data/tokenizer/tokenizer.js';
import {
  ApiError,
  bodyTooLarge,
  internalError,
  invalidRequest,
  routeNotFound,
  unauthorized,
  unavailable,
} from './errors.js';
import {
  chatCompletionRequestSchema,
  completionRequestSchema,
  describeValidationError,
  type ChatCompletionRequest,
  type CompletionRequest,
} from './openai-schema.js';
import type { ChatTemplate } from './chat-template.js';
import { ServerMetrics } from './metrics.js';
import type { ServeContext, ServeLimits } from './generation.js';
import { handleCompletion } from './completions.js';
import { handleChatCompletion } from './chat-completions.js';

export interface ServerOptions {
  engine: ServedEngine;
  tokenizer: Tokenizer;
  chatTemplate: ChatTemplate;
  /** The name clients pass as `model`. */
  modelId: string;
  limits: ServeLimits;
  /** Clients must send "Authorization: Bearer <apiKey>" on /v1/; null = open. */
  apiKey: string | null;
  /** Largest request body in bytes (413 beyond). */
  bodyLimit: number;
  /** Milliseconds a client has to send a whole request (408 beyond). Default 30 s. */
  requestTimeoutMs?: number;
}

export const PAGE_PATH = fileURLToPath(new URL('../../../src/serve/page/index.html', import.meta.url));

/** The page may talk to this server only, and load nothing from anywhere. */
const PAGE_SECURITY_POLICY =
  "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; " +
  "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/**
 * Whether an Authorization header carries the key. Both sides are hashed first, so the comparison is
 * of equal lengths and takes the same time whatever the header holds.
 */
export function authorized(header: string | undefined, keyDigest: Buffer): boolean {
  const match = /^Bearer\s+(.+)$/i.exec(header ?? '');
  const given = digest(match ? match[1]!.trim() : '');
  return timingSafeEqual(given, keyDigest) && match !== null;
}

function sendError(reply: FastifyReply, error: ApiError): FastifyReply {
  return reply
    .code(error.status)
    .headers({ ...error.headers })
    .type('application/json; charset=utf-8')
    .send(error.toBody());
}

/** Fastify's and Node's own errors, as OpenAI errors. */
function toApiError(error: FastifyError, bodyLimit: number): ApiError {
  if (error instanceof ApiError) return error;
  if (error.validation) {
    const { message, param } = describeValidationError(error.validation as never);
    return invalidRequest(message, param);
  }
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return bodyTooLarge(bodyLimit);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ApiError(
        415,
        'invalid_request_error',
        'Send the request body as JSON, with "Content-Type: application/json".',
        null,
        'unsupported_media_type',
      );
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return invalidRequest('The request body is empty; send a JSON object.');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return invalidRequest('The Content-Length header does not match the body.');
  }
  if (error instanceof SyntaxError || error.code === 'FST_ERR_CTP_INVALID_JSON_BODY')
    return invalidRequest(
      `We could not parse the JSON body of your request (${error.message}). ` +
        'The OpenAI API expects a JSON payload.',
    );
  const status = error.statusCode ?? 500;
  if (status >= 400 && status < 500) return new ApiError(status, 'invalid_request_error', error.message);
  return internalError('The server had an error while processing your request.');
}

/**
 * Answers what Node's HTTP parser refuses before Fastify sees a request (a malformed request line or
 * headers, a request not received within the timeout) with an OpenAI error, and closes the connection.
 */
function answerClientError(error: NodeJS.ErrnoException, socket: Duplex): void {
  if (error.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const [status, reason, message] =
    error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [408, 'Request Timeout', 'The request was not received in time (--request-timeout).']
      : error.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'Request Header Fields Too Large', 'The request headers are too large.']
        : [400, 'Bad Request', 'The request is not valid HTTP.'];
  const body = JSON.stringify(new ApiError(status, 'invalid_request_error', message).toBody());
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/** Bytes of a refused request's body the server reads and discards so that the client receives the answer. */
const DRAIN_LIMIT_BYTES = 64 << 20;

/**
 * Lets a client still uploading a refused body (413, or a body that failed to parse) read the answer.
 * Fastify asks for "Connection: close" here, and Node then closes a socket with unread bytes in it, which
 * makes the kernel reset the connection and drop the answer the client had not read yet (fetch reports
 * EPIPE). Instead the connection stays open while Node discards the rest of the body — at most
 * DRAIN_LIMIT_BYTES, and no longer than the request timeout — and the HTTP parser, which knows where the
 * body ends, reads the next request after it.
 */
function drainUnreadBody(request: IncomingMessage, reply: FastifyReply): void {
  if (request.complete) return;
  reply.removeHeader('connection');
  let discarded = 0;
  request.on('data', (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > DRAIN_LIMIT_BYTES) request.socket.destroy();
  });
}

export async function createServer(options: ServerOptions): Promise<FastifyInstance> {
  const page = readFileSync(PAGE_PATH);
  const requestTimeout = options.requestTimeoutMs ?? 30_000;
  const keyDigest = options.apiKey === null ? null : digest(options.apiKey);
  const metrics = new ServerMetrics();
  const ctx: ServeContext = {
    engine: options.engine,
    tokenizer: options.tokenizer,
    modelId: options.modelId,
    limits: options.limits,
    metrics,
    closing: false,
  };
  let httpServer: Server | null = null;
  const app = Fastify({
    bodyLimit: options.bodyLimit,
    logger: false,
    forceCloseConnections: true,
    return503OnClosing: true,
    // Types must be what the schema says: "5" is not a number and extra fields are refused, not dropped.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: false } },
    clientErrorHandler: answerClientError,
    serverFactory: (handler) => {
      httpServer = createHttpServer(
        {
          requestTimeout,
          headersTimeout: Math.min(requestTimeout, 10_000),
          // How often Node looks for requests past their timeouts (its default, 30 s, lets slow clients linger).
          connectionsCheckingInterval: Math.min(1000, requestTimeout),
          keepAliveTimeout: 5000,
        },
        handler,
      );
      return httpServer;
    },
  });

  // Only JSON bodies: Fastify would otherwise hand text/plain bodies to the handlers as strings.
  app.removeContentTypeParser('text/plain');
  // JSON is UTF-8 (RFC 8259): a body that is not is refused rather than read with replacement characters.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    let text: string;
    try {
      text = strictUtf8.decode(body as Buffer);
    } catch {
      done(invalidRequest('The request body is not valid UTF-8.'), undefined);
      return;
    }
    parseJson(request, text, done);
  });
  app.addHook('onRequest', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    reply.raw.once('close', () => metrics.countRequest(route, reply.raw.statusCode));
    if (keyDigest && request.url.startsWith('/v1/') && !authorized(request.headers.authorization, keyDigest))
      return sendError(reply, unauthorized());
    if (ctx.closing && request.url.startsWith('/v1/'))
      return sendError(reply, unavailable('The server is shutting down.'));
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    drainUnreadBody(request.raw, reply);
    sendError(reply, toApiError(error, options.bodyLimit));
  });
  app.setNotFoundHandler((request, reply) => {
    sendError(reply, routeNotFound(request.method, request.url.slice(0, 200)));
  });

  app.get('/', (_request, reply) => {
    reply
      .type('text/html; charset=utf-8')
      .header('content-security-policy', PAGE_SECURITY_POLICY)
      .header('x-content-type-options', 'nosniff')
      .send(page);
  });
  app.get('/health', (_request, reply) => {
    if (ctx.closing) return sendError(reply, unavailable('The server is shutting down.'));
    return { status: 'ok', model: ctx.modelId };
  });
  app.get('/metrics', async (_request, reply) => {
    const stats = await ctx.engine.stats();
    return reply.type('text/plain; version=0.0.4; charset=utf-8').send(metrics.render(stats));
  });
  const modelCard = {
    id: ctx.modelId,
    object: 'model',
    created: Math.floor(Date.now() / 1000),
    owned_by: 'andromeda',
    max_model_len: ctx.limits.contextLength,
  };
  app.get('/v1/models', async () => ({ object: 'list', data: [modelCard] }));
  app.get<{ Params: { id: string } }>('/v1/models/:id', async (request) => {
    if (request.params.id !== ctx.modelId)
      throw new ApiError(
        404,
        'invalid_request_error',
        `The model '${request.params.id}' does not exist; this server serves '${ctx.modelId}'.`,
        'model',
        'model_not_found',
      );
    return modelCard;
  });
  app.post<{ Body: CompletionRequest }>(
    '/v1/completions',
    { schema: { body: completionRequestSchema } },
    async (request, reply) => handleCompletion(ctx, request.body, reply),
  );
  app.post<{ Body: ChatCompletionRequest }>(
    '/v1/chat/completions',
    { schema: { body: chatCompletionRequestSchema } },
    async (request, reply) => handleChatCompletion(ctx, options.chatTemplate, request.body, reply),
  );

  app.addHook('preClose', async () => {
    ctx.closing = true;
  });
  await app.ready();
  if (!httpServer) throw new Error('unreachable: Fastify did not create the HTTP server');
  return app;
}
