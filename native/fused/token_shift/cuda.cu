// Token shift (spec "Token shift") in one pass: feature chunk k of position t comes from position t − k,
// zero before the start or, with segment ids (packed documents), from another document; features past the
// last chunk pass through. The backward pass moves each
// chunk's gradient the other way (gx[t] of chunk k = g[t + k], zero past the end), optionally added into the
// gradient already held (accumulate: saves the separate add where the input also feeds a residual). Contiguous
// [batch, n, dim]; 16-byte packs when the chunk width allows.
#include "token_shift.h"
#include "../../cuda/common.cuh"
#include "../../cuda/engine.h"
#include "../../cuda/vec.cuh"

namespace andromeda::cuda {
namespace {

template <typename T, int W>
__global__ void token_shift_kernel(const T* x, T* out, const int32_t* segments, int64_t batch, int64_t n, int64_t dim,
                                   int64_t chunk, int shifts, bool backward, bool accumulate) {
  const int64_t packs_per_row = dim / W, total = batch * n * packs_per_row;
  ANDROMEDA_GRID_STRIDE(i, total) {
    const int64_t row = i / packs_per_row, f = (i - row * packs_per_row) * W;
    const int64_t t = row % n;
    const int64_t k = f < int64_t(shifts + 1) * chunk ? f / chunk : 0;
    const int64_t source = backward ? t + k : t - k;
    Pack<T, W> v;
    const bool same_document = segments == nullptr || source < 0 || source >= n ||
                               __ldg(segments + row - t + source) == __ldg(segments + row);
    if (source >= 0 && source < n && same_document) {
      v = load_pack<T, W>(x + (row - t + source) * dim + f);
    } else {
#pragma unroll
      for (int e = 0; e < W; e++) store(&v.v[e], 0.f);
    }
    if (accumulate) {
      const Pack<T, W> held = load_pack<T, W>(out + row * dim + f);
#pragma unroll
      for (int e = 0; e < W; e++) store(&v.v[e], load(&v.v[e]) + load(&held.v[e]));
    }
    store_pack<T, W>(out + row * dim + f, v);
  }
}

}  // namespace

void token_shift(int dtype, const char* x, char* out, const int32_t* segments, int64_t batch, int64_t n, int64_t dim,
                 int shifts, bool backward, bool accumulate) {
  const int64_t total = batch * n * dim;
  if (total == 0) return;
  if (shifts < 0) throw std::invalid_argument("tokenShift: shifts must be ≥ 0");
  const int64_t chunk = dim / (shifts + 1);
  ANDROMEDA_CUDA_DISPATCH_FLOAT(dtype, {
    const bool vec = chunk % int64_t(16 / sizeof(T)) == 0 && dim % int64_t(16 / sizeof(T)) == 0 && all_aligned16({x, out});
    ANDROMEDA_CUDA_PACK_WIDTH(T, vec, {
      token_shift_kernel<T, W><<<grid_for(total / W), kThreads, 0, stream()>>>(
          reinterpret_cast<const T*>(x), reinterpret_cast<T*>(out), segments, batch, n, dim, chunk, shifts, backward, accumulate);
    });
  });
  check_launch("tokenShift");
}

}  // namespace andromeda::cuda
