// Engine.pagedAttention on the CUDA engine (native/cuda/paged) for andromeda-3b's attention (24 heads × 128 over one
// KV head, key scale, rotary + xPos, ALiBi on 12 heads, bf16, blocks of 32 positions): one decode step of one
// sequence after 2,048 / 32,768 / 100,000 keys, and of 64 sequences after 2,048 keys each. The bar (issue 14):
// ≲ 40 µs per layer at 32k keys (300 tokens/s for the 3B model after a 32k prompt); K+V at 32k are 16 MB, ~6 µs at
// 3 TB/s. Anchor in the same run: the dense split-KV decode kernel (attentionForward, path 'decode') on the same
// keys laid out contiguously (an identity block table), and the paged kernel on that identity table too, so the
// cost of going through a shuffled table shows; the outputs of the three are compared.
//   node dist/bench/gpu-paged-attention.js [--reps N]
// Times: `device µs` is the stream time of N back-to-back calls / N (events around the batch), `issue µs` the host
// time to enqueue one call (when that is as large, the device waited for the host, and the device figure is an upper
// bound), `graph µs` the stream time per call of the same N calls captured in one CUDA graph and replayed (no host in
// between, as in a decode step's graph; GB/s from it).
import { getEngine, type Dense, type PagedAttentionArgs } from '../src/engine/index.js';
import type { CudaEngine } from '../src/engine/cuda.js';
import { encodeHost } from '../src/tensor/dtype.js';
import { Generator } from '../src/tensor/random.js';
import { difference, randomBuffer, readBuffer } from './gpu-buffers.js';

const gpu = getEngine('cuda') as CudaEngine;
const argv = process.argv.slice(2);
const repsArg = argv.indexOf('--reps');
const reps = repsArg >= 0 ? Number(argv[repsArg + 1]) : 50;
const gen = new Generator(11);

const heads = 24,
  kvHeads = 1,
  headDim = 128,
  rotaryDim = 64,
  blockSize = 32;

function ints(values: Int32Array): Dense {
  const handle = gpu.alloc(Math.max(16, values.byteLength));
  gpu.upload(handle, 0, encodeHost('int32', values));
  return { handle, offset: 0, dtype: 'int32' };
}

/** Block ids 0 .. n−1, shuffled or in order. */
function blockIds(n: number, shuffle: boolean): Int32Array {
  const ids = Int32Array.from({ length: n }, (_, i) => i);
  if (shuffle) {
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(gen.uniform() * (i + 1));
      [ids[i], ids[j]] = [ids[j]!, ids[i]!];
    }
  }
  return ids;
}

interface Timing {
  deviceUs: number;
  issueUs: number;
  graphUs: number;
}

/** Device and host-issue time per call over `reps` back-to-back calls (after a warm-up), median of 5 batches. */
function time(fn: () => void): Timing {
  const median = (a: number[]): number => a.sort((x, y) => x - y)[a.length >> 1]!;
  fn();
  gpu.synchronize();
  const device: number[] = [],
    issue: number[] = [];
  for (let s = 0; s < 5; s++) {
    gpu.timingRead();
    gpu.timingMark();
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) fn();
    const t1 = performance.now();
    gpu.timingMark();
    const gaps = gpu.timingRead();
    device.push((gaps[gaps.length - 1]! * 1e3) / reps);
    issue.push(((t1 - t0) * 1e3) / reps);
  }
  // The same calls recorded in one graph and replayed: no host issue between them (as in a decode step's graph).
  let graph: ReturnType<typeof gpu.captureGraph>;
  try {
    graph = gpu.captureGraph(() => {
      for (let i = 0; i < reps; i++) fn();
    });
  } catch (e) {
    console.log(`(no graph timing: ${(e as Error).message.split('\n')[0]})`);
    return { deviceUs: median(device), issueUs: median(issue), graphUs: NaN };
  }
  const replayed: number[] = [];
  try {
    graph.replay();
    gpu.synchronize();
    for (let s = 0; s < 5; s++) {
      gpu.timingRead();
      gpu.timingMark();
      graph.replay();
      gpu.timingMark();
      const gaps = gpu.timingRead();
      replayed.push((gaps[gaps.length - 1]! * 1e3) / reps);
    }
  } finally {
    graph.dispose();
  }
  return { deviceUs: median(device), issueUs: median(issue), graphUs: median(replayed) };
}

const keyScale = randomBuffer(gpu, gen, 'float32', heads * headDim, 0.2, 1);
const features = {
  heads,
  kvHeads,
  headDim,
  scale: 1 / Math.sqrt(headDim),
  alibiSlopes: Float32Array.from({ length: heads }, (_, h) =>
    h < heads / 2 ? 2 ** ((-8 * (h + 1)) / (heads / 2)) : 0,
  ),
  rotaryDim,
  rotaryInvFreq: Float32Array.from({ length: rotaryDim / 2 }, (_, i) => 1 / 10000 ** ((2 * i) / rotaryDim)),
  xposScaleBase: 512,
  keyScale,
  window: 0,
  softCap: 0,
};

function row(label: string, seqs: number, keys: number, t: Timing): string {
  const bytes = 2 * seqs * kvHeads * keys * headDim * 2;
  const gbs = bytes / (t.graphUs * 1e-6) / 1e9;
  return (
    `| ${label} | ${seqs} | ${keys} | ${t.deviceUs.toFixed(1)} | ${t.issueUs.toFixed(1)} | ${t.graphUs.toFixed(1)} | ` +
    `${(bytes / 2 ** 20).toFixed(1)} | ${gbs.toFixed(0)} |`
  );
}

/**
 * A copy of a bf16 pool [numBlocks, blockSize, kvHeads, headDim] whose block j sits at block table[j] (the
 * logical block j of a sequence whose block table is `table`).
 */
function movedBlocks(pool: Dense, table: Int32Array): Dense {
  const blockBytes = blockSize * kvHeads * headDim * 2;
  const from = new Uint8Array(gpu.download(pool.handle, 0, table.length * blockBytes));
  const to = new Uint8Array(from.length);
  table.forEach((at, j) => to.set(from.subarray(j * blockBytes, (j + 1) * blockBytes), at * blockBytes));
  const handle = gpu.alloc(Math.max(16, to.length));
  gpu.upload(handle, 0, to);
  return { handle, offset: 0, dtype: pool.dtype };
}

/** One decode step of `seqs` sequences of `keys` keys each (the last key is the new token's). */
function bench(seqs: number, keys: number, anchors: boolean): string[] {
  const blocksPer = Math.ceil(keys / blockSize);
  const numBlocks = seqs * blocksPer;
  const pool = numBlocks * blockSize * kvHeads * headDim;
  const k = randomBuffer(gpu, gen, 'bfloat16', pool),
    v = randomBuffer(gpu, gen, 'bfloat16', pool);
  const q = randomBuffer(gpu, gen, 'bfloat16', seqs * heads * headDim);
  const outs = [0, 1, 2].map(() => randomBuffer(gpu, gen, 'bfloat16', seqs * heads * headDim));
  const queryStart = ints(Int32Array.from({ length: seqs + 1 }, (_, i) => i));
  const contextLens = ints(new Int32Array(seqs).fill(keys));
  const batch = (table: Int32Array): PagedAttentionArgs => ({
    numSeqs: seqs,
    blockSize,
    numBlocks,
    maxBlocksPerSeq: blocksPer,
    maxQueryLen: 1,
    maxContextLen: keys,
    queryStart,
    contextLens,
    blockTables: ints(table),
    ...features,
  });
  const permutation = blockIds(numBlocks, true);
  const shuffled = batch(permutation);
  // With the anchors, the shuffled run reads pools whose blocks are moved where its table looks for them, so that
  // all three runs attend over the same keys in the same order.
  const [kShuffled, vShuffled] = anchors ? [k, v].map((pool) => movedBlocks(pool, permutation)) : [k, v];
  const lines = [
    row(
      'paged, shuffled table',
      seqs,
      keys,
      time(() => gpu.pagedAttention(q, kShuffled!, vShuffled!, outs[0]!, seqs, shuffled)),
    ),
  ];
  const temps: Dense[] = [shuffled.blockTables, ...(anchors ? [kShuffled!, vShuffled!] : [])];
  if (anchors) {
    // One sequence: the identity table is the contiguous [1, kvHeads, keys, headDim] layout of the dense kernel.
    const identity = batch(blockIds(numBlocks, false));
    temps.push(identity.blockTables);
    lines.push(
      row(
        'paged, identity table',
        seqs,
        keys,
        time(() => gpu.pagedAttention(q, k, v, outs[1]!, seqs, identity)),
      ),
    );
    const lse = randomBuffer(gpu, gen, 'float32', heads);
    temps.push(lse);
    const dense = {
      batch: 1,
      heads,
      kvHeads,
      queryLen: 1,
      keyLen: keys,
      headDim,
      scale: features.scale,
      causal: true,
      queryOffset: keys - 1,
      alibiSlopes: features.alibiSlopes,
      rotaryDim,
      rotaryInvFreq: features.rotaryInvFreq,
      xposScaleBase: features.xposScaleBase,
      keyScale,
      queryPositions: null,
      keyPositions: null,
      querySegments: null,
      keySegments: null,
    };
    lines.push(
      row(
        'dense decode kernel (anchor)',
        seqs,
        keys,
        time(() => gpu.attentionForward(q, k, v, outs[2]!, lse, dense, { path: 'decode' })),
      ),
    );
    // The same attention three ways (bf16 outputs): the shuffled table only moves where the blocks live, so the
    // paged results must agree with each other exactly and with the dense kernel to bf16 rounding.
    const [shuffledOut, identityOut, denseOut] = outs.map((o) => readBuffer(gpu, o, heads * headDim));
    lines.push(
      `agreement at ${keys} keys: paged shuffled vs identity ` +
        `${difference(shuffledOut!, identityOut!).toExponential(1)}, ` +
        `paged vs dense decode ${difference(shuffledOut!, denseOut!).toExponential(1)}`,
    );
  }
  for (const d of [k, v, q, ...outs, queryStart, contextLens, ...temps]) gpu.free(d.handle);
  return lines;
}

console.log(
  `# pagedAttention, andromeda-3b attention (24 × 128 over 1 KV head, all features, bf16), ${gpu.description}`,
);
console.log(`${reps} calls per timing batch, median of 5 batches\n`);
const lines: string[] = [];
for (const keys of [2048, 32768, 100_000]) lines.push(...bench(1, keys, true));
lines.push(...bench(64, 2048, false));
const header =
  '| kernel | sequences | keys each | device µs | issue µs | graph µs | K+V MiB | GB/s |\n' +
  '|---|---|---|---|---|---|---|---|';
console.log(header);
for (const l of lines) if (l.startsWith('|')) console.log(l);
console.log('');
for (const l of lines) if (!l.startsWith('|')) console.log(l);
process.exit(0);
