// The Hopper (sm_90a, wgmma + TMA) attention forward against the float64 reference, named through the
// forwardKernel option (native/cuda/attention/heuristics.h): head dims 64 and 128, lengths that are not multiples
// of the 128-row / 128-key tiles, 1 / 2 / all KV heads, causal with default and explicit query offsets (rows that
// see no key included), ALiBi, and enough key tiles to wrap the load pipeline. Outputs are poisoned with NaN
// before each call, so an unwritten element fails. On a GPU that is not Hopper, naming the Hopper kernel must fail
// with an error that says why, and the automatic choice must still work. The split key scale (key scale with
// fewer KV heads than heads, under the pre-pass) runs on it too.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { CudaEngine } from '../../src/engine/cuda.js';
import type {
  CudaAttentionKernel,
  CudaAttentionPlan,
  CudaAttentionTransform,
} from '../../src/engine/cuda-attention.js';
import { DeviceBuffers, gpu, gpuTest, isHopper, notHopperReason } from './harness.js';
import {
  attentionArgsOf,
  makeInputs,
  PACKED_CASES,
  reference,
  relativeError,
  type AttentionCase,
} from './attention-cases.js';

const TOLERANCE = 1e-2;

const CASES: AttentionCase[] = [
  { name: 'plain MHA d64 1×1', B: 1, H: 2, KVH: 2, NQ: 1, NK: 1, D: 64 },
  { name: 'plain MHA d128 7×7', B: 2, H: 2, KVH: 2, NQ: 7, NK: 7, D: 128 },
  { name: 'causal MQA d64 n130', B: 1, H: 4, KVH: 1, NQ: 130, NK: 130, D: 64, causal: true },
  { name: 'causal GQA2 d128 n257 ALiBi', B: 1, H: 4, KVH: 2, NQ: 257, NK: 257, D: 128, causal: true, alibi: true },
  { name: 'non-causal GQA2 d128 70×300', B: 1, H: 4, KVH: 2, NQ: 70, NK: 300, D: 128 },
  { name: 'non-causal ALiBi d64 129×129 (1-row last tile)', B: 1, H: 2, KVH: 1, NQ: 129, NK: 129, D: 64, alibi: true },
  {
    name: 'causal 33 queries vs 300 keys (offset 267) GQA2 d64 ALiBi',
    B: 1,
    H: 4,
    KVH: 2,
    NQ: 33,
    NK: 300,
    D: 64,
    causal: true,
    alibi: true,
  },
  {
    name: 'causal offset 10, 100 queries vs 300 keys d128',
    B: 1,
    H: 2,
    KVH: 2,
    NQ: 100,
    NK: 300,
    D: 128,
    causal: true,
    offset: 10,
  },
  {
    name: 'causal 200 queries vs 150 keys (50 rows see nothing) d128',
    B: 1,
    H: 2,
    KVH: 1,
    NQ: 200,
    NK: 150,
    D: 128,
    causal: true,
  },
  { name: 'batch 2 MHA causal d64 n260 ALiBi', B: 2, H: 3, KVH: 3, NQ: 260, NK: 260, D: 64, causal: true, alibi: true },
  {
    name: 'causal MQA d128 n700 (6 key tiles, 2-stage ring wraps)',
    B: 1,
    H: 2,
    KVH: 1,
    NQ: 700,
    NK: 700,
    D: 128,
    causal: true,
  },
  {
    name: 'non-causal GQA2 d64 130×900 ALiBi (3-stage ring wraps)',
    B: 1,
    H: 4,
    KVH: 2,
    NQ: 130,
    NK: 900,
    D: 64,
    alibi: true,
  },
];

/**
 * The split key scale (key scale, fewer KV heads than heads, rotary: A and B per KV head, the producer warps build
 * K'_h in shared memory) under the pre-pass: r = 64 of 128 (one B column block), r = 32 of 64 (part of one), r = 128
 * (two), xPos, ALiBi, MQA and GQA2, causal with offsets and not, lengths inside a key tile, rings that wrap.
 */
const SPLIT_CASES: AttentionCase[] = [
  {
    name: 'split: MQA d128 r64 xPos ALiBi keyScale n301 (8 heads)',
    B: 1,
    H: 8,
    KVH: 1,
    NQ: 301,
    NK: 301,
    D: 128,
    causal: true,
    rotary: 64,
    xpos: 512,
    alibi: true,
    keyScale: true,
  },
  {
    name: 'split: GQA2 d64 r32 xPos keyScale n257 batch 2',
    B: 2,
    H: 4,
    KVH: 2,
    NQ: 257,
    NK: 257,
    D: 64,
    causal: true,
    rotary: 32,
    xpos: 512,
    keyScale: true,
  },
  {
    name: 'split: GQA2 d128 r128 keyScale non-causal 150×333',
    B: 1,
    H: 4,
    KVH: 2,
    NQ: 150,
    NK: 333,
    D: 128,
    rotary: 128,
    xpos: 512,
    keyScale: true,
  },
  {
    name: 'split: MQA d128 r64 keyScale, 80 queries after 620 keys (ring wraps)',
    B: 1,
    H: 4,
    KVH: 1,
    NQ: 80,
    NK: 700,
    D: 128,
    causal: true,
    rotary: 64,
    xpos: 512,
    alibi: true,
    keyScale: true,
  },
  {
    name: 'split: GQA2 d64 r64 keyScale non-causal ALiBi 130×900 (3-stage ring wraps)',
    B: 1,
    H: 4,
    KVH: 2,
    NQ: 130,
    NK: 900,
    D: 64,
    rotary: 64,
    alibi: true,
    keyScale: true,
  },
];

function forward(
  c: AttentionCase,
  kernel: CudaAttentionKernel,
  transform: CudaAttentionTransform = 'auto',
): { out: Float64Array; lse: Float64Array; plan: CudaAttentionPlan } {
  const engine = gpu() as CudaEngine;
  const inp = makeInputs(c);
  const mem = new DeviceBuffers(engine);
  const { B, H, NQ, D } = c;
  try {
    const q = mem.put(inp.q, 'bfloat16'),
      k = mem.put(inp.k, 'bfloat16'),
      v = mem.put(inp.v, 'bfloat16');
    const out = mem.output(B * H * NQ * D, 'bfloat16'),
      lse = mem.output(B * H * NQ, 'float32');
    const args = attentionArgsOf(c, inp, (values, type) => mem.put(values, type));
    const options = { path: 'tiled', forwardKernel: kernel, transform } as const;
    const plan = engine.attentionPlan(q, lse, args, options);
    engine.attentionForward(q, k, v, out, lse, args, options);
    engine.synchronize();
    return { out: mem.get(out, B * H * NQ * D), lse: mem.get(lse, B * H * NQ), plan };
  } finally {
    mem.dispose();
  }
}

function check(
  c: AttentionCase,
  kernel: CudaAttentionKernel,
  transform: CudaAttentionTransform = 'auto',
): CudaAttentionPlan {
  const { out, lse, plan } = forward(c, kernel, transform);
  const ref = reference(c, makeInputs(c));
  const eo = relativeError(out, ref.out),
    el = relativeError(lse, ref.lse);
  console.log(
    `  ${kernel.padEnd(6)} ${c.name.padEnd(62)} out ${eo.toExponential(1)}  lse ${el.toExponential(1)}  (${plan})`,
  );
  assert.ok(eo < TOLERANCE, `${c.name} (${kernel}): out relative error ${eo.toExponential(2)} ≥ ${TOLERANCE}`);
  assert.ok(el < TOLERANCE, `${c.name} (${kernel}): lse relative error ${el.toExponential(2)} ≥ ${TOLERANCE}`);
  return plan;
}

const notHopper = notHopperReason();

function hopperTest(name: string, fn: () => void): void {
  if (notHopper) test(name, { skip: notHopper }, () => {});
  else gpuTest(name, fn);
}

hopperTest('Hopper attention forward: matches the float64 reference', () => {
  for (const c of CASES) check(c, 'hopper');
});

// The plan must say the forward split: 'split', or 'split-forward' where the backward cannot (e.g. under 64 queries).
hopperTest(
  "Hopper attention forward: the split key scale (K'_h built in shared memory) matches the float64 reference",
  () => {
    for (const c of SPLIT_CASES) {
      assert.match(check(c, 'hopper', 'prepass'), /^split(-forward)?$/, `${c.name}: the forward did not split`);
    }
  },
);

// Packed documents: the kernel skips key tiles of other documents and masks ids on the tiles that mix them.
hopperTest('Hopper attention forward: packed documents (segment ids) match the float64 reference', () => {
  for (const c of PACKED_CASES) {
    const plan = check(c, 'hopper');
    if (c.keyScale && c.KVH < c.H) assert.equal(plan, 'split', `${c.name}: the packed forward did not split`);
  }
});

gpuTest('attention forward: the automatic choice and the mma.sync kernel match the reference on the same cases', () => {
  for (const c of [CASES[3]!, CASES[8]!]) {
    check(c, 'auto');
    check(c, 'mma');
  }
  // The split key scale under auto; on mma.sync the forward keeps the transform in the kernel (never a k' per head).
  check(SPLIT_CASES[0]!, 'auto', 'prepass');
  assert.equal(check(SPLIT_CASES[0]!, 'mma', 'prepass'), isHopper() ? 'split-backward' : 'kernel');
  // Packed documents: under auto the split key scale (Hopper kernels only) says the Hopper path was taken.
  const packed = PACKED_CASES[3]!;
  assert.equal(check(packed, 'auto'), isHopper() ? 'split' : 'kernel');
  check(packed, 'mma');
});

gpuTest('a Hopper forward named where it cannot run fails with the reason; an unknown kernel is rejected', () => {
  const d32: AttentionCase = { name: 'd32', B: 1, H: 1, KVH: 1, NQ: 4, NK: 4, D: 32 };
  assert.throws(() => forward(d32, 'hopper'), /Hopper forward cannot run: head dim 32/);
  const positions: AttentionCase = {
    name: 'custom positions',
    B: 1,
    H: 2,
    KVH: 1,
    NQ: 40,
    NK: 40,
    D: 64,
    causal: true,
    segments: true,
    positions: 'reset',
  };
  assert.throws(() => forward(positions, 'hopper'), /Hopper forward cannot run: custom positions/);
  assert.throws(() => forward(CASES[2]!, 'no-such-kernel' as CudaAttentionKernel), /forwardKernel 'no-such-kernel'/);
  if (!isHopper()) assert.throws(() => forward(CASES[2]!, 'hopper'), /compute capability/);
});
