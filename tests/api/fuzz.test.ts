// Fuzzes the public tensor API (fuzz-driver.ts) in a child process: a crash of the child — V8 abort,
// segfault, out-of-memory kill — fails this test and names the call that caused it, where an
// in-process fuzz would take the test runner down with it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const driver = fileURLToPath(new URL('./fuzz-driver.js', import.meta.url));
const SEED = 20261205;
const ROUNDS = 200;
/** The child's address space is capped, so a huge but accepted allocation fails (as an Error) instead of
 *  being handed out and filled, which would only test this machine's memory. */
const ADDRESS_SPACE_KB = 4_000_000;

test(
  'every public tensor op and constructor ' + 'answers random and adversarial arguments with a result or an Error',
  () => {
    const dir = mkdtempSync(join(tmpdir(), 'andromeda-fuzz-'));
    try {
      const log = join(dir, 'calls.log');
      const child = spawnSync(
        '/bin/sh',
        [
          '-c',
          `ulimit -v ${ADDRESS_SPACE_KB} && exec "$0" "$@"`,
          process.execPath,
          driver,
          String(SEED),
          String(ROUNDS),
          log,
        ],
        {
          encoding: 'utf8',
          timeout: 120_000,
          maxBuffer: 64 * 1024 * 1024,
        },
      );
      const lastCall = (): string => readFileSync(log, 'utf8').trimEnd().split('\n').at(-1) ?? '(none)';
      assert.equal(child.error, undefined, `the fuzz child could not run: ${child.error}`);
      assert.ok(
        child.status === 0 && child.signal === null,
        `the fuzz child died (status ${child.status}, signal ${child.signal}) during: ${lastCall()}\n` +
          `${child.stderr.slice(-3000)}`,
      );
      const summary = JSON.parse(child.stdout.trim().split('\n').at(-1)!) as {
        calls: number;
        threw: number;
        returned: number;
        neverReturned: string[];
        problems: string[];
      };
      assert.deepEqual(summary.problems, []);
      assert.deepEqual(
        summary.neverReturned,
        [],
        'ops whose every fuzzed call threw (the fuzz never got past their argument checks)',
      );
      // The fuzz must reach both outcomes, or it is only exercising argument checks (or none).
      assert.ok(summary.calls >= ROUNDS * 70, `only ${summary.calls} calls`);
      assert.ok(
        summary.returned > summary.calls * 0.1,
        `only ${summary.returned} of ${summary.calls} calls returned a result`,
      );
      assert.ok(summary.threw > summary.calls * 0.1, `only ${summary.threw} of ${summary.calls} calls threw`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
