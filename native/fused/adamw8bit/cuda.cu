// 8-bit AdamW over many tensors on CUDA (semantics: adamw8bit.h), one launch per gradient dtype: dequantize,
// update and requantize in registers. A warp owns one quantization block (256 elements, 8 per lane, lane + 32·j
// so every access of the warp is coalesced); the block's new absmax is a warp max-reduction, so no shared-memory
// round trip and no __syncthreads per block. Blocks of threads take chunks of kChunkBlocks quantization blocks
// from a chunk table (chunk_table.h) and walk them grid-stride. The two maps sit in shared memory for the
// nearest-code searches. Every operation is an explicitly rounded intrinsic in the CPU form's order, so nvcc
// cannot fuse multiply-adds and both engines give the same bits.
#include <algorithm>
#include <cmath>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "adamw8bit.h"
#include "../../cuda/engine.h"
#include "../../cuda/chunk_table.h"
#include "../../cuda/common.cuh"

namespace andromeda::cuda {
namespace {

struct Constants {
  float b1, b2, eps, decay, step, inv_sqrt_bc2, grad_scale;
};

/** Both maps, passed by value as a kernel parameter (2 KiB). */
struct Maps {
  float signed_map[kAdamW8bitMapSize];
  float unsigned_map[kAdamW8bitMapSize];
};

struct TensorBlocks {
  float* param;
  const void* grad;
  uint8_t* m;
  uint8_t* v;
  float* m_absmax;
  float* v_absmax;
  void* shadow;
  int64_t count;
  int64_t blocks;
  int64_t first_chunk;  // index of this tensor's first chunk in the table
  int shadow_dtype;     // -1: no copy
};

constexpr int kWarps = kThreads / 32;
constexpr int kPerLane = int(kAdamW8bitBlock / 32);
constexpr int64_t kChunkBlocks = 256;  // quantization blocks per chunk-table entry (65,536 elements)
static_assert(kThreads == kAdamW8bitMapSize, "each thread loads one value of each map into shared memory");

__device__ __forceinline__ void write_shadow(const TensorBlocks& t, int64_t i, float p) {
  if (t.shadow_dtype == int(DType::BF16)) store(static_cast<bf16*>(t.shadow) + i, p);
  else if (t.shadow_dtype == int(DType::F16)) store(static_cast<f16*>(t.shadow) + i, p);
}

__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}

template <typename G>
__device__ __forceinline__ void update_block(const TensorBlocks& t, int64_t block, const float* signed_map,
                                             const float* unsigned_map, const Constants& k, int lane) {
  const int64_t begin = block * kAdamW8bitBlock;
  const int n = int(t.count - begin < kAdamW8bitBlock ? t.count - begin : kAdamW8bitBlock);
  const G* grad = static_cast<const G*>(t.grad);
  const float m_scale = t.m_absmax[block], v_scale = t.v_absmax[block];
  float m[kPerLane], v[kPerLane];
  float m_max = 0.0f, v_max = 0.0f;
#pragma unroll
  for (int j = 0; j < kPerLane; j++) {
    const int e = lane + 32 * j;
    if (e >= n) continue;
    const int64_t i = begin + e;
    const float g = __fmul_rn(float(load(grad + i)), k.grad_scale);
    const float m_old = __fmul_rn(signed_map[__ldcs(t.m + i)], m_scale);
    const float v_old = __fmul_rn(unsigned_map[__ldcs(t.v + i)], v_scale);
    const float mi = __fadd_rn(__fmul_rn(k.b1, m_old), __fmul_rn(__fsub_rn(1.0f, k.b1), g));
    const float vi = __fadd_rn(__fmul_rn(k.b2, v_old), __fmul_rn(__fmul_rn(__fsub_rn(1.0f, k.b2), g), g));
    m[j] = mi;
    v[j] = vi;
    m_max = fmaxf(m_max, fabsf(mi));
    v_max = fmaxf(v_max, fabsf(vi));
    const float denominator = __fadd_rn(__fmul_rn(__fsqrt_rn(vi), k.inv_sqrt_bc2), k.eps);
    const float p = __fsub_rn(__fmul_rn(t.param[i], k.decay), __fdiv_rn(__fmul_rn(k.step, mi), denominator));
    t.param[i] = p;
    write_shadow(t, i, p);
  }
  m_max = warp_max(m_max);
  v_max = warp_max(v_max);
#pragma unroll
  for (int j = 0; j < kPerLane; j++) {
    const int e = lane + 32 * j;
    if (e >= n) continue;
    const int64_t i = begin + e;
    __stcs(t.m + i, adamw8bit_nearest_code(signed_map, m_max > 0.0f ? __fdiv_rn(m[j], m_max) : 0.0f));
    __stcs(t.v + i, adamw8bit_nearest_code(unsigned_map, v_max > 0.0f ? __fdiv_rn(v[j], v_max) : 0.0f));
  }
  if (lane == 0) {
    t.m_absmax[block] = m_max;
    t.v_absmax[block] = v_max;
  }
}

template <typename G>
__global__ void __launch_bounds__(kThreads) adamw8bit_many_kernel(const TensorBlocks* tensors, const int32_t* chunk_tensor,
                                                                   int64_t chunks, Maps maps, Constants k) {
  __shared__ float signed_map[kAdamW8bitMapSize], unsigned_map[kAdamW8bitMapSize];
  signed_map[threadIdx.x] = maps.signed_map[threadIdx.x];
  unsigned_map[threadIdx.x] = maps.unsigned_map[threadIdx.x];
  __syncthreads();
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  for (int64_t c = blockIdx.x; c < chunks; c += gridDim.x) {
    const TensorBlocks& t = tensors[chunk_tensor[c]];
    const int64_t first = (c - t.first_chunk) * kChunkBlocks, end = min(t.blocks, first + kChunkBlocks);
    for (int64_t b = first + warp; b < end; b += kWarps) update_block<G>(t, b, signed_map, unsigned_map, k, lane);
  }
}

/** Blocks that are all resident at once (the grid walks the chunks), at most one per chunk. */
template <typename G>
unsigned many_grid(int64_t chunks) {
  static const int per_sm = [] {
    int blocks = 0;
    check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, adamw8bit_many_kernel<G>, kThreads, 0),
          "adamw8bitMany (occupancy)");
    return std::max(blocks, 1);
  }();
  return unsigned(std::min<int64_t>(chunks, int64_t(sm_count()) * per_sm));
}

void launch_many(int grad_dtype, const std::vector<const AdamW8bitTensorArgs*>& items, const Maps& maps,
                 const Constants& k) {
  ChunkTable<TensorBlocks> table;
  for (const AdamW8bitTensorArgs* a : items) {
    if (a->count == 0) continue;
    const int64_t blocks = (a->count + kAdamW8bitBlock - 1) / kAdamW8bitBlock;
    table.add({a->param, a->grad, a->m, a->v, a->m_absmax, a->v_absmax, a->shadow, a->count, blocks, table.next_chunk(),
               a->shadow ? a->shadow_dtype : -1},
              blocks, kChunkBlocks);
  }
  if (table.entries.empty()) return;
  const DeviceChunkTable<TensorBlocks> device(table, "adamw8bitMany (chunk table)");
  ANDROMEDA_CUDA_DISPATCH_FLOAT(grad_dtype, {
    adamw8bit_many_kernel<T><<<many_grid<T>(table.chunks()), kThreads, 0, stream()>>>(device.entries(), device.chunk_entry(),
                                                                                     table.chunks(), maps, k);
  });
  check_launch("adamw8bitMany");
}

}  // namespace

void adamw8bit_many(const AdamW8bitTensorArgs* tensors, size_t n, const float* signed_map, const float* unsigned_map,
                    const AdamWArgs& a) {
  // The work list goes up by a copy from host memory freed on return, which a graph replay would read again.
  if (capturing()) throw std::runtime_error("adamw8bitMany inside captureGraph: its work list is a host→device copy");
  Maps maps;
  for (int i = 0; i < kAdamW8bitMapSize; i++) {
    const bool finite = std::isfinite(signed_map[i]) && std::isfinite(unsigned_map[i]);
    if (!finite || (i > 0 && (!(signed_map[i - 1] < signed_map[i]) || !(unsigned_map[i - 1] < unsigned_map[i])))) {
      throw std::invalid_argument("adamw8bitMany: the quantization maps must be finite and strictly increasing");
    }
    maps.signed_map[i] = signed_map[i];
    maps.unsigned_map[i] = unsigned_map[i];
  }
  // One launch per gradient dtype present; usually exactly one.
  std::map<int, std::vector<const AdamW8bitTensorArgs*>> groups;
  for (size_t i = 0; i < n; i++) {
    const AdamW8bitTensorArgs& t = tensors[i];
    if (t.shadow && t.shadow_dtype != int(DType::BF16) && t.shadow_dtype != int(DType::F16)) {
      throw std::invalid_argument("adamw8bitMany: the weight copy of tensor " + std::to_string(i) + " must be bfloat16 or float16");
    }
    if (t.grad_dtype < 0 || t.grad_dtype > int(DType::F16)) {
      throw std::invalid_argument("adamw8bitMany: the gradient of tensor " + std::to_string(i) + " is not a float dtype");
    }
    groups[t.grad_dtype].push_back(&t);
  }
  const Constants k{float(a.beta1), float(a.beta2), float(a.eps), float(1.0 - a.lr * a.weight_decay),
                    float(a.lr / a.bias_correction1), float(1.0 / std::sqrt(a.bias_correction2)), float(a.grad_scale)};
  for (const auto& [grad_dtype, items] : groups) launch_many(grad_dtype, items, maps, k);
}

}  // namespace andromeda::cuda
