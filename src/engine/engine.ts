import type { DType } from '../tensor/dtype.js';

/**
 * The contract between the tensor library and an engine (CPU or CUDA).
 *
 * Kernels take buffers plus element offsets and never allocate their outputs: the tensor layer
 * owns allocation, shapes and autograd, so model code is identical on every engine. Engines may
 * run asynchronously (CUDA enqueues on a stream); only `download` and `synchronize` wait.
 */
export type Handle = number;

/** A buffer region holding `dtype` elements, starting `offset` elements into the buffer. */
export interface Dense {
  readonly handle: Handle;
  readonly offset: number;
  readonly dtype: DType;
}

/** A dense region read through per-axis element strides (0 for broadcast axes). */
export interface Strided extends Dense {
  readonly strides: readonly number[];
}

export type UnaryOp =
  | 'neg'
  | 'exp'
  | 'log'
  | 'sqrt'
  | 'rsqrt'
  | 'gelu'
  | 'sigmoid'
  | 'silu'
  | 'tanh'
  | 'abs'
  | 'relu'
  | 'square'
  | 'reciprocal'
  | 'scale'
  | 'addScalar'
  | 'powScalar'
  | 'sin'
  | 'cos';
/** Derivative kernels for the unary ops whose gradient needs the input: gx = gy · f'(x). */
export type UnaryGradOp = 'gelu' | 'sigmoid' | 'silu' | 'tanh' | 'relu' | 'abs';
export type BinaryOp = 'add' | 'sub' | 'mul' | 'div' | 'max' | 'min' | 'pow' | 'gt' | 'lt' | 'eq';
export type ReduceOp = 'sum' | 'max' | 'min';
/** 'normal': a + b · N(0, 1); 'uniform': in [a, b). */
export type RandomDistribution = 'normal' | 'uniform';

export const UNARY_CODE: Record<UnaryOp, number> = {
  neg: 0,
  exp: 1,
  log: 2,
  sqrt: 3,
  rsqrt: 4,
  gelu: 5,
  sigmoid: 6,
  silu: 7,
  tanh: 8,
  abs: 9,
  relu: 10,
  square: 11,
  reciprocal: 12,
  scale: 13,
  addScalar: 14,
  powScalar: 15,
  sin: 16,
  cos: 17,
};
export const UNARY_GRAD_CODE: Record<UnaryGradOp, number> = { gelu: 0, sigmoid: 1, silu: 2, tanh: 3, relu: 4, abs: 5 };
export const BINARY_CODE: Record<BinaryOp, number> = {
  add: 0,
  sub: 1,
  mul: 2,
  div: 3,
  max: 4,
  min: 5,
  pow: 6,
  gt: 7,
  lt: 8,
  eq: 9,
};
export const REDUCE_CODE: Record<ReduceOp, number> = { sum: 0, max: 1, min: 2 };

/** C[b] = alpha · op(A[b]) · op(B[b]) + beta · C[b], row-major, op = transpose when the flag is set. */
export interface MatmulArgs {
  readonly a: Dense;
  readonly b: Dense;
  readonly c: Dense;
  readonly m: number;
  readonly n: number;
  readonly k: number;
  readonly transA: boolean;
  readonly transB: boolean;
  /** Leading dimensions (row strides in elements) of A, B and C as stored. */
  readonly lda: number;
  readonly ldb: number;
  readonly ldc: number;
  /** Element strides between batch items; 0 broadcasts one matrix over the batch. */
  readonly strideA: number;
  readonly strideB: number;
  readonly strideC: number;
  readonly batch: number;
  readonly alpha: number;
  readonly beta: number;
}

/** One tensor of Engine.headNormRows. */
export interface HeadNormRowsItem {
  x: Dense;
  y: Dense;
  weight: Dense | null;
  index: Dense | null;
  count: number;
  heads: number;
  dim: number;
  rows: number;
  normalize: boolean;
}

/** One product of Engine.matmulSharedInput: b [n, k] (the weight) and c [m, n] (the result). */
export interface SharedInputPart {
  readonly b: Dense;
  readonly c: Dense;
  readonly n: number;
}

export interface AdamWArgs {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  /** Bias corrections 1 − β^t for the current step. */
  readonly biasCorrection1: number;
  readonly biasCorrection2: number;
  /** Multiplies the gradient first (global-norm clipping, loss-scale removal). */
  readonly gradScale: number;
  /**
   * Global-norm clipping inside the step (native/fused/adamw/clip.h), so the host need not wait for the norm: the
   * kernel reads Σg² from `sumOfSquares` (float64, one element, where `sumOfSquaresManyTo` wrote it), and where
   * √Σg² exceeds `maxNorm` (> 0; Infinity: never) it multiplies gradScale by maxNorm / (norm + 1e-6); where the
   * norm is not finite it skips the step, leaving weights, moments and copies unchanged. Same bits as clipping
   * on the host with src/optim/clip.ts's clipGradNorm.
   */
  readonly clip?: { readonly sumOfSquares: Dense; readonly maxNorm: number } | null;
}

/**
 * Attention as Andromeda defines it (spec "Attention"), for a fused kernel:
 * q [batch, heads, queryLen, headDim], k/v [batch, kvHeads, keyLen, headDim], out like q,
 * lse float32 [batch, heads, queryLen] (natural-log sum-exp of the scaled, biased scores).
 * The kernel applies, in order: per-head key scale (qk-norm dim scale with one KV head), rotary to the
 * first `rotaryDim` features using each token's position, relative xPos, scale, ALiBi, masks.
 * Query head h reads KV head h mod kvHeads (x-transformers' grouping). Causal masking compares
 * indices (key j is visible to query i when j ≤ i + queryOffset), not positions. The reference
 * implementation is `attention` in src/ops/attention.ts (its 'reference' path).
 */
export interface AttentionArgs {
  readonly batch: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly queryLen: number;
  readonly keyLen: number;
  readonly headDim: number;
  readonly scale: number;
  readonly causal: boolean;
  /** Position of query 0 relative to key 0 (keyLen − queryLen when appending to a KV cache). */
  readonly queryOffset: number;
  /** Per-head ALiBi slope; 0 means no bias for that head. Null: no ALiBi at all. */
  readonly alibiSlopes: Float32Array | null;
  /** Rotary: rotated feature count (0 = none) and inverse frequencies (rotaryDim / 2 of them). */
  readonly rotaryDim: number;
  readonly rotaryInvFreq: Float32Array | null;
  /** xPos scale base B (0 = no xPos). */
  readonly xposScaleBase: number;
  /** [heads, headDim] key scale, float32 (float64 when q is float64), or null; gradKeyScale likewise. */
  readonly keyScale: Dense | null;
  /** int32 [batch, queryLen] / [batch, keyLen] positions (for rotary, xPos, ALiBi), or null for the
   *  defaults: queryOffset + i for queries, j for keys. */
  readonly queryPositions: Dense | null;
  readonly keyPositions: Dense | null;
  /** Smallest and largest value of the given positions when the caller knows them on the host (engines may
   *  use it to pick a faster path; it never changes the result). Absent for default positions. */
  readonly positionRange?: { readonly min: number; readonly max: number } | null;
  /** int32 [batch, queryLen] / [batch, keyLen] document ids; attention only within one id. */
  readonly querySegments: Dense | null;
  readonly keySegments: Dense | null;
}

/** A residual add fused with a norm (Engine.addNorm): s = a + b · (scale · c), out = norm(s) · weight + bias. */
export interface AddNormArgs {
  /** RMS norm (true) or layer norm. */
  readonly rms: boolean;
  /** Contiguous [rows, cols]. */
  readonly a: Dense;
  /** Contiguous [rows, cols] or null (then s = a: a plain norm). */
  readonly b: Dense | null;
  /** [cols] per-feature residual scale, or null. */
  readonly scale: Dense | null;
  /** The residual constant c. */
  readonly c: number;
  readonly weight: Dense | null;
  readonly bias: Dense | null;
  readonly rows: number;
  readonly cols: number;
  readonly eps: number;
}

/** Gradient outputs of Engine.addNormGrad; all but `a` may be null (not wanted). */
export interface AddNormGrads {
  readonly a: Dense;
  readonly b: Dense | null;
  readonly scale: Dense | null;
  readonly weight: Dense | null;
  readonly bias: Dense | null;
}

/** One tensor of a many-tensor AdamW step (Engine.adamwMany). */
export interface AdamWItem {
  /** float32 master weights, and their float32 moments. */
  readonly param: Dense;
  readonly m: Dense;
  readonly v: Dense;
  /** Any float dtype. */
  readonly grad: Dense;
  readonly count: number;
  /** A bfloat16/float16 copy of the weights written with the update, or null. */
  readonly shadow: Dense | null;
}

/**
 * One tensor of an 8-bit AdamW step (Engine.adamw8bitMany; native/fused/adamw8bit/adamw8bit.h): moments as one-byte
 * codes (int32 buffers holding four codes a word, ⌈count/4⌉ words) and one float32 absmax per block of 256.
 */
export interface AdamW8bitItem {
  /** float32 master weights. */
  readonly param: Dense;
  /** Any float dtype. */
  readonly grad: Dense;
  readonly mCodes: Dense;
  readonly vCodes: Dense;
  readonly mAbsmax: Dense;
  readonly vAbsmax: Dense;
  readonly count: number;
  /** A bfloat16/float16 copy of the weights written with the update, or null. */
  readonly shadow: Dense | null;
}

/** The two 256-value quantization maps of the 8-bit moments, each strictly increasing. */
export interface AdamW8bitMaps {
  readonly signed: Float32Array;
  readonly unsigned: Float32Array;
}

export interface MemoryStats {
  /** Bytes held by live tensors. */
  readonly allocated: number;
  /** Highest `allocated` since the last reset. */
  readonly peakAllocated: number;
  /** Bytes the engine holds from the system (caching pools included). */
  readonly reserved: number;
}

/** The sizes that decide whether an engine's fused attention kernels apply. */
export interface FusedAttentionShape {
  /** 'dense': attentionForward/Backward; 'paged': pagedAttention. */
  readonly kernel: 'dense' | 'paged';
  readonly heads: number;
  readonly headDim: number;
  readonly rotaryDim: number;
  readonly alibi: boolean;
  /** A sliding window or a logit soft-cap (pagedAttention only: the dense kernels take neither). */
  readonly window?: boolean;
  readonly softCap?: boolean;
}

export interface Engine {
  /** 'cpu' or 'cuda:N'. */
  readonly device: string;
  /** True when kernels are enqueued and may still be running after a call returns. */
  readonly asynchronous: boolean;

  alloc(bytes: number): Handle;
  free(handle: Handle): void;
  upload(dst: Handle, byteOffset: number, data: ArrayBufferView): void;
  /** Waits for pending work, then copies `bytes` bytes out. */
  download(src: Handle, byteOffset: number, bytes: number): ArrayBuffer;
  /**
   * Enqueues a copy of `bytes` bytes out behind the work enqueued so far and returns at once, so the host can
   * enqueue more (the next decode step) before it waits for the bytes; `wait()` then waits for this read alone, not
   * for the work enqueued after it. Synchronous engines read at once. Every read must be collected: an engine keeps
   * a few in flight (CUDA: 16 of up to 64 MiB each) and refuses more.
   */
  downloadLater(src: Handle, byteOffset: number, bytes: number): PendingDownload;
  synchronize(): void;
  memoryStats(): MemoryStats;
  resetPeakMemory(): void;

  /** dst (strided) ← src (strided, broadcast allowed), converting dtype; both of `shape`. */
  copy(src: Strided, dst: Strided, shape: readonly number[]): void;
  fill(dst: Dense, count: number, value: number): void;
  unary(op: UnaryOp, x: Dense, out: Dense, count: number, scalar: number): void;
  unaryGrad(op: UnaryGradOp, x: Dense, gradOut: Dense, gradIn: Dense, count: number): void;
  /** out (contiguous, `shape`) = a op b, reading a and b through broadcast strides. */
  binary(op: BinaryOp, a: Strided, b: Strided, out: Dense, shape: readonly number[]): void;
  /** Reduces the middle axis of a contiguous [outer, size, inner] to [outer, inner]. */
  reduce(op: ReduceOp, x: Dense, out: Dense, outer: number, size: number, inner: number): void;
  matmul(args: MatmulArgs): void;
  /**
   * c_i [m, n_i] = a [m, k] · b_i [n_i, k]ᵀ for every part (all contiguous, one dtype, k ≥ 1): one input times
   * several weights — a decode step's query, key and value projections — each c_i as `matmul` gives it, in one
   * launch where the engine can (CUDA: up to three parts of a few rows in bfloat16 / float16).
   */
  matmulSharedInput(a: Dense, m: number, k: number, parts: readonly SharedInputPart[]): void;
  /** Row-wise softmax or log-softmax over contiguous [rows, cols]. */
  softmax(x: Dense, out: Dense, rows: number, cols: number, log: boolean): void;
  softmaxGrad(y: Dense, gradOut: Dense, gradIn: Dense, rows: number, cols: number, log: boolean): void;
  /**
   * Layer norm (`rms` false) or RMS norm over the last axis of contiguous [rows, cols]; `stats` is
   * float32 [rows, 2] (float64 when x is float64) receiving (mean, rstd) for the backward pass. Weight/bias may be
   * null.
   */
  norm(
    rms: boolean,
    x: Dense,
    weight: Dense | null,
    bias: Dense | null,
    out: Dense,
    stats: Dense,
    rows: number,
    cols: number,
    eps: number,
  ): void;
  /** Writes gradIn; gradWeight / gradBias (when given) are overwritten with the sums over rows. */
  normGrad(
    rms: boolean,
    x: Dense,
    weight: Dense | null,
    stats: Dense,
    gradOut: Dense,
    gradIn: Dense,
    gradWeight: Dense | null,
    gradBias: Dense | null,
    rows: number,
    cols: number,
  ): void;
  /**
   * Per-row loss and log-sum-exp, float32 [rows] (float64 for float64 logits); rows whose target is ignoreIndex get
   * loss 0.
   */
  crossEntropy(
    logits: Dense,
    targets: Dense,
    losses: Dense,
    lse: Dense,
    rows: number,
    vocab: number,
    ignoreIndex: number,
  ): void;
  /** gradLogits = (softmax − onehot) · gradLoss[row] (dtype as losses); ignored rows get 0. */
  crossEntropyGrad(
    logits: Dense,
    targets: Dense,
    lse: Dense,
    gradLoss: Dense,
    gradLogits: Dense,
    rows: number,
    vocab: number,
    ignoreIndex: number,
  ): void;
  /** out[i] = table[ids[i]]; returns −1, or the first position whose id is out of [0, vocab). */
  embedding(table: Dense, ids: Dense, out: Dense, count: number, dim: number, vocab: number): number;
  /** gradTable[ids[i]] += gradOut[i] (gradTable must be zeroed by the caller). */
  embeddingGrad(ids: Dense, gradOut: Dense, gradTable: Dense, count: number, dim: number): void;
  /** out = x · mask / (1 − p), mask drawn from a counter-based generator keyed by seed (same seed, same mask). */
  dropout(x: Dense, out: Dense, count: number, p: number, seed: number): void;
  /**
   * Fills a float buffer with random numbers from a counter-based generator: element i depends only on
   * (seed, i) — the same seed gives the same values on every engine (to float rounding). seed < 2^53.
   */
  randomFill(dst: Dense, count: number, distribution: RandomDistribution, a: number, b: number, seed: number): void;
  /** One AdamW step on float32 master weights with float32 state; grad may be any float dtype. */
  adamw(param: Dense, grad: Dense, m: Dense, v: Dense, count: number, args: AdamWArgs): void;
  /** Sum of squares of a float buffer, accumulated in float64, returned to the host. */
  sumOfSquares(x: Dense, count: number): number;
  /** Σx² over several buffers (float64, fixed chunk order: independent of threads and blocks) with one wait:
   *  the global gradient norm. */
  sumOfSquaresMany(items: readonly { x: Dense; count: number }[]): number;
  /** `sumOfSquaresMany`'s sum written to `out` (float64, one element) on the engine: no wait for the device. */
  sumOfSquaresManyTo(items: readonly { x: Dense; count: number }[], out: Dense): void;
  /**
   * `adamw` on every item with the same hyperparameters, in one or a few launches (same arithmetic, same bits);
   * an item's bfloat16/float16 `shadow` receives its updated weights in the same pass.
   */
  adamwMany(items: readonly AdamWItem[], args: AdamWArgs): void;
  /**
   * 8-bit AdamW on every item with the same hyperparameters and maps (signed map for m, unsigned for v), one
   * fused dequantize-update-requantize pass; `adamw`'s arithmetic on the dequantized moments, same bits on every
   * engine. An item's bfloat16/float16 `shadow` receives its updated weights in the same pass.
   */
  adamw8bitMany(items: readonly AdamW8bitItem[], maps: AdamW8bitMaps, args: AdamWArgs): void;
  /** `embedding` for ids already checked on the host (out-of-range ids give zero rows): never waits for the device. */
  embeddingUnchecked(table: Dense, ids: Dense, out: Dense, count: number, dim: number, vocab: number): void;
  /** `matmul` with beta = 0 plus `bias` [n] (contiguous) added to every row of C, in the product's epilogue. */
  matmulBias(args: MatmulArgs, bias: Dense): void;

  // Fused attention (src/ops/attention.ts, 'fused'); its reference form composes matmul, maskedSoftmax and rotary.
  /**
   * Why the fused (or paged) attention kernels cannot take heads of this shape, or null when they can: 'auto'
   * attention runs such problems (imported models with head dims the kernels were not built for) on the
   * reference path, and the inference engine keeps a contiguous KV cache per sequence instead of paging.
   */
  fusedAttentionUnsupported(shape: FusedAttentionShape): string | null;
  attentionForward(q: Dense, k: Dense, v: Dense, out: Dense, lse: Dense, args: AttentionArgs): void;
  attentionBackward(
    q: Dense,
    k: Dense,
    v: Dense,
    out: Dense,
    lse: Dense,
    gradOut: Dense,
    gradQ: Dense,
    gradK: Dense,
    gradV: Dense,
    gradKeyScale: Dense | null,
    args: AttentionArgs,
  ): void;
  /** Attention probabilities from scores (see MaskedSoftmaxArgs); out may be the scores' own region. */
  maskedSoftmax(scores: Dense, out: Dense, args: MaskedSoftmaxArgs): void;
  /** Rotary + xPos + multiplier on q or k (see RotaryArgs); out may be x's own region. */
  rotary(x: Dense, out: Dense, args: RotaryArgs): void;

  // Fused ops: one kernel per direction where the composed form takes several passes. Each op's forms sit side
  // by side in native/fused/<op>/ (cpu.cc, cuda.cu) and src/ops/fused/<op>.ts (the autograd op and its composed form).
  /**
   * Residual add + norm over the last axis (AddNormArgs): stats (mean, rstd) as in `norm`. When `sum`
   * is given it receives s in a's dtype and out is the norm of that rounded s (pre-norm blocks keep s as
   * their residual stream); without it s is never stored.
   */
  addNorm(args: AddNormArgs, out: Dense, sum: Dense | null, stats: Dense): void;
  /**
   * Backward of addNorm (run without `sum`), recomputing s from a and b: grads.a = ∂L/∂s,
   * grads.b = grads.a · scale · c, grads.scale / weight / bias overwritten with sums over rows.
   */
  addNormGrad(args: AddNormArgs, stats: Dense, gradOut: Dense, grads: AddNormGrads): void;
  /** out = gelu(x + bias) over contiguous [rows, cols], bias [cols] (exact erf GELU). */
  biasGelu(x: Dense, bias: Dense, out: Dense, rows: number, cols: number): void;
  /**
   * out [m, n] = gelu(a [m, k] · b [n, k]ᵀ + bias [n]) (all contiguous, one dtype, k ≥ 1): a feed-forward's first
   * layer when no gradient is recorded. The CPU engine gives the bits of matmul then biasGelu; CUDA applies the
   * bias and the GELU in the few-row product's epilogue (decode), rounding once.
   */
  matmulBiasGelu(a: Dense, b: Dense, bias: Dense, out: Dense, m: number, n: number, k: number): void;
  /** gradIn = gradOut · gelu'(x + bias); gradBias (when given) overwritten with Σ_rows gradIn. */
  biasGeluGrad(
    x: Dense,
    bias: Dense,
    gradOut: Dense,
    gradIn: Dense,
    gradBias: Dense | null,
    rows: number,
    cols: number,
  ): void;
  /**
   * qk-norm with the head permute: out [batch, heads, n, dim] = x [batch, n, heads, dim] · r · weight[head]
   * with r = 1/sqrt(‖x‖² + eps²) per row, stored in rstd ([batch·n, heads], float64 for float64 x, else float32);
   * weight [heads, dim] or null. Head dims up to HEAD_NORM_MAX_DIM.
   */
  headNorm(args: HeadNormArgs, x: Dense, weight: Dense | null, out: Dense, rstd: Dense): void;
  /**
   * headNorm's forward for a paged step's attention inputs (no permute, no statistics), several tensors in one
   * launch: each item's x [count, heads, dim] goes to y — row index[r] of y [rows, heads, dim], or row r when index
   * is null — normed like headNorm (same bits, weight [heads, dim] or null) when `normalize`, else copied. Index
   * values outside [0, rows) skip their row. One dtype for all items; head dims up to HEAD_NORM_MAX_DIM.
   */
  headNormRows(items: readonly HeadNormRowsItem[], eps: number): void;
  /** Backward of headNorm: gradIn in x's layout; gradWeight (when given) overwritten with the sum over positions. */
  headNormGrad(
    args: HeadNormArgs,
    x: Dense,
    weight: Dense | null,
    rstd: Dense,
    gradOut: Dense,
    gradIn: Dense,
    gradWeight: Dense | null,
  ): void;
  /**
   * Token shift over contiguous [batch, n, dim] (x and out must not overlap): feature chunk k of dim / (shifts + 1)
   * comes from position t − k (zero before the start, or where `segments`, int32 [batch, n] document ids, differ);
   * `backward` moves gradients the other way, and with `accumulate` adds them into what `out` holds.
   */
  tokenShift(
    x: Dense,
    out: Dense,
    batch: number,
    n: number,
    dim: number,
    shifts: number,
    backward: boolean,
    accumulate: boolean,
    segments: Dense | null,
  ): void;

  // Paged KV cache (inference; see PagedBatchArgs). No autograd: these run outside any tape.
  /**
   * Attention of a ragged batch over a paged KV cache, one launch for all sequences. q and out are
   * [totalQueries, heads, headDim]; keyPool / valuePool [numBlocks, blockSize, kvHeads, headDim], all in one dtype
   * (float32, float64 or bfloat16), keys as projected. For sequence s with qLen query rows and L = contextLens[s]
   * keys, query row queryStart[s] + i has position L − qLen + i and key j (position j) lives at pool row
   * blockTables[s][j / blockSize] · blockSize + j % blockSize; key j is visible to the query iff j ≤ its position.
   * The result is exactly `attention(q_s, K_s, V_s, { scale, causal: true, queryOffset: L − qLen, keyScale,
   * rotary, alibiSlopes, window, softCap })` of src/ops/attention.ts with default positions (window and softCap 0:
   * none; an engine whose kernel lacks them says so in fusedAttentionUnsupported); query head h reads KV head
   * h mod kvHeads. Guards (PagedBatchArgs): rows of an invalid sequence are left untouched, keys in blocks
   * outside [0, numBlocks) are skipped, and a row that sees no key gets zeros.
   */
  pagedAttention(
    q: Dense,
    keyPool: Dense,
    valuePool: Dense,
    out: Dense,
    totalQueries: number,
    args: PagedAttentionArgs,
  ): void;
  /**
   * dst row index[i] = src row i for i < count (rows of `width` elements; dst holds `rows` rows, src and dst one
   * dtype); index values outside [0, rows) are skipped. With repeated indices the row receives one of its
   * sources (the CPU engine: the last).
   */
  scatterRows(src: Dense, index: Dense, dst: Dense, count: number, width: number, rows: number): void;
  /**
   * Token shift of a step's rows through the tail pool: x, out [totalQueries, dim]; tails [numBlocks, ring, dim]
   * (ring ≥ shifts), one dtype. Feature chunk k (k = 0..shifts, width floor(dim / (shifts + 1)), the remainder
   * features unshifted, as src/ops/fused/token-shift.ts) of row t at position p comes from position p − k:
   * zeros if p − k < 0; row t − k of x if p − k is one of this step's rows of the sequence; else
   * tails[blockTables[s][(p − k) / blockSize], (p − k) % ring] (zeros when that block id is outside [0, numBlocks)).
   * Rows of an invalid sequence are left untouched.
   */
  pagedTokenShift(
    x: Dense,
    tails: Dense,
    out: Dense,
    totalQueries: number,
    dim: number,
    shifts: number,
    ring: number,
    args: PagedBatchArgs,
  ): void;
  /**
   * pagedTokenShift(x, tails, out, …) and then pagedTailWrite(x, tails, …): the shifted rows and the updated
   * pool as the two calls leave them, in one pass where the engine can — CUDA's when no sequence has more than
   * one row (maxQueryLen ≤ 1: every decode step), because then no row reads a slot another row writes. Needs
   * ring ≥ 1. Where a corrupted table names one block for two sequences, what each reads from it is unspecified.
   */
  pagedTokenShiftAndTailWrite(
    x: Dense,
    tails: Dense,
    out: Dense,
    totalQueries: number,
    dim: number,
    shifts: number,
    ring: number,
    args: PagedBatchArgs,
  ): void;
  /**
   * addNorm(args, out, sum, stats) whose output is also a decode step's token-shifted sub-layer input: then
   * pagedTokenShiftAndTailWrite(out, tails, shifted, args.rows, args.cols, shifts, ring, batch) — the same values
   * and pool as the two calls, in one pass where the engine can (CUDA, rows of at most 2,048 16-byte packs). Steps
   * of at most one row per sequence (batch.maxQueryLen ≤ 1), args.rows rows (the step's totalQueries).
   */
  addNormShift(
    args: AddNormArgs,
    out: Dense,
    sum: Dense | null,
    stats: Dense,
    tails: Dense,
    shifted: Dense,
    shifts: number,
    ring: number,
    batch: PagedBatchArgs,
  ): void;
  /**
   * Stores a step's rows in the tail pool: tails[blockTables[s][p / blockSize], p % ring] = x row t for every row
   * t (position p) of every valid sequence, skipping block ids outside [0, numBlocks). Where several rows of a
   * step land on one tail slot, the slot ends up holding the latest position (a row is written only when no
   * later row of its step maps to the same slot, so no two writes race).
   */
  pagedTailWrite(x: Dense, tails: Dense, totalQueries: number, dim: number, ring: number, args: PagedBatchArgs): void;
  // ---- Decoding: sampling on the device and CUDA graphs ----
  /**
   * Picks one token per row of `logits` (float32 or bfloat16 [rows, vocab]) on the device (src/ops/sampling.ts
   * has the semantics and the parameter layout); advances `steps` and, when given, `counts` for the chosen tokens.
   */
  sampleTokens(logits: Dense, buffers: SamplingBuffers, rows: number, vocab: number, topN: number): void;
  /**
   * Records what `fn` enqueues, for replaying it at once later. The capture runs fn's JavaScript once but no
   * kernel: the work happens at each replay(), reading the buffers' contents of that moment. On CUDA a stream
   * capture: allocations made during it come from a pool the graph keeps until `dispose`. On the CPU the capture
   * runs fn with every kernel skipped, and each replay runs fn again, kernels included. On both, a host↔device
   * copy or a wait inside fn throws (the capture is then abandoned and the engine stays usable). Captures do not
   * nest. Buffers allocated before the capture that fn reads or writes must outlive the graph.
   */
  captureGraph(fn: () => void): DeviceGraph;
}

/** Device buffers of Engine.sampleTokens (rows = the logits' rows); null ones are not read or written. */
export interface SamplingBuffers {
  /** float32 [rows, SAMPLING_PARAM_COUNT]: per-row parameters (src/ops/sampling.ts SAMPLING_PARAM_FIELDS). */
  readonly params: Dense;
  /** int32 [rows, 2]: each row's 64-bit seed as (low, high) words. */
  readonly seeds: Dense;
  /** int32 [rows]: each row's draw counter, incremented by every call. */
  readonly steps: Dense;
  /** int32 [rows, vocab]: tokens seen per row, for the penalties; the chosen token's count is incremented. */
  readonly counts: Dense | null;
  /** int32 [rows]: the chosen tokens. */
  readonly ids: Dense;
  /** float32 [rows]: log-probability of each chosen token. */
  readonly logprobs: Dense | null;
  /** int32 and float32 [rows, topN]: the topN most likely tokens and their log-probabilities, best first. */
  readonly topIds: Dense | null;
  readonly topLogprobs: Dense | null;
}

/** A read enqueued by Engine.downloadLater. */
export interface PendingDownload {
  /** Waits for the bytes and returns them; once only (a second call throws). */
  wait(): ArrayBuffer;
}

/** Work recorded by Engine.captureGraph. */
export interface DeviceGraph {
  /** Enqueues the recorded work again (reading the buffers' current contents). */
  replay(): void;
  /** Releases the graph and its memory; replay() afterwards throws. Disposing twice does nothing. */
  dispose(): void;
}

/** The largest head dim Engine.headNorm takes (the CUDA form keeps a row in a warp's registers). */
export const HEAD_NORM_MAX_DIM = 256;

/** Sizes of Engine.headNorm: x is [batch, n, heads, dim]. */
export interface HeadNormArgs {
  batch: number;
  n: number;
  heads: number;
  dim: number;
  eps: number;
}

/**
 * Row softmax of attention scores [batch, heads, queryLen, keyLen] (contiguous, any float dtype; float
 * arithmetic, double for float64) with, added in the kernel: ALiBi −slope_h·|p_q − p_k| and −∞ for keys
 * a row may not see: causal by index (key j is visible to row i when j ≤ i + queryOffset) and keys of
 * another document (segment ids differ). Masked entries become exactly 0; a row that sees no key
 * becomes all 0 (callers report such rows: src/ops/attention.ts checks on the host).
 * Its gradient is the plain softmax gradient (Engine.softmaxGrad): the bias is constant.
 */
export interface MaskedSoftmaxArgs {
  readonly batch: number;
  readonly heads: number;
  readonly queryLen: number;
  readonly keyLen: number;
  readonly causal: boolean;
  /** The causal offset of row 0; also the default query positions queryOffset + i (keys default to j). */
  readonly queryOffset: number;
  /** [heads] slopes (0: no bias on that head), or null for no ALiBi. */
  readonly alibiSlopes: Float64Array | null;
  /** int32 per-token values: row b's value i at element b·queryStride + i of the region (keys: b·keyStride + j).
   *  Null positions take the defaults; null segments (both or neither) mean one document. */
  readonly queryPositions: Dense | null;
  readonly keyPositions: Dense | null;
  readonly querySegments: Dense | null;
  readonly keySegments: Dense | null;
  readonly queryStride: number;
  readonly keyStride: number;
}

/**
 * Rotary position embedding with xPos on x [batch, heads, length, headDim] (contiguous):
 * out = multiplier · ζ_f^e · R(p) x on the first rotaryDim features, multiplier · x on the rest, where
 * R(p) rotates the pair (f, f + rotaryDim/2) by θ = p · invFreq[f] (angles in double):
 * (x_f cos θ − x_{f+r/2} sin θ, x_{f+r/2} cos θ + x_f sin θ); `transpose` applies R(p)ᵀ (the backward,
 * with the same factors). xPos (xposScaleBase > 0): ζ_f = (2f + 0.4r)/(1.4r) and
 * e = max(xposSign · (p − xposAnchor), xposMinDistance) / xposScaleBase — queries take sign +1, keys −1,
 * so a query–key product carries ζ^((p_q − p_k)/B) whatever the anchor.
 */
export interface RotaryArgs {
  readonly batch: number;
  readonly heads: number;
  readonly length: number;
  readonly headDim: number;
  readonly rotaryDim: number;
  /** rotaryDim / 2 inverse frequencies. */
  readonly invFreq: Float64Array;
  /** int32 positions, row b's position j at element b·positionStride + j; null: j + positionOffset. */
  readonly positions: Dense | null;
  readonly positionStride: number;
  readonly positionOffset: number;
  /** 0: no xPos factor. */
  readonly xposScaleBase: number;
  readonly xposAnchor: number;
  readonly xposSign: 1 | -1;
  /** Lower clamp of xposSign · (p − xposAnchor); −Infinity for none. */
  readonly xposMinDistance: number;
  readonly multiplier: number;
  readonly transpose: boolean;
}

/**
 * The ragged batch of one step over a paged KV cache (the shapes and bounds on the host, the per-step metadata in
 * int32 device buffers, so that a captured decode step replays with new values). Sequence s owns query rows
 * queryStart[s] .. queryStart[s + 1] − 1 and has contextLens[s] keys, this step's included (already written);
 * position p of it lives in block blockTables[s][p / blockSize]. A sequence is valid when
 * 0 ≤ queryStart[s] ≤ queryStart[s + 1] ≤ totalQueries, its query count qLen ≤ maxQueryLen, and
 * qLen ≤ contextLens[s] ≤ min(maxContextLen, maxBlocksPerSeq · blockSize); kernels read nothing through the
 * metadata of an invalid sequence, and nothing through a block id outside [0, numBlocks). Rows claimed by two
 * sequences (a queryStart that goes back) hold unspecified values; the CPU engine leaves out a sequence whose rows
 * begin before the end of an earlier valid one.
 */
export interface PagedBatchArgs {
  readonly numSeqs: number;
  /** Positions per block (> 0). */
  readonly blockSize: number;
  /** Blocks in the pool: bounds every block id read. */
  readonly numBlocks: number;
  /** Width of blockTables. */
  readonly maxBlocksPerSeq: number;
  /** Bound on any sequence's query rows this step (a launch shape). */
  readonly maxQueryLen: number;
  /** Bound on any contextLens value (a launch shape; may exceed the true lengths). */
  readonly maxContextLen: number;
  /** int32 [numSeqs + 1]. */
  readonly queryStart: Dense;
  /** int32 [numSeqs]. */
  readonly contextLens: Dense;
  /** int32 [numSeqs, maxBlocksPerSeq]. */
  readonly blockTables: Dense;
}

/** Engine.pagedAttention: the batch and the attention's features (as AttentionArgs, positions from the batch). */
export interface PagedAttentionArgs extends PagedBatchArgs {
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly scale: number;
  /** Per-head ALiBi slope (0: none on that head), or null. */
  readonly alibiSlopes: Float32Array | null;
  readonly rotaryDim: number;
  readonly rotaryInvFreq: Float32Array | null;
  /** xPos scale base (0: no xPos). */
  readonly xposScaleBase: number;
  /** [heads, headDim] key scale in float32 or in q's dtype, or null. */
  readonly keyScale: Dense | null;
  /** Sliding window: the query at position p sees keys p − window < j ≤ p (0: none; the CPU engine only). */
  readonly window: number;
  /** Scores become softCap · tanh(score / softCap) before ALiBi and the masks (0: none; the CPU engine only). */
  readonly softCap: number;
}
