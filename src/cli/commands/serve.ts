import { basename } from 'node:path';
import { setDefaultDevice } from '../../engine/registry.js';
import { existsSync } from 'node:fs';
import { loadDraftModel, loadModelForInference, type LoadedModel } from '../../inference/load.js';
import { InferenceEngine, MAX_DRAFT_TOKENS } from '../../inference/engine.js';
import { MAX_CONTEXT_TOKENS } from '../../inference/generate.js';
import { startServer } from '../../serve/start-server.js';
import { loadChatTemplate, templateSearchDirs } from '../../serve/chat-template-file.js';
import { UsageError, type Command } from '../command.js';
import { isPositiveInteger, numberFlag, parseCommandArgs, positiveIntegerFlag, usableDevice } from '../args.js';

const USAGE = `Usage: andromeda serve <checkpoint> [options]

Serves a model over HTTP with OpenAI's API (GET /v1/models, POST /v1/completions, POST
/v1/chat/completions, streaming or not), a chat page at /, GET /health and GET /metrics
(Prometheus). <checkpoint> is a run directory (its latest checkpoint), a checkpoints/step-NNNNNN
directory, or a converted model directory. Chat prompts use the chat_template of a
tokenizer_config.json beside the checkpoint (or in its run directory), else a plain transcript
("User: ...", "Assistant:").

Server:
  --host <addr>               address to listen on (default: 127.0.0.1, this machine only)
  --port <n>                  port (default: 8000; 0 picks a free one)
  --api-key <key>             clients must send "Authorization: Bearer <key>" on /v1/
                              (default: the ANDROMEDA_API_KEY environment variable; none = open)
  --model-name <name>         the model name clients pass (default: the checkpoint folder's name)

Limits (requests beyond them get a 4xx error in OpenAI's shape):
  --max-concurrent <n>        most sequences generated at once (default: 64)
  --queue-limit <n>           most sequences waiting to start; more get 429 (default: 1024)
  --max-prompt-tokens <n>     longest prompt in tokens (default: the model's context length)
  --max-tokens <n>            most tokens one choice may generate, and the default (default: 1024)
  --body-limit <bytes>        largest request body (default: 1048576)
  --request-timeout <s>       seconds a client has to send its whole request (default: 30)

Engine:
  --device <d>                auto | cpu | cuda | cuda:N (default: auto)
  --tokenizer <spec>          tokenizer.json path or byte, for checkpoints without one
  --block-size <n>            positions per KV-cache block, a power of two ≤ 256 (default: 32)
  --num-blocks <n>            KV-cache blocks (default: what --kv-memory holds)
  --kv-memory <MiB>           KV-cache memory when --num-blocks is not given (default: 1024)
  --token-budget <n>          most tokens per engine step; longer prompts are prefilled in chunks
                              (default: 512, at least --max-concurrent, × (k + 1) with --draft)
  --no-prefix-sharing         do not share the cache blocks of identical prompt prefixes
  --no-cuda-graphs            do not replay decode steps as CUDA graphs
  --draft <checkpoint>        speculative decoding: this smaller model, with the same tokenizer,
                              proposes tokens that the model verifies several at a time (same
                              output; requests with logprobs, penalties or min_p sample as usual).
                              Its KV cache takes a share of --kv-memory
  --draft-tokens <k>          with --draft: tokens proposed per step, 1 to ${MAX_DRAFT_TOKENS} (default: 4)
  -h, --help                  show this help

Example:
  andromeda serve runs/quickstart --port 8000
  curl http://127.0.0.1:8000/v1/completions -H 'Content-Type: application/json' \\
    -d '{"model": "quickstart", "prompt": "Call me Ishmael.", "max_tokens": 50}'`;

export const serveCommand: Command = {
  name: 'serve',
  summary: 'serve a model with an OpenAI-compatible HTTP API and a chat page',
  usage: USAGE,
  async run(args: string[]): Promise<void> {
    const { values, positionals } = parseCommandArgs(
      args,
      {
        host: { type: 'string', default: '127.0.0.1' },
        port: { type: 'string' },
        'api-key': { type: 'string' },
        'model-name': { type: 'string' },
        'max-concurrent': { type: 'string' },
        'queue-limit': { type: 'string' },
        'max-prompt-tokens': { type: 'string' },
        'max-tokens': { type: 'string' },
        'body-limit': { type: 'string' },
        'request-timeout': { type: 'string' },
        device: { type: 'string', default: 'auto' },
        tokenizer: { type: 'string' },
        'block-size': { type: 'string' },
        'num-blocks': { type: 'string' },
        'kv-memory': { type: 'string' },
        'token-budget': { type: 'string' },
        'no-prefix-sharing': { type: 'boolean', default: false },
        'no-cuda-graphs': { type: 'boolean', default: false },
        draft: { type: 'string' },
        'draft-tokens': { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      true,
    );
    if (positionals.length !== 1)
      throw new UsageError(
        positionals.length === 0
          ? 'give the checkpoint (a run directory, a checkpoint directory or a converted model)'
          : `expected one checkpoint, got ${positionals.length} arguments: ${positionals.join(' ')}`,
      );
    const port = numberFlag(
      'port',
      values.port,
      8000,
      (n) => Number.isInteger(n) && n >= 0 && n <= 65535,
      'an integer from 0 to 65535',
    );
    const maxConcurrent = positiveIntegerFlag('max-concurrent', values['max-concurrent'], 64);
    const queueLimit = positiveIntegerFlag('queue-limit', values['queue-limit'], 1024);
    const maxTokens = positiveIntegerFlag('max-tokens', values['max-tokens'], 1024);
    const bodyLimit = positiveIntegerFlag('body-limit', values['body-limit'], 1 << 20);
    const requestTimeout = numberFlag(
      'request-timeout',
      values['request-timeout'],
      30,
      (n) => Number.isFinite(n) && n > 0 && n <= 3600,
      'a number of seconds in (0, 3600]',
    );
    const blockSize = numberFlag(
      'block-size',
      values['block-size'],
      32,
      (n) => isPositiveInteger(n) && n <= 256 && (n & (n - 1)) === 0,
      'a power of two from 1 to 256',
    );
    const numBlocks =
      values['num-blocks'] === undefined ? undefined : positiveIntegerFlag('num-blocks', values['num-blocks'], 1);
    const kvMemoryMiB = numberFlag(
      'kv-memory',
      values['kv-memory'],
      1024,
      (n) => Number.isFinite(n) && n > 0,
      'a positive number of MiB',
    );
    if (values.draft === undefined && values['draft-tokens'] !== undefined)
      throw new UsageError('--draft-tokens applies with --draft only');
    const draftTokens = numberFlag(
      'draft-tokens',
      values['draft-tokens'],
      4,
      (n) => Number.isInteger(n) && n >= 1 && n <= MAX_DRAFT_TOKENS,
      `an integer from 1 to ${MAX_DRAFT_TOKENS}`,
    );
    if (values.draft !== undefined && !existsSync(values.draft))
      throw new UsageError(`--draft ${values.draft}: no such checkpoint`);
    // Each running sequence scores its draft tokens after its own in every step.
    const rowsPerSequence = values.draft === undefined ? 1 : draftTokens + 1;
    const tokenBudget = positiveIntegerFlag(
      'token-budget',
      values['token-budget'],
      Math.max(512, maxConcurrent * rowsPerSequence),
    );
    if (tokenBudget < maxConcurrent * rowsPerSequence)
      throw new UsageError(
        values.draft === undefined
          ? `--token-budget ${tokenBudget} must be at least --max-concurrent ${maxConcurrent}, so every running ` +
              `sequence can decode in each step`
          : `--token-budget ${tokenBudget} must be at least --max-concurrent ${maxConcurrent} × (--draft-tokens ` +
              `${draftTokens} + 1) = ${maxConcurrent * rowsPerSequence}, so every running sequence can verify its ` +
              `draft tokens in each step`,
      );
    // An empty ANDROMEDA_API_KEY counts as unset (as shells leave exported-but-empty variables); an empty
    // --api-key is a mistake.
    const apiKey = values['api-key'] ?? (process.env.ANDROMEDA_API_KEY || null);
    if (apiKey !== null && apiKey.trim() === '')
      throw new UsageError('--api-key is empty; give a key, or leave it out to serve without one');
    const maxPromptFlag = values['max-prompt-tokens'];
    if (maxPromptFlag !== undefined) positiveIntegerFlag('max-prompt-tokens', maxPromptFlag, 1);

    const device = usableDevice(values.device);
    setDefaultDevice(device);
    const loaded = await loadModelForInference(positionals[0]!, device, values.tokenizer);
    const contextLength = typeof loaded.config.maxSeqLen === 'number' ? loaded.config.maxSeqLen : MAX_CONTEXT_TOKENS;
    const maxPromptTokens = positiveIntegerFlag('max-prompt-tokens', maxPromptFlag, contextLength);
    let engine: InferenceEngine | null = null;
    let draft: LoadedModel | null = null;
    try {
      if (values.draft !== undefined) draft = await loadDraftModel(values.draft, loaded, device, values.tokenizer);
      const chatTemplate = loadChatTemplate(templateSearchDirs(loaded.dir), loaded.tokenizer);
      engine = new InferenceEngine(loaded.model, loaded.tokenizer, {
        blockSize,
        numBlocks,
        memoryBytes: kvMemoryMiB * 2 ** 20,
        maxBatch: maxConcurrent,
        tokenBudget,
        maxQueue: queueLimit,
        prefixSharing: !values['no-prefix-sharing'],
        cudaGraphs: !values['no-cuda-graphs'],
        draft: draft ? { model: draft.model, tokens: draftTokens } : undefined,
      });
      const modelId = values['model-name'] ?? basename(positionals[0]!.replace(/[/\\]+$/, ''));
      const server = await startServer({
        engine,
        tokenizer: loaded.tokenizer,
        chatTemplate,
        modelId,
        limits: { maxPromptTokens, maxTokens, contextLength, queueLimit },
        apiKey,
        bodyLimit,
        requestTimeoutMs: requestTimeout * 1000,
        host: values.host,
        port,
      });
      const address = server.url;
      process.stderr.write(
        `loaded ${loaded.dir} (step ${loaded.step}, ${device}) as "${modelId}"; chat template: ` +
          `${chatTemplate.source.file ?? 'default transcript'}\n` +
          (draft ? `draft ${draft.dir} (step ${draft.step}), proposing ${draftTokens} per step\n` : '') +
          `serving on ${address}${apiKey === null ? ' (no API key: open to anyone who can reach it)' : ''}\n`,
      );
      // Until a signal, or until the HTTP server's thread fails (which rejects and ends the command).
      await new Promise<void>((resolve, reject) => {
        const stop = (): void => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          process.stderr.write('shutting down\n');
          resolve();
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
        server.ended.catch((error: Error) => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          reject(error);
        });
      });
      await server.close();
    } finally {
      await engine?.close();
      draft?.model.dispose();
      loaded.model.dispose();
    }
  },
};
