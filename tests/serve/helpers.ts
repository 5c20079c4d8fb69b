// A small Andromeda model trained in the test (byte tokenizer, a few dozen steps on a repetitive corpus,
// seconds on the CPU) and an `andromeda serve` server over it on a free port of 127.0.0.1.
import '../../src/engine/index.js';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import OpenAI from 'openai';
import { tokenizeToDataset } from '../../src/data/tokenize-dataset.js';
import { DEFAULT_CONFIG } from '../../src/train/config.js';
import { train } from '../../src/train/trainer.js';
import { loadModelForInference, type LoadedModel } from '../../src/inference/load.js';
import { InferenceEngine, type InferenceEngineOptions } from '../../src/inference/engine.js';
import { startServer as startServerThread, type StartServerOptions } from '../../src/serve/start-server.js';
import { loadChatTemplate, templateSearchDirs } from '../../src/serve/chat-template-file.js';
import { tempDir } from '../train/helpers.js';

export const MODEL_ID = 'tiny-test';
export const CONTEXT_LENGTH = 128;

let trained: Promise<string> | null = null;

/** Trains (once per test process) a tiny Andromeda run on sentences about whales; returns the run dir. */
export function trainedRun(): Promise<string> {
  trained ??= (async () => {
    const root = await tempDir('andromeda-serve-');
    const input = join(root, 'text');
    await mkdir(input);
    const lines = ['the white whale swims in the deep sea.', 'the captain sails the ship into the wind.'];
    for (let d = 0; d < 10; d++) await writeFile(join(input, `doc-${d}.txt`), lines.join('\n').repeat(6) + '\n');
    const data = join(root, 'ds');
    await tokenizeToDataset({
      inputs: [input],
      tokenizer: 'byte',
      outDir: data,
      valFraction: 0.2,
      progress: false,
      log: () => {},
    });
    const out = join(root, 'run');
    await train(
      {
        ...DEFAULT_CONFIG,
        data: [data],
        preset: 'tiny',
        model: { dim: 64, depth: 2, heads: 2, headDim: 32, maxSeqLen: CONTEXT_LENGTH },
        out,
        device: 'cpu',
        steps: 40,
        batchSize: 4,
        seqLen: 64,
        lr: 1e-2,
        warmup: 4,
        evalEvery: 0,
        evalTokens: 0,
        checkpointEvery: 40,
      },
      { log: () => {}, progress: false },
    );
    return out;
  })();
  return trained;
}

export interface TestServer {
  url: string;
  engine: InferenceEngine;
  loaded: LoadedModel;
  client: OpenAI;
  close(): Promise<void>;
}

export async function startServer(
  overrides: Partial<Omit<StartServerOptions, 'engine' | 'tokenizer'>> = {},
  engineOptions: InferenceEngineOptions = {},
): Promise<TestServer> {
  const run = await trainedRun();
  const loaded = await loadModelForInference(run, 'cpu');
  const engine = new InferenceEngine(loaded.model, loaded.tokenizer, {
    maxBatch: 16,
    tokenBudget: 256,
    maxQueue: 64,
    numBlocks: 512,
    blockSize: 16,
    ...engineOptions,
  });
  const server = await startServerThread({
    engine,
    tokenizer: loaded.tokenizer,
    chatTemplate: loadChatTemplate(templateSearchDirs(loaded.dir), loaded.tokenizer),
    modelId: MODEL_ID,
    limits: {
      maxPromptTokens: 100,
      maxTokens: 64,
      contextLength: CONTEXT_LENGTH,
      queueLimit: engineOptions.maxQueue ?? 64,
    },
    apiKey: null,
    bodyLimit: 64 * 1024,
    requestTimeoutMs: 2000,
    host: '127.0.0.1',
    port: 0,
    ...overrides,
  });
  const url = server.url;
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: overrides.apiKey ?? 'unused', maxRetries: 0 });
  return {
    url,
    engine,
    loaded,
    client,
    async close() {
      await server.close();
      await engine.close();
      loaded.model.dispose();
    },
  };
}

/** The value of one Prometheus sample line of /metrics. */
export async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  if (!line) throw new Error(`metric ${name} not found in /metrics`);
  return Number(line.slice(name.length + 1));
}

/** Polls `check` until it is true or `ms` pass. */
export async function waitFor(check: () => Promise<boolean> | boolean, ms = 5000): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return check();
}
