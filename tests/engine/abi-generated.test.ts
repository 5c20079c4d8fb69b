// The files generated from the kernel ABI declaration (native/abi/kernels.mjs) are current, and the
// enumerations the bindings range-check match the codes the engine uses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { BINARY_CODE, REDUCE_CODE, UNARY_CODE, UNARY_GRAD_CODE } from '../../src/engine/engine.js';
import { DTYPE_CODE } from '../../src/tensor/dtype.js';
import { ENUM_CODES } from '../../src/engine/native-abi.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

test('the generated prototypes, N-API glue and TypeScript interfaces match native/abi/kernels.mjs', () => {
  const r = spawnSync(process.execPath, [join(root, 'scripts', 'generate-abi.mjs'), '--check'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
});

test('the declared enumerations have exactly the codes the engine sends', () => {
  const codes = (table: Record<string, number>) => Object.values(table).sort((a, b) => a - b);
  const upTo = (n: number) => Array.from({ length: n }, (_, i) => i);
  assert.deepEqual(codes(DTYPE_CODE), upTo(ENUM_CODES.dtype));
  assert.deepEqual(codes(UNARY_CODE), upTo(ENUM_CODES.unaryOp));
  assert.deepEqual(codes(UNARY_GRAD_CODE), upTo(ENUM_CODES.unaryGradOp));
  assert.deepEqual(codes(BINARY_CODE), upTo(ENUM_CODES.binaryOp));
  assert.deepEqual(codes(REDUCE_CODE), upTo(ENUM_CODES.reduceOp));
});
