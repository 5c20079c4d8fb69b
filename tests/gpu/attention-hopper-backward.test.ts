// The Hopper (sm_90a, wgmma) attention backward against the float64 reference, named through the backwardKernel
// option (native/cuda/attention/heuristics.h): dq, dk, dv at head dims 64 and 128, lengths that are not multiples of
// the 64-query / 128-key tiles, 1 / 2 / all KV heads, causal and not, ALiBi, explicit query offsets (key tiles that
// no query sees, rows that see no key), the pre-pass path (rotary, xPos, key scale applied once per call: dQ' and
// dK' in float32, stored or added) and the split key scale (key scale with fewer KV heads than heads: K'_h built per
// CTA from A, B; dA, dB and the key-scale gradient). The backward gets the reference's out and lse (so a forward
// problem cannot hide in it) and NaN-poisoned gradients, so an unwritten element fails. On a GPU that is not
// Hopper, naming the Hopper kernel must fail with an error that says why.
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
  type AttentionResult,
} from './attention-cases.js';

const TOLERANCE = 1e-2;

const CASES: AttentionCase[] = [
  { name: 'plain MHA d64 1×1', B: 1, H: 2, KVH: 2, NQ: 1, NK: 1, D: 64 },
  { name: 'plain MHA d128 7×7 batch 2', B: 2, H: 2, KVH: 2, NQ: 7, NK: 7, D: 128 },
  { name: 'causal MQA d64 n130', B: 1, H: 4, KVH: 1, NQ: 130, NK: 130, D: 64, causal: true },
  { name: 'causal GQA2 d128 n257 ALiBi', B: 1, H: 4, KVH: 2, NQ: 257, NK: 257, D: 128, causal: true, alibi: true },
  { name: 'non-causal GQA2 d128 70×300', B: 1, H: 4, KVH: 2, NQ: 70, NK: 300, D: 128 },
  { name: 'non-causal ALiBi MQA d64 129×129', B: 1, H: 2, KVH: 1, NQ: 129, NK: 129, D: 64, alibi: true },
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
    name: 'causal offset 10, 100 queries vs 300 keys d128 (key tiles no query sees)',
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
    name: 'causal 200 queries vs 150 keys (50 rows see nothing) MQA d128',
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
    name: 'causal MQA d128 n700 (11 query tiles: the 2-stage ring wraps)',
    B: 1,
    H: 2,
    KVH: 1,
    NQ: 700,
    NK: 700,
    D: 128,
    causal: true,
  },
  { name: 'non-causal GQA2 d64 130×900 ALiBi', B: 1, H: 4, KVH: 2, NQ: 130, NK: 900, D: 64, alibi: true },
  {
    name: 'non-causal offset −25 ALiBi d128 60×80',
    B: 1,
    H: 2,
    KVH: 2,
    NQ: 60,
    NK: 80,
    D: 128,
    offset: -25,
    alibi: true,
  },
  {
    name: 'causal ALiBi MQA d128 n200, 8 heads (grouped dK/dV sums)',
    B: 1,
    H: 8,
    KVH: 1,
    NQ: 200,
    NK: 200,
    D: 128,
    causal: true,
    alibi: true,
  },
];

/** Pre-pass path (the Hopper kernel gets q', k' and fills dQ' / dK' in float32): under transform mode 'prepass'. */
const PREPASS_CASES: AttentionCase[] = [
  {
    name: "pre-pass: rotary r32 d64 causal GQA2 n200 (dQ' f32, dK' added)",
    B: 1,
    H: 4,
    KVH: 2,
    NQ: 200,
    NK: 200,
    D: 64,
    rotary: 32,
    causal: true,
  },
  {
    name: "pre-pass: keyScale MHA d128 causal n130 (dK' stored)",
    B: 1,
    H: 3,
    KVH: 3,
    NQ: 130,
    NK: 130,
    D: 128,
    keyScale: true,
    causal: true,
  },
];

/**
 * The split key scale (key scale, fewer KV heads than heads: the Hopper backward builds K'_h = c_h A + d_h B once per
 * CTA, adds dA, dB with atomics and stores the key-scale column sums): every input gradient, the key scale's included.
 * r = 64 of 128, 32 of 64, 128 of 128, none (K'_h = g_h k), MQA and GQA2, offsets, lengths inside a tile.
 */
const SPLIT_CASES: AttentionCase[] = [
  {
    name: 'split: andromeda-like d128 r64 xPos ALiBi keyScale MQA n257',
    B: 1,
    H: 4,
    KVH: 1,
    NQ: 257,
    NK: 257,
    D: 128,
    rotary: 64,
    xpos: 512,
    alibi: true,
    keyScale: true,
    causal: true,
  },
  {
    name: 'split: MQA d128 r64 xPos ALiBi keyScale n301, 8 heads',
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
    name: 'split: GQA2 d128 r128 xPos keyScale non-causal 150×333',
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
    name: 'split: MQA d64 keyScale, no rotary, causal ALiBi n200',
    B: 1,
    H: 4,
    KVH: 1,
    NQ: 200,
    NK: 200,
    D: 64,
    causal: true,
    alibi: true,
    keyScale: true,
  },
  {
    name: 'split: GQA2 d128 r64 keyScale, 80 queries after 300 keys, xPos ALiBi',
    B: 1,
    H: 6,
    KVH: 2,
    NQ: 80,
    NK: 380,
    D: 128,
    causal: true,
    rotary: 64,
    xpos: 512,
    alibi: true,
    keyScale: true,
  },
];

interface Gradients {
  dq: Float64Array;
  dk: Float64Array;
  dv: Float64Array;
  dks: Float64Array | null;
  plan: CudaAttentionPlan;
}

/** The backward of case c on the named kernel, from the reference's out and lse. */
function backward(
  c: AttentionCase,
  ref: AttentionResult,
  kernel: CudaAttentionKernel,
  transform: CudaAttentionTransform = 'auto',
): Gradients {
  const engine = gpu() as CudaEngine;
  const inp = makeInputs(c);
  const mem = new DeviceBuffers(engine);
  const { B, H, KVH, NQ, NK, D } = c;
  try {
    const q = mem.put(inp.q, 'bfloat16'),
      k = mem.put(inp.k, 'bfloat16'),
      v = mem.put(inp.v, 'bfloat16');
    const out = mem.put(ref.out, 'bfloat16'),
      lse = mem.put(ref.lse, 'float32'),
      gout = mem.put(inp.gout, 'bfloat16');
    const dq = mem.output(B * H * NQ * D, 'bfloat16'),
      dk = mem.output(B * KVH * NK * D, 'bfloat16'),
      dv = mem.output(B * KVH * NK * D, 'bfloat16');
    const dks = inp.ks ? mem.output(H * D, 'float32') : null;
    const args = attentionArgsOf(c, inp, (values, type) => mem.put(values, type));
    const options = { backwardKernel: kernel, transform } as const;
    const plan = engine.attentionPlan(q, lse, args, options);
    engine.attentionBackward(q, k, v, out, lse, gout, dq, dk, dv, dks, args, options);
    engine.synchronize();
    return {
      dq: mem.get(dq, B * H * NQ * D),
      dk: mem.get(dk, B * KVH * NK * D),
      dv: mem.get(dv, B * KVH * NK * D),
      dks: dks ? mem.get(dks, H * D) : null,
      plan,
    };
  } finally {
    mem.dispose();
  }
}

const references = new Map<string, AttentionResult>();
function referenceOf(c: AttentionCase): AttentionResult {
  let r = references.get(c.name);
  if (!r) references.set(c.name, (r = reference(c, makeInputs(c))));
  return r;
}

function check(c: AttentionCase, kernel: CudaAttentionKernel, transform: CudaAttentionTransform = 'auto'): void {
  const ref = referenceOf(c);
  const got = backward(c, ref, kernel, transform);
  const errors: [string, number][] = [
    ['dq', relativeError(got.dq, ref.dq)],
    ['dk', relativeError(got.dk, ref.dk)],
    ['dv', relativeError(got.dv, ref.dv)],
  ];
  if (ref.dks) errors.push(['dKeyScale', relativeError(got.dks!, ref.dks)]);
  console.log(
    `  ${kernel.padEnd(6)} ${transform.padEnd(7)} ${c.name.padEnd(72)} ${errors
      .map(([n, e]) => `${n} ${e.toExponential(1)}`)
      .join('  ')}  (${got.plan})`,
  );
  // The split key scale must have split in the backward wherever the Hopper backward runs it.
  if (
    c.keyScale &&
    c.KVH < c.H &&
    transform === 'prepass' &&
    (kernel === 'hopper' || (kernel === 'auto' && isHopper()))
  ) {
    assert.match(got.plan, /^split(-backward)?$/, `${c.name} (${kernel}): the backward did not split`);
  }
  for (const [name, e] of errors)
    assert.ok(e < TOLERANCE, `${c.name} (${kernel}): ${name} relative error ${e.toExponential(2)} ≥ ${TOLERANCE}`);
}

/** The Hopper backward takes problems of at least one full tile: 64 queries and 128 keys (heuristics.h). */
function hopperSized(c: AttentionCase): boolean {
  return c.NQ >= 64 && c.NK >= 128;
}

const notHopper = notHopperReason();

// Each case is checked on its own, so one failure does not hide how the other cases fare (the log lists every
// case's errors).
const name = 'Hopper attention backward: dq, dk, dv match the float64 reference';
if (notHopper) test(name, { skip: notHopper }, () => {});
else {
  gpuTest(name, () => {
    const failures: string[] = [];
    const attempt = (c: AttentionCase, transform: CudaAttentionTransform = 'auto'): void => {
      try {
        check(c, 'hopper', transform);
      } catch (e) {
        failures.push((e as Error).message);
      }
    };
    for (const c of CASES) {
      if (hopperSized(c)) attempt(c);
      else
        assert.throws(
          () => backward(c, referenceOf(c), 'hopper'),
          /Hopper backward cannot run: fewer than 64 queries or 128 keys/,
        );
    }
    for (const c of PREPASS_CASES) attempt(c, 'prepass');
    for (const c of SPLIT_CASES) attempt(c, 'prepass');
    // With the key scale on the pre-pass, check() also asserts the packed backward split (Hopper only).
    for (const c of PACKED_CASES) attempt(c, c.keyScale ? 'prepass' : 'auto');
    assert.deepEqual(failures, [], `${failures.length} case(s) failed`);
  });
}

gpuTest(
  'attention backward: the automatic choice and the mma.sync kernels match the reference on the same cases',
  () => {
    for (const c of [CASES[3]!, CASES[8]!, CASES[11]!]) {
      check(c, 'auto');
      check(c, 'mma');
    }
    check(SPLIT_CASES[0]!, 'auto', 'prepass');
    check(PREPASS_CASES[1]!, 'auto', 'prepass');
    // The in-kernel transform stays on the mma.sync kernels under auto; so does the split key scale under mma.
    check(SPLIT_CASES[0]!, 'auto', 'kernel');
    check(SPLIT_CASES[0]!, 'mma', 'prepass');
    check(PACKED_CASES[1]!, 'auto');
    check(PACKED_CASES[1]!, 'mma');
  },
);

gpuTest('a Hopper backward named where it cannot run fails with the reason; an unknown kernel is rejected', () => {
  const d32: AttentionCase = { name: 'd32', B: 1, H: 1, KVH: 1, NQ: 4, NK: 4, D: 32 };
  assert.throws(() => backward(d32, referenceOf(d32), 'hopper'), /Hopper backward cannot run: head dim 32/);
  const positions: AttentionCase = {
    name: 'custom positions',
    B: 1,
    H: 2,
    KVH: 1,
    NQ: 80,
    NK: 200,
    D: 64,
    causal: true,
    segments: true,
    positions: 'reset',
  };
  assert.throws(
    () => backward(positions, referenceOf(positions), 'hopper'),
    /Hopper backward cannot run: custom positions/,
  );
  assert.throws(
    () => backward(CASES[2]!, referenceOf(CASES[2]!), 'no-such-kernel' as CudaAttentionKernel),
    /backwardKernel 'no-such-kernel'/,
  );
  if (!isHopper()) assert.throws(() => backward(CASES[2]!, referenceOf(CASES[2]!), 'hopper'), /compute capability/);
});
