// qk-norm on the attention's head layout, fused with the permute that the attention needs:
//   y[b, h, t, :] = x[b, t, h, :] · r · g[h, :],   r = 1 / sqrt(‖x[b, t, h, :]‖² + eps²)
// x is a projection's output [batch, n, heads, dim] (contiguous), y is [batch, heads, n, dim], g is the
// learned per-head scale (optional). Backward, with gg = gy ⊙ g:
//   gx = r · (gg − x · r² · (gg · x)),   dg[h, :] = Σ_{b,t} gy ⊙ x · r
// rstd is kept in the norms' statistics dtype (float64 for float64 tensors, else float32). One warp per row; a lane keeps its dim / 32 elements in registers (dim ≤ 256). Blocks take one head and
// a run of positions, so dg is summed per block in registers and shared memory, then over blocks in a
// fixed order (deterministic, no atomics).
#include <algorithm>

#include "common.cuh"
#include "engine.h"

namespace andromeda::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kMaxPerLane = 8;  // dim ≤ 256
constexpr int kPositionsPerBlock = 64;

struct Layout {
  int64_t batch, n, heads, dim;
  __device__ __forceinline__ int64_t in_row(int64_t position, int64_t head) const { return (position * heads + head) * dim; }
  __device__ __forceinline__ int64_t out_row(int64_t position, int64_t head) const {
    const int64_t b = position / n, t = position - b * n;
    return ((b * heads + head) * n + t) * dim;
  }
};

template <typename T>
__global__ void head_norm_kernel(Layout l, const T* x, const T* g, T* y, stat_t<T>* rstd, compute_t<T> eps2) {
  using C = compute_t<T>;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t head = blockIdx.y, positions = l.batch * l.n;
  const int64_t p0 = int64_t(blockIdx.x) * kPositionsPerBlock;
  C gv[kMaxPerLane];
#pragma unroll
  for (int e = 0; e < kMaxPerLane; e++) {
    const int64_t j = lane + 32 * e;
    gv[e] = g && j < l.dim ? C(load(g + head * l.dim + j)) : C(1);
  }
  for (int64_t p = p0 + warp; p < min(positions, p0 + kPositionsPerBlock); p += kWarps) {
    const T* row = x + l.in_row(p, head);
    C v[kMaxPerLane];
    C ss = 0;
#pragma unroll
    for (int e = 0; e < kMaxPerLane; e++) {
      const int64_t j = lane + 32 * e;
      v[e] = j < l.dim ? C(load(row + j)) : C(0);
      ss += v[e] * v[e];
    }
    const C r = C(1) / sqrt(warp_sum(ss) + C(eps2));
    T* out = y + l.out_row(p, head);
#pragma unroll
    for (int e = 0; e < kMaxPerLane; e++) {
      const int64_t j = lane + 32 * e;
      if (j < l.dim) store(out + j, v[e] * r * gv[e]);
    }
    if (lane == 0) rstd[p * l.heads + head] = stat_t<T>(r);
  }
}

template <typename T>
__global__ void head_norm_grad_kernel(Layout l, const T* x, const T* g, const stat_t<T>* rstd, const T* gy, T* gx,
                                      compute_t<T>* partial) {
  using C = compute_t<T>;
  __shared__ C sums[kWarps][kMaxPerLane * 32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t head = blockIdx.y, positions = l.batch * l.n;
  const int64_t p0 = int64_t(blockIdx.x) * kPositionsPerBlock;
  C gv[kMaxPerLane], acc[kMaxPerLane];
#pragma unroll
  for (int e = 0; e < kMaxPerLane; e++) {
    const int64_t j = lane + 32 * e;
    gv[e] = g && j < l.dim ? C(load(g + head * l.dim + j)) : C(1);
    acc[e] = C(0);
  }
  for (int64_t p = p0 + warp; p < min(positions, p0 + kPositionsPerBlock); p += kWarps) {
    const T* row = x + l.in_row(p, head);
    const T* grow = gy + l.out_row(p, head);
    const C r = C(rstd[p * l.heads + head]);
    C v[kMaxPerLane], gg[kMaxPerLane];
    C dot = 0;
#pragma unroll
    for (int e = 0; e < kMaxPerLane; e++) {
      const int64_t j = lane + 32 * e;
      const C g0 = j < l.dim ? C(load(grow + j)) : C(0);
      v[e] = j < l.dim ? C(load(row + j)) : C(0);
      gg[e] = g0 * gv[e];
      dot += gg[e] * v[e];
      acc[e] += g0 * v[e] * r;
    }
    dot = warp_sum(dot) * r * r;
    T* out = gx + l.in_row(p, head);
#pragma unroll
    for (int e = 0; e < kMaxPerLane; e++) {
      const int64_t j = lane + 32 * e;
      if (j < l.dim) store(out + j, r * (gg[e] - v[e] * dot));
    }
  }
  if (!partial) return;
#pragma unroll
  for (int e = 0; e < kMaxPerLane; e++) sums[warp][lane + 32 * e] = acc[e];
  __syncthreads();
  for (int64_t j = threadIdx.x; j < l.dim; j += blockDim.x) {
    C s = 0;
    for (int w = 0; w < kWarps; w++) s += sums[w][j];
    partial[(int64_t(blockIdx.x) * l.heads + head) * l.dim + j] = s;
  }
}

template <typename T>
__global__ void head_norm_sum_blocks(const compute_t<T>* partial, int64_t blocks, int64_t count, T* out) {
  using C = compute_t<T>;
  ANDROMEDA_GRID_STRIDE(i, count) {
    C s = 0;
    for (int64_t b = 0; b < blocks; b++) s += partial[b * count + i];
    store(out + i, s);
  }
}

Layout layout_of(const HeadNormArgs& a) {
  if (a.dim <= 0 || a.dim > 32 * kMaxPerLane) throw std::invalid_argument("headNorm: head dim must be in [1, 256]");
  if (a.heads <= 0 || a.heads > 65535) throw std::invalid_argument("headNorm: heads must be in [1, 65535]");
  return {a.batch, a.n, a.heads, a.dim};
}

dim3 grid_of(const HeadNormArgs& a) {
  const int64_t blocks = (a.batch * a.n + kPositionsPerBlock - 1) / kPositionsPerBlock;
  if (blocks > 0x7fffffff) throw std::invalid_argument("headNorm: too many positions");
  return dim3(unsigned(blocks), unsigned(a.heads));
}

}  // namespace

void head_norm(const HeadNormArgs& a, const char* x, const char* g, char* y, char* rstd) {
  if (a.batch * a.n == 0) return;
  const Layout l = layout_of(a);
  ANDROMEDA_CUDA_DISPATCH_FLOAT(a.dtype, {
    head_norm_kernel<T><<<grid_of(a), kWarps * 32, 0, stream()>>>(l, reinterpret_cast<const T*>(x), reinterpret_cast<const T*>(g),
                                                                 reinterpret_cast<T*>(y), reinterpret_cast<stat_t<T>*>(rstd),
                                                                 compute_t<T>(a.eps * a.eps));
  });
  check_launch("headNorm");
}

void head_norm_grad(const HeadNormArgs& a, const char* x, const char* g, const char* rstd, const char* gy, char* gx,
                    char* grad_g) {
  if (a.batch * a.n == 0) {
    if (grad_g) {
      ANDROMEDA_CUDA_DISPATCH_FLOAT(a.dtype, { check(cudaMemsetAsync(grad_g, 0, size_t(a.heads * a.dim) * sizeof(T), stream()), "headNormGrad"); });
    }
    return;
  }
  const Layout l = layout_of(a);
  const dim3 grid = grid_of(a);
  ANDROMEDA_CUDA_DISPATCH_FLOAT(a.dtype, {
    using C = compute_t<T>;
    Scratch partial(grad_g ? size_t(grid.x) * size_t(a.heads * a.dim) * sizeof(C) : 1);
    head_norm_grad_kernel<T><<<grid, kWarps * 32, 0, stream()>>>(
        l, reinterpret_cast<const T*>(x), reinterpret_cast<const T*>(g), reinterpret_cast<const stat_t<T>*>(rstd),
        reinterpret_cast<const T*>(gy), reinterpret_cast<T*>(gx), grad_g ? partial.as<C>() : nullptr);
    check_launch("headNormGrad");
    if (grad_g) {
      head_norm_sum_blocks<T><<<grid_for(a.heads * a.dim), kThreads, 0, stream()>>>(partial.as<C>(), grid.x, a.heads * a.dim,
                                                                                   reinterpret_cast<T*>(grad_g));
      check_launch("headNormGrad");
    }
  });
}

}  // namespace andromeda::cuda
