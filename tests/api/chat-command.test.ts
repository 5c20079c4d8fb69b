// `andromeda chat` driven through stdin as a user would type: streamed replies, history, /reset, and the chat
// template of tokenizer_config.json.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cp, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { trainedRun } from '../serve/helpers.js';
import { tempDir } from '../train/helpers.js';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

interface ChatRun {
  stdout: string;
  stderr: string;
  /** Prompt tokens of each reply, from the --stats lines. */
  promptTokens: number[];
  /** How each reply finished (stop, length, ...), from the --stats lines. */
  finished: string[];
}

function chat(run: string, input: string, extra: string[] = []): ChatRun {
  const r = spawnSync(
    process.execPath,
    [cli, 'chat', run, '--device', 'cpu', '--temperature', '0', '--max-tokens', '12', '--stats', ...extra],
    { input, encoding: 'utf8', timeout: 120_000 },
  );
  assert.equal(r.status, 0, `chat failed:\n${r.stdout}\n${r.stderr}`);
  const promptTokens = [...r.stderr.matchAll(/\[prompt (\d+) tokens, reply (\d+) tokens/g)].map((m) => Number(m[1]));
  const finished = [...r.stderr.matchAll(/finished: (\w+)\]/g)].map((m) => m[1]!);
  return { stdout: r.stdout, stderr: r.stderr, promptTokens, finished };
}

test('chat: replies stream to stdout, the history grows the context, /reset starts over', async () => {
  const run = await trainedRun();
  const { stdout, stderr, promptTokens } = chat(run, 'the white whale\nthe captain\n/reset\nthe white whale\n/bye\n');
  assert.match(stderr, /chat template: default transcript/);
  assert.equal(promptTokens.length, 3, stderr);
  assert.ok(promptTokens[1]! > promptTokens[0]! + 'the captain'.length, 'the second prompt holds the first exchange');
  assert.equal(promptTokens[2], promptTokens[0], 'after /reset the prompt is the first one again');
  const [before, after] = stdout.split('(conversation cleared)\n');
  assert.ok(after !== undefined && after.length > 1, stdout);
  assert.ok(before!.startsWith(after!), 'greedy: the same question after /reset gets the same reply');
});

test('chat: the chat template of tokenizer_config.json renders the conversation, with --system', async () => {
  const run = await tempDir('andromeda-chat-');
  await cp(await trainedRun(), run, { recursive: true });
  const template =
    '{% for m in messages %}<{{ m.role }}>{{ m.content }}\n{% endfor %}' +
    '{% if add_generation_prompt %}<assistant>{% endif %}';
  await writeFile(join(run, 'tokenizer_config.json'), JSON.stringify({ chat_template: template }));
  const { stderr, promptTokens } = chat(run, 'hi\n', ['--system', 'be brief']);
  assert.match(stderr, /chat template: .*tokenizer_config\.json/);
  // Byte tokens: the prompt is exactly the rendered text, one token per byte.
  assert.deepEqual(promptTokens, ['<system>be brief\n<user>hi\n<assistant>'.length]);
});

test("chat: a reply ends at generation_config.json's eos_token_id", async () => {
  const run = await tempDir('andromeda-chat-');
  await cp(await trainedRun(), run, { recursive: true });
  const e = 'e'.charCodeAt(0); // byte tokens: the id of "e" is its byte; the whale corpus is full of them
  await writeFile(join(run, 'generation_config.json'), JSON.stringify({ eos_token_id: [e] }));
  const { stdout, finished } = chat(run, 'the white whale\n', ['--max-tokens', '60']);
  assert.deepEqual(finished, ['stop']);
  assert.ok(!stdout.includes('e'), `the reply runs past the stop token: ${JSON.stringify(stdout)}`);
});

test('chat: unknown commands and bad flags are explained', async () => {
  const run = await trainedRun();
  const { stdout } = chat(run, '/nope\n');
  assert.match(stdout, /unknown command \/nope; \/reset forgets the conversation/);
  const bad = spawnSync(process.execPath, [cli, 'chat', run, '--max-tokens', '0'], { encoding: 'utf8' });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /--max-tokens must be an integer from 1/);
  const none = spawnSync(process.execPath, [cli, 'chat'], { encoding: 'utf8' });
  assert.match(none.stderr, /give the checkpoint/);
});
