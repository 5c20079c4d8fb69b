// AdamW on float32 master weights with float32 moments; the gradient may be any float dtype. The
// arithmetic is the CPU engine's, operation for operation, so both engines take the same step.
// `adamw_many` updates a list of tensors in one launch per (gradient dtype, copy dtype) at memory speed
// (28 bytes per parameter with bf16 gradients and weight copies): blocks take fixed-size chunks of the
// tensors from a chunk table, 16-byte accesses. Its per-element arithmetic is the one-tensor kernel's
// (`adamw_element`), so both give the same bits.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "adamw.h"
#include "element.cuh"
#include "../../cuda/engine.h"
#include "../../cuda/chunk_table.h"
#include "../../cuda/common.cuh"

namespace andromeda::cuda {
namespace {

struct NoShadow {};
template <typename S>
__device__ __forceinline__ void write_shadow(S* shadow, int64_t i, float p) { store(shadow + i, p); }
__device__ __forceinline__ void write_shadow(NoShadow*, int64_t, float) {}

template <typename T, typename S>
__global__ void adamw_kernel(float* param, const T* grad, float* m, float* v, int64_t n, AdamWConstants k, S* shadow) {
  if (!resolve_clip(k)) return;
  ANDROMEDA_GRID_STRIDE(i, n) {
    float mi = m[i], vi = v[i];
    const float p = adamw_element(param[i], float(load(grad + i)), mi, vi, k);
    m[i] = mi;
    v[i] = vi;
    param[i] = p;
    write_shadow(shadow, i, p);
  }
}

// ---- many tensors ----
// One launch over a chunk table: every tensor is cut into chunks of kChunk elements and each chunk names its
// tensor, so a block finds its work with two loads (no search, no division by tensor sizes); blocks walk the
// chunks grid-stride. Inside a chunk each thread takes packs of W elements: 8 where every pointer starts on a
// 16-byte boundary (float32 param/m/v as two 16-byte accesses each, bf16 grad and copy as one), else 4 where
// the 4-element packs are aligned, else 1. Per element the arithmetic is adamw_element, as in the one-tensor
// kernel, so both give the same bits.
struct TensorChunks {
  float* param;
  const void* grad;
  float* m;
  float* v;
  void* shadow;
  int64_t count;
  int64_t first_chunk;  // index of this tensor's first chunk in the table
  int width;            // elements per pack: 8, 4 or 1
};

constexpr int64_t kChunk = 1 << 16;  // elements per chunk (a multiple of every pack width)

// Accesses through the streaming intrinsics (ld/st.global.cs: the data is touched once per step): explicit
// vector instructions. Through Pack's memcpy, the stores to pointers read from the chunk table came out of
// nvcc as scalar 4-byte stores (the alignment of the vector type was not kept).
template <int B> struct Raw;
template <> struct Raw<2> { using type = unsigned short; };
template <> struct Raw<4> { using type = unsigned int; };
template <> struct Raw<8> { using type = uint2; };
template <> struct Raw<16> { using type = uint4; };

/** W consecutive elements of T as float, in accesses of at most 16 bytes (p aligned to one access). */
template <typename T, int W>
__device__ __forceinline__ void load_floats(const T* p, float (&out)[W]) {
  constexpr int P = W * int(sizeof(T)) <= 16 ? W : int(16 / sizeof(T));
  using R = typename Raw<P * int(sizeof(T))>::type;
#pragma unroll
  for (int a = 0; a < W; a += P) {
    const R raw = __ldcs(reinterpret_cast<const R*>(p + a));
    T v[P];
    memcpy(v, &raw, sizeof raw);
#pragma unroll
    for (int e = 0; e < P; e++) out[a + e] = float(load(&v[e]));
  }
}

template <int W>
__device__ __forceinline__ void store_floats(float* p, const float (&in)[W]) {
  if constexpr (W == 1) {
    __stcs(p, in[0]);
  } else {
#pragma unroll
    for (int a = 0; a < W; a += 4) __stcs(reinterpret_cast<float4*>(p + a), make_float4(in[a], in[a + 1], in[a + 2], in[a + 3]));
  }
}

/** The 16-bit pattern of x rounded to S (bf16 or f16). */
template <typename S>
__device__ __forceinline__ uint32_t half_bits(float x) {
  S h;
  store(&h, x);
  uint16_t u;
  memcpy(&u, &h, 2);
  return u;
}

template <typename S, int W>
__device__ __forceinline__ void store_shadow(void* shadow, int64_t i, const float (&w)[W]) {
  if constexpr (!std::is_same<S, NoShadow>::value) {
    static_assert(sizeof(S) == 2, "weight copies are 16-bit");
    S* dst = static_cast<S*>(shadow) + i;
    if constexpr (W == 1) {
      store(dst, w[0]);
    } else {
      uint32_t words[W / 2];
#pragma unroll
      for (int e = 0; e < W; e += 2) words[e / 2] = half_bits<S>(w[e]) | (half_bits<S>(w[e + 1]) << 16);
      if constexpr (W == 8) __stcs(reinterpret_cast<uint4*>(dst), make_uint4(words[0], words[1], words[2], words[3]));
      else __stcs(reinterpret_cast<uint2*>(dst), make_uint2(words[0], words[1]));
    }
  }
}

/** Elements [begin, end) of one tensor in packs of W (the remainder one by one). */
template <typename T, typename S, int W>
__device__ __forceinline__ void adamw_range(const TensorChunks& t, int64_t begin, int64_t end, const AdamWConstants& k) {
  const T* grad = static_cast<const T*>(t.grad);
  const int packs = int((end - begin) / W);
  for (int q = threadIdx.x; q < packs; q += blockDim.x) {
    const int64_t i = begin + int64_t(q) * W;
    float p[W], g[W], m[W], v[W];
    load_floats<float, W>(t.param + i, p);
    load_floats<T, W>(grad + i, g);
    load_floats<float, W>(t.m + i, m);
    load_floats<float, W>(t.v + i, v);
#pragma unroll
    for (int e = 0; e < W; e++) p[e] = adamw_element(p[e], g[e], m[e], v[e], k);
    store_floats<W>(t.m + i, m);
    store_floats<W>(t.v + i, v);
    store_floats<W>(t.param + i, p);
    store_shadow<S, W>(t.shadow, i, p);
  }
  if constexpr (W > 1) {
    const int64_t tail = begin + int64_t(packs) * W;
    if (tail < end) adamw_range<T, S, 1>(t, tail, end, k);
  }
}

template <typename T, typename S>
__global__ void __launch_bounds__(kThreads)
    adamw_many_kernel(const TensorChunks* tensors, const int32_t* chunk_tensor, int64_t chunks, AdamWConstants k) {
  if (!resolve_clip(k)) return;
  for (int64_t c = blockIdx.x; c < chunks; c += gridDim.x) {
    const TensorChunks t = tensors[chunk_tensor[c]];
    const int64_t begin = (c - t.first_chunk) * kChunk, end = min(t.count, begin + kChunk);
    if (t.width == 8) adamw_range<T, S, 8>(t, begin, end, k);
    else if (t.width == 4) adamw_range<T, S, 4>(t, begin, end, k);
    else adamw_range<T, S, 1>(t, begin, end, k);
  }
}

bool aligned_bytes(const void* p, size_t bytes) { return p == nullptr || reinterpret_cast<uintptr_t>(p) % bytes == 0; }

/** Widest pack whose every access is aligned: 8 (all 16-byte aligned), 4, or 1. */
int pack_width(const AdamWTensorArgs& a, int grad_dtype) {
  const size_t gbytes = size_t(dtype_bytes(grad_dtype)), sbytes = a.shadow ? size_t(dtype_bytes(a.shadow_dtype)) : 2;
  const bool floats = aligned_bytes(a.param, 16) && aligned_bytes(a.m, 16) && aligned_bytes(a.v, 16);
  if (floats && aligned_bytes(a.grad, std::min<size_t>(16, 8 * gbytes)) && aligned_bytes(a.shadow, std::min<size_t>(16, 8 * sbytes)))
    return 8;
  if (floats && aligned_bytes(a.grad, std::min<size_t>(16, 4 * gbytes)) && aligned_bytes(a.shadow, 4 * sbytes)) return 4;
  return 1;
}

/**
 * Two blocks a multiprocessor (at most one per chunk), walking the chunks grid-stride: fewer streams of 28 bytes a
 * parameter open at once read and write faster than a full machine of them (bench/cuda/adamw-layout.cu on an H100:
 * 2.86 TB/s at two blocks of 256 threads a multiprocessor, 2.72 at eight).
 */
constexpr int kManyBlocksPerSm = 2;
unsigned many_grid(int64_t chunks) { return unsigned(std::min<int64_t>(chunks, int64_t(sm_count()) * kManyBlocksPerSm)); }

template <typename S>
void launch_many(int grad_dtype, const std::vector<const AdamWTensorArgs*>& items, const AdamWConstants& k) {
  ChunkTable<TensorChunks> table;
  for (const AdamWTensorArgs* a : items) {
    if (a->count == 0) continue;
    table.add({a->param, a->grad, a->m, a->v, a->shadow, a->count, table.next_chunk(), pack_width(*a, grad_dtype)}, a->count,
              kChunk);
  }
  if (table.entries.empty()) return;
  const DeviceChunkTable<TensorChunks> device(table, "adamwMany (chunk table)");
  ANDROMEDA_CUDA_DISPATCH_FLOAT(grad_dtype, {
    adamw_many_kernel<T, S><<<many_grid(table.chunks()), kThreads, 0, stream()>>>(device.entries(), device.chunk_entry(),
                                                                                  table.chunks(), k);
  });
  check_launch("adamwMany");
}

}  // namespace

void adamw(float* param, int grad_dtype, const char* grad, float* m, float* v, int64_t count, const AdamWArgs& a,
           int shadow_dtype, char* shadow) {
  const AdamWConstants k = adamw_constants(a, "adamw");
  if (count == 0) return;
  ANDROMEDA_CUDA_DISPATCH_FLOAT(grad_dtype, {
    using G = T;
    if (!shadow) {
      adamw_kernel<G, NoShadow><<<grid_for(count), kThreads, 0, stream()>>>(param, reinterpret_cast<const G*>(grad), m, v, count, k, nullptr);
    } else if (shadow_dtype == int(DType::BF16)) {
      adamw_kernel<G, bf16><<<grid_for(count), kThreads, 0, stream()>>>(param, reinterpret_cast<const G*>(grad), m, v, count, k, reinterpret_cast<bf16*>(shadow));
    } else if (shadow_dtype == int(DType::F16)) {
      adamw_kernel<G, f16><<<grid_for(count), kThreads, 0, stream()>>>(param, reinterpret_cast<const G*>(grad), m, v, count, k, reinterpret_cast<f16*>(shadow));
    } else {
      throw std::invalid_argument("adamw: the weight copy must be bfloat16 or float16");
    }
  });
  check_launch("adamw");
}

void adamw_many(const AdamWTensorArgs* tensors, size_t n, const AdamWArgs& a) {
  // One launch per (gradient dtype, weight-copy dtype) present; usually exactly one.
  std::map<std::pair<int, int>, std::vector<const AdamWTensorArgs*>> groups;
  for (size_t i = 0; i < n; i++) {
    const AdamWTensorArgs& t = tensors[i];
    const int copy = t.shadow ? t.shadow_dtype : -1;
    if (t.shadow && copy != int(DType::BF16) && copy != int(DType::F16)) {
      throw std::invalid_argument("adamwMany: the weight copy of tensor " + std::to_string(i) + " must be bfloat16 or float16");
    }
    if (t.grad_dtype < 0 || t.grad_dtype > int(DType::F16)) {
      throw std::invalid_argument("adamwMany: the gradient of tensor " + std::to_string(i) + " is not a float dtype");
    }
    groups[{t.grad_dtype, copy}].push_back(&t);
  }
  const AdamWConstants k = adamw_constants(a, "adamwMany");
  for (const auto& [key, items] : groups) {
    if (key.second == -1) launch_many<NoShadow>(key.first, items, k);
    else if (key.second == int(DType::BF16)) launch_many<bf16>(key.first, items, k);
    else launch_many<f16>(key.first, items, k);
  }
}

}  // namespace andromeda::cuda
