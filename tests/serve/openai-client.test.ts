// The server through the official `openai` package, over a small Andromeda model trained in the test.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { MODEL_ID, metric, startServer, waitFor, type TestServer } from './helpers.js';

let server: TestServer;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.close();
});

test('GET /v1/models lists the served model', async () => {
  const models = await server.client.models.list();
  assert.deepEqual(
    models.data.map((m) => m.id),
    [MODEL_ID],
  );
  const one = await server.client.models.retrieve(MODEL_ID);
  assert.equal(one.id, MODEL_ID);
});

test('completions: greedy text continues the training sentences, with usage and finish_reason', async () => {
  const r = await server.client.completions.create({
    model: MODEL_ID,
    prompt: 'the white whale swims',
    max_tokens: 16,
    temperature: 0,
  });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices.length, 1);
  const choice = r.choices[0]!;
  assert.equal(choice.finish_reason, 'length');
  assert.equal(choice.text, ' in the deep sea.'.slice(0, choice.text.length));
  assert.ok(choice.text.length >= 8, `the trained model continues the sentence: ${JSON.stringify(choice.text)}`);
  // The prompt is its bytes plus the start-of-document token; 16 tokens were generated.
  assert.deepEqual(r.usage, {
    prompt_tokens: 'the white whale swims'.length + 1,
    completion_tokens: 16,
    total_tokens: 38,
  });
});

test('completions stream: the chunks join to the non-streamed text; include_usage adds a usage chunk', async () => {
  const params = { model: MODEL_ID, prompt: 'the captain', max_tokens: 20, temperature: 0 };
  const whole = await server.client.completions.create(params);
  const stream = await server.client.completions.create({
    ...params,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let chunks = 0;
  let finish: string | null = null;
  let usage: unknown = null;
  for await (const chunk of stream) {
    chunks++;
    for (const c of chunk.choices) {
      text += c.text;
      finish = c.finish_reason ?? finish;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  assert.equal(text, whole.choices[0]!.text);
  assert.ok(chunks >= 10, `streamed in pieces (${chunks} chunks)`);
  assert.equal(finish, 'length');
  assert.deepEqual(usage, whole.usage);
});

test('chat completions: role, content, usage; streaming deltas start with the role and match', async () => {
  const params = {
    model: MODEL_ID,
    messages: [
      { role: 'system' as const, content: 'You talk about whales.' },
      { role: 'user' as const, content: 'the white whale' },
    ],
    max_tokens: 12,
    temperature: 0,
  };
  const whole = await server.client.chat.completions.create(params);
  assert.equal(whole.object, 'chat.completion');
  assert.equal(whole.choices[0]!.message.role, 'assistant');
  assert.equal(typeof whole.choices[0]!.message.content, 'string');
  assert.ok(whole.usage!.prompt_tokens > 30, 'the transcript of both messages is the prompt');
  assert.equal(whole.usage!.completion_tokens, 12);
  const stream = await server.client.chat.completions.create({ ...params, stream: true });
  let text = '';
  let first = true;
  let finish: string | null = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    const delta = chunk.choices[0]!.delta;
    if (first) assert.equal(delta.role, 'assistant');
    first = false;
    text += delta.content ?? '';
    finish = chunk.choices[0]!.finish_reason ?? finish;
  }
  assert.equal(text, whole.choices[0]!.message.content);
  assert.equal(finish, 'length');
});

test('n > 1: independent choices with their own indexes; a seed reproduces them, another seed differs', async () => {
  const params = { model: MODEL_ID, prompt: 'the', max_tokens: 24, temperature: 1.5, n: 3, seed: 11 };
  const a = await server.client.completions.create(params);
  const b = await server.client.completions.create(params);
  const c = await server.client.completions.create({ ...params, seed: 12 });
  assert.deepEqual(
    a.choices.map((x) => x.index),
    [0, 1, 2],
  );
  assert.deepEqual(
    a.choices.map((x) => x.text),
    b.choices.map((x) => x.text),
  );
  assert.notDeepEqual(
    a.choices.map((x) => x.text),
    c.choices.map((x) => x.text),
  );
  assert.ok(new Set(a.choices.map((x) => x.text)).size > 1, 'the choices differ from one another');
  // 24 tokens per choice, unless a choice ended at the end-of-document token.
  const allLong = a.choices.every((x) => x.finish_reason === 'length');
  if (allLong) assert.equal(a.usage!.completion_tokens, 3 * 24);
  else assert.ok(a.usage!.completion_tokens < 3 * 24);
  // Prompt tokens count once for the three choices.
  assert.equal(a.usage!.prompt_tokens, 'the'.length + 1);
  const streamed = await server.client.chat.completions.create({
    model: MODEL_ID,
    messages: [{ role: 'user', content: 'hello' }],
    max_tokens: 8,
    n: 2,
    stream: true,
  });
  const texts = ['', ''];
  const finished = new Set<number>();
  for await (const chunk of streamed)
    for (const choice of chunk.choices) {
      texts[choice.index] += choice.delta.content ?? '';
      if (choice.finish_reason) finished.add(choice.index);
    }
  assert.deepEqual([...finished].sort(), [0, 1]);
});

test('stop sequences end the text before them, with finish_reason "stop", streamed or not', async () => {
  const params = { model: MODEL_ID, prompt: 'the white whale', max_tokens: 40, temperature: 0 };
  const free = await server.client.completions.create(params);
  assert.ok(free.choices[0]!.text.includes('deep'), `greedy text reaches "deep": ${free.choices[0]!.text}`);
  const stopped = await server.client.completions.create({ ...params, stop: ['deep', 'nowhere'] });
  const expected = free.choices[0]!.text.slice(0, free.choices[0]!.text.indexOf('deep'));
  assert.equal(stopped.choices[0]!.text, expected);
  assert.equal(stopped.choices[0]!.finish_reason, 'stop');
  assert.ok(stopped.usage!.completion_tokens < 40);
  const stream = await server.client.completions.create({ ...params, stop: 'deep', stream: true });
  let text = '';
  let finish: string | null = null;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.text ?? '';
    finish = chunk.choices[0]?.finish_reason ?? finish;
  }
  assert.equal(text, expected);
  assert.equal(finish, 'stop');
});

test('logprobs: completions give tokens, their log-probabilities and the top alternatives', async () => {
  const r = await server.client.completions.create({
    model: MODEL_ID,
    prompt: 'the white whale swims in',
    max_tokens: 6,
    temperature: 0,
    logprobs: 3,
  });
  const lp = r.choices[0]!.logprobs!;
  assert.equal(lp.tokens!.join(''), r.choices[0]!.text);
  assert.equal(lp.token_logprobs!.length, 6);
  assert.deepEqual(
    lp.text_offset,
    lp.tokens!.map((_, i) => lp.tokens!.slice(0, i).join('').length),
  );
  lp.top_logprobs!.forEach((top, i) => {
    const entries = Object.entries(top!);
    assert.equal(entries.length, 3);
    // Greedy: the chosen token is the most likely one, and its logprob is the top one.
    const best = entries.reduce((m, e) => (e[1] > m[1] ? e : m));
    assert.equal(best[0], lp.tokens![i]);
    assert.ok(Math.abs(best[1] - lp.token_logprobs![i]!) < 1e-9);
    for (const [, v] of entries) assert.ok(v <= 0);
  });
});

test('logprobs: chat gives {content: [{token, logprob, bytes, top_logprobs}]}, streamed or not', async () => {
  const params = {
    model: MODEL_ID,
    messages: [{ role: 'user' as const, content: 'whale' }],
    max_tokens: 5,
    temperature: 0,
    logprobs: true,
    top_logprobs: 2,
  };
  const r = await server.client.chat.completions.create(params);
  const content = r.choices[0]!.logprobs!.content!;
  assert.equal(content.length, 5);
  assert.equal(content.map((t) => t.token).join(''), r.choices[0]!.message.content);
  for (const t of content) {
    assert.deepEqual(t.bytes, [...Buffer.from(t.token)]);
    assert.equal(t.top_logprobs.length, 2);
    assert.ok(t.top_logprobs[0]!.logprob >= t.top_logprobs[1]!.logprob);
    assert.equal(t.top_logprobs[0]!.token, t.token);
  }
  const stream = await server.client.chat.completions.create({ ...params, stream: true });
  const streamed: { token: string; logprob: number }[] = [];
  for await (const chunk of stream) for (const t of chunk.choices[0]?.logprobs?.content ?? []) streamed.push(t);
  assert.deepEqual(
    streamed.map((t) => t.token),
    content.map((t) => t.token),
  );
  // The second request finds the prompt's blocks cached (prefix sharing), so its prefill takes another
  // route through attention: float32 rounding may differ in the last bits.
  streamed.forEach((t, i) => assert.ok(Math.abs(t.logprob - content[i]!.logprob) < 1e-4, `${t.logprob}`));
});

test('penalties change greedy output; max_completion_tokens bounds chat', async () => {
  const params = { model: MODEL_ID, prompt: 'the white whale', max_tokens: 40, temperature: 0 };
  const plain = await server.client.completions.create(params);
  const penalised = await server.client.completions.create({ ...params, frequency_penalty: 2, presence_penalty: 2 });
  assert.notEqual(penalised.choices[0]!.text, plain.choices[0]!.text);
  const chat = await server.client.chat.completions.create({
    model: MODEL_ID,
    messages: [{ role: 'user', content: 'hi' }],
    max_completion_tokens: 3,
    temperature: 0,
  });
  assert.equal(chat.usage!.completion_tokens, 3);
  assert.equal(chat.choices[0]!.finish_reason, 'length');
});

test('token-id prompts and several prompts at once', async () => {
  const ids = [...Buffer.from('the white whale')];
  const byIds = await server.client.completions.create({ model: MODEL_ID, prompt: ids, max_tokens: 8, temperature: 0 });
  const byText = await server.client.completions.create({
    model: MODEL_ID,
    prompt: 'the white whale',
    max_tokens: 8,
    temperature: 0,
  });
  assert.equal(byIds.choices[0]!.text, byText.choices[0]!.text);
  const two = await server.client.completions.create({
    model: MODEL_ID,
    prompt: ['the white whale', 'the captain'],
    max_tokens: 8,
    temperature: 0,
    n: 2,
  });
  assert.deepEqual(
    two.choices.map((c) => c.index),
    [0, 1, 2, 3],
  );
  assert.equal(two.choices[0]!.text, byText.choices[0]!.text);
  assert.equal(two.usage!.prompt_tokens, 'the white whale'.length + 1 + 'the captain'.length + 1);
});

test('health and metrics: Prometheus text with the engine gauges and latency histograms', async () => {
  const health = await fetch(`${server.url}/health`);
  assert.equal(health.status, 200);
  assert.deepEqual(await health.json(), { status: 'ok', model: MODEL_ID });
  const response = await fetch(`${server.url}/metrics`);
  assert.match(response.headers.get('content-type')!, /^text\/plain; version=0\.0\.4/);
  const text = await response.text();
  for (const name of [
    'andromeda_queue_waiting',
    'andromeda_sequences_running',
    'andromeda_kv_blocks_used',
    'andromeda_kv_blocks_free',
    'andromeda_tokens_per_second',
  ])
    assert.match(text, new RegExp(`^# TYPE ${name} gauge\\n${name} [0-9.e+-]+$`, 'm'));
  const ttftCount = Number(/^andromeda_time_to_first_token_seconds_count (\d+)$/m.exec(text)![1]);
  assert.ok(ttftCount >= 10, `every answered request observed a time to first token (${ttftCount})`);
  assert.match(text, /^andromeda_inter_token_latency_seconds_bucket\{le="\+Inf"\} [1-9]\d*$/m);
  assert.match(text, /^andromeda_requests_total\{route="\/v1\/completions",status="200"\} [1-9]\d*$/m);
  assert.ok(await waitFor(async () => (await metric(server.url, 'andromeda_kv_blocks_used')) === 0));
});
