/**
 * The HTTP server's thread (started by ./start-server.ts): the Fastify app of ./server.ts over an
 * EngineLink to the engine in the main thread. The tokenizer and chat template are rebuilt here from
 * what the main thread loaded, so prompts are tokenized and templates rendered off the engine's thread.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { tokenizerFromJSON } from '../data/tokenizer/load.js';
import { ChatTemplate } from './chat-template.js';
import { EngineLink } from './engine-link.js';
import { createServer } from './server.js';
import type { HttpThreadCommand, HttpThreadData, HttpThreadReport } from './start-server.js';

if (!parentPort) throw new Error('http-thread.ts runs as a worker thread (see start-server.ts)');
const control = parentPort;
const { data, enginePort } = workerData as { data: HttpThreadData; enginePort: MessagePort };
const report = (message: HttpThreadReport): void => control.postMessage(message);

try {
  const tokenizer = tokenizerFromJSON(data.tokenizer.json, {
    ...(data.tokenizer.eosToken === undefined ? {} : { eosToken: data.tokenizer.eosToken }),
    source: 'the served tokenizer',
  });
  if (tokenizer.eosId !== data.tokenizer.eosId || tokenizer.vocabSize !== data.tokenizer.vocabSize)
    throw new Error(
      `the tokenizer rebuilt in the HTTP thread differs from the engine's (end-of-document id ` +
        `${tokenizer.eosId} vs ${data.tokenizer.eosId}, vocabulary ${tokenizer.vocabSize} vs ` +
        `${data.tokenizer.vocabSize})`,
    );
  const link = new EngineLink(enginePort);
  const { host, port, tokenizer: _tokenizer, chatTemplate, ...settings } = data;
  const app = await createServer({
    ...settings,
    engine: link,
    tokenizer,
    chatTemplate: new ChatTemplate(chatTemplate, tokenizer),
  });
  const url = await app.listen({ host, port });
  control.on('message', (command: HttpThreadCommand) => {
    if (command.kind === 'memory') {
      const collect = (globalThis as { gc?: () => void }).gc;
      if (command.collect) collect?.();
      report({ kind: 'memory', heapUsed: process.memoryUsage().heapUsed });
      return;
    }
    void app.close().finally(() => {
      link.fail(new Error('The server is shutting down.'));
      enginePort.close();
      control.close();
    });
  });
  report({ kind: 'listening', url });
} catch (error) {
  report({ kind: 'failed', message: error instanceof Error ? error.message : String(error) });
  enginePort.close();
  process.exitCode = 1;
}
