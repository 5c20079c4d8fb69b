// Residual add fused with layer norm / RMS norm over the last axis of contiguous [rows, cols]:
//   s = a + b · (scale · c)   (scale [cols] optional, b optional), out = norm(s) · weight + bias.
// The forward pass never stores s unless asked (pre-norm models keep it as the residual stream); the
// backward pass recomputes it from a and b with the same instructions, so both see the same values.
// Backward: one block handles `rows_per_block` consecutive rows; every thread owns the same columns
// in every row, so the column sums (weight, bias and residual-scale gradients) accumulate per thread
// without atomics (in shared memory when they fit, else in the block's partial row), and are summed over
// blocks in a fixed order. Rows up to 1,024 packs keep their values in registers between passes (the
// `_cached` kernels); wider rows re-read them.
// add_norm_shift: the cached forward kernel also token-shifts its output through a decode step's tail pool and
// stores the output as its position's tail (paged_token_shift_and_tail_write's decode pass, native/cuda/paged/
// tails.cu): a decode step's norm and the next sub-layer's token shift in one launch instead of two.
#include <algorithm>
#include <climits>

#include "add_norm.h"
#include "../../cuda/engine.h"
#include "../../cuda/common.cuh"
#include "../../cuda/partial_sums.cuh"
#include "../../cuda/vec.cuh"
#include "../../cuda/attention/mma.cuh"
#include "../../cuda/paged/batch.cuh"

namespace andromeda::cuda {
namespace {

template <typename T>
struct Residual {
  const T* a;
  const T* b;      // null: s = a (a plain norm)
  const T* scale;  // null: s = a + b · c
  compute_t<T> c;
  int64_t cols;
};

/** s = a + b · (scale · c) for one pack from its loaded packs (b, scale unread when null); rounded to T when `round`. */
template <typename T, int W>
__device__ __forceinline__ void residual_of_packs(const Residual<T>& r, const Pack<T, W>& pa, const Pack<T, W>& pb,
                                                  const Pack<T, W>& ps, bool round, compute_t<T> (&s)[W]) {
  using C = compute_t<T>;
  if (!r.b) {
#pragma unroll
    for (int k = 0; k < W; k++) s[k] = C(load(&pa.v[k]));
    return;
  }
#pragma unroll
  for (int k = 0; k < W; k++) {
    const C f = r.scale ? C(load(&ps.v[k])) * r.c : r.c;
    C v = fma(C(load(&pb.v[k])), f, C(load(&pa.v[k])));
    if (round) {
      T t;
      store(&t, v);
      v = C(load(&t));
    }
    s[k] = v;
  }
}

/** s for elements j .. j+W−1 of the row starting at `row`; rounded to T when `round` (stored sums). */
template <typename T, int W>
__device__ __forceinline__ void residual_pack(const Residual<T>& r, int64_t row, int64_t j, bool round,
                                              compute_t<T> (&s)[W]) {
  Pack<T, W> pa = load_pack<T, W>(r.a + row + j), pb = pa, ps = pa;
  if (r.b) pb = load_pack<T, W>(r.b + row + j);
  if (r.b && r.scale) ps = load_pack<T, W>(r.scale + j);
  residual_of_packs<T, W>(r, pa, pb, ps, round, s);
}

template <typename T, int W>
__global__ void add_norm_kernel(bool rms, Residual<T> r, const T* w, const T* bias, T* out, T* sum_out,
                                stat_t<T>* stats, double eps) {
  using C = compute_t<T>;
  const int64_t cols = r.cols, row = int64_t(blockIdx.x) * cols, packs = cols / W;
  const bool round = sum_out != nullptr;
  C acc = 0;
  for (int64_t p = threadIdx.x; p < packs; p += blockDim.x) {
    C s[W];
    residual_pack<T, W>(r, row, p * W, round, s);
    if (sum_out) {
      Pack<T, W> o;
#pragma unroll
      for (int k = 0; k < W; k++) store(&o.v[k], s[k]);
      store_pack<T, W>(sum_out + row + p * W, o);
    }
#pragma unroll
    for (int k = 0; k < W; k++) acc += s[k];
  }
  const C mean = rms ? C(0) : block_sum(acc) / C(cols);
  C ss = 0;
  for (int64_t p = threadIdx.x; p < packs; p += blockDim.x) {
    C s[W];
    residual_pack<T, W>(r, row, p * W, round, s);
#pragma unroll
    for (int k = 0; k < W; k++) {
      const C d = s[k] - mean;
      ss += d * d;
    }
  }
  const C rstd = C(1) / sqrt(block_sum(ss) / C(cols) + C(eps));
  if (threadIdx.x == 0) {
    stats[2 * blockIdx.x] = stat_t<T>(mean);
    stats[2 * blockIdx.x + 1] = stat_t<T>(rstd);
  }
  for (int64_t p = threadIdx.x; p < packs; p += blockDim.x) {
    C s[W];
    residual_pack<T, W>(r, row, p * W, round, s);
    Pack<T, W> pw, pb, o;
    if (w) pw = load_pack<T, W>(w + p * W);
    if (bias) pb = load_pack<T, W>(bias + p * W);
#pragma unroll
    for (int k = 0; k < W; k++) {
      C v = (s[k] - mean) * rstd;
      if (w) v *= C(load(&pw.v[k]));
      if (bias) v += C(load(&pb.v[k]));
      store(&o.v[k], v);
    }
    store_pack<T, W>(out + row + p * W, o);
  }
}

// The register-cached kernels run up to 512 threads with up to two packs each (rows up to 1,024 packs).
constexpr int kCachedThreads = 512;

/** add_norm_shift's token shift of the output: tails [num_blocks, ring, cols], shifted [rows, cols]. */
template <typename T>
struct ShiftTarget {
  T* tails;
  T* shifted;
  int64_t chunk;  // features a shift moves: cols / (shifts + 1)
  int shifts;
  int64_t ring;
  paged::BatchView batch;
};

/**
 * The tails row a step's row reads for its feature chunk k ≥ 1 (its position − k) and the one it writes (its
 * position), for the sequence that owns row `row` when that sequence is usable and has this one row. A decode
 * step (max_query_len ≤ 1) has no other row of the sequence, so every earlier position is in the tails.
 */
struct ShiftRow {
  bool owned;
  int64_t position;
  int64_t write_block;  // −1: the block id is out of range (nothing stored)
  paged::Sequence seq;
};

/**
 * Finds the sequence owning `row` (the first whose query range holds it: a corrupted batch may name it twice) with
 * one round of loads over the threads, then reads what the shift needs of it.
 */
__device__ ShiftRow find_shift_row(const paged::BatchView& b, int64_t row) {
  __shared__ unsigned long long owner;
  if (threadIdx.x == 0) owner = ULLONG_MAX;
  __syncthreads();
  for (int64_t s = threadIdx.x; s < b.num_seqs; s += blockDim.x) {
    const int64_t q0 = __ldg(b.query_start + s), q1 = __ldg(b.query_start + s + 1);
    if (q0 <= row && row < q1) atomicMin(&owner, (unsigned long long)s);
  }
  __syncthreads();
  ShiftRow r{};
  if (owner == ULLONG_MAX) return r;
  r.seq = paged::read_sequence(b, int64_t(owner));
  r.owned = r.seq.valid && r.seq.query_len == 1 && r.seq.first_row == row;
  if (!r.owned) return r;
  r.position = r.seq.context_len - 1;
  r.write_block = paged::block_of(b, r.seq, r.position);
  return r;
}

/** Pack p's shifted value: chunk 0 (and the unshifted rest) is the row's own `own`, chunk k the tail of position − k. */
template <typename T, int W>
__device__ __forceinline__ Pack<T, W> shifted_pack(const ShiftTarget<T>& sh, const ShiftRow& r, int64_t f, int64_t cols,
                                                   const Pack<T, W>& own) {
  const int64_t k = f < int64_t(sh.shifts + 1) * sh.chunk ? f / sh.chunk : 0;
  if (k == 0) return own;
  Pack<T, W> v;
#pragma unroll
  for (int e = 0; e < W; e++) store(&v.v[e], 0.f);
  const int64_t source = r.position - k;
  if (source < 0) return v;
  const int64_t block = paged::block_of(sh.batch, r.seq, source);
  if (block >= 0) v = load_pack<T, W>(sh.tails + (block * sh.ring + source % sh.ring) * cols + f);
  return v;
}

/**
 * The forward pass for rows of at most P packs per thread: s stays in registers across the three passes. With
 * kShift, each owned row's shifted value is read before its norm (the tails' loads overlap the reductions) and
 * its output stored as its position's tail afterwards, by the thread that read the same features of the slot
 * it may overwrite (ring = shifts): no other thread touches them.
 */
template <typename T, int W, int P, bool kShift>
__global__ void __launch_bounds__(kCachedThreads) add_norm_cached(bool rms, Residual<T> r, const T* w, const T* bias, T* out, T* sum_out,
                                stat_t<T>* stats, double eps, ShiftTarget<T> sh) {
  using C = compute_t<T>;
  const int64_t cols = r.cols, row = int64_t(blockIdx.x) * cols, packs = cols / W;
  const bool round = sum_out != nullptr;
  ShiftRow shift_row{};
  Pack<T, W> earlier[kShift ? P : 1];
  if constexpr (kShift) {
    shift_row = find_shift_row(sh.batch, int64_t(blockIdx.x));
#pragma unroll
    for (int t = 0; t < P; t++) {
      const int64_t p = threadIdx.x + int64_t(t) * blockDim.x;
      if (shift_row.owned && p < packs) earlier[t] = shifted_pack<T, W>(sh, shift_row, p * W, cols, Pack<T, W>{});
    }
  }
  C s[P][W];
  C acc = 0;
#pragma unroll
  for (int t = 0; t < P; t++) {
    const int64_t p = threadIdx.x + int64_t(t) * blockDim.x;
    if (p >= packs) continue;
    residual_pack<T, W>(r, row, p * W, round, s[t]);
    if (sum_out) {
      Pack<T, W> o;
#pragma unroll
      for (int k = 0; k < W; k++) store(&o.v[k], s[t][k]);
      store_pack<T, W>(sum_out + row + p * W, o);
    }
#pragma unroll
    for (int k = 0; k < W; k++) acc += s[t][k];
  }
  const C mean = rms ? C(0) : block_sum(acc) / C(cols);
  C ss = 0;
#pragma unroll
  for (int t = 0; t < P; t++) {
    const int64_t p = threadIdx.x + int64_t(t) * blockDim.x;
    if (p >= packs) continue;
#pragma unroll
    for (int k = 0; k < W; k++) {
      const C d = s[t][k] - mean;
      ss += d * d;
    }
  }
  const C rstd = C(1) / sqrt(block_sum(ss) / C(cols) + C(eps));
  if (threadIdx.x == 0) {
    stats[2 * blockIdx.x] = stat_t<T>(mean);
    stats[2 * blockIdx.x + 1] = stat_t<T>(rstd);
  }
#pragma unroll
  for (int t = 0; t < P; t++) {
    const int64_t p = threadIdx.x + int64_t(t) * blockDim.x;
    if (p >= packs) continue;
    Pack<T, W> pw, pb, o;
    if (w) pw = load_pack<T, W>(w + p * W);
    if (bias) pb = load_pack<T, W>(bias + p * W);
#pragma unroll
    for (int k = 0; k < W; k++) {
      C v = (s[t][k] - mean) * rstd;
      if (w) v *= C(load(&pw.v[k]));
      if (bias) v += C(load(&pb.v[k]));
      store(&o.v[k], v);
    }
    store_pack<T, W>(out + row + p * W, o);
    if constexpr (kShift) {
      if (shift_row.owned) {
        const int64_t f = p * W;
        const bool own = !(f < int64_t(sh.shifts + 1) * sh.chunk) || f / sh.chunk == 0;
        store_pack<T, W>(sh.shifted + row + f, own ? o : earlier[t]);
        if (shift_row.write_block >= 0)
          store_pack<T, W>(sh.tails + (shift_row.write_block * sh.ring + shift_row.position % sh.ring) * cols + f, o);
      }
    }
  }
}

/** Column-sum slots of the backward pass (−1: not wanted). */
struct Slots {
  int weight, bias, scale, count;
};

template <typename T>
struct GradOut {
  T* ga;
  T* gb;                      // null when b needs no gradient
  compute_t<T>* partial;      // [blocks, slots.count, cols]
};

template <typename T, int W>
__global__ void add_norm_grad_kernel(bool rms, Residual<T> r, const T* w, const stat_t<T>* stats, const T* gy,
                                     GradOut<T> o, Slots slots, int64_t rows, int64_t rows_per_block, bool shared_acc) {
  using C = compute_t<T>;
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  const int64_t cols = r.cols, packs = cols / W;
  C* acc = shared_acc ? reinterpret_cast<C*>(shared_bytes) : o.partial + int64_t(blockIdx.x) * slots.count * cols;
  // Element k of pack p of slot q. In shared memory the packs are interleaved (consecutive threads,
  // consecutive banks); in global memory (the partial row itself) the order is the columns'.
  auto at = [&](int q, int64_t p, int k) -> C& {
    return acc[q * cols + (shared_acc ? k * packs + p : p * W + k)];
  };
  for (int64_t p = threadIdx.x; p < packs; p += blockDim.x)
    for (int q = 0; q < slots.count; q++)
#pragma unroll
      for (int k = 0; k < W; k++) at(q, p, k) = C(0);
  const int64_t r0 = int64_t(blockIdx.x) * rows_per_block, r1 = min(rows, r0 + rows_per_block);
  for (int64_t i = r0; i < r1; i++) {
    const int64_t row = i * cols;
    const C mean = C(stats[2 * i]), rstd = C(stats[2 * i + 1]);
    C sum_g = 0, sum_gx = 0;
    for (int64_t p = threadIdx.x; p < packs; p += blockDim.x) {
      const int64_t j = p * W;
      C s[W];
      residual_pack<T, W>(r, row, j, false, s);
      const Pack<T, W> pg = load_pack<T, W>(gy + row + j);
      Pack<T, W> pw;
      if (w) pw = load_pack<T, W>(w + j);
#pragma unroll
      for (int k = 0; k < W; k++) {
        const C xhat = (s[k] - mean) * rstd, g0 = C(load(&pg.v[k]));
        const C g = w ? g0 * C(load(&pw.v[k])) : g0;
        sum_g += g;
        sum_gx += g * xhat;
        if (slots.weight >= 0) at(slots.weight, p, k) += g0 * xhat;
        if (slots.bias >= 0) at(slots.bias, p, k) += g0;
      }
    }
    sum_g = block_sum(sum_g) / C(cols);
    sum_gx = block_sum(sum_gx) / C(cols);
    for (int64_t p = threadIdx.x; p < packs; p += blockDim.x) {
      const int64_t j = p * W;
      C s[W];
      residual_pack<T, W>(r, row, j, false, s);
      const Pack<T, W> pg = load_pack<T, W>(gy + row + j);
      Pack<T, W> pw, pb, ps, out_a, out_b;
      if (w) pw = load_pack<T, W>(w + j);
      if (r.b && (o.gb || slots.scale >= 0)) pb = load_pack<T, W>(r.b + row + j);
      if (r.scale) ps = load_pack<T, W>(r.scale + j);
#pragma unroll
      for (int k = 0; k < W; k++) {
        const C xhat = (s[k] - mean) * rstd;
        const C g = w ? C(load(&pg.v[k])) * C(load(&pw.v[k])) : C(load(&pg.v[k]));
        const C gs = rms ? rstd * (g - xhat * sum_gx) : rstd * (g - sum_g - xhat * sum_gx);
        store(&out_a.v[k], gs);
        if (o.gb) store(&out_b.v[k], gs * (r.scale ? C(load(&ps.v[k])) * r.c : r.c));
        if (slots.scale >= 0) at(slots.scale, p, k) += gs * C(load(&pb.v[k])) * r.c;
      }
      store_pack<T, W>(o.ga + row + j, out_a);
      if (o.gb) store_pack<T, W>(o.gb + row + j, out_b);
    }
  }
  if (shared_acc) {
    C* dst = o.partial + int64_t(blockIdx.x) * slots.count * cols;
    for (int64_t p = threadIdx.x; p < packs; p += blockDim.x)
      for (int q = 0; q < slots.count; q++)
#pragma unroll
        for (int k = 0; k < W; k++) dst[q * cols + p * W + k] = at(q, p, k);
  }
}

/** Two block-wide sums with one round of barriers. */
template <typename C>
__device__ __forceinline__ void block_sum2(C& x, C& y) {
  __shared__ C partial[2][32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = int(blockDim.x >> 5);
  x = warp_sum(x);
  y = warp_sum(y);
  __syncthreads();  // partial[] may still be read from the previous row
  if (lane == 0) {
    partial[0][warp] = x;
    partial[1][warp] = y;
  }
  __syncthreads();
  C sx = 0, sy = 0;
  for (int i = 0; i < warps; i++) {
    sx += partial[0][i];
    sy += partial[1][i];
  }
  x = sx;
  y = sy;
}

/** Bytes of add_norm_grad_cached's staging slots past its column sums (kStage): a, b and the output gradient. */
constexpr size_t stage_bytes(int threads, int packs_per_thread, size_t pack_bytes) {
  return size_t(3) * size_t(packs_per_thread) * size_t(threads) * pack_bytes;
}

/**
 * The backward pass for rows of at most P packs per thread: each thread keeps its packs of x̂ and of the
 * gradient in registers between the two passes over a row. Its columns' sums (the same columns in every
 * row) accumulate in shared memory, laid out so consecutive threads touch consecutive words; registers
 * would hold them too, but at ~120 registers a block, one block per multiprocessor is all that fits.
 * Small blocks of rows keep several blocks resident; the per-block sums go to `partial` and are summed in
 * a fixed order by add_norm_grad_params.
 * kStage (16-byte packs): a row's a, b and output gradient travel by cp.async into the thread's own
 * shared-memory slots (past the sums) while the row before it is reduced and written, so their latency hides
 * behind that work instead of starting after each row's barriers; registers would hold them too, but that
 * costs the second block a multiprocessor. The same arithmetic on the same values either way.
 */
template <typename T, int W, int P, bool kStage>
__global__ void __launch_bounds__(kCachedThreads) add_norm_grad_cached(bool rms, Residual<T> r, const T* w, const stat_t<T>* stats, const T* gy,
                                     GradOut<T> o, Slots slots, int64_t rows, int64_t rows_per_block) {
  using C = compute_t<T>;
  static_assert(!kStage || sizeof(Pack<T, W>) == 16, "staged rows move 16-byte packs");
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  C* acc = reinterpret_cast<C*>(shared_bytes);
  const int64_t cols = r.cols, packs = cols / W;
  // Element k of pack p of slot q.
  auto at = [&](int q, int64_t p, int k) -> C& { return acc[(int64_t(q) * W + k) * packs + p]; };
  auto pack_of = [&](int t) { return threadIdx.x + int64_t(t) * blockDim.x; };
  // Staging slot of input `which` (0 a, 1 b, 2 the output gradient) for the thread's pack t: consecutive threads,
  // consecutive 16 bytes. The sums take slots.count · cols values, a multiple of 4 bytes · W = 16 bytes.
  Pack<T, W>* stage = reinterpret_cast<Pack<T, W>*>(acc + int64_t(slots.count) * cols);
  auto slot = [&](int which, int t) { return stage + (which * P + t) * int64_t(blockDim.x) + threadIdx.x; };
  auto stage_row = [&](int64_t i) {
#pragma unroll
    for (int t = 0; t < P; t++) {
      const int64_t p = pack_of(t);
      if (p >= packs) continue;
      attention::cp_async_16(slot(0, t), r.a + i * cols + p * W, true);
      if (r.b) attention::cp_async_16(slot(1, t), r.b + i * cols + p * W, true);
      attention::cp_async_16(slot(2, t), gy + i * cols + p * W, true);
    }
    attention::cp_async_commit();
  };
#pragma unroll
  for (int t = 0; t < P; t++) {
    const int64_t p = pack_of(t);
    if (p < packs)
      for (int q = 0; q < slots.count; q++)
#pragma unroll
        for (int k = 0; k < W; k++) at(q, p, k) = C(0);
  }
  const int64_t r0 = int64_t(blockIdx.x) * rows_per_block, r1 = min(rows, r0 + rows_per_block);
  if constexpr (kStage) {
    if (r0 < r1) stage_row(r0);
  }
  for (int64_t i = r0; i < r1; i++) {
    const int64_t row = i * cols;
    const C mean = C(stats[2 * i]), rstd = C(stats[2 * i + 1]);
    if constexpr (kStage) attention::cp_async_wait<0>();
    C xhat[P][W], g[P][W];
    C sum_g = 0, sum_gx = 0;
#pragma unroll
    for (int t = 0; t < P; t++) {
      const int64_t p = pack_of(t);
      if (p >= packs) continue;
      C s[W];
      Pack<T, W> pg;
      if constexpr (kStage) {
        const Pack<T, W> pa = *slot(0, t), pb = r.b ? *slot(1, t) : pa;
        Pack<T, W> ps = pa;
        if (r.b && r.scale) ps = load_pack<T, W>(r.scale + p * W);
        residual_of_packs<T, W>(r, pa, pb, ps, false, s);
        pg = *slot(2, t);
      } else {
        residual_pack<T, W>(r, row, p * W, false, s);
        pg = load_pack<T, W>(gy + row + p * W);
      }
      Pack<T, W> pw;
      if (w) pw = load_pack<T, W>(w + p * W);
#pragma unroll
      for (int k = 0; k < W; k++) {
        const C g0 = C(load(&pg.v[k]));
        xhat[t][k] = (s[k] - mean) * rstd;
        g[t][k] = w ? g0 * C(load(&pw.v[k])) : g0;
        sum_g += g[t][k];
        sum_gx += g[t][k] * xhat[t][k];
        if (slots.weight >= 0) at(slots.weight, p, k) += g0 * xhat[t][k];
        if (slots.bias >= 0) at(slots.bias, p, k) += g0;
      }
    }
    if constexpr (kStage) {
      // The slots were read into registers above (and used): the next row may overwrite them.
      asm volatile("" ::: "memory");
      if (i + 1 < r1) stage_row(i + 1);
    }
    block_sum2(sum_g, sum_gx);
    sum_g /= C(cols);
    sum_gx /= C(cols);
#pragma unroll
    for (int t = 0; t < P; t++) {
      const int64_t p = pack_of(t);
      if (p >= packs) continue;
      const int64_t j = p * W;
      Pack<T, W> pb, ps, out_a, out_b;
      if (slots.scale >= 0) pb = load_pack<T, W>(r.b + row + j);
      if (r.scale) ps = load_pack<T, W>(r.scale + j);
#pragma unroll
      for (int k = 0; k < W; k++) {
        const C gs = rms ? rstd * (g[t][k] - xhat[t][k] * sum_gx) : rstd * (g[t][k] - sum_g - xhat[t][k] * sum_gx);
        store(&out_a.v[k], gs);
        if (o.gb) store(&out_b.v[k], gs * (r.scale ? C(load(&ps.v[k])) * r.c : r.c));
        if (slots.scale >= 0) at(slots.scale, p, k) += gs * C(load(&pb.v[k])) * r.c;
      }
      store_pack<T, W>(o.ga + row + j, out_a);
      if (o.gb) store_pack<T, W>(o.gb + row + j, out_b);
    }
  }
  C* dst = o.partial + int64_t(blockIdx.x) * slots.count * cols;
#pragma unroll
  for (int t = 0; t < P; t++) {
    const int64_t p = pack_of(t);
    if (p >= packs) continue;
    for (int q = 0; q < slots.count; q++)
#pragma unroll
      for (int k = 0; k < W; k++) dst[q * cols + p * W + k] = at(q, p, k);
  }
}

/** Threads for a row of `packs` packs: one pack per thread up to 1024 threads, a multiple of 32. */
int threads_for(int64_t packs) { return int(std::min<int64_t>(1024, std::max<int64_t>(32, (packs + 31) / 32 * 32))); }

template <typename T>
Residual<T> residual_of(const AddNormArgs& a) {
  return {reinterpret_cast<const T*>(a.a), reinterpret_cast<const T*>(a.b), reinterpret_cast<const T*>(a.scale),
          compute_t<T>(a.c), a.cols};
}

/** Sums the per-block column partials into the weight / bias / residual-scale gradients. */
template <typename T>
void finish_params(const Scratch& partial, int64_t blocks, const Slots& slots, int64_t cols, char* gw, char* gbias,
                   char* gscale) {
  const int slot_of[3] = {slots.weight, slots.bias, slots.scale};
  char* out_of[3] = {gw, gbias, gscale};
  for (int q = 0; q < 3; q++) {
    if (slot_of[q] < 0) continue;
    sum_partial_rows<T>(partial.as<compute_t<T>>() + int64_t(slot_of[q]) * cols, blocks, slots.count * cols, cols,
                        reinterpret_cast<T*>(out_of[q]), "addNormGrad");
  }
}

// Below the 48 KiB a block may use without opting in, leaving room for block_sum's static arrays.
constexpr size_t kSharedAccumulatorBytes = 44 * 1024;
constexpr size_t kDefaultSharedBytes = 47 * 1024;

}  // namespace

void add_norm(const AddNormArgs& a, char* out, char* sum, char* stats) {
  if (a.rows == 0 || a.cols == 0) return;
  if (a.rows > 0x7fffffff) throw std::invalid_argument("addNorm: more than 2^31 rows");
  ANDROMEDA_CUDA_DISPATCH_FLOAT(a.dtype, {
    const bool vec = a.cols % int64_t(16 / sizeof(T)) == 0 && all_aligned16({a.a, a.b, a.scale, a.weight, a.bias, out, sum});
    ANDROMEDA_CUDA_PACK_WIDTH(T, vec, {
      const int64_t packs = a.cols / W;
      const int threads = threads_for(packs <= kCachedThreads ? packs : (packs + 1) / 2);
      const T* w = reinterpret_cast<const T*>(a.weight);
      const T* bias = reinterpret_cast<const T*>(a.bias);
      T* o = reinterpret_cast<T*>(out);
      T* s = reinterpret_cast<T*>(sum);
      stat_t<T>* st = reinterpret_cast<stat_t<T>*>(stats);
      const auto cached = [&](auto kernel) {
        kernel<<<unsigned(a.rows), threads, 0, stream()>>>(a.rms, residual_of<T>(a), w, bias, o, s, st, a.eps,
                                                           ShiftTarget<T>{});
      };
      if (packs <= kCachedThreads) cached(add_norm_cached<T, W, 1, false>);
      else if (packs <= 2 * kCachedThreads) cached(add_norm_cached<T, W, 2, false>);
      else add_norm_kernel<T, W><<<unsigned(a.rows), threads_for(packs), 0, stream()>>>(a.rms, residual_of<T>(a), w, bias, o, s, st, a.eps);
    });
  });
  check_launch("addNorm");
}

void add_norm_shift(const AddNormArgs& a, char* out, char* sum, char* stats, char* tails, char* shifted, int shifts,
                    int64_t ring, const PagedBatch& batch) {
  if (a.rows == 0 || a.cols == 0) return;
  if (a.rows > 0x7fffffff) throw std::invalid_argument("addNormShift: more than 2^31 rows");
  if (shifts < 0 || ring < shifts || ring < 1) throw std::invalid_argument("addNormShift: needs ring ≥ max(shifts, 1)");
  if (batch.max_query_len > 1 || batch.block_size <= 0)
    throw std::invalid_argument("addNormShift: needs maxQueryLen ≤ 1 and a positive blockSize");
  const int64_t chunk = a.cols / (shifts + 1);
  bool fused = false;
  ANDROMEDA_CUDA_DISPATCH_FLOAT(a.dtype, {
    constexpr int64_t kPack = 16 / sizeof(T);
    constexpr int W = int(kPack);
    const int64_t packs = a.cols / W;
    // One pass where a row's packs fit the cached kernel and a pack never straddles two shift chunks.
    fused = a.cols % kPack == 0 && chunk % kPack == 0 && packs <= 2 * kCachedThreads &&
            all_aligned16({a.a, a.b, a.scale, a.weight, a.bias, out, sum, tails, shifted});
    if (fused) {
      const ShiftTarget<T> target{reinterpret_cast<T*>(tails), reinterpret_cast<T*>(shifted), chunk, shifts, ring,
                                  paged::batch_view(batch)};
      const int threads = threads_for(packs <= kCachedThreads ? packs : (packs + 1) / 2);
      const auto kernel = packs <= kCachedThreads ? add_norm_cached<T, W, 1, true> : add_norm_cached<T, W, 2, true>;
      kernel<<<unsigned(a.rows), threads, 0, stream()>>>(
          a.rms, residual_of<T>(a), reinterpret_cast<const T*>(a.weight), reinterpret_cast<const T*>(a.bias),
          reinterpret_cast<T*>(out), reinterpret_cast<T*>(sum), reinterpret_cast<stat_t<T>*>(stats), a.eps, target);
    }
  });
  if (!fused) {
    add_norm(a, out, sum, stats);
    paged_token_shift_and_tail_write(a.dtype, out, tails, shifted, a.cols, shifts, ring, batch);
    return;
  }
  check_launch("addNormShift");
}

void add_norm_grad(const AddNormArgs& a, const char* stats, const char* grad_out, char* grad_a, char* grad_b,
                   char* grad_scale, char* grad_weight, char* grad_bias) {
  if (a.cols == 0) return;
  if (grad_scale && (!a.scale || !a.b)) throw std::invalid_argument("addNormGrad: a scale gradient needs b and a scale");
  Slots slots{-1, -1, -1, 0};
  if (grad_weight) slots.weight = slots.count++;
  if (grad_bias) slots.bias = slots.count++;
  if (grad_scale) slots.scale = slots.count++;
  ANDROMEDA_CUDA_DISPATCH_FLOAT(a.dtype, {
    using C = compute_t<T>;
    const bool vec = a.cols % int64_t(16 / sizeof(T)) == 0 &&
                     all_aligned16({a.a, a.b, a.scale, a.weight, grad_out, grad_a, grad_b});
    const size_t acc_bytes = size_t(slots.count) * size_t(a.cols) * sizeof(C);
    ANDROMEDA_CUDA_PACK_WIDTH(T, vec, {
      const int64_t packs = a.cols / W;
      if (packs <= 2 * kCachedThreads && acc_bytes <= kSharedAccumulatorBytes) {
        // Registers path: up to two packs per thread; a few blocks of rows per multiprocessor.
        const int threads = threads_for(packs <= kCachedThreads ? packs : (packs + 1) / 2);
        // Two blocks of rows per multiprocessor measured fastest at 2048 × 2560 (bench/gpu-fused-kernels.ts:
        // 55 µs, vs 64 at four and 79 at eight, where the sum over more partial rows costs more).
        const int64_t target_blocks = 2 * int64_t(sm_count());
        const int64_t rows_per_block = std::max<int64_t>(1, (a.rows + target_blocks - 1) / target_blocks);
        const int64_t blocks = std::max<int64_t>(1, (a.rows + rows_per_block - 1) / rows_per_block);
        Scratch partial(std::max<size_t>(1, size_t(blocks) * acc_bytes));
        GradOut<T> o{reinterpret_cast<T*>(grad_a), reinterpret_cast<T*>(grad_b), partial.as<C>()};
        auto launch = [&](auto kernel, size_t smem) {
          kernel<<<unsigned(blocks), threads, smem, stream()>>>(a.rms, residual_of<T>(a), reinterpret_cast<const T*>(a.weight),
                                                       reinterpret_cast<const stat_t<T>*>(stats),
                                                       reinterpret_cast<const T*>(grad_out), o, slots, a.rows, rows_per_block);
        };
        // Rows staged by cp.async where the packs are 16 bytes and the slots fit beside the sums in the 48 KiB a
        // block may use without opting in.
        constexpr bool kSixteen = sizeof(T) * W == 16;
        const size_t staged = acc_bytes + stage_bytes(threads, 1, 16);
        if (packs <= kCachedThreads) {
          if (kSixteen && staged <= kDefaultSharedBytes) launch(add_norm_grad_cached<T, W, 1, kSixteen>, staged);
          else launch(add_norm_grad_cached<T, W, 1, false>, acc_bytes);
        } else {
          launch(add_norm_grad_cached<T, W, 2, false>, acc_bytes);
        }
        check_launch("addNormGrad");
        finish_params<T>(partial, blocks, slots, a.cols, grad_weight, grad_bias, grad_scale);
        return;
      }
    });
    const int64_t target_blocks = 2 * int64_t(sm_count());
    const int64_t rows_per_block = std::max<int64_t>(1, (a.rows + target_blocks - 1) / target_blocks);
    const int64_t blocks = std::max<int64_t>(1, (a.rows + rows_per_block - 1) / rows_per_block);
    const bool shared_acc = acc_bytes <= kSharedAccumulatorBytes;
    Scratch partial(std::max<size_t>(1, size_t(blocks) * acc_bytes));
    GradOut<T> o{reinterpret_cast<T*>(grad_a), reinterpret_cast<T*>(grad_b), partial.as<C>()};
    ANDROMEDA_CUDA_PACK_WIDTH(T, vec, {
      add_norm_grad_kernel<T, W><<<unsigned(blocks), threads_for(a.cols / W), shared_acc ? acc_bytes : 0, stream()>>>(
          a.rms, residual_of<T>(a), reinterpret_cast<const T*>(a.weight), reinterpret_cast<const stat_t<T>*>(stats),
          reinterpret_cast<const T*>(grad_out), o, slots, a.rows, rows_per_block, shared_acc);
    });
    check_launch("addNormGrad");
    finish_params<T>(partial, blocks, slots, a.cols, grad_weight, grad_bias, grad_scale);
  });
}

}  // namespace andromeda::cuda
