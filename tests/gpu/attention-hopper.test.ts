// The Hopper (sm_90a, wgmma) attention forward against the float64 reference, each variant forced through
// ANDROMEDA_ATTENTION_FORWARD (native/cuda/attention/forward_hopper.h): head dims 64 and 128, lengths that
// are not multiples of the 128-row / 128-key tiles, 1 / 2 / all KV heads, causal with default and explicit
// query offsets (rows that see no key included), ALiBi, and enough key tiles to wrap the load pipeline.
// Outputs are poisoned with NaN before each call, so an unwritten element fails. On a GPU that is not
// Hopper, the forced choice must fail with an error that says why, and the automatic one must still work.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AttentionArgs, Dense } from '../../src/backend/backend.js';
import type { CudaBackend } from '../../src/backend/cuda.js';
import { DTYPE_BYTES, decodeHost, encodeHost, type DType } from '../../src/tensor/dtype.js';
import { gpu, gpuTest, gpuUnavailable } from './harness.js';
import { makeInputs, reference, relativeError, type AttentionCase } from './attention-reference.js';

const TOLERANCE = 1e-2;
const ENV = 'ANDROMEDA_ATTENTION_FORWARD';
const VARIANTS = ['hopper-cpasync', 'hopper-tma-serial', 'hopper-tma', 'hopper-tma-pingpong'] as const;

const CASES: AttentionCase[] = [
  { name: 'plain MHA d64 1×1', B: 1, H: 2, KVH: 2, NQ: 1, NK: 1, D: 64 },
  { name: 'plain MHA d128 7×7', B: 2, H: 2, KVH: 2, NQ: 7, NK: 7, D: 128 },
  { name: 'causal MQA d64 n130', B: 1, H: 4, KVH: 1, NQ: 130, NK: 130, D: 64, causal: true },
  { name: 'causal GQA2 d128 n257 ALiBi', B: 1, H: 4, KVH: 2, NQ: 257, NK: 257, D: 128, causal: true, alibi: true },
  { name: 'non-causal GQA2 d128 70×300', B: 1, H: 4, KVH: 2, NQ: 70, NK: 300, D: 128 },
  { name: 'non-causal ALiBi d64 129×129 (1-row last tile)', B: 1, H: 2, KVH: 1, NQ: 129, NK: 129, D: 64, alibi: true },
  { name: 'causal 33 queries vs 300 keys (offset 267) GQA2 d64 ALiBi', B: 1, H: 4, KVH: 2, NQ: 33, NK: 300, D: 64, causal: true, alibi: true },
  { name: 'causal offset 10, 100 queries vs 300 keys d128', B: 1, H: 2, KVH: 2, NQ: 100, NK: 300, D: 128, causal: true, offset: 10 },
  { name: 'causal 200 queries vs 150 keys (50 rows see nothing) d128', B: 1, H: 2, KVH: 1, NQ: 200, NK: 150, D: 128, causal: true },
  { name: 'batch 2 MHA causal d64 n260 ALiBi', B: 2, H: 3, KVH: 3, NQ: 260, NK: 260, D: 64, causal: true, alibi: true },
  { name: 'causal MQA d128 n700 (6 key tiles, 2-stage ring wraps)', B: 1, H: 2, KVH: 1, NQ: 700, NK: 700, D: 128, causal: true },
  { name: 'non-causal GQA2 d64 130×900 ALiBi (3-stage ring wraps)', B: 1, H: 4, KVH: 2, NQ: 130, NK: 900, D: 64, alibi: true },
];

function forward(c: AttentionCase, choice: string): { out: Float64Array; lse: Float64Array } {
  const backend = gpu() as CudaBackend;
  const inp = makeInputs(c);
  const handles: number[] = [];
  const put = (values: ArrayLike<number>, dtype: DType): Dense => {
    const handle = backend.alloc(Math.max(16, values.length * DTYPE_BYTES[dtype]));
    handles.push(handle);
    if (values.length) backend.upload(handle, 0, encodeHost(dtype, values));
    return { handle, offset: 0, dtype };
  };
  const get = (d: Dense, count: number): Float64Array =>
    Float64Array.from(decodeHost(d.dtype, backend.download(d.handle, 0, count * DTYPE_BYTES[d.dtype]), count));
  const { B, H, KVH, NQ, NK, D } = c;
  const previous = process.env[ENV];
  try {
    const q = put(inp.q, 'bfloat16'), k = put(inp.k, 'bfloat16'), v = put(inp.v, 'bfloat16');
    const out = put(new Float64Array(B * H * NQ * D).fill(NaN), 'bfloat16');
    const lse = put(new Float64Array(B * H * NQ).fill(NaN), 'float32');
    const args: AttentionArgs = {
      batch: B, heads: H, kvHeads: KVH, queryLen: NQ, keyLen: NK, headDim: D, scale: inp.scale,
      causal: !!c.causal, queryOffset: inp.offset, alibiSlopes: inp.slopes,
      rotaryDim: 0, rotaryInvFreq: null, xposScaleBase: 0, keyScale: null,
      queryPositions: null, keyPositions: null, querySegments: null, keySegments: null,
    };
    process.env[ENV] = choice;
    backend.attentionForwardOn('tiled', q, k, v, out, lse, args);
    backend.synchronize();
    return { out: get(out, B * H * NQ * D), lse: get(lse, B * H * NQ) };
  } finally {
    if (previous === undefined) delete process.env[ENV];
    else process.env[ENV] = previous;
    for (const h of handles) backend.free(h);
  }
}

function check(c: AttentionCase, choice: string): void {
  const { out, lse } = forward(c, choice);
  const ref = reference(c, makeInputs(c));
  const eo = relativeError(out, ref.out), el = relativeError(lse, ref.lse);
  console.log(`  ${choice.padEnd(17)} ${c.name.padEnd(62)} out ${eo.toExponential(1)}  lse ${el.toExponential(1)}`);
  assert.ok(eo < TOLERANCE, `${c.name} (${choice}): out relative error ${eo.toExponential(2)} ≥ ${TOLERANCE}`);
  assert.ok(el < TOLERANCE, `${c.name} (${choice}): lse relative error ${el.toExponential(2)} ≥ ${TOLERANCE}`);
}

function isHopper(): boolean {
  return gpuUnavailable === null && /\(sm_9\d/.test((gpu() as CudaBackend).description);
}
const notHopper = gpuUnavailable === null && !isHopper() ? `not a Hopper GPU: ${(gpu() as CudaBackend).description}` : null;

// One test per variant, in order of increasing machinery: a failing variant shows which part broke.
for (const variant of VARIANTS) {
  const name = `Hopper attention forward, ${variant}: matches the float64 reference`;
  if (notHopper) test(name, { skip: notHopper }, () => {});
  else gpuTest(name, () => { for (const c of CASES) check(c, variant); });
}

gpuTest('attention forward: the automatic choice and the mma.sync kernel match the reference on the same cases', () => {
  for (const c of [CASES[3]!, CASES[8]!]) {
    check(c, 'auto');
    check(c, 'mma');
  }
});

gpuTest('a forced Hopper forward that cannot run fails with the reason; an unknown choice is rejected', () => {
  const d32: AttentionCase = { name: 'd32', B: 1, H: 1, KVH: 1, NQ: 4, NK: 4, D: 32 };
  assert.throws(() => forward(d32, 'hopper'), /Hopper forward cannot run: head dim 32/);
  assert.throws(() => forward(CASES[2]!, 'no-such-kernel'), /ANDROMEDA_ATTENTION_FORWARD=no-such-kernel/);
  if (!isHopper()) assert.throws(() => forward(CASES[2]!, 'hopper'), /compute capability/);
});
