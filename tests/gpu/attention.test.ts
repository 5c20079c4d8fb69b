// The CUDA fused attention (native/cuda/attention) against a float64 reference (attention-reference.ts)
// on random bf16 inputs: forward output, lse and every input gradient, over head dims 32/64/128, odd
// lengths, 1 / 2 / all KV heads and each feature on and off; the tiled tensor-core kernel and the
// split-KV decode kernel. Relative errors must stay under 1e-2 (bf16 operands) and nothing may be NaN:
// outputs are poisoned with NaN before each call, so an unwritten element fails.
// Every tiled case runs twice: rotary / xPos / key scale applied in the kernels' tiles ('kernel') and
// once per call by the pre-pass ('prepass'), and the path each call takes is checked against the rule
// (the pre-pass where one xPos anchor stays in float range: ζ exponent ≤ 60; past that, with default
// positions, the forward on the pre-pass in query chunks with an anchor each and the backward in the
// kernels: 'chunked').
import assert from 'node:assert/strict';
import type { AttentionArgs, Dense } from '../../src/backend/backend.js';
import type { CudaBackend } from '../../src/backend/cuda.js';
import type { CudaAttentionPath } from '../../src/backend/cuda-attention.js';
import { DTYPE_BYTES, decodeHost, encodeHost, type DType } from '../../src/tensor/dtype.js';
import { gpu, gpuTest } from './harness.js';
import { makeInputs, reference, relativeError, type AttentionCase, type AttentionInputs, type AttentionResult } from './attention-reference.js';
import { attentionTransform, attentionTransformPlan, setAttentionTransform, type AttentionTransform, type AttentionTransformPlan } from './attention-transform.js';

const TOLERANCE = 1e-2;

class DeviceBuffers {
  private readonly handles: number[] = [];
  constructor(private readonly backend: CudaBackend) {}
  put(values: ArrayLike<number>, dtype: DType): Dense {
    const handle = this.backend.alloc(Math.max(16, values.length * DTYPE_BYTES[dtype]));
    this.handles.push(handle);
    if (values.length) this.backend.upload(handle, 0, encodeHost(dtype, values));
    return { handle, offset: 0, dtype };
  }
  /** NaN-filled (poisoned) output. */
  output(count: number, dtype: DType): Dense { return this.put(new Float64Array(count).fill(NaN), dtype); }
  get(d: Dense, count: number): Float64Array {
    return Float64Array.from(decodeHost(d.dtype, this.backend.download(d.handle, 0, count * DTYPE_BYTES[d.dtype]), count));
  }
  dispose(): void { for (const h of this.handles.splice(0)) this.backend.free(h); }
}

/** The path the engine must take for a case under a forced mode (the rule of plan_transform in attention.cu). */
function expectedPlan(c: AttentionCase, mode: AttentionTransform, inp: AttentionInputs): AttentionTransformPlan {
  if (!(c.rotary ?? 0) && !c.keyScale) return 'none';
  if (mode === 'kernel') return 'kernel';
  if (c.xpos) {
    const offset = c.offset ?? (c.causal ? c.NK - c.NQ : 0);
    // Custom positions: the range the caller passes (positionRange), as the attention op does from host values.
    const range = positionRange(inp);
    const lo = range ? range.min : Math.min(offset, 0), hi = range ? range.max : Math.max(offset + c.NQ - 1, c.NK - 1);
    const anchor = lo + Math.floor((hi - lo) / 2);
    if ((Math.log2(3.5) / c.xpos) * Math.max(anchor - lo, hi - anchor) > 60) {
      if (range || c.xpos < 0) return 'kernel';
      const chunk = chunkQueries(c.xpos);
      return chunk > 0 && (c.causal || c.NK - 1 - offset < chunk) ? 'chunked' : 'kernel';
    }
  }
  return 'prepass';
}

/** Queries per chunk of the chunked forward: ζ exponent ≤ 60 across a chunk, whole 128-query tiles (xpos_chunk_queries). */
function chunkQueries(base: number): number {
  const c = Math.floor((60 * base) / Math.log2(3.5));
  return c >= 128 ? c - (c % 128) : Math.max(c, 0);
}

/** Smallest and largest custom position of a case's inputs, or null for default positions. */
function positionRange(inp: AttentionInputs): { min: number; max: number } | null {
  if (!inp.qpos && !inp.kpos) return null;
  let min = Infinity, max = -Infinity;
  for (const v of [...(inp.qpos ?? []), ...(inp.kpos ?? [])]) { min = Math.min(min, v); max = Math.max(max, v); }
  return { min, max };
}

interface RunResult extends AttentionResult { plan: AttentionTransformPlan }

function run(c: AttentionCase, inp: AttentionInputs, path: CudaAttentionPath, backward: boolean, dtype: DType): RunResult {
  const backend = gpu() as CudaBackend;
  const mem = new DeviceBuffers(backend);
  try {
    const { B, H, KVH, NQ, NK, D } = c;
    const q = mem.put(inp.q, dtype), k = mem.put(inp.k, dtype), v = mem.put(inp.v, dtype);
    const args: AttentionArgs = {
      batch: B, heads: H, kvHeads: KVH, queryLen: NQ, keyLen: NK, headDim: D, scale: inp.scale,
      causal: !!c.causal, queryOffset: inp.offset, alibiSlopes: inp.slopes,
      rotaryDim: c.rotary ?? 0, rotaryInvFreq: inp.invFreq, xposScaleBase: c.xpos ?? 0,
      keyScale: inp.ks ? mem.put(inp.ks, 'float32') : null,
      queryPositions: inp.qpos ? mem.put(inp.qpos, 'int32') : null, keyPositions: inp.kpos ? mem.put(inp.kpos, 'int32') : null,
      querySegments: inp.qseg ? mem.put(inp.qseg, 'int32') : null, keySegments: inp.kseg ? mem.put(inp.kseg, 'int32') : null,
      positionRange: positionRange(inp),
    };
    const out = mem.output(B * H * NQ * D, dtype), lse = mem.output(B * H * NQ, 'float32');
    backend.attentionForwardOn(path, q, k, v, out, lse, args);
    const res: RunResult = {
      out: mem.get(out, B * H * NQ * D), lse: mem.get(lse, B * H * NQ),
      dq: new Float64Array(0), dk: new Float64Array(0), dv: new Float64Array(0), dks: null,
      plan: attentionTransformPlan(backend, q, lse, args),
    };
    if (backward) {
      const gout = mem.put(inp.gout, dtype);
      const dq = mem.output(B * H * NQ * D, dtype), dk = mem.output(B * KVH * NK * D, dtype), dv = mem.output(B * KVH * NK * D, dtype);
      const dks = inp.ks ? mem.output(H * D, 'float32') : null;
      backend.attentionBackward(q, k, v, out, lse, gout, dq, dk, dv, dks, args);
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
 * Runs a case under each transform mode (the decode kernel applies the transform itself, so it runs
 * under one) against one reference; the tiled path must be the one expectedPlan names.
 */
function check(c: AttentionCase, path: CudaAttentionPath, backward: boolean, dtype: DType = 'bfloat16',
  modes: readonly AttentionTransform[] = path === 'decode' ? ['auto'] : ['kernel', 'prepass']): void {
  const inp = makeInputs(c);
  const ref = reference(c, inp);
  const backend = gpu() as CudaBackend;
  const before = attentionTransform(backend);
  try {
    for (const mode of modes) {
      setAttentionTransform(backend, mode);
      const got = run(c, inp, path, backward, dtype);
      const errors: [string, number][] = [['out', relativeError(got.out, ref.out)], ['lse', relativeError(got.lse, ref.lse)]];
      if (backward) {
        errors.push(['dq', relativeError(got.dq, ref.dq)], ['dk', relativeError(got.dk, ref.dk)], ['dv', relativeError(got.dv, ref.dv)]);
        if (ref.dks) errors.push(['dKeyScale', relativeError(got.dks!, ref.dks)]);
      }
      const label = `${c.name} (${path}, ${dtype}, transform ${mode} → ${got.plan})`;
      console.log(`  ${path.padEnd(6)} ${dtype.padEnd(8)} ${got.plan.padEnd(7)} ${c.name.padEnd(62)} ${errors.map(([n, e]) => `${n} ${e.toExponential(1)}`).join('  ')}`);
      if (mode !== 'auto') assert.equal(got.plan, expectedPlan(c, mode, inp), `${label}: the transform took the wrong path`);
      for (const [name, e] of errors) assert.ok(e < TOLERANCE, `${label}: ${name} relative error ${e.toExponential(2)} ≥ ${TOLERANCE}`);
    }
  } finally {
    setAttentionTransform(backend, before);
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
  { name: 'rotary+xPos d32 causal MQA n150', B: 2, H: 4, KVH: 1, NQ: 150, NK: 150, D: 32, rotary: 32, xpos: 512, causal: true },
  { name: 'andromeda-like d128 r64 xPos ALiBi keyScale MQA n257', B: 1, H: 4, KVH: 1, NQ: 257, NK: 257, D: 128, rotary: 64, xpos: 512, alibi: true, keyScale: true, causal: true },
  { name: 'xPos base 8 (strong decay) d64 r32 n130', B: 1, H: 2, KVH: 2, NQ: 130, NK: 130, D: 64, rotary: 32, xpos: 8, causal: true },
  { name: 'query offset 33 vs 200 keys, all features, GQA2', B: 1, H: 4, KVH: 2, NQ: 33, NK: 200, D: 64, causal: true, rotary: 32, xpos: 512, alibi: true, keyScale: true },
  { name: 'non-causal ALiBi+rotary+keyScale d64 70×150', B: 1, H: 4, KVH: 1, NQ: 70, NK: 150, D: 64, rotary: 32, alibi: true, keyScale: true },
  { name: 'segments causal MQA d32 n200', B: 2, H: 4, KVH: 1, NQ: 200, NK: 200, D: 32, causal: true, segments: true },
  { name: 'packed docs: segments, reset positions, all features d128', B: 2, H: 4, KVH: 1, NQ: 260, NK: 260, D: 128, causal: true, segments: true, positions: 'reset', rotary: 64, xpos: 512, alibi: true, keyScale: true },
  { name: 'custom positions, causal offset d64', B: 2, H: 4, KVH: 4, NQ: 20, NK: 90, D: 64, causal: true, positions: 'custom', rotary: 16, xpos: 256, alibi: true, keyScale: true },
  { name: 'rows with no visible key (lse −∞, zero output)', B: 1, H: 2, KVH: 1, NQ: 100, NK: 100, D: 64, causal: true, segments: true, allMaskedRows: true, alibi: true },
  { name: 'positions past 150,000 with xPos d128 r64', B: 1, H: 2, KVH: 1, NQ: 200, NK: 200, D: 128, causal: true, positions: 'far', rotary: 64, xpos: 512, alibi: true },
  { name: 'rotary with custom positions, no xPos (pre-pass tables per item)', B: 2, H: 4, KVH: 2, NQ: 90, NK: 90, D: 64, causal: true, positions: 'custom', rotary: 32, keyScale: true },
  { name: 'MHA rotary+xPos, no key scale (dK\' stored, not added)', B: 2, H: 3, KVH: 3, NQ: 100, NK: 100, D: 64, causal: true, rotary: 64, xpos: 512 },
  { name: 'xPos base 8 over 520 positions: ζ^±58.7, inside the pre-pass range', B: 1, H: 2, KVH: 1, NQ: 520, NK: 520, D: 64, causal: true, rotary: 32, xpos: 8, keyScale: true },
  { name: 'xPos base 8 over 600 positions: past one anchor (forward in 3 chunks of 256)', B: 1, H: 2, KVH: 1, NQ: 600, NK: 600, D: 64, causal: true, rotary: 32, xpos: 8 },
  { name: 'negative query offset, non-causal xPos keyScale GQA2', B: 1, H: 4, KVH: 2, NQ: 60, NK: 80, D: 32, offset: -25, rotary: 32, xpos: 512, keyScale: true, alibi: true },
];

/**
 * xPos past one anchor's range (base 8: 256 queries per chunk): the forward in query chunks, each with its
 * own anchor, on the pre-pass; the backward in the kernels.
 */
const CHUNKED: AttentionCase[] = [
  { name: 'chunked: 1,100 positions in 5 chunks, ALiBi, keyScale, MQA, batch 2', B: 2, H: 4, KVH: 1, NQ: 1100, NK: 1100, D: 64, causal: true, rotary: 32, xpos: 8, alibi: true, keyScale: true },
  { name: 'chunked: 700 queries after 800 keys, d128 r64 GQA2 ALiBi segments', B: 1, H: 4, KVH: 2, NQ: 700, NK: 1500, D: 128, causal: true, rotary: 64, xpos: 8, alibi: true, segments: true },
  { name: 'chunked: non-causal, 300 queries after 200 keys, keyScale MHA', B: 1, H: 2, KVH: 2, NQ: 300, NK: 200, D: 64, offset: 250, rotary: 32, xpos: 8, keyScale: true },
  { name: 'chunked: one chunk of 64 queries after 2,000 keys (far keys underflow)', B: 1, H: 2, KVH: 1, NQ: 64, NK: 2000, D: 64, causal: true, rotary: 32, xpos: 8, keyScale: true, alibi: true },
];

/** andromeda-3b's attention at a test-sized length: forward and every gradient on both transform paths. */
const ANDROMEDA_3B: AttentionCase = {
  name: 'andromeda-3b: 24×128, MQA, keyScale, rotary 64 + xPos, ALiBi on 12 heads, n300',
  B: 1, H: 24, KVH: 1, NQ: 300, NK: 300, D: 128, causal: true, rotary: 64, xpos: 512, alibi: true, alibiHeads: 12, keyScale: true,
};

/** 64 queries at the end of 32,768 keys with xPos: one anchor puts ζ^±57.8 on q' and k' (the pre-pass limit at B = 512). */
const LONG_XPOS: AttentionCase = {
  name: 'xPos across 32,768 positions, 64 queries at the end, keyScale MQA',
  B: 1, H: 2, KVH: 1, NQ: 64, NK: 32768, D: 64, causal: true, rotary: 32, xpos: 512, keyScale: true,
};

const DECODE: AttentionCase[] = [
  { name: '1 query vs 1000 keys, MQA 8 heads, all features d128', B: 1, H: 8, KVH: 1, NQ: 1, NK: 1000, D: 128, causal: true, rotary: 64, xpos: 512, alibi: true, keyScale: true },
  { name: '3 queries vs 500 keys, GQA2 d64 ALiBi rotary xPos', B: 2, H: 4, KVH: 2, NQ: 3, NK: 500, D: 64, causal: true, rotary: 32, xpos: 512, alibi: true },
  { name: '1 query vs 2000 keys, MHA d32 plain', B: 1, H: 4, KVH: 4, NQ: 1, NK: 2000, D: 32, causal: true },
  { name: '2 queries vs 300 keys, segments + custom positions + keyScale', B: 2, H: 4, KVH: 1, NQ: 2, NK: 300, D: 64, causal: true, segments: true, positions: 'custom', rotary: 32, xpos: 512, keyScale: true },
  { name: '1 query at position 150,600 with xPos d128', B: 1, H: 4, KVH: 1, NQ: 1, NK: 600, D: 128, causal: true, positions: 'far', rotary: 64, xpos: 512, alibi: true },
  { name: '4 queries, non-causal, 130 keys d64', B: 1, H: 2, KVH: 2, NQ: 4, NK: 130, D: 64, rotary: 32 },
];

gpuTest('fused attention, tiled kernel: forward and gradients match the float64 reference (transform in the kernels and by the pre-pass)', () => {
  for (const c of TILED) check(c, 'tiled', true);
});

gpuTest('fused attention at andromeda-3b\'s shape: forward and gradients on both transform paths', () => {
  check(ANDROMEDA_3B, 'tiled', true);
});

gpuTest('fused attention, xPos over 32,768 positions with one pre-pass anchor', () => {
  check(LONG_XPOS, 'tiled', true);
});

gpuTest('fused attention, xPos past one anchor: the forward in query chunks with an anchor each', () => {
  for (const c of CHUNKED) check(c, 'tiled', c === CHUNKED[0]);
});

gpuTest('the transform switch refuses an unknown mode', () => {
  assert.throws(() => setAttentionTransform(gpu() as CudaBackend, 'sometimes' as AttentionTransform), /expected auto, kernel or prepass/);
});

gpuTest('fused attention, split-KV decode kernel: forward matches the float64 reference', () => {
  for (const c of DECODE) check(c, 'decode', false);
});

gpuTest('fused attention: float32 inputs (computed with bf16 operands) and the automatic path', () => {
  check({ name: 'float32 all features d64 GQA2 n150', B: 1, H: 4, KVH: 2, NQ: 150, NK: 150, D: 64, causal: true, rotary: 32, xpos: 512, alibi: true, keyScale: true }, 'auto', true, 'float32', ['auto', 'kernel', 'prepass']);
  check({ name: 'auto path, 2 queries (decode)', B: 1, H: 4, KVH: 1, NQ: 2, NK: 400, D: 64, causal: true, rotary: 32, xpos: 512 }, 'auto', true);
});

gpuTest('fused attention rejects unsupported head dims and misaligned buffers with an error', () => {
  const c: AttentionCase = { name: 'd48', B: 1, H: 1, KVH: 1, NQ: 4, NK: 4, D: 48 };
  assert.throws(() => run(c, makeInputs(c), 'auto', false, 'bfloat16'), /head dim 48/);
});
