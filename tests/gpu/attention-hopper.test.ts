// The Hopper (sm_90a, wgmma) attention forward against the float64 reference, each variant forced through
// ANDROMEDA_ATTENTION_FORWARD (native/cuda/attention/forward_hopper.h): head dims 64 and 128, lengths that
// are not multiples of the 128-row / 128-key tiles, 1 / 2 / all KV heads, causal with default and explicit
// query offsets (rows that see no key included), ALiBi, and enough key tiles to wrap the load pipeline.
// Outputs are poisoned with NaN before each call, so an unwritten element fails. On a GPU that is not
// Hopper, the forced choice must fail with an error that says why, and the automatic one must still work.
// The split key scale (key scale with fewer KV heads than heads, under the pre-pass) runs on each TMA variant.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { CudaEngine } from '../../src/engine/cuda.js';
import { DeviceBuffers, gpu, gpuTest, isHopper, notHopperReason, withEnv } from './harness.js';
import { attentionArgsOf, makeInputs, reference, relativeError, type AttentionCase } from './attention-reference.js';
import { attentionTransform, attentionTransformPlan, withAttentionTransform } from './attention-transform.js';

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

/**
 * The split key scale (key scale, fewer KV heads than heads, rotary: A and B per KV head, the producer warps build
 * K'_h in shared memory) under the pre-pass: r = 64 of 128 (one B column block), r = 32 of 64 (part of one), r = 128
 * (two), xPos, ALiBi, MQA and GQA2, causal with offsets and not, lengths inside a key tile, rings that wrap.
 */
const SPLIT_CASES: AttentionCase[] = [
  { name: 'split: MQA d128 r64 xPos ALiBi keyScale n301 (8 heads)', B: 1, H: 8, KVH: 1, NQ: 301, NK: 301, D: 128, causal: true, rotary: 64, xpos: 512, alibi: true, keyScale: true },
  { name: 'split: GQA2 d64 r32 xPos keyScale n257 batch 2', B: 2, H: 4, KVH: 2, NQ: 257, NK: 257, D: 64, causal: true, rotary: 32, xpos: 512, keyScale: true },
  { name: 'split: GQA2 d128 r128 keyScale non-causal 150×333', B: 1, H: 4, KVH: 2, NQ: 150, NK: 333, D: 128, rotary: 128, xpos: 512, keyScale: true },
  { name: 'split: MQA d128 r64 keyScale, 80 queries after 620 keys (ring wraps)', B: 1, H: 4, KVH: 1, NQ: 80, NK: 700, D: 128, causal: true, rotary: 64, xpos: 512, alibi: true, keyScale: true },
  { name: 'split: GQA2 d64 r64 keyScale non-causal ALiBi 130×900 (3-stage ring wraps)', B: 1, H: 4, KVH: 2, NQ: 130, NK: 900, D: 64, rotary: 64, alibi: true, keyScale: true },
];

function forward(c: AttentionCase, choice: string): { out: Float64Array; lse: Float64Array; plan: string } {
  const engine = gpu() as CudaEngine;
  const inp = makeInputs(c);
  const mem = new DeviceBuffers(engine);
  const { B, H, NQ, D } = c;
  try {
    const q = mem.put(inp.q, 'bfloat16'), k = mem.put(inp.k, 'bfloat16'), v = mem.put(inp.v, 'bfloat16');
    const out = mem.output(B * H * NQ * D, 'bfloat16'), lse = mem.output(B * H * NQ, 'float32');
    const args = attentionArgsOf(c, inp, (values, type) => mem.put(values, type));
    return withEnv(ENV, choice, () => {
      const plan = attentionTransformPlan(engine, q, lse, args);
      engine.attentionForwardOn('tiled', q, k, v, out, lse, args);
      engine.synchronize();
      return { out: mem.get(out, B * H * NQ * D), lse: mem.get(lse, B * H * NQ), plan };
    });
  } finally {
    mem.dispose();
  }
}

function check(c: AttentionCase, choice: string): void {
  const { out, lse, plan } = forward(c, choice);
  const ref = reference(c, makeInputs(c));
  const eo = relativeError(out, ref.out), el = relativeError(lse, ref.lse);
  console.log(`  ${choice.padEnd(17)} ${c.name.padEnd(62)} out ${eo.toExponential(1)}  lse ${el.toExponential(1)}  (${plan})`);
  assert.ok(eo < TOLERANCE, `${c.name} (${choice}): out relative error ${eo.toExponential(2)} ≥ ${TOLERANCE}`);
  assert.ok(el < TOLERANCE, `${c.name} (${choice}): lse relative error ${el.toExponential(2)} ≥ ${TOLERANCE}`);
}

const notHopper = notHopperReason();

// One test per variant, in order of increasing machinery: a failing variant shows which part broke.
for (const variant of VARIANTS) {
  const name = `Hopper attention forward, ${variant}: matches the float64 reference`;
  if (notHopper) test(name, { skip: notHopper }, () => {});
  else gpuTest(name, () => { for (const c of CASES) check(c, variant); });
}

// The split key scale on each TMA variant (the plan must say the forward split: 'split' or 'split-forward' where the
// backward cannot, e.g. under 64 queries); hopper-cpasync has no producer warps, so a forced one refuses the case.
for (const variant of VARIANTS) {
  const name = `Hopper attention forward, ${variant}: the split key scale (K'_h built in shared memory) matches the float64 reference`;
  if (notHopper) test(name, { skip: notHopper }, () => {});
  else {
    gpuTest(name, () => withAttentionTransform('prepass', () => {
      for (const c of SPLIT_CASES) {
        if (variant === 'hopper-cpasync') {
          assert.throws(() => forward(c, variant), /Hopper forward cannot run: rotary, xPos or a key scale/);
          continue;
        }
        check(c, variant);
        assert.match(forward(c, variant).plan, /^split(-forward)?$/, `${c.name} (${variant}): the forward did not split`);
      }
    }));
  }
}

gpuTest('attention forward: the automatic choice and the mma.sync kernel match the reference on the same cases', () => {
  for (const c of [CASES[3]!, CASES[8]!]) {
    check(c, 'auto');
    check(c, 'mma');
  }
  // The split key scale under auto; under mma the forward keeps the transform in the kernel (never a k' per head).
  withAttentionTransform('prepass', () => {
    check(SPLIT_CASES[0]!, 'auto');
    check(SPLIT_CASES[0]!, 'mma');
    assert.equal(forward(SPLIT_CASES[0]!, 'mma').plan, isHopper() ? 'split-backward' : 'kernel');
  });
});

gpuTest('a forced Hopper forward that cannot run fails with the reason; an unknown choice is rejected', () => {
  const d32: AttentionCase = { name: 'd32', B: 1, H: 1, KVH: 1, NQ: 4, NK: 4, D: 32 };
  assert.throws(() => forward(d32, 'hopper'), /Hopper forward cannot run: head dim 32/);
  assert.throws(() => forward(CASES[2]!, 'no-such-kernel'), /ANDROMEDA_ATTENTION_FORWARD=no-such-kernel/);
  if (!isHopper()) assert.throws(() => forward(CASES[2]!, 'hopper'), /compute capability/);
});
