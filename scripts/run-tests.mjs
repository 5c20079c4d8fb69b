#!/usr/bin/env node
// Runs the compiled test files (dist/tests/**/*.test.js) with node's built-in test runner.
// Optional arguments narrow the run to folders or files under tests/ (given as source paths).
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(new URL('..', import.meta.url).pathname);
const toDist = (p) => join(root, 'dist', p.replace(/\.ts$/, '.js'));
const targets = process.argv.slice(2).length ? process.argv.slice(2).map(toDist) : [join(root, 'dist', 'tests')];

function collect(path, out) {
  if (!existsSync(path)) throw new Error(`run-tests: ${path} does not exist (did the build run?)`);
  if (statSync(path).isDirectory()) {
    for (const entry of readdirSync(path).sort()) collect(join(path, entry), out);
  } else if (path.endsWith('.test.js')) out.push(path);
  return out;
}

const files = targets.flatMap((t) => collect(t, []));
const result = spawnSync(process.execPath, ['--test', '--test-reporter=spec', ...files], { stdio: 'inherit' });
process.exit(result.status ?? 1);
