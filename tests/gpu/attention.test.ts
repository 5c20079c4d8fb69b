// The CUDA fused attention (native/cuda/attention) against the float64 reference (tests/helpers/attention-reference.ts)
// on random bf16 inputs: forward output, lse and every input gradient, over head dims 32/64/128, odd
// lengths, 1 / 2 / all KV heads and each feature on and off; the tiled tensor-core kernel and the
// split-KV decode kernel. Relative errors must stay under 1e-2 (bf16 operands) and nothing may be NaN:
// outputs are poisoned with NaN before each call, so an unwritten element fails.
// Every tiled case runs twice, the transform option naming the path: rotary / xPos / key scale applied in the
// kernels' tiles ('kernel') and once per call by the pre-pass ('prepass'), and the path each call takes is checked
// against the rule
// (attention-plan.ts: the pre-pass where one xPos anchor stays in float range: ζ exponent ≤ 60; past that,
// with default positions, the forward on the pre-pass in query chunks with an anchor each and the backward
// in the kernels: 'chunked'; a key scale with fewer KV heads than heads splits — A, B per KV head and K'_h
// built in the Hopper kernels — where those kernels run, and stays in the kernels elsewhere: 'split…').
import assert from 'node:assert/strict';
import type { AttentionArgs } from '../../src/engine/engine.js';
import type { CudaEngine } from '../../src/engine/cuda.js';
import type { CudaAttentionPath, CudaAttentionPlan, CudaAttentionTransform } from '../../src/engine/cuda-attention.js';
import type { DType } from '../../src/tensor/dtype.js';
import { DeviceBuffers, gpu, gpuTest, isHopper } from './harness.js';
import {
  attentionArgsOf,
  makeInputs,
  reference,
  relativeError,
  type AttentionCase,
  type AttentionInputs,
  type AttentionResult,
} from './attention-cases.js';
import { expectedPlan } from './attention-plan.js';

const TOLERANCE = 1e-2;

/** The path the engine must take for a case under a named transform (attention-plan.ts mirrors the engine's rule). */
function expectedPlanOf(c: AttentionCase, mode: CudaAttentionTransform, inp: AttentionInputs): CudaAttentionPlan {
  return expectedPlan(c, mode, { hopper: isHopper() }, positionRange(inp));
}

/** Smallest and largest custom position of a case's inputs, or null for default positions. */
function positionRange(inp: AttentionInputs): { min: number; max: number } | null {
  if (!inp.qpos && !inp.kpos) return null;
  let min = Infinity,
    max = -Infinity;
  for (const v of [...(inp.qpos ?? []), ...(inp.kpos ?? [])]) {
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  return { min, max };
}

interface RunResult extends AttentionResult {
  plan: CudaAttentionPlan;
}

function run(
  c: AttentionCase,
  inp: AttentionInputs,
  path: CudaAttentionPath,
  transform: CudaAttentionTransform,
  backward: boolean,
  dtype: DType,
): RunResult {
  const engine = gpu() as CudaEngine;
  const mem = new DeviceBuffers(engine);
  try {
    const { B, H, KVH, NQ, NK, D } = c;
    const q = mem.put(inp.q, dtype),
      k = mem.put(inp.k, dtype),
      v = mem.put(inp.v, dtype);
    const args: AttentionArgs = {
      ...attentionArgsOf(c, inp, (values, type) => mem.put(values, type)),
      positionRange: positionRange(inp),
    };
    const out = mem.output(B * H * NQ * D, dtype),
      lse = mem.output(B * H * NQ, 'float32');
    engine.attentionForward(q, k, v, out, lse, args, { path, transform });
    const res: RunResult = {
      out: mem.get(out, B * H * NQ * D),
      lse: mem.get(lse, B * H * NQ),
      dq: new Float64Array(0),
      dk: new Float64Array(0),
      dv: new Float64Array(0),
      dks: null,
      plan: engine.attentionPlan(q, lse, args, { transform }),
    };
    if (backward) {
      const gout = mem.put(inp.gout, dtype);
      const dq = mem.output(B * H * NQ * D, dtype),
        dk = mem.output(B * KVH * NK * D, dtype),
        dv = mem.output(B * KVH * NK * D, dtype);
      const dks = inp.ks ? mem.output(H * D, 'float32') : null;
      engine.attentionBackward(q, k, v, out, lse, gout, dq, dk, dv, dks, args, { transform });
      res.dq = mem.get(dq, B * H * NQ * D);
      res.dk = mem.get(dk, B * KVH * NK * D);
      res.dv = mem.get(dv, B * KVH * NK * D);
      res.dks = dks ? mem.get(dks, H * D) : null;
    }
    return res;
  } finally {
    mem.dispose();
  }
}

/**
 * Runs a case under each transform option (the decode kernel applies the transform itself, so it runs
 * under one) against one reference; the tiled path must be the one expectedPlan names.
 */
function check(
  c: AttentionCase,
  path: CudaAttentionPath,
  backward: boolean,
  dtype: DType = 'bfloat16',
  modes: readonly CudaAttentionTransform[] = path === 'decode' ? ['auto'] : ['kernel', 'prepass'],
): void {
  const inp = makeInputs(c);
  const ref = reference(c, inp);
  for (const mode of modes) {
    const got = run(c, inp, path, mode, backward, dtype);
    const errors: [string, number][] = [
      ['out', relativeError(got.out, ref.out)],
      ['lse', relativeError(got.lse, ref.lse)],
    ];
    if (backward) {
      errors.push(
        ['dq', relativeError(got.dq, ref.dq)],
        ['dk', relativeError(got.dk, ref.dk)],
        ['dv', relativeError(got.dv, ref.dv)],
      );
      if (ref.dks) errors.push(['dKeyScale', relativeError(got.dks!, ref.dks)]);
    }
    const label = `${c.name} (${path}, ${dtype}, transform ${mode} → ${got.plan})`;
    console.log(
      `  ${path.padEnd(6)} ${dtype.padEnd(8)} ${got.plan.padEnd(7)} ${c.name.padEnd(62)} ${errors
        .map(([n, e]) => `${n} ${e.toExponential(1)}`)
        .join('  ')}`,
    );
    if (mode !== 'auto')
      assert.equal(got.plan, expectedPlanOf(c, mode, inp), `${label}: the transform took the wrong path`);
    for (const [name, e] of errors)
      assert.ok(e < TOLERANCE, `${label}: ${name} relative error ${e.toExponential(2)} ≥ ${TOLERANCE}`);
  }
}

const TILED: AttentionCase[] = [
  { name: 'plain MHA d32 n7', B: 2, H: 4, KVH: 4, NQ: 7, NK: 7, D: 32 },
  { name: 'plain MHA d64 n1', B: 1, H: 4, KVH: 4, NQ: 1, NK: 1, D: 64 },
  { name: 'causal MQA d64 n130', B: 1, H: 4, KVH: 1, NQ: 130, NK: 130, D: 64, causal: true },
  { name: 'causal GQA2 d128 n257 alibi', B: 1, H: 4, KVH: 2, NQ: 257, NK: 257, D: 128, causal: true, alibi: true },
  { name: 'keyScale MQA d32 n77 non-causal', B: 2, H: 4, KVH: 1, NQ: 77, NK: 77, D: 32, keyScale: true },
  { name: 'keyScale MHA d128 causal n130', B: 1, H: 3, KVH: 3, NQ: 130, NK: 130, D: 128, keyScale: true, causal: true },
  { name: 'rotary r32<d64 causal GQA2 n200', B: 1, H: 4, KVH: 2, NQ: 200, NK: 200, D: 64, rotary: 32, causal: true },
  { name: 'rotary r16 d32 non-causal', B: 1, H: 2, KVH: 1, NQ: 65, NK: 90, D: 32, rotary: 16 },
  {
    name: 'rotary+xPos d32 causal MQA n150',
    B: 2,
    H: 4,
    KVH: 1,
    NQ: 150,
    NK: 150,
    D: 32,
    rotary: 32,
    xpos: 512,
    causal: true,
  },
  {
    name: 'andromeda-like d128 r64 xPos ALiBi keyScale MQA n257',
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
    name: 'xPos base 8 (strong decay) d64 r32 n130',
    B: 1,
    H: 2,
    KVH: 2,
    NQ: 130,
    NK: 130,
    D: 64,
    rotary: 32,
    xpos: 8,
    causal: true,
  },
  {
    name: 'query offset 33 vs 200 keys, all features, GQA2',
    B: 1,
    H: 4,
    KVH: 2,
    NQ: 33,
    NK: 200,
    D: 64,
    causal: true,
    rotary: 32,
    xpos: 512,
    alibi: true,
    keyScale: true,
  },
  {
    name: 'non-causal ALiBi+rotary+keyScale d64 70×150',
    B: 1,
    H: 4,
    KVH: 1,
    NQ: 70,
    NK: 150,
    D: 64,
    rotary: 32,
    alibi: true,
    keyScale: true,
  },
  { name: 'segments causal MQA d32 n200', B: 2, H: 4, KVH: 1, NQ: 200, NK: 200, D: 32, causal: true, segments: true },
  {
    name: 'packed docs: segments, reset positions, all features d128',
    B: 2,
    H: 4,
    KVH: 1,
    NQ: 260,
    NK: 260,
    D: 128,
    causal: true,
    segments: true,
    positions: 'reset',
    rotary: 64,
    xpos: 512,
    alibi: true,
    keyScale: true,
  },
  {
    name: 'custom positions, causal offset d64',
    B: 2,
    H: 4,
    KVH: 4,
    NQ: 20,
    NK: 90,
    D: 64,
    causal: true,
    positions: 'custom',
    rotary: 16,
    xpos: 256,
    alibi: true,
    keyScale: true,
  },
  {
    name: 'rows with no visible key (lse −∞, zero output)',
    B: 1,
    H: 2,
    KVH: 1,
    NQ: 100,
    NK: 100,
    D: 64,
    causal: true,
    segments: true,
    allMaskedRows: true,
    alibi: true,
  },
  {
    name: 'positions past 150,000 with xPos d128 r64',
    B: 1,
    H: 2,
    KVH: 1,
    NQ: 200,
    NK: 200,
    D: 128,
    causal: true,
    positions: 'far',
    rotary: 64,
    xpos: 512,
    alibi: true,
  },
  {
    name: 'rotary with custom positions, no xPos (pre-pass tables per item)',
    B: 2,
    H: 4,
    KVH: 2,
    NQ: 90,
    NK: 90,
    D: 64,
    causal: true,
    positions: 'custom',
    rotary: 32,
    keyScale: true,
  },
  {
    name: "MHA rotary+xPos, no key scale (dK' stored, not added)",
    B: 2,
    H: 3,
    KVH: 3,
    NQ: 100,
    NK: 100,
    D: 64,
    causal: true,
    rotary: 64,
    xpos: 512,
  },
  {
    name: 'xPos base 8 over 520 positions: ζ^±58.7, inside the pre-pass range',
    B: 1,
    H: 2,
    KVH: 1,
    NQ: 520,
    NK: 520,
    D: 64,
    causal: true,
    rotary: 32,
    xpos: 8,
    keyScale: true,
  },
  {
    name: 'xPos base 8 over 600 positions: past one anchor (forward in 3 chunks of 256)',
    B: 1,
    H: 2,
    KVH: 1,
    NQ: 600,
    NK: 600,
    D: 64,
    causal: true,
    rotary: 32,
    xpos: 8,
  },
  {
    name: 'negative query offset, non-causal xPos keyScale GQA2',
    B: 1,
    H: 4,
    KVH: 2,
    NQ: 60,
    NK: 80,
    D: 32,
    offset: -25,
    rotary: 32,
    xpos: 512,
    keyScale: true,
    alibi: true,
  },
  ...splitCases(),
];

/**
 * The split key scale (key scale, fewer KV heads than heads; 'split' on Hopper under 'prepass', the in-kernel
 * transform elsewhere): MQA and GQA2, rotary r < 64 (B one partial column block), r = 64, r = D = 128 (two B
 * column blocks), no rotary (the forward puts the key scale on q', the backward builds g ⊙ k), query offsets, odd
 * lengths that end inside a key tile, batch 2.
 */
function splitCases(): AttentionCase[] {
  return [
    {
      name: 'split: keyScale MQA d128 r64 xPos ALiBi n301, 8 heads',
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
      name: 'split: keyScale GQA2 d64 r32 xPos causal n257 batch 2',
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
      name: 'split: keyScale GQA2 d128 r128 xPos non-causal 150×333',
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
      name: 'split: keyScale MQA d64, no rotary, causal ALiBi n200',
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
      name: 'split: keyScale GQA2 d128 r64, 80 queries after 300 keys, xPos ALiBi',
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
    {
      name: 'split: keyScale MQA d64 r64 (all rotary) xPos, 70 queries × 129 keys non-causal',
      B: 1,
      H: 3,
      KVH: 1,
      NQ: 70,
      NK: 129,
      D: 64,
      rotary: 64,
      xpos: 256,
      keyScale: true,
    },
  ];
}

/**
 * xPos past one anchor's range (base 8: 256 queries per chunk): the forward in query chunks, each with its
 * own anchor, on the pre-pass; the backward in the kernels.
 */
const CHUNKED: AttentionCase[] = [
  {
    name: 'chunked: 1,100 positions in 5 chunks, ALiBi, keyScale, MQA, batch 2',
    B: 2,
    H: 4,
    KVH: 1,
    NQ: 1100,
    NK: 1100,
    D: 64,
    causal: true,
    rotary: 32,
    xpos: 8,
    alibi: true,
    keyScale: true,
  },
  {
    name: 'chunked: 700 queries after 800 keys, d128 r64 GQA2 ALiBi segments',
    B: 1,
    H: 4,
    KVH: 2,
    NQ: 700,
    NK: 1500,
    D: 128,
    causal: true,
    rotary: 64,
    xpos: 8,
    alibi: true,
    segments: true,
  },
  {
    name: 'chunked: non-causal, 300 queries after 200 keys, keyScale MHA',
    B: 1,
    H: 2,
    KVH: 2,
    NQ: 300,
    NK: 200,
    D: 64,
    offset: 250,
    rotary: 32,
    xpos: 8,
    keyScale: true,
  },
  {
    name: 'chunked: one chunk of 64 queries after 2,000 keys (far keys underflow)',
    B: 1,
    H: 2,
    KVH: 1,
    NQ: 64,
    NK: 2000,
    D: 64,
    causal: true,
    rotary: 32,
    xpos: 8,
    keyScale: true,
    alibi: true,
  },
];

/** andromeda-3b's attention at a test-sized length: forward and every gradient on both transform paths. */
const ANDROMEDA_3B: AttentionCase = {
  name: 'andromeda-3b: 24×128, MQA, keyScale, rotary 64 + xPos, ALiBi on 12 heads, n300',
  B: 1,
  H: 24,
  KVH: 1,
  NQ: 300,
  NK: 300,
  D: 128,
  causal: true,
  rotary: 64,
  xpos: 512,
  alibi: true,
  alibiHeads: 12,
  keyScale: true,
};

/**
 * 64 queries at the end of 32,768 keys with xPos: one anchor puts ζ^±57.8 on q' and k' (the pre-pass limit at B = 512).
 */
const LONG_XPOS: AttentionCase = {
  name: 'xPos across 32,768 positions, 64 queries at the end, keyScale MQA',
  B: 1,
  H: 2,
  KVH: 1,
  NQ: 64,
  NK: 32768,
  D: 64,
  causal: true,
  rotary: 32,
  xpos: 512,
  keyScale: true,
};

const DECODE: AttentionCase[] = [
  {
    name: '1 query vs 1000 keys, MQA 8 heads, all features d128',
    B: 1,
    H: 8,
    KVH: 1,
    NQ: 1,
    NK: 1000,
    D: 128,
    causal: true,
    rotary: 64,
    xpos: 512,
    alibi: true,
    keyScale: true,
  },
  {
    name: '3 queries vs 500 keys, GQA2 d64 ALiBi rotary xPos',
    B: 2,
    H: 4,
    KVH: 2,
    NQ: 3,
    NK: 500,
    D: 64,
    causal: true,
    rotary: 32,
    xpos: 512,
    alibi: true,
  },
  { name: '1 query vs 2000 keys, MHA d32 plain', B: 1, H: 4, KVH: 4, NQ: 1, NK: 2000, D: 32, causal: true },
  {
    name: '2 queries vs 300 keys, segments + custom positions + keyScale',
    B: 2,
    H: 4,
    KVH: 1,
    NQ: 2,
    NK: 300,
    D: 64,
    causal: true,
    segments: true,
    positions: 'custom',
    rotary: 32,
    xpos: 512,
    keyScale: true,
  },
  {
    name: '1 query at position 150,600 with xPos d128',
    B: 1,
    H: 4,
    KVH: 1,
    NQ: 1,
    NK: 600,
    D: 128,
    causal: true,
    positions: 'far',
    rotary: 64,
    xpos: 512,
    alibi: true,
  },
  { name: '4 queries, non-causal, 130 keys d64', B: 1, H: 2, KVH: 2, NQ: 4, NK: 130, D: 64, rotary: 32 },
];

gpuTest(
  'fused attention, tiled kernel: forward and gradients match the float64 reference (transform in the kernels and ' +
    'by the pre-pass)',
  () => {
    for (const c of TILED) check(c, 'tiled', true);
  },
);

gpuTest("fused attention at andromeda-3b's shape: forward and gradients on both transform paths", () => {
  check(ANDROMEDA_3B, 'tiled', true);
});

gpuTest('fused attention, xPos over 32,768 positions with one pre-pass anchor', () => {
  check(LONG_XPOS, 'tiled', true);
});

gpuTest('fused attention, xPos past one anchor: the forward in query chunks with an anchor each', () => {
  for (const c of CHUNKED) check(c, 'tiled', c === CHUNKED[0]);
});

/**
 * The split key scale never holds a k' per query head: at andromeda-3b's shape (24 heads, 1 KV head, 2,048 tokens) the
 * extra memory of a forward stays under q' + half an expanded K (the split needs q' + A + B + rotary tables, the
 * expansion q' + 24 K), and of a backward under 5 q' + one expanded K (the split needs q' + dQ' + the Hopper dQ
 * accumulator + A, B, dA, dB, dV; the expansion added a bf16 k' and a float32 dK' per query head, 3 × 24 K). Both
 * paths must also agree with the in-kernel transform. On a GPU that is not Hopper the case stays in the kernels.
 */
gpuTest(
  "split key scale at andromeda-3b's shape: no K per query head in memory, same results as the in-kernel transform",
  () => {
    const c: AttentionCase = {
      name: 'andromeda-3b memory n2048',
      B: 1,
      H: 24,
      KVH: 1,
      NQ: 2048,
      NK: 2048,
      D: 128,
      causal: true,
      rotary: 64,
      xpos: 512,
      alibi: true,
      alibiHeads: 12,
      keyScale: true,
    };
    const inp = makeInputs(c);
    const qBytes = c.B * c.H * c.NQ * c.D * 2,
      kvBytes = c.B * c.KVH * c.NK * c.D * 2;
    const results = new Map<CudaAttentionTransform, RunResult & { forwardExtra: number; backwardExtra: number }>();
    for (const mode of ['prepass', 'kernel'] as const) results.set(mode, runMeasured(c, inp, mode));
    const split = results.get('prepass')!,
      kernel = results.get('kernel')!;
    const expected = expectedPlanOf(c, 'prepass', inp);
    console.log(
      `  plan ${split.plan}: forward +${(split.forwardExtra / 2 ** 20).toFixed(1)} MiB, backward +` +
        `${(split.backwardExtra / 2 ** 20).toFixed(1)} MiB (q' ${(qBytes / 2 ** 20).toFixed(1)} MiB, K ` +
        `${(kvBytes / 2 ** 20).toFixed(2)} MiB)`,
    );
    assert.equal(split.plan, expected, 'the transform took the wrong path');
    if (expected === 'split') {
      assert.ok(
        split.forwardExtra < qBytes + (c.H / 2) * kvBytes,
        `forward scratch ${split.forwardExtra} B: a K per query head?`,
      );
      assert.ok(
        split.backwardExtra < 5 * qBytes + c.H * kvBytes,
        `backward scratch ${split.backwardExtra} B: a K per query head?`,
      );
    }
    for (const name of ['out', 'lse', 'dq', 'dk', 'dv', 'dks'] as const) {
      const e = relativeError(split[name]!, kernel[name]!);
      assert.ok(e < TOLERANCE, `${name}: split vs in-kernel relative difference ${e.toExponential(2)} ≥ ${TOLERANCE}`);
    }
  },
);

/** Forward and backward of case c (bf16) with the engine's peak memory above what the inputs and outputs hold. */
function runMeasured(
  c: AttentionCase,
  inp: AttentionInputs,
  transform: CudaAttentionTransform,
): RunResult & { forwardExtra: number; backwardExtra: number } {
  const engine = gpu() as CudaEngine;
  const mem = new DeviceBuffers(engine);
  try {
    const { B, H, KVH, NQ, NK, D } = c;
    const q = mem.put(inp.q, 'bfloat16'),
      k = mem.put(inp.k, 'bfloat16'),
      v = mem.put(inp.v, 'bfloat16');
    const args = attentionArgsOf(c, inp, (values, type) => mem.put(values, type));
    const out = mem.output(B * H * NQ * D, 'bfloat16'),
      lse = mem.output(B * H * NQ, 'float32');
    const gout = mem.put(inp.gout, 'bfloat16');
    const dq = mem.output(B * H * NQ * D, 'bfloat16'),
      dk = mem.output(B * KVH * NK * D, 'bfloat16'),
      dv = mem.output(B * KVH * NK * D, 'bfloat16');
    const dks = mem.output(H * D, 'float32');
    const extra = (fn: () => void): number => {
      engine.synchronize();
      const base = engine.memoryStats().allocated;
      engine.resetPeakMemory();
      fn();
      engine.synchronize();
      return engine.memoryStats().peakAllocated - base;
    };
    const forwardExtra = extra(() => engine.attentionForward(q, k, v, out, lse, args, { path: 'tiled', transform }));
    const backwardExtra = extra(() =>
      engine.attentionBackward(q, k, v, out, lse, gout, dq, dk, dv, dks, args, { transform }),
    );
    return {
      out: mem.get(out, B * H * NQ * D),
      lse: mem.get(lse, B * H * NQ),
      dq: mem.get(dq, B * H * NQ * D),
      dk: mem.get(dk, B * KVH * NK * D),
      dv: mem.get(dv, B * KVH * NK * D),
      dks: mem.get(dks, H * D),
      plan: engine.attentionPlan(q, lse, args, { transform }),
      forwardExtra,
      backwardExtra,
    };
  } finally {
    mem.dispose();
  }
}

gpuTest('attention options with an unknown value or name are refused, naming what is accepted', () => {
  const c: AttentionCase = { name: 'options', B: 1, H: 2, KVH: 1, NQ: 8, NK: 8, D: 64, causal: true };
  const engine = gpu() as CudaEngine;
  const mem = new DeviceBuffers(engine);
  try {
    const inp = makeInputs(c);
    const q = mem.put(inp.q, 'bfloat16'),
      k = mem.put(inp.k, 'bfloat16'),
      v = mem.put(inp.v, 'bfloat16');
    const out = mem.output(2 * 8 * 64, 'bfloat16'),
      lse = mem.output(2 * 8, 'float32');
    const args = attentionArgsOf(c, inp, (values, type) => mem.put(values, type));
    assert.throws(
      () => engine.attentionForward(q, k, v, out, lse, args, { transform: 'sometimes' as CudaAttentionTransform }),
      /transform 'sometimes' \(expected 'auto', 'kernel', 'prepass'\)/,
    );
    assert.throws(
      () => engine.attentionPlan(q, lse, args, { forwardKernel: 'hopper-tma' as never }),
      /forwardKernel 'hopper-tma'/,
    );
    assert.throws(
      () => engine.attentionForward(q, k, v, out, lse, args, { layout: '8x16' } as never),
      /unknown option 'layout'/,
    );
  } finally {
    mem.dispose();
  }
});

gpuTest('fused attention, split-KV decode kernel: forward matches the float64 reference', () => {
  for (const c of DECODE) check(c, 'decode', false);
});

gpuTest('fused attention: float32 inputs (computed with bf16 operands) and the automatic path', () => {
  check(
    {
      name: 'float32 all features d64 GQA2 n150',
      B: 1,
      H: 4,
      KVH: 2,
      NQ: 150,
      NK: 150,
      D: 64,
      causal: true,
      rotary: 32,
      xpos: 512,
      alibi: true,
      keyScale: true,
    },
    'auto',
    true,
    'float32',
    ['auto', 'kernel', 'prepass'],
  );
  check(
    {
      name: 'auto path, 2 queries (decode)',
      B: 1,
      H: 4,
      KVH: 1,
      NQ: 2,
      NK: 400,
      D: 64,
      causal: true,
      rotary: 32,
      xpos: 512,
    },
    'auto',
    true,
  );
});

gpuTest('fused attention rejects unsupported head dims and misaligned buffers with an error', () => {
  const c: AttentionCase = { name: 'd48', B: 1, H: 1, KVH: 1, NQ: 4, NK: 4, D: 48 };
  assert.throws(() => run(c, makeInputs(c), 'auto', 'auto', false, 'bfloat16'), /head dim 48/);
});
