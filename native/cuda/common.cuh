// Device-side building blocks of the CUDA kernels: storage types per dtype code, load/store with
// the compute type (half types compute in float, int32 in double as on the CPU), dispatch macros,
// launch sizing and warp/block reductions.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>

#include "engine.h"
#include "runtime.h"

namespace andromeda::cuda {

enum class DType : int { F32 = 0, F64 = 1, BF16 = 2, F16 = 3, I32 = 4 };

using bf16 = __nv_bfloat16;
using f16 = __half;

template <typename T> struct Compute { using type = T; };
template <> struct Compute<bf16> { using type = float; };
template <> struct Compute<f16> { using type = float; };
template <> struct Compute<int32_t> { using type = double; };
template <typename T> using compute_t = typename Compute<T>::type;

// Per-row statistics (norm mean/rstd, cross-entropy loss/lse) are float64 for float64 tensors, else float32.
template <typename T> struct StatOf { using type = float; };
template <> struct StatOf<double> { using type = double; };
template <typename T> using stat_t = typename StatOf<T>::type;

__device__ __forceinline__ double load(const double* p) { return *p; }
__device__ __forceinline__ float load(const float* p) { return *p; }
__device__ __forceinline__ float load(const bf16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ float load(const f16* p) { return __half2float(*p); }
__device__ __forceinline__ double load(const int32_t* p) { return double(*p); }

__device__ __forceinline__ void store(double* p, double v) { *p = v; }
__device__ __forceinline__ void store(float* p, double v) { *p = float(v); }
__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(bf16* p, float v) { *p = __float2bfloat16_rn(v); }
__device__ __forceinline__ void store(bf16* p, double v) { *p = __float2bfloat16_rn(float(v)); }
__device__ __forceinline__ void store(f16* p, float v) { *p = __float2half_rn(v); }
__device__ __forceinline__ void store(f16* p, double v) { *p = __float2half_rn(float(v)); }
__device__ __forceinline__ void store(int32_t* p, double v) { *p = int32_t(v); }
__device__ __forceinline__ void store(int32_t* p, float v) { *p = int32_t(v); }

inline int dtype_bytes(int code) {
  switch (DType(code)) {
    case DType::F32: case DType::I32: return 4;
    case DType::F64: return 8;
    default: return 2;
  }
}

// ---- Launch sizing ----
constexpr int kThreads = 256;

/** Blocks for a grid-stride loop over n items: enough to fill the device, never more than needed. */
inline unsigned grid_for(int64_t n, int threads = kThreads) {
  const int64_t blocks = (n + threads - 1) / threads;
  const int64_t cap = int64_t(sm_count()) * 16;
  return unsigned(blocks < 1 ? 1 : (blocks > cap ? cap : blocks));
}

#define ANDROMEDA_GRID_STRIDE(i, n) \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

// ---- Reductions ----
template <typename C>
__device__ __forceinline__ C warp_sum(C v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <typename C>
__device__ __forceinline__ C warp_max(C v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

/** Sum over the block (blockDim.x a multiple of 32, ≤ 1024); every thread receives the total. */
template <typename C>
__device__ C block_sum(C v) {
  __shared__ C partial[32];
  __shared__ C total;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // partial[] may still be read by a previous call
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    C s = lane < int(blockDim.x >> 5) ? partial[lane] : C(0);
    s = warp_sum(s);
    if (lane == 0) total = s;
  }
  __syncthreads();
  return total;
}

template <typename C>
__device__ C block_max(C v) {
  __shared__ C partial[32];
  __shared__ C total;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    C s = lane < int(blockDim.x >> 5) ? partial[lane] : -C(INFINITY);
    s = warp_max(s);
    if (lane == 0) total = s;
  }
  __syncthreads();
  return total;
}

/** Threads per block for a row of `cols` items: a multiple of 32 between 32 and 1024, each thread
 *  taking about `per_thread` items (enough work per thread to hide the block reductions). */
inline int row_threads(int64_t cols, int per_thread = 16) {
  int64_t t = (cols + per_thread - 1) / per_thread;
  int threads = 32;
  while (threads < t && threads < 1024) threads <<= 1;
  return threads;
}

}  // namespace andromeda::cuda

// Calls BODY with `T` bound to the device storage type of the float dtype `code` (int32 where allowed).
#define ANDROMEDA_CUDA_DISPATCH_FLOAT(code, ...)                                        \
  switch (::andromeda::cuda::DType(code)) {                                             \
    case ::andromeda::cuda::DType::F32: { using T = float; __VA_ARGS__; break; }        \
    case ::andromeda::cuda::DType::F64: { using T = double; __VA_ARGS__; break; }       \
    case ::andromeda::cuda::DType::BF16: { using T = ::andromeda::cuda::bf16; __VA_ARGS__; break; } \
    case ::andromeda::cuda::DType::F16: { using T = ::andromeda::cuda::f16; __VA_ARGS__; break; }   \
    default: throw std::invalid_argument("this kernel needs a floating dtype");         \
  }

#define ANDROMEDA_CUDA_DISPATCH_ALL(code, ...)                                          \
  switch (::andromeda::cuda::DType(code)) {                                             \
    case ::andromeda::cuda::DType::F32: { using T = float; __VA_ARGS__; break; }        \
    case ::andromeda::cuda::DType::F64: { using T = double; __VA_ARGS__; break; }       \
    case ::andromeda::cuda::DType::BF16: { using T = ::andromeda::cuda::bf16; __VA_ARGS__; break; } \
    case ::andromeda::cuda::DType::F16: { using T = ::andromeda::cuda::f16; __VA_ARGS__; break; }   \
    case ::andromeda::cuda::DType::I32: { using T = int32_t; __VA_ARGS__; break; }      \
    default: throw std::invalid_argument("unknown dtype code");                         \
  }
