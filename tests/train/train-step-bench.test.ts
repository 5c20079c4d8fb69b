// bench/gpu-train-step.ts on the CPU engine with a tiny preset, in the configurations the long-context GPU runs use
// (bench/gpu-long-context.sh), so they cannot fail on the GPU for a reason a CPU run would have shown.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const bench = fileURLToPath(new URL('../../bench/gpu-train-step.js', import.meta.url));

function run(args: string[]): string {
  return execFileSync(process.execPath, [bench, ...args, '--device', 'cpu'], {
    encoding: 'utf8',
    env: { ...process.env, ANDROMEDA_THREADS: '1' },
  });
}

for (const options of [
  ['--checkpoint', '--optimizer', 'adamw8bit', '--loss', 'chunked'],
  ['--optimizer', 'adamw', '--loss', 'full'],
]) {
  test(`tiny 1 × 48, ${options.join(' ')}: the loss is finite and falls on the fixed corpus batch`, () => {
    const output = run(['tiny', '1', '48', '6', ...options]);
    const losses = [...output.matchAll(/^step \d+: loss ([^,]+),/gm)].map((m) => Number(m[1]));
    assert.equal(losses.length, 6, output);
    assert.ok(losses.every(Number.isFinite), `losses ${losses}`);
    assert.ok(losses[5]! < losses[0]! - 0.1, `losses ${losses} do not fall`);
    assert.match(output, /\| tiny \| 1 × 48 \| [\d.]+ ms \| [\d,]+ tok\/s \|/);
    assert.match(output, options.includes('chunked') ? /chunked cross-entropy/ : /full logits/);
  });
}

test('bad options are refused with the option named', () => {
  const result = spawnSync(process.execPath, [bench, 'tiny', '1', '48', '2', '--device', 'cpu', '--optimizer', 'sgd'], {
    encoding: 'utf8',
  });
  assert.equal(result.status, 2);
  assert.match(result.stderr, /--optimizer must be adamw or adamw8bit, got 'sgd'/);
});
