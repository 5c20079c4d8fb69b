// The CPU embedding gradient's contract, shared with the CUDA engine (native/cuda/embedding.cu; the GPU test compares
// the two): each id's rows are summed in position order in float32 onto the table's value and rounded to a bfloat16
// table once. Checked bit for bit against that reference in plain JavaScript, on runs of hundreds of equal ids (a
// byte-level model's frequent bytes), where rounding at every add drifts by tens of percent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getEngine, type DType } from '../../src/index.js';
import type { Dense } from '../../src/engine/engine.js';
import { bf16BitsToFloat, floatToBf16Bits } from '../../src/tensor/dtype.js';
import { xorshift32 } from '../helpers/xorshift.js';

const cpu = getEngine('cpu');
const dense = (handle: number, dtype: DType): Dense => ({ handle, offset: 0, dtype });

test('embeddingGrad (bfloat16): each id sums its rows in order in float32, rounded once', () => {
  const count = 1537,
    dim = 40,
    rows = 3;
  const random = xorshift32(7);
  const ids = Int32Array.from({ length: count }, () => Math.floor(random() * rows));
  const grad = Uint16Array.from({ length: count * dim }, () => floatToBf16Bits((random() - 0.5) * 4));
  const table = Uint16Array.from({ length: rows * dim }, () => floatToBf16Bits(random() - 0.5));

  const f32 = new Float32Array(1);
  const expected = new Uint16Array(table);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < dim; j++) {
      f32[0] = bf16BitsToFloat(table[r * dim + j]!);
      for (let i = 0; i < count; i++) if (ids[i] === r) f32[0] = f32[0]! + bf16BitsToFloat(grad[i * dim + j]!);
      expected[r * dim + j] = floatToBf16Bits(f32[0]!);
    }
  }

  const handles = [cpu.alloc(ids.byteLength), cpu.alloc(grad.byteLength), cpu.alloc(table.byteLength)];
  try {
    const [idsH, gradH, tableH] = handles as [number, number, number];
    cpu.upload(idsH, 0, ids);
    cpu.upload(gradH, 0, grad);
    cpu.upload(tableH, 0, table);
    cpu.embeddingGrad(dense(idsH, 'int32'), dense(gradH, 'bfloat16'), dense(tableH, 'bfloat16'), count, dim);
    const got = new Uint16Array(cpu.download(tableH, 0, table.byteLength));
    let differ = 0;
    for (let e = 0; e < got.length; e++) if (got[e] !== expected[e]) differ++;
    assert.equal(differ, 0, `${differ} of ${got.length} table values differ from the in-order float32 sum`);
  } finally {
    for (const h of handles) cpu.free(h);
  }
});
