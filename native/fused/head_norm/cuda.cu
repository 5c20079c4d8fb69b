// qk-norm on the attention's head layout, fused with the permute that the attention needs:
//   y[b, h, t, :] = x[b, t, h, :] · r · g[h, :],   r = 1 / sqrt(‖x[b, t, h, :]‖² + eps²)
// x is a projection's output [batch, n, heads, dim] (contiguous), y is [batch, heads, n, dim], g is the
// learned per-head scale (optional). Backward, with gg = gy ⊙ g:
//   gx = r · (gg − x · r² · (gg · x)),   dg[h, :] = Σ_{b,t} gy ⊙ x · r
// rstd is kept in the norms' statistics dtype (float64 for float64 tensors, else float32). One warp per row; a lane keeps its dim / 32 elements in registers (dim ≤ 256). Blocks take one head and
// a run of positions, so dg is summed per block in registers and shared memory, then over blocks in a
// fixed order (deterministic, no atomics).
#include <algorithm>
#include <type_traits>
#include <vector>

#include "head_norm.h"
#include "../../cuda/common.cuh"
#include "../../cuda/engine.h"
#include "../../cuda/partial_sums.cuh"
#include "../../cuda/vec.cuh"

namespace andromeda::cuda {
namespace {

constexpr int kWarps = 8;
// Lane layouts of a row: with Packed, lane l owns the dim / 32 consecutive elements [l·V, l·V + V) and moves
// them with one access (dim = 32·V, V ∈ {1, 2, 4, 8} bf16 / {1, 2, 4} float); otherwise element e of lane l is
// l + 32·e (any dim ≤ 256, one element per access).
constexpr int kMaxPerLane = 8;  // dim ≤ 256
constexpr int kPositionsPerBlock = 64;   // the gradient's blocks (each sums its share of grad_g)
constexpr int kForwardPositionsPerBlock = kWarps;  // a row per warp: decode's few rows still spread over the GPU

struct Layout {
  int64_t batch, n, heads, dim;
  __device__ __forceinline__ int64_t in_row(int64_t position, int64_t head) const { return (position * heads + head) * dim; }
  __device__ __forceinline__ int64_t out_row(int64_t position, int64_t head) const {
    const int64_t b = position / n, t = position - b * n;
    return ((b * heads + head) * n + t) * dim;
  }
};

/** Element e of this lane's share of a row: V consecutive packed elements, or every 32nd. */
template <int V>
struct LaneRow {
  int lane;
  int64_t dim;
  __device__ __forceinline__ int64_t at(int e) const { return V > 0 ? int64_t(lane) * V + e : lane + 32 * int64_t(e); }
  __device__ __forceinline__ bool has(int e) const { return V > 0 ? e < V : at(e) < dim; }
  template <typename T, typename C>
  __device__ __forceinline__ void load_row(const T* row, C (&v)[kMaxPerLane]) const {
    if constexpr (V > 0) {
      const Pack<T, V> pk = load_pack<T, V>(row + int64_t(lane) * V);
#pragma unroll
      for (int e = 0; e < kMaxPerLane; e++) v[e] = e < V ? C(load(&pk.v[e])) : C(0);
    } else {
#pragma unroll
      for (int e = 0; e < kMaxPerLane; e++) v[e] = has(e) ? C(load(row + at(e))) : C(0);
    }
  }
  template <typename T, typename C>
  __device__ __forceinline__ void store_row(T* row, const C (&v)[kMaxPerLane]) const {
    if constexpr (V > 0) {
      Pack<T, V> pk;
#pragma unroll
      for (int e = 0; e < V; e++) store(&pk.v[e], v[e]);
      store_pack<T, V>(row + int64_t(lane) * V, pk);
    } else {
#pragma unroll
      for (int e = 0; e < kMaxPerLane; e++)
        if (has(e)) store(row + at(e), v[e]);
    }
  }
};

/** The per-head scale row g (null: ones) in this lane's layout. */
template <typename T, int V, typename C>
__device__ __forceinline__ void load_scale(const LaneRow<V>& lr, const T* g, C (&gv)[kMaxPerLane]) {
  if (g) lr.load_row(g, gv);
#pragma unroll
  for (int e = 0; e < kMaxPerLane; e++)
    if (!g) gv[e] = C(1);
}

/** v ← v · r · gv with r = 1 / sqrt(‖v‖² + eps²) over the warp's row (every lane of the warp calls it); returns r. */
template <typename C>
__device__ __forceinline__ C norm_row(C (&v)[kMaxPerLane], const C (&gv)[kMaxPerLane], C eps2) {
  C ss = 0;
#pragma unroll
  for (int e = 0; e < kMaxPerLane; e++) ss += v[e] * v[e];
  const C r = C(1) / sqrt(warp_sum(ss) + eps2);
#pragma unroll
  for (int e = 0; e < kMaxPerLane; e++) v[e] = v[e] * r * gv[e];
  return r;
}

template <typename T, int V>
__global__ void head_norm_kernel(Layout l, const T* x, const T* g, T* y, stat_t<T>* rstd, compute_t<T> eps2) {
  using C = compute_t<T>;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t head = blockIdx.y, positions = l.batch * l.n;
  const int64_t p0 = int64_t(blockIdx.x) * kForwardPositionsPerBlock;
  const LaneRow<V> lr{lane, l.dim};
  C gv[kMaxPerLane];
  load_scale(lr, g ? g + head * l.dim : nullptr, gv);
  for (int64_t p = p0 + warp; p < min(positions, p0 + kForwardPositionsPerBlock); p += kWarps) {
    C v[kMaxPerLane];
    lr.load_row(x + l.in_row(p, head), v);
    const C r = norm_row(v, gv, eps2);
    lr.store_row(y + l.out_row(p, head), v);
    if (lane == 0) rstd[p * l.heads + head] = stat_t<T>(r);
  }
}

// head_norm_rows: up to kRowItems items a launch; warp f of the grid takes head row f of the items laid end to end.
constexpr int kRowItems = 4;
struct RowItems {
  HeadNormRowsItem item[kRowItems];
  int64_t end[kRowItems];  // head rows of items 0..i
  int count;
};

template <typename T, int V>
__global__ void head_norm_rows_kernel(const __grid_constant__ RowItems items, compute_t<T> eps2) {
  using C = compute_t<T>;
  const int lane = threadIdx.x & 31;
  const int64_t f = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  int i = 0;
  while (i < items.count && f >= items.end[i]) i++;
  if (i == items.count) return;
  const HeadNormRowsItem& it = items.item[i];
  const int64_t local = f - (i > 0 ? items.end[i - 1] : 0);
  const int64_t r = local / it.heads, h = local - r * it.heads;
  const int64_t target = it.index ? int64_t(__ldg(it.index + r)) : r;
  if (target < 0 || target >= (it.index ? it.rows : it.count)) return;  // the whole warp: one row
  const LaneRow<V> lr{lane, it.dim};
  C v[kMaxPerLane];
  lr.load_row(reinterpret_cast<const T*>(it.x) + (r * it.heads + h) * it.dim, v);
  if (it.normalize) {  // head_norm_kernel's arithmetic: the same bits
    C gv[kMaxPerLane];
    load_scale(lr, it.weight ? reinterpret_cast<const T*>(it.weight) + h * it.dim : nullptr, gv);
    norm_row(v, gv, eps2);
  }
  lr.store_row(reinterpret_cast<T*>(it.y) + (target * it.heads + h) * it.dim, v);
}

template <typename T, int V>
__global__ void head_norm_grad_kernel(Layout l, const T* x, const T* g, const stat_t<T>* rstd, const T* gy, T* gx,
                                      compute_t<T>* partial) {
  using C = compute_t<T>;
  __shared__ C sums[kWarps][kMaxPerLane * 32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t head = blockIdx.y, positions = l.batch * l.n;
  const int64_t p0 = int64_t(blockIdx.x) * kPositionsPerBlock;
  const LaneRow<V> lr{lane, l.dim};
  C gv[kMaxPerLane], acc[kMaxPerLane];
  if (g) lr.load_row(g + head * l.dim, gv);
#pragma unroll
  for (int e = 0; e < kMaxPerLane; e++) {
    if (!g) gv[e] = C(1);
    acc[e] = C(0);
  }
  for (int64_t p = p0 + warp; p < min(positions, p0 + kPositionsPerBlock); p += kWarps) {
    const C r = C(rstd[p * l.heads + head]);
    C v[kMaxPerLane], g0[kMaxPerLane], gg[kMaxPerLane];
    lr.load_row(x + l.in_row(p, head), v);
    lr.load_row(gy + l.out_row(p, head), g0);
    C dot = 0;
#pragma unroll
    for (int e = 0; e < kMaxPerLane; e++) {
      gg[e] = g0[e] * gv[e];
      dot += gg[e] * v[e];
      acc[e] += g0[e] * v[e] * r;
    }
    dot = warp_sum(dot) * r * r;
#pragma unroll
    for (int e = 0; e < kMaxPerLane; e++) gg[e] = r * (gg[e] - v[e] * dot);
    lr.store_row(gx + l.in_row(p, head), gg);
  }
  if (!partial) return;
  // sums[w][j]: warp w's sum for feature j.
#pragma unroll
  for (int e = 0; e < kMaxPerLane; e++)
    if (lr.has(e)) sums[warp][lr.at(e)] = acc[e];
  __syncthreads();
  for (int64_t j = threadIdx.x; j < l.dim; j += blockDim.x) {
    C s = 0;
    for (int w = 0; w < kWarps; w++) s += sums[w][j];
    partial[(int64_t(blockIdx.x) * l.heads + head) * l.dim + j] = s;
  }
}

Layout layout_of(const HeadNormArgs& a) {
  if (a.dim <= 0 || a.dim > 32 * kMaxPerLane) throw std::invalid_argument("headNorm: head dim must be in [1, 256]");
  if (a.heads <= 0 || a.heads > 65535) throw std::invalid_argument("headNorm: heads must be in [1, 65535]");
  return {a.batch, a.n, a.heads, a.dim};
}

dim3 grid_of(const HeadNormArgs& a, int64_t positions_per_block) {
  const int64_t blocks = (a.batch * a.n + positions_per_block - 1) / positions_per_block;
  if (blocks > 0x7fffffff) throw std::invalid_argument("headNorm: too many positions");
  return dim3(unsigned(blocks), unsigned(a.heads));
}

/**
 * Calls launch with std::integral_constant<int, V>: V = dim / 32 when every row (and the scale) starts on a
 * V-element boundary and V·sizeof(T) ≤ 16, else 0 (the strided layout).
 */
template <typename T, typename Launch>
void with_lane_layout(int64_t dim, const std::vector<const void*>& ptrs, Launch launch) {
  const int64_t v = dim % 32 == 0 ? dim / 32 : 0;
  bool aligned = v > 0 && v * int64_t(sizeof(T)) <= 16;
  for (const void* p : ptrs) aligned = aligned && (p == nullptr || reinterpret_cast<uintptr_t>(p) % (size_t(v) * sizeof(T)) == 0);
  if constexpr (8 * sizeof(T) <= 16) {
    if (aligned && v == 8) return launch(std::integral_constant<int, 8>{});
  }
  if constexpr (4 * sizeof(T) <= 16) {
    if (aligned && v == 4) return launch(std::integral_constant<int, 4>{});
  }
  if (aligned && v == 2) return launch(std::integral_constant<int, 2>{});
  if (aligned && v == 1) return launch(std::integral_constant<int, 1>{});
  launch(std::integral_constant<int, 0>{});
}

}  // namespace

void head_norm(const HeadNormArgs& a, const char* x, const char* g, char* y, char* rstd) {
  if (a.batch * a.n == 0) return;
  const Layout l = layout_of(a);
  ANDROMEDA_CUDA_DISPATCH_FLOAT(a.dtype, {
    with_lane_layout<T>(a.dim, {x, g, y}, [&](auto v) {
      head_norm_kernel<T, decltype(v)::value><<<grid_of(a, kForwardPositionsPerBlock), kWarps * 32, 0, stream()>>>(
          l, reinterpret_cast<const T*>(x), reinterpret_cast<const T*>(g), reinterpret_cast<T*>(y),
          reinterpret_cast<stat_t<T>*>(rstd), compute_t<T>(a.eps * a.eps));
    });
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
  const dim3 grid = grid_of(a, kPositionsPerBlock);
  ANDROMEDA_CUDA_DISPATCH_FLOAT(a.dtype, {
    using C = compute_t<T>;
    Scratch partial(grad_g ? size_t(grid.x) * size_t(a.heads * a.dim) * sizeof(C) : 1);
    with_lane_layout<T>(a.dim, {x, g, gy, gx}, [&](auto v) {
      head_norm_grad_kernel<T, decltype(v)::value><<<grid, kWarps * 32, 0, stream()>>>(
          l, reinterpret_cast<const T*>(x), reinterpret_cast<const T*>(g), reinterpret_cast<const stat_t<T>*>(rstd),
          reinterpret_cast<const T*>(gy), reinterpret_cast<T*>(gx), grad_g ? partial.as<C>() : nullptr);
    });
    check_launch("headNormGrad");
    if (grad_g) {
      sum_partial_rows<T>(partial.as<C>(), grid.x, a.heads * a.dim, a.heads * a.dim, reinterpret_cast<T*>(grad_g), "headNormGrad");
    }
  });
}

void head_norm_rows(const HeadNormRowsItem* items, size_t n, double eps) {
  for (size_t i = 0; i < n; i++) {
    if (items[i].dtype != items[0].dtype) throw std::invalid_argument("headNormRows: every item must have one dtype");
    if (items[i].dim > 32 * kMaxPerLane) throw std::invalid_argument("headNormRows: head dim must be at most 256");
  }
  for (size_t first = 0; first < n; first += kRowItems) {
    RowItems launch{};
    int64_t total = 0, dim = -1;
    bool one_dim = true;
    for (size_t i = first; i < std::min(n, first + kRowItems); i++) {
      if (items[i].count * items[i].heads * items[i].dim == 0) continue;
      launch.item[launch.count] = items[i];
      launch.end[launch.count++] = total += items[i].count * items[i].heads;
      one_dim = one_dim && (dim < 0 || dim == items[i].dim);
      dim = items[i].dim;
    }
    if (launch.count == 0) continue;
    const int64_t blocks = (total + kWarps - 1) / kWarps;
    if (blocks > 0x7fffffff) throw std::invalid_argument("headNormRows: too many rows");
    ANDROMEDA_CUDA_DISPATCH_FLOAT(items[0].dtype, {
      auto run = [&](auto v) {
        head_norm_rows_kernel<T, decltype(v)::value><<<unsigned(blocks), kWarps * 32, 0, stream()>>>(
            launch, compute_t<T>(eps * eps));
      };
      // The packed lane layout when every item has one head dim and every row starts on its boundary.
      std::vector<const void*> starts;
      for (int i = 0; i < launch.count; i++) starts.insert(starts.end(), {launch.item[i].x, launch.item[i].weight, launch.item[i].y});
      if (one_dim) with_lane_layout<T>(dim, starts, run);
      else run(std::integral_constant<int, 0>{});
    });
    check_launch("headNormRows");
  }
}

}  // namespace andromeda::cuda
