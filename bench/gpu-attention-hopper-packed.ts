// Packed documents against one unbroken sequence, forward and backward on the automatic kernel choice, at the training
// recipe's shapes: andromeda-3b's attention at 1 × 2,048 (24 heads × 128, one KV head, rotary 64 + xPos, key scale,
// ALiBi on 12 heads) and orca's at 4 × 8,192 (8 heads × 64, one KV head, rotary 32 + xPos, key scale, ALiBi on 4),
// documents of 512 tokens (ANDROMEDA_BENCH_DOCUMENT_TOKENS' layout in bench/gpu-train-step.ts). Three rows per shape:
//   unpacked                         no segments
//   packed                           segment ids, index positions: what src/ops/attention.ts passes for documents
//                                    whose positions restart at 0 (the Hopper kernels, tiles across documents skipped)
//   packed, per-document positions   the same with the positions given (custom positions: the mma.sync kernels)
// A packed row does less attention work than the unpacked one (each query sees only its document), so the bar is
// packed ≤ unpacked; the work ratio (causal pairs inside documents / in the whole row) is printed beside it. The two
// packed rows compute the same attention on different kernels: their results' largest relative differences close the
// output.
//   node dist/bench/gpu-attention-hopper-packed.js [document tokens, default 512]
import { getEngine, type AttentionArgs, type Dense } from '../src/engine/index.js';
import type { CudaEngine } from '../src/engine/cuda.js';
import { Generator } from '../src/tensor/random.js';
import { positionsFromSegments } from '../src/model/context.js';
import { difference, medianMs, randomBuffer, readBuffer } from './gpu-buffers.js';

const gpu = getEngine('cuda') as CudaEngine;
const documentTokens = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 512);
if (!Number.isInteger(documentTokens) || documentTokens < 1)
  throw new Error(`document tokens ${documentTokens}: expected a positive integer`);
const gen = new Generator(13);

interface Shape {
  label: string;
  batch: number;
  n: number;
  heads: number;
  dim: number;
  alibiHeads: number;
}

const shapes: Shape[] = [
  { label: 'andromeda-3b 1×2048, 24/1×128', batch: 1, n: 2048, heads: 24, dim: 128, alibiHeads: 12 },
  { label: 'orca 4×8192, 8/1×64', batch: 4, n: 8192, heads: 8, dim: 64, alibiHeads: 4 },
];

type Layout = 'unpacked' | 'packed' | 'packed, per-document positions';

function upload(values: Int32Array): Dense {
  const handle = gpu.alloc(Math.max(16, values.byteLength));
  gpu.upload(handle, 0, values);
  return { handle, offset: 0, dtype: 'int32' };
}

function bench(s: Shape): void {
  const rows = s.batch * s.n;
  const segments = Int32Array.from({ length: rows }, (_, t) => Math.floor((t % s.n) / documentTokens));
  const positions = positionsFromSegments(segments, s.batch, s.n);
  const segmentBuffer = upload(segments),
    positionBuffer = upload(positions);
  const nq = s.batch * s.heads * s.n * s.dim,
    nk = s.batch * s.n * s.dim;
  const b = {
    q: randomBuffer(gpu, gen, 'bfloat16', nq),
    k: randomBuffer(gpu, gen, 'bfloat16', nk),
    v: randomBuffer(gpu, gen, 'bfloat16', nk),
    out: randomBuffer(gpu, gen, 'bfloat16', nq),
    lse: randomBuffer(gpu, gen, 'float32', s.batch * s.heads * s.n),
    gout: randomBuffer(gpu, gen, 'bfloat16', nq),
    dq: randomBuffer(gpu, gen, 'bfloat16', nq),
    dk: randomBuffer(gpu, gen, 'bfloat16', nk),
    dv: randomBuffer(gpu, gen, 'bfloat16', nk),
    ks: randomBuffer(gpu, gen, 'float32', s.heads * s.dim, 0.1, 1),
    dks: randomBuffer(gpu, gen, 'float32', s.heads * s.dim),
  };
  const rotary = s.dim / 2;
  const args = (layout: Layout): AttentionArgs => ({
    batch: s.batch,
    heads: s.heads,
    kvHeads: 1,
    queryLen: s.n,
    keyLen: s.n,
    headDim: s.dim,
    scale: 1 / Math.sqrt(s.dim),
    causal: true,
    queryOffset: 0,
    alibiSlopes: Float32Array.from({ length: s.heads }, (_, h) =>
      h < s.alibiHeads ? 2 ** ((-8 * (h + 1)) / s.alibiHeads) : 0,
    ),
    rotaryDim: rotary,
    rotaryInvFreq: Float32Array.from({ length: rotary / 2 }, (_, i) => 1 / 10000 ** ((2 * i) / rotary)),
    xposScaleBase: 512,
    keyScale: b.ks,
    queryPositions: layout === 'packed, per-document positions' ? positionBuffer : null,
    keyPositions: layout === 'packed, per-document positions' ? positionBuffer : null,
    querySegments: layout === 'unpacked' ? null : segmentBuffer,
    keySegments: layout === 'unpacked' ? null : segmentBuffer,
    positionRange: layout === 'packed, per-document positions' ? { min: 0, max: documentTokens - 1 } : null,
  });
  // Causal pairs inside whole documents of d tokens (and the last, shorter one) against those of the whole row.
  const pairs = (d: number): number => (d * (d + 1)) / 2;
  const whole = Math.floor(s.n / documentTokens),
    rest = s.n % documentTokens;
  const work = (whole * pairs(documentTokens) + pairs(rest)) / pairs(s.n);
  let unpacked: [number, number] | null = null;
  const results = new Map<Layout, Float64Array[]>(); // out, dq, dk, dv of each layout's last calls
  for (const layout of ['unpacked', 'packed', 'packed, per-document positions'] as Layout[]) {
    const a = args(layout);
    const forward = (): void => gpu.attentionForward(b.q, b.k, b.v, b.out, b.lse, a, { path: 'tiled' });
    const backward = (): void => gpu.attentionBackward(b.q, b.k, b.v, b.out, b.lse, b.gout, b.dq, b.dk, b.dv, b.dks, a);
    try {
      const plan = gpu.attentionPlan(b.q, b.lse, a, {});
      const fwd = medianMs(gpu, forward);
      forward(); // the backward reads this layout's out and lse
      const bwd = medianMs(gpu, backward);
      unpacked ??= [fwd, bwd];
      results.set(layout, [
        readBuffer(gpu, b.out, nq),
        readBuffer(gpu, b.dq, nq),
        readBuffer(gpu, b.dk, nk),
        readBuffer(gpu, b.dv, nk),
      ]);
      const ratio = (x: number, base: number): string => (layout === 'unpacked' ? '' : ` (${(x / base).toFixed(2)}×)`);
      console.log(
        `| ${s.label} | ${layout} | ${plan} | ${fwd.toFixed(3)}${ratio(fwd, unpacked[0])} | ` +
          `${bwd.toFixed(3)}${ratio(bwd, unpacked[1])} | ${layout === 'unpacked' ? '1' : work.toFixed(2)} |`,
      );
    } catch (e) {
      console.log(`| ${s.label} | ${layout} | error: ${(e as Error).message} | | | |`);
    }
  }
  // The two packed rows compute the same attention (index positions vs the documents' own) on different kernels.
  const hopper = results.get('packed'),
    mma = results.get('packed, per-document positions');
  if (hopper && mma) {
    const diffs = hopper.map((x, i) => difference(x, mma[i]!).toExponential(1));
    agreement.push(`| ${s.label} | ${diffs.join(' | ')} |`);
  }
  for (const d of [...Object.values(b), segmentBuffer, positionBuffer]) gpu.free(d.handle);
}

const agreement: string[] = [];

console.log(`# packed documents of ${documentTokens} tokens vs one sequence, automatic kernels, ${gpu.description}`);
console.log('\n| shape | layout | transform | forward ms | backward ms | attention work |\n|---|---|---|---|---|---|');
for (const s of shapes) bench(s);
console.log('\n| packed vs packed with positions: max rel diff | out | dq | dk | dv |\n|---|---|---|---|---|');
for (const line of agreement) console.log(line);
