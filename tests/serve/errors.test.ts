// Every class of error the server gives, with OpenAI's status and shape, through the openai client
// where it can send the request, and raw HTTP where it cannot (malformed JSON, oversized bodies).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { CONTEXT_LENGTH, MODEL_ID, startServer, type TestServer } from './helpers.js';

let server: TestServer;
let secured: TestServer;
before(async () => {
  server = await startServer();
  secured = await startServer({ apiKey: 'sesame-1234' });
});
after(async () => {
  await server?.close();
  await secured?.close();
});

interface ErrorReply {
  status: number;
  body: { error: { message: string; type: string; param: string | null; code: string | null } };
  headers: Headers;
}

async function post(url: string, body: string, headers: Record<string, string> = {}): Promise<ErrorReply> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
  });
  return { status: response.status, body: await response.json(), headers: response.headers };
}

function assertShape(reply: ErrorReply, status: number, match: RegExp, param?: string | null): void {
  assert.equal(reply.status, status, JSON.stringify(reply.body));
  const { error } = reply.body;
  assert.deepEqual(Object.keys(error).sort(), ['code', 'message', 'param', 'type']);
  assert.equal(typeof error.type, 'string');
  assert.match(error.message, match);
  if (param !== undefined) assert.equal(error.param, param);
}

const completions = (s: TestServer): string => `${s.url}/v1/completions`;
const chat = (s: TestServer): string => `${s.url}/v1/chat/completions`;

test('400: malformed JSON, empty bodies, __proto__ keys', async () => {
  assertShape(await post(completions(server), '{"model": "x", "prompt": '), 400, /could not parse the JSON body/);
  assertShape(await post(completions(server), '{"model": NaN}'), 400, /could not parse the JSON body/);
  assertShape(await post(completions(server), ''), 400, /empty/);
  assertShape(
    await post(completions(server), `{"model": "${MODEL_ID}", "prompt": "a", "__proto__": {"x": 1}}`),
    400,
    /./,
  );
});

test('400: wrong types, named by their parameter; no coercion of "5" to 5', async () => {
  const base = { model: MODEL_ID, prompt: 'the' };
  const cases: [Record<string, unknown>, string][] = [
    [{ ...base, max_tokens: '5' }, 'max_tokens'],
    [{ ...base, temperature: 'hot' }, 'temperature'],
    [{ ...base, n: 1.5 }, 'n'],
    [{ ...base, stream: 'yes' }, 'stream'],
    [{ ...base, stop: [1, 2] }, 'stop'],
    [{ ...base, prompt: { text: 'the' } }, 'prompt'],
    [{ ...base, seed: 0.5 }, 'seed'],
  ];
  for (const [body, param] of cases)
    assertShape(await post(completions(server), JSON.stringify(body)), 400, new RegExp(param), param);
  assertShape(
    await post(chat(server), JSON.stringify({ model: MODEL_ID, messages: [{ role: 'robot', content: 'hi' }] })),
    400,
    /messages\[0\]\.role/,
    'messages[0].role',
  );
  assertShape(
    await post(chat(server), JSON.stringify({ model: MODEL_ID })),
    400,
    /Missing required parameter: 'messages'/,
  );
});

test('400: values out of range, unknown parameters, unsupported combinations', async () => {
  const base = { model: MODEL_ID, prompt: 'the' };
  const cases: [Record<string, unknown>, RegExp, string][] = [
    [{ ...base, temperature: -1 }, /temperature/, 'temperature'],
    [{ ...base, top_p: 0 }, /top_p/, 'top_p'],
    [{ ...base, max_tokens: -3 }, /max_tokens/, 'max_tokens'],
    [{ ...base, n: 0 }, /n/, 'n'],
    [{ ...base, logprobs: 21 }, /logprobs/, 'logprobs'],
    [{ ...base, stop: ['a', 'b', 'c', 'd', 'e'] }, /stop/, 'stop'],
    [{ ...base, stop: 'x'.repeat(257) }, /stop/, 'stop'],
    [{ ...base, logit_bias: { 1: 5 } }, /Unrecognized request argument supplied: logit_bias/, 'logit_bias'],
    [{ ...base, prompt: [300000] }, /Invalid token id 300000/, null as unknown as string],
    [{ ...base, max_tokens: 65 }, /limit of 64 \(--max-tokens\)/, 'max_tokens'],
  ];
  for (const [body, match, param] of cases)
    assertShape(await post(completions(server), JSON.stringify(body)), 400, match, param);
  // 1e400 parses as Infinity (JSON.stringify cannot write it).
  const infinite = `{"model": "${MODEL_ID}", "prompt": "the", "presence_penalty": 1e400}`;
  assertShape(await post(completions(server), infinite), 400, /presence_penalty/, 'presence_penalty');
  const infiniteTokens = `{"model": "${MODEL_ID}", "prompt": "the", "max_tokens": 1e400}`;
  assertShape(await post(completions(server), infiniteTokens), 400, /max_tokens/, 'max_tokens');
  const chatBody = { model: MODEL_ID, messages: [{ role: 'user', content: 'hi' }], top_logprobs: 2 };
  assertShape(await post(chat(server), JSON.stringify(chatBody)), 400, /requires 'logprobs'/, 'top_logprobs');
});

test('400: a prompt over the context limit says the limit', async () => {
  const error = await server.client.completions
    .create({ model: MODEL_ID, prompt: 'w'.repeat(90), max_tokens: 60 })
    .catch((e: unknown) => e);
  assert.ok(error instanceof OpenAI.BadRequestError, String(error));
  assert.equal(error.code, 'context_length_exceeded');
  assert.match(error.message, new RegExp(`maximum context length is ${CONTEXT_LENGTH} tokens`));
  assert.match(error.message, /91 in the prompt, 60 in the completion/);
  const long = await server.client.completions
    .create({ model: MODEL_ID, prompt: 'w'.repeat(120), max_tokens: 1 })
    .catch((e: unknown) => e);
  assert.ok(long instanceof OpenAI.BadRequestError);
  assert.match(long.message, /121 tokens, more than this server's limit of 100 prompt tokens/);
  const chatError = await server.client.chat.completions
    .create({ model: MODEL_ID, messages: [{ role: 'user', content: 'w'.repeat(200) }] })
    .catch((e: unknown) => e);
  assert.ok(chatError instanceof OpenAI.BadRequestError);
  assert.equal(chatError.code, 'context_length_exceeded');
  assert.equal(chatError.param, 'messages');
});

test('401: without the API key, or with a wrong one; the right key passes', async () => {
  const noKey = await post(completions(secured), JSON.stringify({ model: MODEL_ID, prompt: 'a', max_tokens: 1 }));
  assertShape(noKey, 401, /API key/);
  assert.equal(noKey.body.error.code, 'invalid_api_key');
  const wrong = new OpenAI({ baseURL: `${secured.url}/v1`, apiKey: 'sesame-1235', maxRetries: 0 });
  const error = await wrong.models.list().catch((e: unknown) => e);
  assert.ok(error instanceof OpenAI.AuthenticationError, String(error));
  const right = await secured.client.completions.create({
    model: MODEL_ID,
    prompt: 'a',
    max_tokens: 2,
    temperature: 0, // greedy: a sampled end of document could make it shorter
  });
  assert.equal(right.usage!.completion_tokens, 2);
  // The page and the probes stay open.
  assert.equal((await fetch(`${secured.url}/health`)).status, 200);
  assert.equal((await fetch(`${secured.url}/`)).status, 200);
});

test('404: an unknown model, an unknown route', async () => {
  const error = await server.client.completions
    .create({ model: 'gpt-4', prompt: 'a', max_tokens: 1 })
    .catch((e: unknown) => e);
  assert.ok(error instanceof OpenAI.NotFoundError, String(error));
  assert.equal(error.code, 'model_not_found');
  assert.match(error.message, /'gpt-4' does not exist; this server serves 'tiny-test'/);
  const route = await fetch(`${server.url}/v1/embeddings`, { method: 'POST' });
  assert.equal(route.status, 404);
  assert.match((await route.json()).error.message, /Unknown request URL: POST \/v1\/embeddings/);
});

test('413: a body over --body-limit, refused while it is read', async () => {
  const reply = await post(completions(server), JSON.stringify({ model: MODEL_ID, prompt: 'x'.repeat(100_000) }));
  assertShape(reply, 413, /larger than this server's limit of 65536 bytes/);
  const stop = await post(
    completions(server),
    JSON.stringify({ model: MODEL_ID, prompt: 'a', stop: 'y'.repeat(1 << 20) }),
  );
  assertShape(stop, 413, /--body-limit/);
});

test('415: a body that is not JSON', async () => {
  const response = await fetch(completions(server), {
    method: 'POST',
    headers: { 'content-type': 'text/plain' },
    body: 'hi',
  });
  assert.equal(response.status, 415);
  assert.match((await response.json()).error.message, /application\/json/);
});

test('429: when the queue is full, with Retry-After; the running request is unharmed', async () => {
  const busy = await startServer(
    { limits: { maxPromptTokens: 100, maxTokens: 64, contextLength: CONTEXT_LENGTH, queueLimit: 1 } },
    {
      maxBatch: 1,
      tokenBudget: 64,
      maxQueue: 1,
    },
  );
  try {
    const body = (prompt: string) => JSON.stringify({ model: MODEL_ID, prompt, max_tokens: 64, temperature: 0 });
    const running = post(completions(busy), body('the white'));
    // The first is admitted in the engine's next step; the second then waits, the third finds the queue full.
    await new Promise((r) => setTimeout(r, 30));
    const waiting = post(completions(busy), body('the captain'));
    await new Promise((r) => setTimeout(r, 5));
    const refused = await post(completions(busy), body('the sea'));
    assertShape(refused, 429, /busy: 1 requests are already waiting \(--queue-limit\)/);
    assert.equal(refused.headers.get('retry-after'), '1');
    assert.equal((await running).status, 200);
    assert.equal((await waiting).status, 200);
  } finally {
    await busy.close();
  }
});
