// The README's "Programmatic use" example, run as written: the ```js block is extracted and executed with
// `import ... from 'andromeda'` resolving to this package through its exports map (Node's self-reference).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** The first ```js block after the "## Programmatic use" heading. */
export function readmeExample(readme: string): string {
  const section = readme.indexOf('## Programmatic use');
  assert.ok(section >= 0, 'README.md has no "## Programmatic use" section');
  const match = /```js\n([\s\S]*?)```/.exec(readme.slice(section));
  assert.ok(match, 'README.md: no ```js block under "## Programmatic use"');
  return match[1];
}

test('the README example runs against the package entry point', async () => {
  const example = readmeExample(await readFile(join(ROOT, 'README.md'), 'utf8'));
  assert.match(example, /from 'andromeda'/);
  // Inside the package folder so that 'andromeda' resolves to this package; its runs/ go to a temporary folder.
  const file = join(ROOT, 'dist', `readme-example-${process.pid}.mjs`);
  const cwd = await mkdtemp(join(ROOT, 'dist', 'readme-run-'));
  await writeFile(file, example);
  try {
    const run = spawnSync(process.execPath, [file], {
      cwd,
      encoding: 'utf8',
      env: { ...process.env, ANDROMEDA_THREADS: '1' },
    });
    assert.equal(run.status, 0, `the README example failed:\n${run.stdout}\n${run.stderr}`);
    const lines = run.stdout.trim().split('\n');
    assert.match(lines[0], /^andromeda \d+\.\d+\.\d+: 20 steps, held-out loss \d+\.\d+ nats\/token$/);
    assert.equal(typeof JSON.parse(lines[1]), 'string');
    assert.match(lines[2], /^\[\d+(,\d+)*\]$/);
    // The inference engine's three requests: each ends by the end-of-text token or its 24-token budget.
    assert.deepEqual(
      lines.slice(3).map((line) => /^(stop \d+|length 24)$/.test(line)),
      [true, true, true],
      lines.slice(3).join('\n'),
    );
  } finally {
    await rm(file, { force: true });
    await rm(cwd, { recursive: true, force: true });
  }
});
