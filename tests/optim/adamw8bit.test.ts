// 8-bit AdamW (src/optim/adamw8bit.ts, native/fused/adamw8bit/): the quantization maps and their nearest-code
// rule; the CPU kernel bit for bit against a host reference of the same quantize → update → requantize
// arithmetic (float64 rounded to float32 after every operation, which is exactly float32 arithmetic), under every
// instruction set the CPU has (the kernel has a portable and an AVX-512 form) and on any thread count; its
// moments against float32 AdamW's; the state's size from the engine's memory statistics; state save/load; and
// the errors for bad input.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as A from '../../src/index.js';
import { Tensor } from '../../src/tensor/tensor.js';
import type { DType } from '../../src/tensor/dtype.js';
import { Generator } from '../../src/tensor/random.js';
import type { CpuEngine } from '../../src/engine/cpu.js';
import type { AdamW8bitItem, AdamWArgs } from '../../src/engine/engine.js';
import { AdamW } from '../../src/optim/adamw.js';
import { AdamW8bit, adamw8bitSlotSizes } from '../../src/optim/adamw8bit.js';
import { cpuIsasOf } from '../../src/engine/cpu-settings.js';
import {
  QUANT_BLOCK,
  QUANT_MAP_SIZE,
  adamw8bitMaps,
  dynamicQuantMap,
  nearestCode,
} from '../../src/optim/adamw8bit-map.js';
import { randomValues } from '../helpers/gradcheck.js';
import { crowdedQuantMaps, linearQuantMaps } from '../helpers/quant-maps.js';
import { adamwTestArgs } from '../helpers/adamw-args.js';

const { tidy } = A;
const engine = A.getEngine('cpu') as CpuEngine;
const defaultThreads = engine.threads();
after(() => engine.threads(defaultThreads));
/** The instruction sets the kernels can be limited to here, up to the one in use (ANDROMEDA_CPU_ISA may cap it). */
const startIsa = engine.cpuInfo().isa;
const ISAS = cpuIsasOf(process.arch).slice(0, cpuIsasOf(process.arch).indexOf(startIsa) + 1);
after(() => engine.limitIsa(startIsa));
/** Runs `body` under each of ISAS, then restores the instruction set in use. */
function underEveryIsa(body: (isa: string) => void): void {
  try {
    for (const isa of ISAS) {
      engine.limitIsa(isa);
      body(isa);
    }
  } finally {
    engine.limitIsa(startIsa);
  }
}
const f = Math.fround;
/** The largest finite float32 (FLT_MAX): where the inverse of a block's absmax is capped. */
const F32_MAX = f(3.4028234663852886e38);

describe('quantization maps', () => {
  const { signed, unsigned } = adamw8bitMaps();

  test('256 strictly increasing float32 values with 0 and 1; signed has 127 negatives, unsigned none', () => {
    for (const map of [signed, unsigned]) {
      assert.equal(map.length, QUANT_MAP_SIZE);
      for (let i = 1; i < map.length; i++) assert.ok(map[i - 1]! < map[i]!, `map[${i - 1}] < map[${i}]`);
      assert.ok(map.includes(0) && map[map.length - 1] === 1);
    }
    assert.equal(signed.filter((x) => x < 0).length, 127);
    assert.equal(unsigned[0], 0);
    // The dynamic type: the smallest nonzero magnitude is in the 1e-6 decade, so tiny v keep relative precision.
    const smallest = (map: Float32Array) => Math.min(...Array.from(map, Math.abs).filter((x) => x > 0));
    assert.ok(smallest(signed) > 1e-7 && smallest(signed) < 1e-6, `signed smallest ${smallest(signed)}`);
    assert.ok(smallest(unsigned) > 1e-7 && smallest(unsigned) < 1e-6, `unsigned smallest ${smallest(unsigned)}`);
    assert.deepEqual(dynamicQuantMap(true), signed);
  });

  test('round trip: every map value quantizes to its own code', () => {
    for (const map of [signed, unsigned]) {
      for (let c = 0; c < map.length; c++) assert.equal(nearestCode(map, map[c]!), c, `code ${c}`);
    }
  });

  test('nearestCode is the nearest value (ties to the lower code), against a brute-force search', () => {
    const gen = new Generator(5);
    for (const map of [signed, unsigned]) {
      const probes: number[] = [-2, 2, 0, -1, 1];
      for (let c = 0; c + 1 < map.length; c++) probes.push(f((map[c]! + map[c + 1]!) / 2)); // the midpoints
      for (let i = 0; i < 4000; i++) probes.push(f((gen.uniform() * 2 - 1) * 10 ** -(gen.uniform() * 7)));
      for (const x of probes) {
        let best = 0;
        for (let c = 1; c < map.length; c++) {
          if (f(Math.abs(map[c]! - x)) < f(Math.abs(map[best]! - x))) best = c;
        }
        assert.equal(nearestCode(map, x), best, `x = ${x}`);
      }
    }
  });
});

// ---- the kernel against the host reference ----

interface HostState {
  param: Float32Array;
  codes: { m: Uint8Array; v: Uint8Array };
  absmax: { m: Float32Array; v: Float32Array };
}

/** One 8-bit AdamW step of native/fused/adamw8bit/adamw8bit.h, every operation rounded to float32. */
function referenceStep(s: HostState, grad: ArrayLike<number>, a: AdamWArgs, maps = adamw8bitMaps()): void {
  const { signed, unsigned } = maps;
  const b1 = f(a.beta1);
  const b2 = f(a.beta2);
  const eps = f(a.eps);
  const decay = f(1 - a.lr * a.weightDecay);
  const step = f(a.lr / a.biasCorrection1);
  const invSqrtBc2 = f(1 / Math.sqrt(a.biasCorrection2));
  const gs = f(a.gradScale);
  const n = s.param.length;
  for (let begin = 0; begin < n; begin += QUANT_BLOCK) {
    const block = begin / QUANT_BLOCK;
    const end = Math.min(n, begin + QUANT_BLOCK);
    const m: number[] = [];
    const v: number[] = [];
    for (let i = begin; i < end; i++) {
      const g = f(f(grad[i]!) * gs);
      const mOld = f(signed[s.codes.m[i]!]! * s.absmax.m[block]!);
      const vOld = f(unsigned[s.codes.v[i]!]! * s.absmax.v[block]!);
      const mi = f(f(b1 * mOld) + f(f(1 - b1) * g));
      const vi = f(f(b2 * vOld) + f(f(f(1 - b2) * g) * g));
      m.push(mi);
      v.push(vi);
      const denominator = f(f(f(Math.sqrt(vi)) * invSqrtBc2) + eps);
      s.param[i] = f(f(s.param[i]! * decay) - f(f(step * mi) / denominator));
    }
    const requantize = (x: number[], map: Float32Array, codes: Uint8Array, absmax: Float32Array) => {
      const top = Math.max(0, ...x.map(Math.abs));
      absmax[block] = top;
      const inverse = top > 0 ? Math.min(f(1 / top), F32_MAX) : 0;
      x.forEach((xi, j) => (codes[begin + j] = nearestCode(map, inverse > 0 ? f(xi * inverse) : 0)));
    };
    requantize(m, signed, s.codes.m, s.absmax.m);
    requantize(v, unsigned, s.codes.v, s.absmax.v);
  }
}

const args = (step: number, gradScale = 0.7): AdamWArgs => adamwTestArgs(step, gradScale);

/** Engine buffers of one tensor's 8-bit state, zero (an absmax of 0: moments 0). */
function deviceState(size: number, gen: Generator, shadowDtype: DType | null) {
  const { codeWords, blocks } = adamw8bitSlotSizes(size);
  return {
    param: Tensor.fromArray(randomValues([size], gen), [size], 'float32'),
    mCodes: A.zeros([codeWords], 'int32'),
    vCodes: A.zeros([codeWords], 'int32'),
    mAbsmax: A.zeros([blocks], 'float32'),
    vAbsmax: A.zeros([blocks], 'float32'),
    shadow: shadowDtype ? A.zeros([size], shadowDtype) : null,
  };
}
type DeviceState = ReturnType<typeof deviceState>;

const itemOf = (s: DeviceState, grad: Tensor): AdamW8bitItem => ({
  param: s.param.dense(),
  grad: grad.dense(),
  mCodes: s.mCodes.dense(),
  vCodes: s.vCodes.dense(),
  mAbsmax: s.mAbsmax.dense(),
  vAbsmax: s.vAbsmax.dense(),
  count: s.param.size,
  shadow: s.shadow?.dense() ?? null,
});

/** The kernel's state as host arrays (codes unpacked from their int32 words). */
function hostState(s: DeviceState): HostState {
  const n = s.param.size;
  const bytes = (t: Tensor) => new Uint8Array((t.toArray() as Int32Array).buffer, 0, n);
  return {
    param: Float32Array.from(s.param.toArray()),
    codes: { m: bytes(s.mCodes), v: bytes(s.vCodes) },
    absmax: { m: Float32Array.from(s.mAbsmax.toArray()), v: Float32Array.from(s.vAbsmax.toArray()) },
  };
}

describe('adamw8bitMany on the CPU engine', () => {
  const sizes = [1, 255, 256, 257, 1000, 70001];
  const steps = 3;

  for (const [gradDtype, shadowDtype] of [
    ['float32', null],
    ['bfloat16', 'bfloat16'],
    ['float16', 'float16'],
    ['bfloat16', 'float16'],
    ['float16', 'bfloat16'],
    ['float64', 'float16'],
  ] as [DType, DType | null][]) {
    test(
      `grad ${gradDtype}${shadowDtype ? `, ${shadowDtype} copy` : ''}: the reference's bits (weights, codes, ` +
        `absmax) under every instruction set and on any thread count`,
      () => {
        tidy(() => {
          const run = (isa: string, threads: number) => {
            engine.threads(threads);
            try {
              const gen = new Generator(11);
              const states = sizes.map((size) => deviceState(size, gen, shadowDtype));
              const reference = states.map(hostState);
              for (let step = 1; step <= steps; step++) {
                // Gradients of growing scale, so blocks' absmax values change from step to step.
                const grads = sizes.map((size) =>
                  Tensor.fromArray(randomValues([size], gen, 0.01 * step), [size], gradDtype),
                );
                engine.adamw8bitMany(
                  states.map((s, i) => itemOf(s, grads[i]!)),
                  adamw8bitMaps(),
                  args(step),
                );
                grads.forEach((g, i) => referenceStep(reference[i]!, g.toArray(), args(step)));
              }
              states.forEach((s, i) => {
                const got = hostState(s);
                const want = reference[i]!;
                const label = `size ${sizes[i]}, ${isa}, ${threads} threads`;
                assert.deepEqual(got.param, want.param, `${label}: weights`);
                assert.deepEqual(got.codes, want.codes, `${label}: codes`);
                assert.deepEqual(got.absmax, want.absmax, `${label}: absmax`);
                if (s.shadow) {
                  const copy = Tensor.fromArray(want.param, [want.param.length], shadowDtype!);
                  assert.deepEqual(s.shadow.toArray(), copy.toArray(), `${label}: weight copy`);
                }
              });
              // The quantization does something: nonzero codes of both moments in every block.
              const first = hostState(states[5]!);
              assert.ok(first.absmax.m.every((x) => x > 0) && first.absmax.v.every((x) => x > 0));
            } finally {
              engine.threads(defaultThreads);
            }
          };
          underEveryIsa((isa) => {
            run(isa, 1);
            run(isa, 3);
          });
        });
      },
    );
  }

  test('non-finite, huge, subnormal and signed-zero gradients: the same bits under every instruction set', () => {
    const special = [NaN, Infinity, -Infinity, 3e38, -3e38, 1e-40, -1e-40, -0, 0, 65504, 1e-8];
    const size = 3 * QUANT_BLOCK + 77;
    const bitsOf = (t: Tensor): Uint8Array => {
      const a = t.toArray() as Float32Array | Int32Array | Float64Array;
      return new Uint8Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength));
    };
    for (const [gradDtype, shadowDtype] of [
      ['float32', 'bfloat16'],
      ['float16', 'float16'],
      ['bfloat16', null],
    ] as [DType, DType | null][]) {
      let first: { isa: string; bits: Uint8Array[] } | null = null;
      underEveryIsa((isa) =>
        tidy(() => {
          const gen = new Generator(5);
          const state = deviceState(size, gen, shadowDtype);
          for (let step = 1; step <= 2; step++) {
            const values = randomValues([size], gen, 0.01);
            // Special values in the second block only (the first and last stay finite); every one in each step.
            special.forEach((x, j) => (values[QUANT_BLOCK + 7 * j + step] = x));
            const grad = Tensor.fromArray(values, [size], gradDtype);
            engine.adamw8bitMany([itemOf(state, grad)], adamw8bitMaps(), args(step));
          }
          const outputs = [state.param, state.mCodes, state.vCodes, state.mAbsmax, state.vAbsmax];
          const bits = [...outputs, ...(state.shadow ? [state.shadow] : [])].map(bitsOf);
          if (!first) first = { isa, bits };
          else
            bits.forEach((b, i) =>
              assert.deepEqual(b, first!.bits[i], `${gradDtype} grad: output ${i} under ${isa} vs ${first!.isa}`),
            );
          // The blocks without special values stay finite.
          const param = state.param.toArray();
          assert.ok(param.slice(0, QUANT_BLOCK).every(Number.isFinite), `${gradDtype}, ${isa}: block 0 finite`);
        }),
      );
    }
  });

  test("a block of subnormal moments scales by FLT_MAX (its absmax's inverse capped): the reference's bits", () => {
    underEveryIsa((isa) =>
      tidy(() => {
        const gen = new Generator(9);
        const size = 2 * QUANT_BLOCK;
        const state = deviceState(size, gen, 'bfloat16');
        const reference = hostState(state);
        for (let step = 1; step <= 2; step++) {
          // Block 0: gradients of 1e-39..3e-39, so m's absmax is near 1e-40 and 1 / absmax overflows float32.
          const values = randomValues([size], gen, 0.01);
          for (let i = 0; i < QUANT_BLOCK; i++) values[i] = (i % 2 ? -1 : 1) * (1 + 2 * gen.uniform()) * 1e-39;
          const grad = Tensor.fromArray(values, [size], 'float32');
          engine.adamw8bitMany([itemOf(state, grad)], adamw8bitMaps(), args(step));
          referenceStep(reference, grad.toArray(), args(step));
        }
        const got = hostState(state);
        assert.ok(got.absmax.m[0]! > 0 && 1 / got.absmax.m[0]! > F32_MAX, `${isa}: block 0's absmax is subnormal`);
        assert.ok(new Set(got.codes.m.slice(0, QUANT_BLOCK)).size > 10, `${isa}: block 0's m codes spread`);
        assert.deepEqual(got.codes, reference.codes, `${isa}: codes`);
        assert.deepEqual(got.absmax, reference.absmax, `${isa}: absmax`);
        assert.deepEqual(got.param, reference.param, `${isa}: weights`);
      }),
    );
  });

  // The kernel starts each nearest-code search from an index of the map's float32 bits
  // (native/fused/adamw8bit/adamw8bit.h): any sorted map must give the reference's codes, also maps whose values
  // crowd into one bucket, lie below 2^-32, or reach past ±1. (The AVX-512 form searches the linear maps itself
  // and leaves the crowded ones, whose searches walk too far for it, to the portable form.)
  test('other sorted maps: the codes of the reference (the search index holds for any map)', () => {
    const linear = linearQuantMaps();
    const crowded = crowdedQuantMaps();
    underEveryIsa((isa) => {
      for (const [name, maps] of Object.entries({ linear, crowded })) {
        tidy(() => {
          const gen = new Generator(23);
          const sizes = [300, 4099];
          const states = sizes.map((size) => deviceState(size, gen, null));
          const reference = states.map(hostState);
          for (let step = 1; step <= 3; step++) {
            // Gradients over many scales, so that the moments over their block's absmax cover many buckets.
            const grads = sizes.map((size) =>
              Tensor.fromArray(
                Float64Array.from({ length: size }, () => gen.normal() * 10 ** (-8 * gen.uniform())),
                [size],
                'float32',
              ),
            );
            engine.adamw8bitMany(
              states.map((st, i) => itemOf(st, grads[i]!)),
              maps,
              args(step),
            );
            grads.forEach((g, i) => referenceStep(reference[i]!, g.toArray(), args(step), maps));
          }
          states.forEach((st, i) => {
            const got = hostState(st);
            const label = `${name} maps, size ${sizes[i]}, ${isa}`;
            assert.deepEqual(got.codes, reference[i]!.codes, `${label}: codes`);
            assert.deepEqual(got.param, reference[i]!.param, `${label}: weights`);
            const distinct = new Set(got.codes.v).size;
            assert.ok(distinct > 20, `${name} maps: the moments spread over ${distinct} codes`);
          });
        });
      }
    });
  });

  test('the dequantized moments follow float32 AdamW within the map resolution', () => {
    tidy(() => {
      const size = 4096;
      const gen = new Generator(3);
      const s = deviceState(size, gen, null);
      const param32 = Tensor.fromArray(s.param.toArray(), [size], 'float32');
      const m32 = A.zeros([size], 'float32');
      const v32 = A.zeros([size], 'float32');
      for (let step = 1; step <= 5; step++) {
        const grad = Tensor.fromArray(randomValues([size], gen, 0.01), [size], 'float32');
        engine.adamw8bitMany([itemOf(s, grad)], adamw8bitMaps(), args(step));
        engine.adamw(param32.dense(), grad.dense(), m32.dense(), v32.dense(), size, args(step));
      }
      const { signed, unsigned } = adamw8bitMaps();
      const host = hostState(s);
      const m = m32.toArray();
      const v = v32.toArray();
      const p = param32.toArray();
      let worstM = 0;
      let worstV = 0;
      let worstP = 0;
      for (let i = 0; i < size; i++) {
        const block = Math.floor(i / QUANT_BLOCK);
        worstM = Math.max(
          worstM,
          Math.abs(signed[host.codes.m[i]!]! * host.absmax.m[block]! - m[i]!) / host.absmax.m[block]!,
        );
        worstV = Math.max(
          worstV,
          Math.abs(unsigned[host.codes.v[i]!]! * host.absmax.v[block]! - v[i]!) / host.absmax.v[block]!,
        );
        worstP = Math.max(worstP, Math.abs(host.param[i]! - p[i]!));
      }
      // One requantization errs by at most half the map spacing (0.9/128 of the absmax for m near it, 0.9/256
      // for v); the moments carry earlier steps' errors, decayed by β, so a few steps stay within a few spacings.
      assert.ok(worstM < 0.05, `m error ${worstM} of the block absmax`);
      assert.ok(worstV < 0.05, `v error ${worstV} of the block absmax`);
      assert.ok(worstP < 5 * 1e-3 * 0.1, `weights differ by up to ${worstP} after 5 steps of lr 1e-3`);
    });
  });

  test('bad maps and bad code buffers are refused with a clear error', () => {
    tidy(() => {
      const gen = new Generator(1);
      const s = deviceState(300, gen, null);
      const grad = Tensor.fromArray(randomValues([300], gen), [300], 'float32');
      const { signed, unsigned } = adamw8bitMaps();
      const reversed = Float32Array.from(signed).reverse();
      assert.throws(
        () => engine.adamw8bitMany([itemOf(s, grad)], { signed: reversed, unsigned }, args(1)),
        /quantization maps must be finite and strictly increasing/,
      );
      assert.throws(
        () => engine.adamw8bitMany([{ ...itemOf(s, grad), mCodes: s.mAbsmax.dense() }], adamw8bitMaps(), args(1)),
        /mCodes of item 0 is float32; it must be int32/,
      );
      const short = A.zeros([10], 'int32');
      assert.throws(
        () => engine.adamw8bitMany([{ ...itemOf(s, grad), vCodes: short.dense() }], adamw8bitMaps(), args(1)),
        /tensors\[\]\.v/,
      );
    });
  });
});

describe('the AdamW8bit optimizer', () => {
  /** Parameters shaped like a small transformer's: matrices, a vector, an odd size. */
  const shapes = [[512, 256], [256], [1000, 64], [3, 5]];
  const params = (seed: number) => {
    const gen = new Generator(seed);
    return shapes.map((shape) =>
      A.keep(Tensor.fromArray(randomValues(shape, gen, 0.1), shape, 'float32').requireGrad(true)),
    );
  };
  const setGrads = (ps: Tensor[], seed: number) => {
    const gen = new Generator(seed);
    for (const p of ps) {
      p.grad?.dispose();
      p.grad = A.keep(Tensor.fromArray(randomValues(p.shape, gen, 0.01), p.shape, 'float32'));
    }
  };

  test('optimizer state is at most 2.1 bytes per parameter (engine memory statistics)', () => {
    const ps = params(1);
    setGrads(ps, 2);
    const optimizer = new AdamW8bit(ps, { lr: 1e-3 });
    const before = engine.memoryStats().allocated;
    optimizer.step();
    const stateBytes = engine.memoryStats().allocated - before;
    const count = ps.reduce((n, p) => n + p.size, 0);
    // The engine rounds each allocation up to its alignment, so it holds at least the buffers' bytes.
    assert.ok(stateBytes >= optimizer.stateBytes() && stateBytes < optimizer.stateBytes() + 16 * 64);
    assert.ok(stateBytes / count <= 2.1, `${(stateBytes / count).toFixed(4)} bytes per parameter`);
    // float32 AdamW holds 8 bytes per parameter: the same measurement, for scale.
    const ps32 = params(1);
    setGrads(ps32, 2);
    const adamw = new AdamW(ps32, { lr: 1e-3 });
    const before32 = engine.memoryStats().allocated;
    adamw.step();
    assert.ok(engine.memoryStats().allocated - before32 >= 8 * count);
    for (const p of [...ps, ...ps32]) {
      p.grad?.dispose();
      p.dispose();
    }
    optimizer.dispose();
    adamw.dispose();
  });

  test('stateDict → loadStateDict continues bit for bit; mismatched state is refused', () => {
    const a = params(4);
    const b = params(4);
    const oa = new AdamW8bit(a, { lr: 1e-2, weightDecay: 0.1 });
    for (let step = 1; step <= 2; step++) {
      setGrads(a, 10 + step);
      oa.step({ gradScale: 0.5 });
    }
    // b: a's weights and optimizer state, through host arrays.
    a.forEach((p, i) => b[i]!.engine.upload(b[i]!.storage.handle, 0, Float32Array.from(p.toArray())));
    const ob = new AdamW8bit(b, { lr: 1e-2, weightDecay: 0.1 });
    const saved = oa.stateDict();
    assert.equal(saved.kind, 'adamw8bit');
    assert.ok(saved.slots[0]!.mCodes instanceof Int32Array);
    ob.loadStateDict(saved);
    setGrads(a, 20);
    setGrads(b, 20);
    oa.step();
    ob.step();
    assert.deepEqual(
      b.map((p) => p.toArray()),
      a.map((p) => p.toArray()),
    );
    assert.deepEqual(ob.stateDict(), oa.stateDict());

    assert.throws(() => ob.loadStateDict({ ...saved, kind: 'adamw' }), /state is for 'adamw', not 'adamw8bit'/);
    const truncated = {
      ...saved,
      slots: saved.slots.map((s, i) => (i === 0 ? { ...s, vAbsmax: new Float32Array(3) } : s)),
    };
    assert.throws(() => ob.loadStateDict(truncated), /vAbsmax of parameter 0 .* has 3 values, expected 512/);
    const floatCodes = {
      ...saved,
      slots: saved.slots.map((s, i) => (i === 1 ? { ...s, mCodes: new Float32Array(64) } : s)),
    };
    assert.throws(() => ob.loadStateDict(floatCodes), /mCodes of parameter 1 .* must be an Int32Array/);
    assert.throws(() => new AdamW(a).loadStateDict(saved), /state is for 'adamw8bit', not 'adamw'/);
    for (const p of [...a, ...b]) {
      p.grad?.dispose();
      p.dispose();
    }
    oa.dispose();
    ob.dispose();
  });
});
