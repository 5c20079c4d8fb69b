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
  readonly heads: number;
  readonly headDim: number;
  readonly rotaryDim: number;
  readonly alibi: boolean;
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
  /**
   * `adamw` on every item with the same hyperparameters, in one or a few launches (same arithmetic, same bits);
   * an item's bfloat16/float16 `shadow` receives its updated weights in the same pass.
   */
  adamwMany(items: readonly AdamWItem[], args: AdamWArgs): void;
  /** `embedding` for ids already checked on the host (out-of-range ids give zero rows): never waits for the device. */
  embeddingUnchecked(table: Dense, ids: Dense, out: Dense, count: number, dim: number, vocab: number): void;
  /** `matmul` with beta = 0 plus `bias` [n] (contiguous) added to every row of C, in the product's epilogue. */
  matmulBias(args: MatmulArgs, bias: Dense): void;

  // Fused attention (src/ops/attention.ts, 'fused'); its reference form composes matmul, maskedSoftmax and rotary.
  /**
   * Why the fused attention kernels cannot take heads of this shape, or null when they can: 'auto' attention
   * runs such problems (imported models with head dims the kernels were not built for) on the reference path.
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
