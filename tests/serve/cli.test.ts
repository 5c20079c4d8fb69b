// `andromeda serve` as users run it: a child process on a free port, serving until SIGTERM; bad flags
// are refused before the model is loaded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { trainedRun } from './helpers.js';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

test('bad flags are usage errors naming the flag', async () => {
  const run = await trainedRun();
  const cases: [string[], RegExp][] = [
    [[], /give the checkpoint/],
    [[run, '--port', '70000'], /--port must be an integer from 0 to 65535, got "70000"/],
    [[run, '--max-concurrent', '0'], /--max-concurrent must be a positive integer/],
    [[run, '--block-size', '24'], /--block-size must be a power of two/],
    [
      [run, '--max-concurrent', '600', '--token-budget', '512'],
      /--token-budget 512 must be at least --max-concurrent 600/,
    ],
    [[run, '--api-key', ' '], /--api-key is empty/],
    [[run, '--request-timeout', '0'], /--request-timeout must be a number of seconds/],
    [['/nonexistent/run'], /nonexistent/],
  ];
  for (const [args, message] of cases) {
    const r = spawnSync(process.execPath, [cli, 'serve', ...args], {
      timeout: 60_000,
      env: { ...process.env, ANDROMEDA_API_KEY: '' },
    });
    assert.equal(r.status, 1, `serve ${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr.toString(), message);
  }
});

test('serves a run directory with an API key from the environment, and shuts down on SIGTERM', async () => {
  const run = await trainedRun();
  const child = spawn(process.execPath, [cli, 'serve', run, '--port', '0', '--device', 'cpu', '--max-tokens', '16'], {
    env: { ...process.env, ANDROMEDA_API_KEY: 'from-env' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  try {
    let stderr = '';
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr.on('data', (d) => {
        stderr += d;
        const match = /serving on (http:\/\/127\.0\.0\.1:\d+)/.exec(stderr);
        if (match) resolve(match[1]!);
      });
      child.on('exit', () => reject(new Error(`serve exited: ${stderr}`)));
    });
    assert.match(stderr, /as "run"; chat template: default transcript/);
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'from-env', maxRetries: 0 });
    const r = await client.completions.create({ model: 'run', prompt: 'the', temperature: 0 });
    assert.equal(r.usage!.completion_tokens, 16, 'max_tokens defaults to --max-tokens');
    const open = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'wrong', maxRetries: 0 });
    assert.ok((await open.models.list().catch((e: unknown) => e)) instanceof OpenAI.AuthenticationError);
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});
