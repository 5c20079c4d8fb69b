// The HTTP server in its own thread (src/serve/start-server.ts): it answers while the engine's thread is
// busy, a port already taken fails the start with Node's reason, and closing it cuts the streams in flight
// and frees their blocks while the engine goes on serving directly.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { MODEL_ID, startServer, waitFor, type TestServer } from './helpers.js';
import { startServer as startServerThread } from '../../src/serve/start-server.js';
import { loadChatTemplate } from '../../src/serve/chat-template-file.js';

let server: TestServer;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.close();
});

/** A client in a thread of its own: it fetches `url` when told and reports the status and when the answer came. */
const CLIENT = `
const { parentPort, workerData } = require('node:worker_threads');
parentPort.once('message', async () => {
  const response = await fetch(workerData.url);
  await response.text();
  parentPort.postMessage({ status: response.status, answeredAt: Date.now() });
});
`;

test("GET /health is answered while the engine's thread is blocked", async () => {
  const client = new Worker(CLIENT, { eval: true, workerData: { url: `${server.url}/health` } });
  try {
    const report = new Promise<{ status: number; answeredAt: number }>((resolve) => client.once('message', resolve));
    await new Promise((resolve) => client.once('online', resolve));
    client.postMessage('go');
    // Block this thread (the engine's) for 1.5 s without giving its event loop a turn.
    const blockedUntil = Date.now() + 1500;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1500);
    const { status, answeredAt } = await report;
    assert.equal(status, 200);
    assert.ok(answeredAt < blockedUntil, `answered ${answeredAt - blockedUntil} ms after the engine's thread woke`);
  } finally {
    await client.terminate();
  }
});

/** A second server on the test server's engine. */
function secondServer(port: number): ReturnType<typeof startServerThread> {
  const { loaded, engine } = server;
  return startServerThread({
    engine,
    tokenizer: loaded.tokenizer,
    chatTemplate: loadChatTemplate([], loaded.tokenizer),
    modelId: MODEL_ID,
    limits: { maxPromptTokens: 100, maxTokens: 64, contextLength: 128, queueLimit: 64 },
    apiKey: null,
    bodyLimit: 64 * 1024,
    host: '127.0.0.1',
    port,
  });
}

test('a port already in use fails the start, naming it', async () => {
  const port = Number(new URL(server.url).port);
  await assert.rejects(secondServer(port), new RegExp(`EADDRINUSE.*${port}`));
});

test('closing the server cuts its streams and frees their blocks; the engine goes on', async () => {
  const { engine } = server;
  const second = await secondServer(0);
  const response = await fetch(`${second.url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL_ID, prompt: 'the white', max_tokens: 64, stream: true, ignore_eos: true }),
  });
  const reader = response.body!.getReader();
  await reader.read();
  assert.equal(engine.stats().running, 1);
  await second.close();
  await assert.rejects(async () => {
    for (;;) if ((await reader.read()).done) throw new Error('the stream ended cleanly instead of being cut');
  });
  assert.ok(await waitFor(() => engine.stats().blocks.used === 0, 2000), 'blocks freed');
  await assert.rejects(fetch(`${second.url}/health`));
  const direct = await engine.submit('the', { maxTokens: 3, temperature: 0, ignoreEos: true }).result;
  assert.equal(direct.tokenIds.length, 3);
  // The first server, on the same engine, is unaffected.
  assert.equal((await fetch(`${server.url}/health`)).status, 200);
});
