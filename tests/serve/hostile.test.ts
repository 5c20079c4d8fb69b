// The server under abuse: a fuzz of malformed and hostile requests all get 4xx and the server keeps
// serving; a slow-loris upload is cut off; a client that disconnects mid-stream frees its KV blocks.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { MODEL_ID, metric, startServer, waitFor, type TestServer } from './helpers.js';
import { hostileRequests, rawRequest } from './hostile-requests.js';

let server: TestServer;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.close();
});

async function healthyCompletion(): Promise<void> {
  const r = await server.client.completions.create({ model: MODEL_ID, prompt: 'the white', max_tokens: 4 });
  // Sampled at the default temperature, the tiny model may end its document early ('stop').
  const finish = r.choices[0]!.finish_reason;
  if (finish === 'length') assert.equal(r.usage!.completion_tokens, 4);
  else assert.ok(finish === 'stop' && r.usage!.completion_tokens <= 4, `finish ${finish}`);
}

test('200 hostile requests (bad JSON, huge bodies, wrong types, bad numbers, 1 MB stops...) all get 4xx', async () => {
  const requests = hostileRequests(server.url, MODEL_ID, 200, 7, 2);
  const outcomes: { kind: string; status: number; body: string }[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: 24 }, async () => {
      while (next < requests.length) {
        const request = requests[next++]!;
        outcomes.push({ kind: request.kind, ...(await request.send()) });
      }
    }),
  );
  const kinds = new Set(outcomes.map((o) => o.kind.replace(/ of .*| [a-z_]+$/, '')));
  assert.ok(kinds.size >= 15, `the fuzz covers many kinds: ${[...kinds].join(', ')}`);
  for (const o of outcomes) {
    assert.ok(o.status >= 400 && o.status < 500, `${o.kind}: status ${o.status} ${o.body.slice(0, 200)}`);
    {
      const { error } = JSON.parse(o.body);
      assert.equal(typeof error.message, 'string', o.kind);
      assert.equal(typeof error.type, 'string', o.kind);
    }
  }
  assert.ok(outcomes.some((o) => o.kind === 'slow-loris upload' && o.status === 408));
  assert.equal((await fetch(`${server.url}/health`)).status, 200);
  await healthyCompletion();
});

test('a slow-loris upload is cut off at the request timeout while other clients are served', async () => {
  const { host } = new URL(server.url);
  const body = JSON.stringify({ model: MODEL_ID, prompt: 'a', max_tokens: 1 });
  const started = Date.now();
  const slow = rawRequest(
    server.url,
    [
      `POST /v1/completions HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${body.length}\r\n\r\n`,
      ...body.split(''),
    ],
    200,
  );
  await healthyCompletion();
  const { status } = await slow;
  const seconds = (Date.now() - started) / 1000;
  assert.equal(status, 408);
  // The request timeout is 2 s; Node checks it every second. The whole body would have taken 9 s.
  assert.ok(seconds < 4.5, `cut off after ${seconds.toFixed(1)} s`);
});

test('clients still uploading a body over the limit all read their 413, and the connection serves on', async () => {
  // Answering before the body is read races the upload: were the connection closed with unread bytes in it,
  // the kernel would reset it and the client lose the answer (fetch: EPIPE) — a few percent of such requests.
  const body = JSON.stringify({ model: MODEL_ID, messages: [{ role: 'user', content: 'x'.repeat(2 << 20) }] });
  const statuses = await Promise.all(
    Array.from({ length: 48 }, async () => {
      try {
        const response = await fetch(`${server.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
        });
        await response.text();
        return String(response.status);
      } catch (error) {
        return String((error as { cause?: { code?: string } }).cause?.code ?? error);
      }
    }),
  );
  assert.deepEqual(
    statuses.filter((s) => s !== '413'),
    [],
  );
  // The HTTP parser skips exactly the refused body: a request written after it on the same socket is answered.
  const { host } = new URL(server.url);
  const { body: answers } = await rawRequest(server.url, [
    `POST /v1/completions HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${body.length}\r\n\r\n`,
    body,
    `GET /health HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`,
  ]);
  assert.match(answers, /HTTP\/1\.1 200 OK[^]*"status":"ok"/);
});

test('a refused upload is discarded up to 64 MiB, then the connection is cut', async () => {
  const { hostname, port, host } = new URL(server.url);
  const socket = connect(Number(port), hostname);
  let closedAfter = -1;
  let written = 0;
  const closed = new Promise<void>((resolve) => {
    socket.on('close', () => {
      closedAfter = written;
      resolve();
    });
    socket.on('error', () => {});
  });
  socket.write(
    `POST /v1/completions HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${1 << 30}\r\n\r\n`,
  );
  const chunk = Buffer.alloc(1 << 20, 0x20);
  while (!socket.destroyed && written < 256 << 20) {
    written += chunk.length;
    if (!socket.write(chunk)) await new Promise((resolve) => socket.once('drain', resolve).once('close', resolve));
  }
  await closed;
  assert.ok(closedAfter >= 64 << 20 && closedAfter < 256 << 20, `closed after ${closedAfter >> 20} MiB`);
  assert.equal((await fetch(`${server.url}/health`)).status, 200);
});

test('a client that disconnects mid-stream cancels its sequence and frees its blocks at once', async () => {
  const controller = new AbortController();
  const response = await fetch(`${server.url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    // ignore_eos: the tiny model may end one of the two documents within a few tokens, and a finished sequence
    // would leave one running before the disconnect this test is about.
    body: JSON.stringify({
      model: MODEL_ID,
      prompt: 'the white whale',
      max_tokens: 64,
      stream: true,
      n: 2,
      ignore_eos: true,
    }),
    signal: controller.signal,
  });
  const reader = response.body!.getReader();
  await reader.read();
  assert.ok((await metric(server.url, 'andromeda_kv_blocks_used')) > 0, 'the streams hold blocks while running');
  assert.equal(await metric(server.url, 'andromeda_sequences_running'), 2);
  const generatedBefore = await metric(server.url, 'andromeda_generated_tokens_total');
  controller.abort();
  assert.ok(
    await waitFor(async () => (await metric(server.url, 'andromeda_kv_blocks_used')) === 0, 2000),
    'blocks freed after the disconnect',
  );
  assert.equal(await metric(server.url, 'andromeda_sequences_running'), 0);
  const generatedAfter = await metric(server.url, 'andromeda_generated_tokens_total');
  // Had the sequences run on, they would have generated 2 × 64 tokens.
  assert.ok(generatedAfter - generatedBefore < 100, `stopped generating (${generatedAfter - generatedBefore} more)`);
  await healthyCompletion();
});

test('a client that disconnects before a non-streamed answer cancels it too', async () => {
  // On an idle machine the tiny model can finish a request between two polls of /metrics; such an attempt proves
  // nothing about cancellation, so it is repeated until the request is seen running and can be cut off.
  for (let attempt = 0; attempt < 10; attempt++) {
    const controller = new AbortController();
    const pending = fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: MODEL_ID,
        messages: [{ role: 'user', content: 'hi' }],
        max_tokens: 64,
        ignore_eos: true,
      }),
      signal: controller.signal,
    }).catch((e: Error) => e);
    const seen = await waitFor(async () => (await metric(server.url, 'andromeda_sequences_running')) === 1, 2000);
    if (!seen) {
      const finished = await pending;
      assert.ok(!(finished instanceof Error), `the request failed: ${String(finished)}`);
      assert.equal((finished as Response).status, 200);
      continue;
    }
    controller.abort();
    // The answer may still have arrived between the poll and the abort: then try again.
    if (!((await pending) instanceof Error)) continue;
    assert.ok(await waitFor(async () => (await metric(server.url, 'andromeda_kv_blocks_used')) === 0, 2000));
    assert.equal(await metric(server.url, 'andromeda_sequences_running'), 0);
    return;
  }
  assert.fail('in 10 attempts the request was never seen running before it finished');
});
