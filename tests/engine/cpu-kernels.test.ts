// CPU engine kernels against plain references: the blocked GEMM (every micro-kernel this machine
// can run: generic, and AVX2 and AVX-512 on x86-64 or NEON on arm64) over odd shapes, transposes,
// leading dimensions, batches and alpha/beta for float32, float64, bfloat16 and float16; and the
// vectorised elementwise and row-wise kernels against scalar float64 loops; and the instruction-set
// names each architecture accepts.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, getEngine, CpuEngine, type DType } from '../../src/index.js';
import { CPU_ISAS, cpuIsasOf, parseCpuIsa } from '../../src/engine/cpu-settings.js';
import { requireAddon } from '../../src/engine/native-engine.js';
import { xorshift32 } from '../helpers/xorshift.js';
import { adamwTestArgs } from '../helpers/adamw-args.js';

const cpu = getEngine('cpu') as CpuEngine;
/** This architecture's instruction sets up to the best the CPU has, each a separate build of the kernels. */
const ARCH_ISAS = cpuIsasOf(process.arch);
const BEST = cpu.cpuInfo().cpuIsa;
const ISAS = ARCH_ISAS.slice(0, ARCH_ISAS.indexOf(BEST) + 1);
after(() => cpu.limitIsa(BEST));

test("instruction sets: this architecture's are selectable (capped at the CPU's best), others refused by name", () => {
  const choices = ARCH_ISAS.join(', ');
  assert.ok(ARCH_ISAS.includes(BEST), `the engine reports ${BEST}, not one of ${process.arch}'s ${choices}`);
  if (process.arch === 'arm64') assert.equal(BEST, 'neon'); // NEON is part of every arm64 CPU
  const addon = requireAddon<{ limitIsa(isa: unknown): string }>('andromeda_cpu.node').load();
  try {
    for (const isa of ARCH_ISAS) {
      const want = ARCH_ISAS.indexOf(isa) <= ARCH_ISAS.indexOf(BEST) ? isa : BEST;
      assert.equal(cpu.limitIsa(isa), want);
      const info = cpu.cpuInfo();
      assert.equal(info.isa, want);
      assert.ok(info.gemmF32.startsWith(`${want} `) && info.gemmF64.startsWith(`${want} `), JSON.stringify(info));
    }
    cpu.limitIsa(BEST);
    for (const other of CPU_ISAS.filter((isa) => !ARCH_ISAS.includes(isa))) {
      assert.throws(
        () => cpu.limitIsa(other),
        (e: Error) =>
          e.message ===
          `limitIsa() must be ${choices}, got "${other}" (${other} is not an instruction set of ` +
            `${process.arch} CPUs)`,
      );
      // The addon's own check, without the TypeScript one in front of it.
      assert.throws(() => addon.limitIsa(other), /limitIsa: isa must be .* on this CPU architecture, got '/);
      assert.equal(cpu.cpuInfo().isa, BEST);
    }
    assert.throws(() => addon.limitIsa('sse9'), /limitIsa: isa must be 'generic'/);
  } finally {
    cpu.limitIsa(BEST);
  }
  // Each architecture's names, whatever machine runs the test.
  assert.equal(parseCpuIsa('neon', 'ANDROMEDA_CPU_ISA', 'arm64'), 'neon');
  assert.equal(parseCpuIsa('avx512', 'ANDROMEDA_CPU_ISA', 'x64'), 'avx512');
  assert.throws(
    () => parseCpuIsa('neon', 'ANDROMEDA_CPU_ISA', 'x64'),
    (e: Error) =>
      e.name === 'EngineSettingError' &&
      e.message ===
        'ANDROMEDA_CPU_ISA must be generic, avx2, avx512, got "neon" (neon is not an instruction set of x64 CPUs)',
  );
  assert.throws(
    () => parseCpuIsa('avx2', 'ANDROMEDA_CPU_ISA', 'arm64'),
    /ANDROMEDA_CPU_ISA must be generic, neon, got "avx2" \(avx2 is not/,
  );
  assert.throws(() => parseCpuIsa('neon', 'ANDROMEDA_CPU_ISA', 'riscv64'), /must be generic, got "neon"/);
});

/** Deterministic uniform values in [-1, 1). */
function rng(seed: number): () => number {
  const uniform = xorshift32(seed);
  return () => uniform() * 2 - 1;
}

/** A tensor holding `values` in `dtype`, and the values as actually stored (rounded to the dtype). */
function upload(values: Float64Array, dtype: DType): { t: Tensor; stored: Float64Array } {
  const t = Tensor.fromArray(values, [values.length], dtype).keep();
  return { t, stored: Float64Array.from(t.toArray()) };
}

interface GemmCase {
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  batch?: number;
  /** Broadcast A or B over the batch (batch stride 0). */
  broadcastA?: boolean;
  broadcastB?: boolean;
  /** Extra columns of padding in each stored row (leading dimension larger than the width). */
  padA?: number;
  padB?: number;
  padC?: number;
  alpha?: number;
  beta?: number;
}

const EPS: Record<string, number> = { float32: 2 ** -24, float64: 2 ** -53, bfloat16: 2 ** -8, float16: 2 ** -11 };

function checkGemm(dtype: DType, c: GemmCase, seed: number): void {
  const { m, n, k, transA, transB } = c;
  const batch = c.batch ?? 1,
    alpha = c.alpha ?? 1,
    beta = c.beta ?? 0;
  const padA = c.padA ?? 0,
    padB = c.padB ?? 0,
    padC = c.padC ?? 0;
  const rowsA = transA ? k : m,
    colsA = transA ? m : k,
    lda = colsA + padA;
  const rowsB = transB ? n : k,
    colsB = transB ? k : n,
    ldb = colsB + padB;
  const ldc = n + padC;
  const strideA = c.broadcastA ? 0 : rowsA * lda,
    strideB = c.broadcastB ? 0 : rowsB * ldb,
    strideC = m * ldc;
  const r = rng(seed);
  const fill = (count: number) => Float64Array.from({ length: count }, r);
  const A = upload(fill(Math.max(1, (c.broadcastA ? 1 : batch) * rowsA * lda)), dtype);
  const B = upload(fill(Math.max(1, (c.broadcastB ? 1 : batch) * rowsB * ldb)), dtype);
  const C = upload(fill(batch * m * ldc), dtype);
  try {
    cpu.matmul({
      a: A.t.dense(),
      b: B.t.dense(),
      c: C.t.dense(),
      m,
      n,
      k,
      transA,
      transB,
      lda,
      ldb,
      ldc,
      strideA,
      strideB,
      strideC,
      batch,
      alpha,
      beta,
    });
    const got = C.t.toArray();
    const eps = EPS[dtype]!;
    // Accumulation error (float32 accumulators for the half types) plus one rounding of the output.
    const accEps = dtype === 'float64' ? 2 ** -53 : 2 ** -24;
    for (let bi = 0; bi < batch; bi++) {
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < ldc; j++) {
          const idx = bi * strideC + i * ldc + j;
          const c0 = C.stored[idx]!;
          if (j >= n) {
            // padding past the width is never written
            assert.equal(got[idx], c0, `${dtype} gemm wrote C padding at [${bi}, ${i}, ${j}]`);
            continue;
          }
          let dot = 0,
            mag = 0;
          for (let p = 0; p < k; p++) {
            const a = A.stored[bi * strideA + (transA ? p * lda + i : i * lda + p)]!;
            const b = B.stored[bi * strideB + (transB ? j * ldb + p : p * ldb + j)]!;
            dot += a * b;
            mag += Math.abs(a * b);
          }
          const want = alpha * dot + (beta === 0 ? 0 : beta * c0);
          const scale = Math.abs(alpha) * mag + Math.abs(beta * c0);
          const tol = (2 * k + 4) * accEps * scale + eps * Math.abs(want) + 1e-30;
          const err = Math.abs(got[idx]! - want);
          if (!(err <= tol)) {
            assert.fail(
              `${dtype} gemm ${JSON.stringify(c)} [${bi}, ${i}, ${j}]: got ${got[idx]}, want ${want} (error ` +
                `${err.toExponential(2)} > ${tol.toExponential(2)})`,
            );
          }
        }
      }
    }
  } finally {
    A.t.dispose();
    B.t.dispose();
    C.t.dispose();
  }
}

/** Shapes covering edge tiles of every micro-kernel (MR ∈ {4, 6, 8, 12}, NR ∈ {4, 8, 16, 32}), K and N
 *  blocking (kc 128/256, nc 256/1024), and the model's shapes scaled down. */
function gemmCases(small: boolean): GemmCase[] {
  const cases: GemmCase[] = [];
  const shapes: [number, number, number][] = small
    ? [
        [1, 1, 1],
        [7, 5, 3],
        [13, 33, 17],
        [9, 31, 64],
        [33, 17, 40],
      ]
    : [
        [1, 1, 1],
        [1, 37, 5],
        [29, 1, 7],
        [7, 5, 3],
        [13, 33, 17],
        [65, 31, 129],
        [17, 70, 300],
        [130, 40, 24],
        [5, 1030, 9],
        [48, 64, 33],
      ];
  let t = 0;
  for (const [m, n, k] of shapes) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        t++;
        cases.push({
          m,
          n,
          k,
          transA,
          transB,
          padA: t % 3,
          padB: (t + 1) % 4,
          padC: t % 2 ? 3 : 0,
          alpha: t % 4 === 0 ? -0.5 : 1,
          beta: t % 3 === 0 ? 0.75 : 0,
        });
      }
    }
  }
  cases.push({ m: 19, n: 23, k: 11, transA: false, transB: true, batch: 3 });
  cases.push({ m: 9, n: 40, k: 21, transA: true, transB: false, batch: 4, broadcastB: true, beta: 1 });
  cases.push({ m: 33, n: 8, k: 16, transA: false, transB: false, batch: 5, broadcastA: true, alpha: 2 });
  cases.push({ m: 3, n: 3, k: 0, transA: false, transB: false, beta: 0.5 });
  cases.push({ m: 3, n: 3, k: 0, transA: false, transB: false, beta: 0 });
  return cases;
}

for (const isa of ISAS) {
  test(`gemm float32 matches a float64 reference (${isa} micro-kernel)`, () => {
    assert.equal(cpu.limitIsa(isa), isa);
    gemmCases(false).forEach((c, i) => checkGemm('float32', c, 100 + i));
  });
  test(`gemm float64 matches a float64 reference (${isa} micro-kernel)`, () => {
    cpu.limitIsa(isa);
    gemmCases(false).forEach((c, i) => checkGemm('float64', c, 200 + i));
  });
  test(`gemm bfloat16 and float16 match a float64 reference (${isa} micro-kernel)`, () => {
    cpu.limitIsa(isa);
    gemmCases(true).forEach((c, i) => checkGemm('bfloat16', c, 300 + i));
    gemmCases(true).forEach((c, i) => checkGemm('float16', c, 400 + i));
    cpu.limitIsa(BEST);
  });
}

test('gemm: large multithreaded shapes (model-sized, team and batch splits) match the reference', () => {
  cpu.limitIsa(BEST);
  // One GEMM split across threads (rows), one split by columns (few rows), a batch that divides
  // evenly and one that does not, and K > kc with beta accumulation.
  checkGemm('float32', { m: 300, n: 96, k: 70, transA: false, transB: true }, 7);
  checkGemm('float32', { m: 6, n: 700, k: 50, transA: false, transB: false }, 8);
  checkGemm('float32', { m: 40, n: 64, k: 32, transA: false, transB: true, batch: 4 }, 9);
  checkGemm('float32', { m: 40, n: 64, k: 32, transA: true, transB: false, batch: 3, beta: 0.5 }, 10);
  checkGemm('float32', { m: 64, n: 48, k: 600, transA: true, transB: false, beta: 1, alpha: 0.25 }, 11);
  checkGemm('bfloat16', { m: 70, n: 50, k: 400, transA: false, transB: true }, 12);
});

// ---- elementwise and row-wise kernels -----------------------------------------------------------

function f32(values: ArrayLike<number>, shape: number[] = [values.length]): Tensor {
  return Tensor.fromArray(values, shape, 'float32').keep();
}
function f32From(count: number, seed: number, scale = 3): { t: Tensor; v: Float64Array } {
  const r = rng(seed);
  const v = Float64Array.from({ length: count }, () => Math.fround(r() * scale));
  return { t: f32(v), v };
}
const empty32 = (count: number) => Tensor.empty([count], 'float32').keep();
const strided = (t: Tensor, strides: number[]) => ({ ...t.dense(), strides });

function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, rtol: number, atol: number, label: string): void {
  assert.equal(got.length, want.length, `${label}: length`);
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!,
      w = want[i]!;
    if (Number.isNaN(w) && Number.isNaN(g)) continue;
    if (g === w) continue;
    const err = Math.abs(g - w);
    if (!(err <= atol + rtol * Math.abs(w)))
      assert.fail(`${label}[${i}]: got ${g}, want ${w} (error ${err.toExponential(2)})`);
  }
}

/** float64 erfc: Taylor series of erf near 0, continued fraction in the tails (relative error < 1e-13). */
function erfc(x: number): number {
  const ax = Math.abs(x);
  if (ax < 2.5) {
    let sum = ax,
      term = ax;
    for (let n = 1; n < 200; n++) {
      term *= (-ax * ax) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return 1 - Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  let f = 0;
  for (let n = 80; n >= 1; n--) f = n / 2 / (ax + f);
  const tail = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / (ax + f);
  return x > 0 ? tail : 2 - tail;
}
/** Standard normal CDF, accurate in the lower tail. */
const cdf = (x: number) => 0.5 * erfc(-x / Math.SQRT2);
const sig = (x: number) => 1 / (1 + Math.exp(-x));

const N = 1000 + 13; // several vectors plus a tail for every lane count

for (const isa of ISAS) {
  test(`binary add/sub/mul/div: contiguous, last-axis broadcast, per-row and leading scalar (${isa})`, () => {
    cpu.limitIsa(isa);
    const rows = 7,
      cols = 45;
    const A = f32From(rows * cols, 1),
      B = f32From(rows * cols, 2),
      bias = f32From(cols, 3),
      col = f32From(rows, 4);
    const out = empty32(rows * cols);
    const fns = [
      (a: number, b: number) => a + b,
      (a: number, b: number) => a - b,
      (a: number, b: number) => a * b,
      (a: number, b: number) => a / b,
    ];
    (['add', 'sub', 'mul', 'div'] as const).forEach((op, k) => {
      const f = fns[k]!;
      const check = (
        b: Tensor,
        bStrides: number[],
        bv: (i: number, j: number) => number,
        label: string,
        swap = false,
      ) => {
        const aS = strided(A.t, [cols, 1]),
          bS = strided(b, bStrides);
        cpu.binary(op, swap ? bS : aS, swap ? aS : bS, out.dense(), [rows, cols]);
        const want = new Float64Array(rows * cols);
        for (let i = 0; i < rows; i++)
          for (let j = 0; j < cols; j++) {
            const a = A.v[i * cols + j]!,
              b2 = bv(i, j);
            want[i * cols + j] = Math.fround(swap ? f(b2, a) : f(a, b2));
          }
        assertClose(out.toArray(), want, 0, 0, `${op} ${label} (${isa})`);
      };
      check(B.t, [cols, 1], (i, j) => B.v[i * cols + j]!, 'contiguous');
      check(bias.t, [0, 1], (_, j) => bias.v[j]!, 'bias [n] over rows');
      check(col.t, [1, 0], (i) => col.v[i]!, 'per-row value');
      check(col.t, [1, 0], (i) => col.v[i]!, 'per-row value first', true);
      check(bias.t, [0, 1], (_, j) => bias.v[j]!, 'broadcast first operand', true);
    });
    for (const t of [A.t, B.t, bias.t, col.t, out]) t.dispose();
  });

  test(`unary maps and their gradients match float64 references (${isa})`, () => {
    cpu.limitIsa(isa);
    const X = f32From(N, 5, 12);
    X.v[0] = 0;
    X.v[1] = -0;
    X.v[2] = 90;
    X.v[3] = -95;
    X.v[4] = -200;
    X.v[5] = 88.5;
    X.v[6] = -87.5;
    const x = f32(X.v),
      out = empty32(N),
      pos = f32(X.v.map((v) => Math.abs(v) + 0.5));
    const P = Float64Array.from(pos.toArray());
    const unary: [Parameters<CpuEngine['unary']>[0], (v: number) => number, number, number, boolean?][] = [
      ['neg', (v) => -v, 0, 0],
      ['exp', Math.exp, 3e-7, 1e-37],
      ['gelu', (v) => v * cdf(v), 8e-6, 1e-20], // relative error grows as x² in the far tail
      ['sigmoid', sig, 1e-6, 1e-37],
      ['silu', (v) => v * sig(v), 1e-6, 1e-37],
      ['abs', Math.abs, 0, 0],
      ['relu', (v) => (v > 0 ? v : 0), 0, 0],
      ['square', (v) => v * v, 1e-7, 0],
      ['scale', (v) => v * 0.375, 0, 0],
      ['addScalar', (v) => v + 0.375, 1e-7, 0],
      ['sqrt', Math.sqrt, 1e-7, 0, true],
      ['rsqrt', (v) => 1 / Math.sqrt(v), 2e-7, 0, true],
      ['reciprocal', (v) => 1 / v, 1e-7, 0, true],
    ];
    for (const [op, f, rtol, atol, positive] of unary) {
      const src = positive ? pos : x,
        vals = positive ? P : X.v;
      cpu.unary(op, src.dense(), out.dense(), N, 0.375);
      const want = Array.from(vals, (v) => Math.fround(f(v)));
      assertClose(out.toArray(), want, rtol, atol, `unary ${op} (${isa})`);
    }
    const G = f32From(N, 6);
    const grads: [Parameters<CpuEngine['unaryGrad']>[0], (v: number) => number, number][] = [
      ['gelu', (v) => cdf(v) + (v * Math.exp(-0.5 * v * v)) / Math.sqrt(2 * Math.PI), 8e-6],
      ['sigmoid', (v) => sig(v) * (1 - sig(v)), 2e-6],
      ['silu', (v) => sig(v) * (1 + v * (1 - sig(v))), 2e-6],
      ['relu', (v) => (v > 0 ? 1 : 0), 0],
    ];
    const finite = f32(X.v.map((v) => (Number.isFinite(v) ? v : 0)));
    const F = Float64Array.from(finite.toArray());
    for (const [op, f, rtol] of grads) {
      cpu.unaryGrad(op, finite.dense(), G.t.dense(), out.dense(), N);
      assertClose(
        out.toArray(),
        Array.from(F, (v, i) => G.v[i]! * f(v)),
        rtol,
        3e-7,
        `unaryGrad ${op} (${isa})`,
      );
    }
    for (const t of [x, out, pos, G.t, finite]) t.dispose();
  });

  test(`softmax, log-softmax and their gradients, with masked rows (${isa})`, () => {
    cpu.limitIsa(isa);
    for (const cols of [1, 7, 64, 301]) {
      const rows = 5;
      const X = f32From(rows * cols, 7 + cols, 8);
      for (let j = 0; j < cols; j += 3) X.v[j] = -Infinity; // row 0 partly masked
      for (let j = 0; j < cols; j++) X.v[cols + j] = -Infinity; // row 1 fully masked
      const x = f32(X.v),
        y = empty32(rows * cols),
        gx = empty32(rows * cols),
        G = f32From(rows * cols, 8);
      for (const log of [false, true]) {
        cpu.softmax(x.dense(), y.dense(), rows, cols, log);
        const want = new Float64Array(rows * cols);
        for (let r = 0; r < rows; r++) {
          const row = X.v.subarray(r * cols, (r + 1) * cols);
          let m = Math.max(...row);
          if (m === -Infinity) m = 0;
          const s = row.reduce((a, v) => a + Math.exp(v - m), 0);
          for (let j = 0; j < cols; j++)
            want[r * cols + j] = log ? row[j]! - m - Math.log(s) : s > 0 ? Math.exp(row[j]! - m) / s : 0;
        }
        const got = y.toArray();
        if (log) {
          // fully masked rows give -inf - log(0) patterns; compare only finite rows
          assertClose(got.slice(2 * cols), want.slice(2 * cols), 1e-6, 1e-6, `log-softmax cols=${cols} (${isa})`);
        } else {
          assertClose(got, want, 2e-6, 1e-9, `softmax cols=${cols} (${isa})`);
        }
        // Backward from the kernel's own output on the unmasked rows.
        const Y = Float64Array.from(got);
        const r0 = 2;
        cpu.softmaxGrad(
          { ...y.dense(), offset: r0 * cols },
          { ...G.t.dense(), offset: r0 * cols },
          { ...gx.dense(), offset: r0 * cols },
          rows - r0,
          cols,
          log,
        );
        const wantG = new Float64Array((rows - r0) * cols);
        for (let r = r0; r < rows; r++) {
          const yr = Y.subarray(r * cols, (r + 1) * cols),
            gr = G.v.subarray(r * cols, (r + 1) * cols);
          const dot = log ? gr.reduce((a, v) => a + v, 0) : yr.reduce((a, v, j) => a + v * gr[j]!, 0);
          for (let j = 0; j < cols; j++)
            wantG[(r - r0) * cols + j] = log ? gr[j]! - Math.exp(yr[j]!) * dot : yr[j]! * (gr[j]! - dot);
        }
        assertClose(gx.toArray().slice(r0 * cols), wantG, 1e-5, 1e-6, `softmaxGrad log=${log} cols=${cols} (${isa})`);
      }
      for (const t of [x, y, gx, G.t]) t.dispose();
    }
  });

  test(`layer norm and RMS norm forward/backward (${isa})`, () => {
    cpu.limitIsa(isa);
    const rows = 37,
      cols = 83;
    const X = f32From(rows * cols, 9, 4),
      W = f32From(cols, 10),
      B = f32From(cols, 11),
      G = f32From(rows * cols, 12);
    for (let j = 0; j < cols; j++) X.v[j] = Math.fround(X.v[j]! + 100); // an offset row: mean ≫ spread
    const x = f32(X.v);
    const y = empty32(rows * cols),
      stats = empty32(rows * 2),
      gx = empty32(rows * cols),
      gw = empty32(cols),
      gb = empty32(cols);
    const eps = 1e-5;
    for (const rms of [false, true]) {
      for (const affine of [true, false]) {
        cpu.norm(
          rms,
          x.dense(),
          affine ? W.t.dense() : null,
          affine ? B.t.dense() : null,
          y.dense(),
          stats.dense(),
          rows,
          cols,
          eps,
        );
        const wantY = new Float64Array(rows * cols),
          xhat = new Float64Array(rows * cols),
          rstd = new Float64Array(rows);
        for (let r = 0; r < rows; r++) {
          const xr = X.v.subarray(r * cols, (r + 1) * cols);
          const mean = rms ? 0 : xr.reduce((a, v) => a + v, 0) / cols;
          const v = xr.reduce((a, q) => a + (q - mean) ** 2, 0) / cols;
          rstd[r] = 1 / Math.sqrt(v + eps);
          for (let j = 0; j < cols; j++) {
            xhat[r * cols + j] = (xr[j]! - mean) * rstd[r]!;
            wantY[r * cols + j] = affine ? xhat[r * cols + j]! * W.v[j]! + B.v[j]! : xhat[r * cols + j]!;
          }
        }
        assertClose(y.toArray(), wantY, 1e-5, 2e-5, `norm rms=${rms} affine=${affine} (${isa})`);
        cpu.normGrad(
          rms,
          x.dense(),
          affine ? W.t.dense() : null,
          stats.dense(),
          G.t.dense(),
          gx.dense(),
          gw.dense(),
          gb.dense(),
          rows,
          cols,
        );
        const wantGx = new Float64Array(rows * cols),
          wantGw = new Float64Array(cols),
          wantGb = new Float64Array(cols);
        for (let r = 0; r < rows; r++) {
          let sg = 0,
            sgx = 0;
          for (let j = 0; j < cols; j++) {
            const g = G.v[r * cols + j]!,
              gp = affine ? g * W.v[j]! : g,
              xh = xhat[r * cols + j]!;
            sg += gp;
            sgx += gp * xh;
            wantGw[j] += g * xh;
            wantGb[j] += g;
          }
          for (let j = 0; j < cols; j++) {
            const g = G.v[r * cols + j]!,
              gp = affine ? g * W.v[j]! : g,
              xh = xhat[r * cols + j]!;
            wantGx[r * cols + j] = rstd[r]! * (gp - (rms ? 0 : sg / cols) - (xh * sgx) / cols);
          }
        }
        assertClose(gx.toArray(), wantGx, 1e-4, 1e-4, `normGrad gx rms=${rms} (${isa})`);
        assertClose(gw.toArray(), wantGw, 1e-4, 1e-4, `normGrad gw rms=${rms} (${isa})`);
        assertClose(gb.toArray(), wantGb, 1e-5, 1e-5, `normGrad gb rms=${rms} (${isa})`);
      }
    }
    for (const t of [x, W.t, B.t, G.t, y, stats, gx, gw, gb]) t.dispose();
  });

  test(`cross-entropy forward/backward with ignored rows, AdamW, sums (${isa})`, () => {
    cpu.limitIsa(isa);
    const rows = 9,
      vocab = 259,
      ignore = -100;
    const L = f32From(rows * vocab, 13, 10);
    const targets = Int32Array.from({ length: rows }, (_, r) => (r === 4 ? ignore : (r * 97) % vocab));
    const logits = f32(L.v),
      tg = Tensor.fromArray(targets, [rows], 'int32').keep();
    const losses = empty32(rows),
      lse = empty32(rows),
      gl = f32From(rows, 14),
      grad = empty32(rows * vocab);
    cpu.crossEntropy(logits.dense(), tg.dense(), losses.dense(), lse.dense(), rows, vocab, ignore);
    const wantLse = new Float64Array(rows),
      wantLoss = new Float64Array(rows),
      wantG = new Float64Array(rows * vocab);
    for (let r = 0; r < rows; r++) {
      const row = L.v.subarray(r * vocab, (r + 1) * vocab);
      const m = Math.max(...row);
      wantLse[r] = m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0));
      wantLoss[r] = targets[r] === ignore ? 0 : wantLse[r]! - row[targets[r]!]!;
      if (targets[r] === ignore) continue;
      for (let j = 0; j < vocab; j++)
        wantG[r * vocab + j] = gl.v[r]! * (Math.exp(row[j]! - wantLse[r]!) - (j === targets[r] ? 1 : 0));
    }
    assertClose(lse.toArray(), wantLse, 1e-6, 1e-6, `cross-entropy lse (${isa})`);
    assertClose(losses.toArray(), wantLoss, 1e-5, 1e-5, `cross-entropy loss (${isa})`);
    cpu.crossEntropyGrad(logits.dense(), tg.dense(), lse.dense(), gl.t.dense(), grad.dense(), rows, vocab, ignore);
    assertClose(grad.toArray(), wantG, 1e-5, 1e-7, `cross-entropy grad (${isa})`);

    const n = N;
    const P = f32From(n, 15),
      Gd = f32From(n, 16),
      M = f32From(n, 17, 0.1),
      V2 = f32From(n, 18, 0.01);
    const Vv = V2.v.map((v) => Math.fround(Math.abs(v)));
    const v = f32(Vv);
    const args = adamwTestArgs(3, 0.5);
    cpu.adamw(P.t.dense(), Gd.t.dense(), M.t.dense(), v.dense(), n, args);
    const wantP = new Float64Array(n),
      wantM = new Float64Array(n),
      wantV = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const g = Gd.v[i]! * args.gradScale;
      wantM[i] = args.beta1 * M.v[i]! + (1 - args.beta1) * g;
      wantV[i] = args.beta2 * Vv[i]! + (1 - args.beta2) * g * g;
      const denom = Math.sqrt(wantV[i]!) / Math.sqrt(args.biasCorrection2) + args.eps;
      wantP[i] = P.v[i]! * (1 - args.lr * args.weightDecay) - ((args.lr / args.biasCorrection1) * wantM[i]!) / denom;
    }
    assertClose(M.t.toArray(), wantM, 1e-6, 5e-8, `adamw m (${isa})`);
    assertClose(v.toArray(), wantV, 1e-6, 1e-11, `adamw v (${isa})`);
    assertClose(P.t.toArray(), wantP, 1e-6, 1e-7, `adamw param (${isa})`);

    const S = f32From(100_003, 19);
    const sq = cpu.sumOfSquares(S.t.dense(), 100_003);
    const wantSq = S.v.reduce((a, q) => a + q * q, 0);
    assert.ok(Math.abs(sq - wantSq) <= 1e-6 * wantSq, `sumOfSquares ${sq} vs ${wantSq} (${isa})`);
    // reduce sum: rows (inner 1) and columns (inner > 1)
    const outer = 3,
      size = 301,
      inner = 70;
    const R = f32From(outer * size * inner, 20);
    const red = empty32(outer * inner),
      red1 = empty32(outer * size);
    cpu.reduce('sum', R.t.dense(), red.dense(), outer, size, inner);
    cpu.reduce('sum', R.t.dense(), red1.dense(), outer * size, inner, 1);
    const wantRed = new Float64Array(outer * inner),
      wantRed1 = new Float64Array(outer * size);
    for (let a = 0; a < outer; a++)
      for (let s = 0; s < size; s++)
        for (let j = 0; j < inner; j++) {
          const q = R.v[(a * size + s) * inner + j]!;
          wantRed[a * inner + j] += q;
          wantRed1[a * size + s] += q;
        }
    assertClose(red.toArray(), wantRed, 1e-6, 1e-5, `reduce sum middle axis (${isa})`);
    assertClose(red1.toArray(), wantRed1, 1e-6, 1e-5, `reduce sum last axis (${isa})`);
    // One output row over many rows (bias gradient: rows split across threads).
    const Rb = f32From(2048 * 67, 22),
      rb = empty32(67);
    cpu.reduce('sum', Rb.t.dense(), rb.dense(), 1, 2048, 67);
    const wantRb = new Float64Array(67);
    for (let s2 = 0; s2 < 2048; s2++) for (let j = 0; j < 67; j++) wantRb[j] += Rb.v[s2 * 67 + j]!;
    assertClose(rb.toArray(), wantRb, 1e-6, 1e-5, `reduce sum over rows (${isa})`);
    Rb.t.dispose();
    rb.dispose();
    for (const t of [logits, tg, losses, lse, gl.t, grad, P.t, Gd.t, M.t, V2.t, v, S.t, R.t, red, red1]) t.dispose();
  });
}

test('strided copy: transposes (tiled), permutations, broadcasts and dtype conversion', () => {
  cpu.limitIsa(BEST);
  // [b, t, h, d] → [b, h, t, d] and a full 2-D transpose with odd sizes.
  const dims = [2, 37, 3, 40];
  const X = f32From(
    dims.reduce((a, b) => a * b),
    21,
  );
  const [b, t, h, d] = dims as [number, number, number, number];
  const srcStrides = [t * h * d, h * d, d, 1];
  const cases: { shape: number[]; src: number[]; dst: number[]; index: (i: number[]) => number }[] = [
    // logical [b, h, t, d] read from [b, t, h, d]
    {
      shape: [b, h, t, d],
      src: [srcStrides[0]!, srcStrides[2]!, srcStrides[1]!, 1],
      dst: [h * t * d, t * d, d, 1],
      index: ([i0, i1, i2, i3]) => i0! * srcStrides[0]! + i2! * srcStrides[1]! + i1! * srcStrides[2]! + i3!,
    },
    // logical [b, d, t·h] transpose of the last axis (source unit stride on axis 1 → tiled path)
    {
      shape: [b, d, t * h],
      src: [srcStrides[0]!, 1, d],
      dst: [d * t * h, t * h, 1],
      index: ([i0, i1, i2]) => i0! * srcStrides[0]! + i2! * d + i1!,
    },
    // broadcast of a row over 5 rows
    { shape: [5, d], src: [0, 1], dst: [d, 1], index: ([, i1]) => i1! },
  ];
  for (const c of cases) {
    const count = c.shape.reduce((p, q) => p * q, 1);
    const out = empty32(count);
    cpu.copy(strided(X.t, c.src), strided(out, c.dst), c.shape);
    const want = new Float64Array(count);
    const idx = c.shape.map(() => 0);
    for (let i = 0; i < count; i++) {
      want[i] = X.v[c.index(idx)]!;
      for (let k = c.shape.length - 1; k >= 0; k--) {
        if (++idx[k]! < c.shape[k]!) break;
        idx[k] = 0;
      }
    }
    assertClose(out.toArray(), want, 0, 0, `copy ${JSON.stringify(c.shape)}`);
    out.dispose();
  }
  const half = Tensor.empty([X.v.length], 'bfloat16').keep();
  cpu.copy(strided(X.t, [1]), strided(half, [1]), [X.v.length]);
  assertClose(half.toArray(), Array.from(X.v), 2 ** -8, 0, 'copy float32 → bfloat16');
  half.dispose();
  X.t.dispose();
});
