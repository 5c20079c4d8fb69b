// The GPU attention tests' cases: what a case names (shape, features), its random bf16 inputs, its engine
// arguments, and its float64 reference (tests/helpers/attention-reference.ts, shared with the CPU engine's tests).
import type { AttentionArgs, Dense } from '../../src/engine/engine.js';
import type { DType } from '../../src/tensor/dtype.js';
import {
  referenceAttention,
  rng,
  type AttentionInputs,
  type AttentionResult,
  type AttentionShape,
} from '../helpers/attention-reference.js';

export { relativeError, type AttentionInputs, type AttentionResult } from '../helpers/attention-reference.js';

export interface AttentionCase extends AttentionShape {
  name: string;
  offset?: number; // queryOffset (defaults to NK − NQ when causal, else 0)
  alibi?: boolean;
  alibiHeads?: number; // heads with a slope (default ⌈3H/4⌉), the others get 0
  keyScale?: boolean;
  positions?: 'custom' | 'reset' | 'far';
  segments?: boolean;
  /**
   * Packed documents (implies segments, positions reset at each document): the document lengths of each batch row
   * (row b takes documents[b mod length]), repeated until the row is full.
   */
  documents?: number[][];
  /** Documents' ids: 'increasing' (default; each document one run) or 'alternating' (documents 0, 2, … share one). */
  documentIds?: 'increasing' | 'alternating';
  /**
   * The engine gets no positions (index positions) while the reference keeps the documents' own: what
   * src/ops/attention.ts passes on CUDA for documents whose positions count on from their first token.
   */
  indexPositions?: boolean;
  allMaskedRows?: boolean; // some query rows get an id that no key has
  seed?: number;
}

/** Rounds to bfloat16 (round to nearest even), as the device stores the values. */
export function toBf16(a: Float64Array): Float64Array {
  const f = Float32Array.from(a);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < f.length; i++) u[i] = (((u[i]! + 0x7fff + ((u[i]! >>> 16) & 1)) >>> 16) << 16) >>> 0;
  return Float64Array.from(f);
}

/** ALiBi slopes of the spec for the first m heads (power-of-two or not), zero for the rest. */
export function alibiSlopes(heads: number, m: number): Float32Array {
  const pow2 = (n: number): number[] => {
    const start = 2 ** -(2 ** -(Math.log2(n) - 3));
    return Array.from({ length: n }, (_, i) => start ** (i + 1));
  };
  let s: number[];
  if (Number.isInteger(Math.log2(m))) s = pow2(m);
  else {
    const p = 2 ** Math.floor(Math.log2(m));
    s = [
      ...pow2(p),
      ...pow2(2 * p)
        .filter((_, i) => i % 2 === 0)
        .slice(0, m - p),
    ];
  }
  return Float32Array.from({ length: heads }, (_, h) => (h < m ? s[h]! : 0));
}

export function makeInputs(c: AttentionCase): AttentionInputs {
  const rand = rng(c.seed ?? 99 + c.NQ * 7 + c.NK * 13 + c.D * 3 + c.H);
  const normal = (): number => {
    const u = Math.max(rand(), 1e-12),
      v = rand();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
  const arr = (n: number, scale = 1): Float64Array => Float64Array.from({ length: n }, () => scale * normal());
  const { B, H, KVH, NQ, NK, D } = c;
  const offset = c.offset ?? (c.causal ? NK - NQ : 0);
  const q = toBf16(arr(B * H * NQ * D)),
    k = toBf16(arr(B * KVH * NK * D)),
    v = toBf16(arr(B * KVH * NK * D));
  const gout = toBf16(arr(B * H * NQ * D));
  const ks = c.keyScale ? Float64Array.from(Float32Array.from({ length: H * D }, () => 0.6 + 0.8 * rand())) : null;
  const slopes = c.alibi ? alibiSlopes(H, c.alibiHeads ?? Math.max(1, Math.ceil((H * 3) / 4))) : null;
  const r = c.rotary ?? 0;
  const invFreq = r > 0 ? Float32Array.from({ length: r / 2 }, (_, i) => 1 / 10000 ** ((2 * i) / r)) : null;
  let kpos: Int32Array | null = null,
    qpos: Int32Array | null = null,
    kseg: Int32Array | null = null,
    qseg: Int32Array | null = null;
  const documents = c.documents ?? null;
  const segmented = c.segments || documents !== null;
  if (c.positions || segmented) {
    kpos = new Int32Array(B * NK);
    kseg = new Int32Array(B * NK);
    for (let b = 0; b < B; b++) {
      let doc = 0,
        p = c.positions === 'far' ? 150000 : 0;
      const lengths = documents ? documents[b % documents.length]! : null;
      let left = lengths ? lengths[0]! : 0; // tokens left in the current document
      for (let j = 0; j < NK; j++) {
        const boundary = lengths ? left === 0 : c.segments && j > 0 && rand() < 0.05;
        if (boundary) {
          doc++;
          if (lengths) left = lengths[doc % lengths.length]!;
          if (c.positions === 'reset' || lengths) p = 0;
        }
        left--;
        kseg[b * NK + j] = c.documentIds === 'alternating' ? (doc % 2) * 5 + 2 : doc * 3 + 1;
        kpos[b * NK + j] = c.positions === 'custom' ? p + Math.floor(rand() * 3) : p;
        p = kpos[b * NK + j]! + 1;
      }
    }
    qpos = new Int32Array(B * NQ);
    qseg = new Int32Array(B * NQ);
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < NQ; i++) {
        const j = Math.min(NK - 1, Math.max(0, offset + i));
        qpos[b * NQ + i] = kpos[b * NK + j]!;
        qseg[b * NQ + i] = kseg[b * NK + j]!;
        if (c.allMaskedRows && i % 5 === 2) qseg[b * NQ + i] = -7;
      }
    }
    if (!c.positions && !documents) {
      qpos = null;
      kpos = null;
    }
    if (!segmented) {
      qseg = null;
      kseg = null;
    }
  }
  return { q, k, v, gout, ks, slopes, invFreq, qpos, kpos, qseg, kseg, offset, scale: 1 / Math.sqrt(D) };
}

/** The engine arguments of case c; `put` uploads the key scale, positions and segments the inputs have. */
export function attentionArgsOf(
  c: AttentionCase,
  inp: AttentionInputs,
  put: (values: ArrayLike<number>, dtype: DType) => Dense,
): AttentionArgs {
  return {
    batch: c.B,
    heads: c.H,
    kvHeads: c.KVH,
    queryLen: c.NQ,
    keyLen: c.NK,
    headDim: c.D,
    scale: inp.scale,
    causal: !!c.causal,
    queryOffset: inp.offset,
    alibiSlopes: inp.slopes,
    rotaryDim: c.rotary ?? 0,
    rotaryInvFreq: inp.invFreq,
    xposScaleBase: c.xpos ?? 0,
    keyScale: inp.ks ? put(inp.ks, 'float32') : null,
    queryPositions: inp.qpos && !c.indexPositions ? put(inp.qpos, 'int32') : null,
    keyPositions: inp.kpos && !c.indexPositions ? put(inp.kpos, 'int32') : null,
    querySegments: inp.qseg ? put(inp.qseg, 'int32') : null,
    keySegments: inp.kseg ? put(inp.kseg, 'int32') : null,
  };
}

/** The float64 reference's forward output, lse and gradients for case c (tests/helpers/attention-reference.ts). */
export function reference(c: AttentionCase, inp: AttentionInputs): AttentionResult {
  return referenceAttention(c, inp);
}

/**
 * Packed documents (segment ids, positions reset per document) for the Hopper kernels' tests: documents of 1, 7, 64,
 * 65 and 500 tokens (inside a tile, exactly one 64-row block, one past it, across several 128-key tiles), a row
 * holding one document, rows of one batch with different layouts, MHA / GQA / MQA, ALiBi on a subset of the heads,
 * rotary with xPos and the split key scale (andromeda's attention), queries after earlier keys, non-causal, and ids
 * that are not sorted (alternating: no tile is skipped) or that no key has (rows that see nothing). The engine gets
 * index positions (indexPositions), the reference the documents' own.
 */
export const PACKED_CASES: AttentionCase[] = [
  {
    name: 'packed: documents 1, 7, 64, 65, 500; MHA d64 n637',
    B: 1,
    H: 2,
    KVH: 2,
    NQ: 637,
    NK: 637,
    D: 64,
    causal: true,
    documents: [[1, 7, 64, 65, 500]],
    indexPositions: true,
  },
  {
    name: 'packed: two layouts in one batch, GQA2 d128 n700, ALiBi on 3 of 4 heads',
    B: 2,
    H: 4,
    KVH: 2,
    NQ: 700,
    NK: 700,
    D: 128,
    causal: true,
    alibi: true,
    alibiHeads: 3,
    documents: [
      [500, 7, 65],
      [64, 1, 64, 1, 300],
    ],
    indexPositions: true,
  },
  {
    name: 'packed: one document in row 0, many in row 1; MQA d128 n300',
    B: 2,
    H: 4,
    KVH: 1,
    NQ: 300,
    NK: 300,
    D: 128,
    causal: true,
    documents: [[300], [1, 7, 64, 65]],
    indexPositions: true,
  },
  {
    name: 'packed: andromeda features (MQA d128 r64 xPos ALiBi key scale), documents 500, 7, 64, 65, 1; n900',
    B: 1,
    H: 4,
    KVH: 1,
    NQ: 900,
    NK: 900,
    D: 128,
    causal: true,
    rotary: 64,
    xpos: 512,
    alibi: true,
    alibiHeads: 2,
    keyScale: true,
    documents: [[500, 7, 64, 65, 1]],
    indexPositions: true,
  },
  {
    name: 'packed: GQA2 d64 r32 xPos, batch 2 (documents 65, 64 | 130, 1); n520',
    B: 2,
    H: 4,
    KVH: 2,
    NQ: 520,
    NK: 520,
    D: 64,
    causal: true,
    rotary: 32,
    xpos: 512,
    documents: [
      [65, 64],
      [130, 1],
    ],
    indexPositions: true,
  },
  {
    name: 'packed: 200 queries after 500 keys, GQA2 d128 ALiBi, documents 300, 7, 64, 65, 264',
    B: 1,
    H: 4,
    KVH: 2,
    NQ: 200,
    NK: 700,
    D: 128,
    causal: true,
    alibi: true,
    documents: [[300, 7, 64, 65, 264]],
    indexPositions: true,
  },
  {
    name: 'packed: non-causal GQA2 d64, documents 65, 7, 300; n372',
    B: 1,
    H: 4,
    KVH: 2,
    NQ: 372,
    NK: 372,
    D: 64,
    documents: [[65, 7, 300]],
    indexPositions: true,
  },
  {
    name: 'packed: alternating ids (documents 0, 2, … share one: no tile skipped) MQA d64 n400',
    B: 1,
    H: 2,
    KVH: 1,
    NQ: 400,
    NK: 400,
    D: 64,
    causal: true,
    documents: [[64, 100, 7, 65]],
    documentIds: 'alternating',
    indexPositions: true,
  },
  {
    name: 'packed: random documents, every 5th row an id no key has (rows see nothing) d128 n260',
    B: 2,
    H: 2,
    KVH: 2,
    NQ: 260,
    NK: 260,
    D: 128,
    causal: true,
    segments: true,
    allMaskedRows: true,
  },
];
