// Random and adversarial arguments for every kernel of the CPU addon and every method of the CPU engine,
// in a child process (native-fuzz-child.ts) so that a crash is a failed test instead of a dead runner.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const child = join(dirname(fileURLToPath(import.meta.url)), 'native-fuzz-child.js');

for (const seed of [1, 2, 3]) {
  test(
    `native boundary fuzz, seed ${seed}: ` + `every call returns or throws an Error, no guard byte changes, no crash`,
    () => {
      const r = spawnSync(process.execPath, [child, String(seed), '2000'], { encoding: 'utf8', timeout: 120_000 });
      assert.equal(r.signal, null, `the fuzz child died of ${r.signal}: ${r.stderr.slice(-2000)}`);
      assert.equal(r.status, 0, `the fuzz child failed: ${r.stderr.slice(-2000)}`);
      const counts = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
        calls: number;
        threw: number;
        returned: number;
        mustThrow: number;
      };
      assert.equal(counts.calls, counts.threw + counts.returned);
      // The run exercised both sides: refused calls and kernels that ran.
      assert.ok(counts.mustThrow > 500, `only ${counts.mustThrow} adversarial calls`);
      assert.ok(counts.returned > 100, `only ${counts.returned} calls ran a kernel`);
    },
  );
}
