// 8-bit AdamW over many tensors on CUDA (semantics: adamw8bit.h), one launch per gradient dtype: dequantize,
// update and requantize in registers. A warp owns one quantization block (256 elements, 8 per lane: 8 consecutive
// ones with 8- and 16-byte accesses when the block is full and the buffers aligned, else lane + 32·j); the block's
// new absmax is a warp max-reduction, so no shared-memory round trip and no __syncthreads per block. Blocks of
// threads take chunks of kChunkBlocks quantization blocks from a chunk table (chunk_table.h) and walk them
// grid-stride. The two maps sit in shared memory for dequantizing, padded against bank conflicts (BankPaddedMap);
// the nearest codes come from the maps' threshold records (threshold_records.h: one 16-byte load a moment), also in
// shared memory, or, for maps too crowded for those, from the searching loop over the maps' indexes
// (AdamW8bitCodeIndex). Every operation is an explicitly rounded intrinsic in the CPU form's order, so nvcc cannot
// fuse multiply-adds and both engines give the same bits.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "adamw8bit.h"
#include "threshold_records.h"
#include "../adamw/element.cuh"
#include "../../cuda/engine.h"
#include "../../cuda/chunk_table.h"
#include "../../cuda/common.cuh"

namespace andromeda::cuda {
namespace {

/** Both maps and their search indexes, passed by value as a kernel parameter (6 KiB). */
struct Maps {
  float signed_map[kAdamW8bitMapSize];
  float unsigned_map[kAdamW8bitMapSize];
  AdamW8bitCodeIndex signed_index;
  AdamW8bitCodeIndex unsigned_index;
};

/** The shared-memory copies a block searches. */
struct SharedMaps {
  const float* signed_map;
  const float* unsigned_map;
  const uint8_t* signed_start;
  const uint8_t* unsigned_start;
  const AdamW8bitCodeRecord* signed_records;  // AdamW8bitThresholdRecords, when the kernel searches by them
  const AdamW8bitCodeRecord* unsigned_records;
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
  bool vectors;         // every pointer aligned for the 8-elements-per-lane loads and stores of full blocks
};

/**
 * The shared-memory layout of a map: value i at i + i / 32, so that the dequantizing reads and the searches'
 * neighbouring values of codes 32 apart fall in different banks.
 */
struct BankPaddedMap {
  __host__ __device__ static constexpr int at(int i) { return i + (i >> 5); }
};
constexpr int kPaddedMapSize = BankPaddedMap::at(kAdamW8bitMapSize - 1) + 1;

constexpr int kWarps = kThreads / 32;
constexpr int kPerLane = int(kAdamW8bitBlock / 32);
constexpr int64_t kChunkBlocks = 256;  // quantization blocks per chunk-table entry (65,536 elements)
static_assert(kThreads == kAdamW8bitMapSize, "each thread loads one value of each map into shared memory");

__device__ __forceinline__ void write_shadow(const TensorBlocks& t, int64_t i, float p) {
  if (t.shadow_dtype == int(DType::BF16)) store(static_cast<bf16*>(t.shadow) + i, p);
  else if (t.shadow_dtype == int(DType::F16)) store(static_cast<f16*>(t.shadow) + i, p);
}

/** The code of a moment scaled by its block's inverse: from the threshold records, or by the loop for other maps. */
template <bool Records>
__device__ __forceinline__ uint8_t nearest_code(const float* map, const uint8_t* start, const AdamW8bitCodeRecord* records,
                                                float moment, float inverse) {
  const float x = adamw8bit_scaled(moment, inverse);
  if constexpr (Records) return uint8_t(adamw8bit_record_code(records, x));
  else return adamw8bit_nearest_code<BankPaddedMap>(map, start, x);
}

__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}

/** Eight consecutive gradients as float32 (16-byte loads for the 2-byte types). */
template <typename G>
__device__ __forceinline__ void load8(const G* p, float* out) {
#pragma unroll
  for (int j = 0; j < 8; j++) out[j] = float(load(p + j));
}
template <typename H>
__device__ __forceinline__ void load8_half(const H* p, float* out) {
  const uint4 raw = *reinterpret_cast<const uint4*>(p);
  const H* h = reinterpret_cast<const H*>(&raw);
#pragma unroll
  for (int j = 0; j < 8; j++) out[j] = load(h + j);
}
template <>
__device__ __forceinline__ void load8<bf16>(const bf16* p, float* out) { load8_half(p, out); }
template <>
__device__ __forceinline__ void load8<f16>(const f16* p, float* out) { load8_half(p, out); }
template <>
__device__ __forceinline__ void load8<float>(const float* p, float* out) {
  const float4 a = *reinterpret_cast<const float4*>(p), b = *reinterpret_cast<const float4*>(p + 4);
  out[0] = a.x, out[1] = a.y, out[2] = a.z, out[3] = a.w, out[4] = b.x, out[5] = b.y, out[6] = b.z, out[7] = b.w;
}

template <typename H>
__device__ __forceinline__ void store8_half(H* p, const float* x) {
  uint4 raw;
  H* h = reinterpret_cast<H*>(&raw);
#pragma unroll
  for (int j = 0; j < 8; j++) store(h + j, x[j]);
  *reinterpret_cast<uint4*>(p) = raw;
}

/**
 * A full quantization block with each lane on 8 consecutive elements (lane·8 … lane·8 + 7): every load and store
 * is 8 or 16 bytes wide, where the strided form below moves 1-byte codes one per lane. Each element takes exactly
 * the strided form's operations, and the block maximum does not depend on which lane saw which element, so both
 * forms give the same bits.
 */
template <typename G, bool Records>
__device__ __forceinline__ void update_full_block(const TensorBlocks& t, int64_t block, const SharedMaps& maps,
                                                  const AdamWConstants& k, int lane) {
  const int64_t i0 = block * kAdamW8bitBlock + int64_t(lane) * 8;
  const float m_scale = t.m_absmax[block], v_scale = t.v_absmax[block];
  float g[8], m[8], v[8], p[8];
  load8(static_cast<const G*>(t.grad) + i0, g);
  const uint2 m_codes = __ldcs(reinterpret_cast<const uint2*>(t.m + i0));
  const uint2 v_codes = __ldcs(reinterpret_cast<const uint2*>(t.v + i0));
  const uint8_t* mc = reinterpret_cast<const uint8_t*>(&m_codes);
  const uint8_t* vc = reinterpret_cast<const uint8_t*>(&v_codes);
  load8(t.param + i0, p);
  float m_max = 0.0f, v_max = 0.0f;
#pragma unroll
  for (int j = 0; j < 8; j++) {
    const float m_old = __fmul_rn(maps.signed_map[BankPaddedMap::at(mc[j])], m_scale);
    const float v_old = __fmul_rn(maps.unsigned_map[BankPaddedMap::at(vc[j])], v_scale);
    m[j] = m_old;
    v[j] = v_old;
    p[j] = adamw_element(p[j], g[j], m[j], v[j], k);
    m_max = fmaxf(m_max, fabsf(m[j]));
    v_max = fmaxf(v_max, fabsf(v[j]));
  }
  *reinterpret_cast<float4*>(t.param + i0) = make_float4(p[0], p[1], p[2], p[3]);
  *reinterpret_cast<float4*>(t.param + i0 + 4) = make_float4(p[4], p[5], p[6], p[7]);
  if (t.shadow_dtype == int(DType::BF16)) store8_half(static_cast<bf16*>(t.shadow) + i0, p);
  else if (t.shadow_dtype == int(DType::F16)) store8_half(static_cast<f16*>(t.shadow) + i0, p);
  m_max = warp_max(m_max);
  v_max = warp_max(v_max);
  const float m_inverse = adamw8bit_inverse_scale(m_max), v_inverse = adamw8bit_inverse_scale(v_max);
  uint2 m_out, v_out;
  uint8_t* mo = reinterpret_cast<uint8_t*>(&m_out);
  uint8_t* vo = reinterpret_cast<uint8_t*>(&v_out);
#pragma unroll
  for (int j = 0; j < 8; j++) {
    mo[j] = nearest_code<Records>(maps.signed_map, maps.signed_start, maps.signed_records, m[j], m_inverse);
    vo[j] = nearest_code<Records>(maps.unsigned_map, maps.unsigned_start, maps.unsigned_records, v[j], v_inverse);
  }
  __stcs(reinterpret_cast<uint2*>(t.m + i0), m_out);
  __stcs(reinterpret_cast<uint2*>(t.v + i0), v_out);
  if (lane == 0) {
    t.m_absmax[block] = m_max;
    t.v_absmax[block] = v_max;
  }
}

template <typename G, bool Records>
__device__ __forceinline__ void update_block(const TensorBlocks& t, int64_t block, const SharedMaps& maps,
                                             const AdamWConstants& k, int lane) {
  const int64_t begin = block * kAdamW8bitBlock;
  const int n = int(t.count - begin < kAdamW8bitBlock ? t.count - begin : kAdamW8bitBlock);
  if (t.vectors && n == kAdamW8bitBlock) {
    update_full_block<G, Records>(t, block, maps, k, lane);
    return;
  }
  const G* grad = static_cast<const G*>(t.grad);
  const float m_scale = t.m_absmax[block], v_scale = t.v_absmax[block];
  float m[kPerLane], v[kPerLane];
  float m_max = 0.0f, v_max = 0.0f;
#pragma unroll
  for (int j = 0; j < kPerLane; j++) {
    const int e = lane + 32 * j;
    if (e >= n) continue;
    const int64_t i = begin + e;
    const float m_old = __fmul_rn(maps.signed_map[BankPaddedMap::at(__ldcs(t.m + i))], m_scale);
    const float v_old = __fmul_rn(maps.unsigned_map[BankPaddedMap::at(__ldcs(t.v + i))], v_scale);
    m[j] = m_old;
    v[j] = v_old;
    const float p = adamw_element(t.param[i], float(load(grad + i)), m[j], v[j], k);
    m_max = fmaxf(m_max, fabsf(m[j]));
    v_max = fmaxf(v_max, fabsf(v[j]));
    t.param[i] = p;
    write_shadow(t, i, p);
  }
  m_max = warp_max(m_max);
  v_max = warp_max(v_max);
  const float m_inverse = adamw8bit_inverse_scale(m_max), v_inverse = adamw8bit_inverse_scale(v_max);
#pragma unroll
  for (int j = 0; j < kPerLane; j++) {
    const int e = lane + 32 * j;
    if (e >= n) continue;
    const int64_t i = begin + e;
    __stcs(t.m + i, nearest_code<Records>(maps.signed_map, maps.signed_start, maps.signed_records, m[j], m_inverse));
    __stcs(t.v + i, nearest_code<Records>(maps.unsigned_map, maps.unsigned_start, maps.unsigned_records, v[j], v_inverse));
  }
  if (lane == 0) {
    t.m_absmax[block] = m_max;
    t.v_absmax[block] = v_max;
  }
}

/** Dynamic shared memory of the kernel that searches by threshold records: both maps' records. */
constexpr size_t kRecordBytes = 2 * sizeof(AdamW8bitThresholdRecords);

/**
 * Records: the codes come from the threshold records (`records`: the signed map's, then the unsigned map's, in
 * device memory, copied to dynamic shared memory); otherwise from the searching loop over the maps and indexes.
 */
template <typename G, bool Records>
__global__ void __launch_bounds__(kThreads) adamw8bit_many_kernel(const TensorBlocks* tensors, const int32_t* chunk_tensor,
                                                                   int64_t chunks, Maps maps, const AdamW8bitCodeRecord* records,
                                                                   AdamWConstants k) {
  if (!resolve_clip(k)) return;
  extern __shared__ AdamW8bitCodeRecord shared_records[];
  __shared__ float signed_map[kPaddedMapSize], unsigned_map[kPaddedMapSize];
  __shared__ uint8_t signed_start[Records ? 1 : AdamW8bitCodeIndex::kBuckets];
  __shared__ uint8_t unsigned_start[Records ? 1 : AdamW8bitCodeIndex::kBuckets];
  signed_map[BankPaddedMap::at(threadIdx.x)] = maps.signed_map[threadIdx.x];
  unsigned_map[BankPaddedMap::at(threadIdx.x)] = maps.unsigned_map[threadIdx.x];
  if constexpr (Records) {
    for (int r = threadIdx.x; r < 2 * AdamW8bitCodeIndex::kBuckets; r += kThreads) shared_records[r] = records[r];
  } else {
    for (int b = threadIdx.x; b < AdamW8bitCodeIndex::kBuckets; b += kThreads) {
      signed_start[b] = maps.signed_index.start[b];
      unsigned_start[b] = maps.unsigned_index.start[b];
    }
  }
  __syncthreads();
  const SharedMaps shared{signed_map,     unsigned_map,
                          signed_start,   unsigned_start,
                          shared_records, shared_records + AdamW8bitCodeIndex::kBuckets};
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  for (int64_t c = blockIdx.x; c < chunks; c += gridDim.x) {
    const TensorBlocks& t = tensors[chunk_tensor[c]];
    const int64_t first = (c - t.first_chunk) * kChunkBlocks, end = min(t.blocks, first + kChunkBlocks);
    for (int64_t b = first + warp; b < end; b += kWarps) update_block<G, Records>(t, b, shared, k, lane);
  }
}

/**
 * Blocks that are all resident at once (the grid walks the chunks), at most one per chunk; also lets the records
 * kernel have its dynamic shared memory (past the default 48 KiB).
 */
template <typename G, bool Records>
unsigned many_grid(int64_t chunks) {
  static const int per_sm = [] {
    const size_t dynamic = Records ? kRecordBytes : 0;
    if (Records)
      check(cudaFuncSetAttribute(adamw8bit_many_kernel<G, Records>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 int(dynamic)),
            "adamw8bitMany (shared memory)");
    int blocks = 0;
    check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, adamw8bit_many_kernel<G, Records>, kThreads, dynamic),
          "adamw8bitMany (occupancy)");
    return std::max(blocks, 1);
  }();
  return unsigned(std::min<int64_t>(chunks, int64_t(sm_count()) * per_sm));
}

template <typename G, bool Records>
void launch_kernel(const DeviceChunkTable<TensorBlocks>& device, int64_t chunks, const Maps& maps,
                   const AdamW8bitCodeRecord* records,
                   const AdamWConstants& k) {
  adamw8bit_many_kernel<G, Records><<<many_grid<G, Records>(chunks), kThreads, Records ? kRecordBytes : 0, stream()>>>(
      device.entries(), device.chunk_entry(), chunks, maps, records, k);
}

/**
 * Both maps' threshold records, built once for the maps of the last call (the training loop passes the same maps
 * every step); null where a map does not qualify (the kernel then searches with the loop).
 */
const AdamW8bitThresholdRecords* records_for(const Maps& maps) {
  static float signed_seen[kAdamW8bitMapSize], unsigned_seen[kAdamW8bitMapSize];
  static std::unique_ptr<AdamW8bitThresholdRecords[]> records;
  static bool built = false, usable = false;
  if (!built || std::memcmp(signed_seen, maps.signed_map, sizeof signed_seen) != 0 ||
      std::memcmp(unsigned_seen, maps.unsigned_map, sizeof unsigned_seen) != 0) {
    if (!records) records.reset(new AdamW8bitThresholdRecords[2]);
    usable = records[0].build(maps.signed_map) && records[1].build(maps.unsigned_map);
    std::memcpy(signed_seen, maps.signed_map, sizeof signed_seen);
    std::memcpy(unsigned_seen, maps.unsigned_map, sizeof unsigned_seen);
    built = true;
  }
  return usable ? records.get() : nullptr;
}

void launch_many(int grad_dtype, const std::vector<const AdamW8bitTensorArgs*>& items, const Maps& maps,
                 const AdamWConstants& k) {
  ChunkTable<TensorBlocks> table;
  for (const AdamW8bitTensorArgs* a : items) {
    if (a->count == 0) continue;
    const int64_t blocks = (a->count + kAdamW8bitBlock - 1) / kAdamW8bitBlock;
    const auto aligned = [](const void* p, uintptr_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; };
    const bool vectors = aligned(a->param, 16) && aligned(a->grad, 16) && aligned(a->m, 8) && aligned(a->v, 8) &&
                         (!a->shadow || aligned(a->shadow, 16));
    table.add({a->param, a->grad, a->m, a->v, a->m_absmax, a->v_absmax, a->shadow, a->count, blocks, table.next_chunk(),
               a->shadow ? a->shadow_dtype : -1, vectors},
              blocks, kChunkBlocks);
  }
  if (table.entries.empty()) return;
  const DeviceChunkTable<TensorBlocks> device(table, "adamw8bitMany (chunk table)");
  // The threshold records where both maps allow them (bitsandbytes' always do), the searching loop otherwise.
  const AdamW8bitThresholdRecords* records = records_for(maps);
  if (records) {
    static PinnedStaging staging;
    Scratch on_device(kRecordBytes);
    std::memcpy(staging.reserve(kRecordBytes, "adamw8bitMany (records)"), records, kRecordBytes);
    staging.copy_to(on_device.as<char>(), kRecordBytes, "adamw8bitMany (records)");
    ANDROMEDA_CUDA_DISPATCH_FLOAT(grad_dtype, {
      launch_kernel<T, true>(device, table.chunks(), maps, on_device.as<AdamW8bitCodeRecord>(), k);
    });
  } else {
    ANDROMEDA_CUDA_DISPATCH_FLOAT(grad_dtype, { launch_kernel<T, false>(device, table.chunks(), maps, nullptr, k); });
  }
  check_launch("adamw8bitMany");
}

}  // namespace

void adamw8bit_many(const AdamW8bitTensorArgs* tensors, size_t n, const float* signed_map, const float* unsigned_map,
                    const AdamWArgs& a) {
  Maps maps;
  for (int i = 0; i < kAdamW8bitMapSize; i++) {
    const bool finite = std::isfinite(signed_map[i]) && std::isfinite(unsigned_map[i]);
    if (!finite || (i > 0 && (!(signed_map[i - 1] < signed_map[i]) || !(unsigned_map[i - 1] < unsigned_map[i])))) {
      throw std::invalid_argument("adamw8bitMany: the quantization maps must be finite and strictly increasing");
    }
    maps.signed_map[i] = signed_map[i];
    maps.unsigned_map[i] = unsigned_map[i];
  }
  maps.signed_index.build(signed_map);
  maps.unsigned_index.build(unsigned_map);
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
  const AdamWConstants k = adamw_constants(a, "adamw8bitMany");
  for (const auto& [grad_dtype, items] : groups) launch_many(grad_dtype, items, maps, k);
}

}  // namespace andromeda::cuda
