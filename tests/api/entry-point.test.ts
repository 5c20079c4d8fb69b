// The package's entry point (what `import ... from 'andromeda'` gives) holds the model, tokenizers, training,
// generation and the inference engine, and the CLI reports the package version.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as andromeda from '../../src/index.js';

const root = new URL('../../../', import.meta.url);

test('the entry point exports the model, tokenizers, train, generate and the inference engine', () => {
  const expected = [
    'Tensor',
    'AdamW',
    'ByteTokenizer',
    'BpeTokenizer',
    'HuggingFaceTokenizer',
    'loadTokenizer',
    'trainBpe',
    'train',
    'DEFAULT_CONFIG',
    'generate',
    'loadModelForInference',
    'InferenceEngine',
    'loadChatTemplate',
  ];
  const exports = andromeda as unknown as Record<string, unknown>;
  for (const name of expected) assert.ok(exports[name] !== undefined, `andromeda does not export ${name}`);
});

test('andromeda --version prints the package version', () => {
  const pkg = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as { version: string };
  assert.equal(andromeda.VERSION, pkg.version);
  const cli = fileURLToPath(new URL('dist/src/cli/main.js', root));
  const r = spawnSync(process.execPath, [cli, '--version'], { encoding: 'utf8' });
  assert.equal(r.status, 0);
  assert.equal(r.stdout, `${pkg.version}\n`);
});
