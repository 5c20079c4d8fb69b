// Paged split-KV attention (flash-decoding over block tables) and the combine of the splits. NOTES.md (this folder)
// has the design and the numbers it was sized by.
//
// One CTA = (key split, row block, sequence × KV head). Its rows are the (query, head) pairs of the sequence whose
// head reads this KV head, query-major (row r: query r / group, head kv_head + kv_heads · (r % group)), 32 at a
// time; its keys are the split's range, cut at the last position the row block can see. Per 32-key sub-tile:
//   1. the raw K/V rows arrive by cp.async (zero-filled for keys outside the range or in a block with a bad id),
//      issued one sub-tile ahead, so the loads overlap the arithmetic of the previous sub-tile;
//   2. K becomes K̃ = [A | B] and V is copied, in the operand type;
//   3. S = Q̃ K̃ᵀ, already in base-2 units; ALiBi and the causal / validity masks are applied as S is stored;
//   4. online softmax per row (one warp per 4 rows, a lane per key), in fp32;
//   5. O = O · correction + P V.
// Two forms of the products: bf16 pools use the tensor cores (mma.sync m16n8k16, bf16 operands, fp32 accumulators:
// Q̃, K̃ and P rounded to bf16, as the dense kernels do); float32 pools compute on CUDA cores in fp32 (register
// tiles of 2 rows × 2 keys for S, 4 features × D/32 rows for O), so their results keep float32 accuracy.
// Rotary, xPos and the key scale g_h (a KV head shared by query heads with different g_h) are split between the
// two sides so that one K̃ per KV head serves every head (as the dense path's split key scale, attention/NOTES.md):
//   on a rotary pair (f, f' = f + r/2), c_h = (g_f + g_f')/2, d_h = (g_f − g_f')/2, z = ζ^(±(p − anchor)/B),
//   q' = z_q R(p_q) q,  A = z_k R(p_k) k,  B = z_k J R(−p_k) k   (J = diag(1, −1) on the pair),
//   score = Σ_f (c_h q')_f A_f + Σ_{f<r} (d_h q')_f B_f   (c_h = g past the rotary features, where A = k),
// so Q̃ = scale·log2(e)·[c_h ⊙ q' | d_h ⊙ q'] is built once per row and K̃ = [A | B] once per key. Without a key
// scale c = 1 and the B half is dropped. The xPos anchor is the row block's first query position and the key
// range ends at its last one, so every factor a visible pair meets stays within ζ^(±rows/B).
#pragma once
#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "../attention/mma.cuh"
#include "../common.cuh"
#include "batch.cuh"

namespace andromeda::cuda::paged {

constexpr int kAttentionThreads = 256;
constexpr int kAttentionWarps = kAttentionThreads / 32;
constexpr int kRows = 32;   // (query, head) rows per row block
constexpr int kKeys = 32;   // keys per sub-tile
constexpr int kScoreLd = kKeys + 4;   // fp32 scores
constexpr int kProbLd = kKeys + 8;    // bf16 probabilities (the tensor-core form's A operand)
constexpr int kMaxAlibiHeads = 256;
constexpr int kMaxRotaryPairs = 64;  // rotary_dim ≤ 128 (= the largest head dim)

static_assert(kRows == 4 * kAttentionWarps, "the softmax gives each warp 4 rows");
static_assert(kRows == 32 && kKeys == 32, "the product tiles assume 32 rows × 32 keys");

struct AttentionParams {
  BatchView batch;
  const void* q;           // [total_queries, heads, D]
  const void* key_pool;    // [num_blocks, block_size, kv_heads, D]
  const void* value_pool;
  void* out;               // [total_queries, heads, D]; written directly when part_out is null (one split)
  float* part_out;         // [total_queries · heads][splits][D]: unnormalised partial rows
  float2* part_stats;      // [total_queries · heads][splits]: (max, sum) in base 2
  int heads, kv_heads, group;
  int rotary_dim;
  int key_dim;             // features of Q̃ and K̃: D, plus rotary_dim with a key scale (the B half)
  int operand_ld;          // row stride of Q̃ and K̃ in shared memory (elements of the operand type)
  int splits, chunk;       // key splits and keys per split
  float scale_log2;        // scale · log2(e)
  int has_alibi, has_xpos;
  const void* key_scale;   // [heads, D] in float32 or bf16 (key_scale_bf16), or null
  int key_scale_bf16;
  float alibi_slope_log2[kMaxAlibiHeads];
  float inv_freq[kMaxRotaryPairs];
  float xpos_rate[kMaxRotaryPairs];  // log2(ζ_f) / B
};

/**
 * The kernel's parameters for a checked call (attention.cu's paged_attention; bench/cuda/paged-splits.cu): the
 * batch, the buffers, ALiBi slopes and the scale in base-2 units, the rotary frequencies and xPos rates. The launch
 * fills in splits, chunk, operand_ld and the scratch for the splits.
 */
inline AttentionParams attention_params(const andromeda::PagedAttentionArgs& a, const void* q, const void* key_pool,
                                        const void* value_pool, void* out) {
  constexpr double kLog2e = 1.4426950408889634;
  AttentionParams p{};
  p.batch = batch_view(a);
  p.q = q;
  p.key_pool = key_pool;
  p.value_pool = value_pool;
  p.out = out;
  p.heads = int(a.heads);
  p.kv_heads = int(a.kv_heads);
  p.group = int(a.heads / a.kv_heads);
  p.rotary_dim = int(a.rotary_dim);
  p.key_scale = a.key_scale;
  p.key_scale_bf16 = a.key_scale_dtype == int(DType::BF16);
  p.key_dim = int(a.head_dim + (a.key_scale && a.rotary_dim > 0 ? a.rotary_dim : 0));
  p.scale_log2 = float(a.scale * kLog2e);
  if (a.alibi_slopes) {
    p.has_alibi = 1;
    for (int64_t h = 0; h < a.heads; h++) p.alibi_slope_log2[h] = float(double(a.alibi_slopes[h]) * kLog2e);
  }
  const int pairs = int(a.rotary_dim / 2);
  for (int f = 0; f < pairs; f++) p.inv_freq[f] = a.rotary_inv_freq[f];
  if (a.xpos_scale_base != 0) {
    p.has_xpos = 1;
    const double r = double(a.rotary_dim);
    for (int f = 0; f < pairs; f++)
      p.xpos_rate[f] = float(std::log2((2.0 * f + 0.4 * r) / (1.4 * r)) / a.xpos_scale_base);
  }
  return p;
}

/** The products' form for a pool dtype: tensor cores for bf16, fp32 CUDA cores for float32. */
template <typename T>
constexpr bool kTensorCores = std::is_same_v<T, __nv_bfloat16>;

/**
 * Row stride of Q̃ / K̃ in shared memory, in elements of the operand type. fp32: a multiple of 4 that is odd in
 * 16-byte units (conflict-free float4 loads); bf16: whole k16 steps plus 8 (conflict-free ldmatrix rows).
 */
template <typename T>
inline int operand_ld(int key_dim) {
  if constexpr (kTensorCores<T>) {
    return (key_dim + 15) / 16 * 16 + 8;
  } else {
    const int ld = (key_dim + 3) / 4 * 4;
    return (ld / 4) % 2 == 1 ? ld : ld + 4;
  }
}

template <typename T, int D>
struct AttentionSmem {
  using Operand = std::conditional_t<kTensorCores<T>, __nv_bfloat16, float>;
  static constexpr int kRawRow = D * int(sizeof(T));            // bytes of one K or V row as stored
  static constexpr int kValueLd = kTensorCores<T> ? D + 8 : D;  // row stride of V (elements)
  static constexpr size_t kFixedBytes =
      sizeof(Operand) * size_t(kKeys) * kValueLd                  // V
      + sizeof(float) * (size_t(kRows) * kScoreLd + 4 * kRows + kKeys)  // S (fp32 P); row positions, slopes,
                                                                  // corrections, sums; key flags
      + (kTensorCores<T> ? sizeof(__nv_bfloat16) * size_t(kRows) * kProbLd : 0)  // P in bf16
      + size_t(2) * kKeys * kRawRow                               // raw K and V of the sub-tile in flight
      + sizeof(int) * kKeys                                       // its keys' flags (a block to read from)
      + sizeof(float2) * size_t(kKeys + 1) * kMaxRotaryPairs      // rotation tables (see the kernel)
      + sizeof(float) * 2 * kMaxRotaryPairs;                      // xPos rates, rotary frequencies
  /** Bytes for a Q̃/K̃ stride of `ld` elements (Q̃ and K̃ first: both start 16-byte aligned). */
  static size_t bytes(int ld) { return sizeof(Operand) * size_t(kRows + kKeys) * ld + kFixedBytes; }
};

/** (cos θ, sin θ) of θ = position · inv_freq: the product and its reduction to [−π, π] in double (θ reaches 10⁵). */
__device__ __forceinline__ float2 rotation(int64_t position, float inv_freq) {
  const double theta = double(position) * double(inv_freq);
  const double turns = rint(theta * 0.15915494309189535);
  const float reduced = float(fma(-turns, 6.283185307179586, theta));
  float s, c;
  sincosf(reduced, &s, &c);
  return make_float2(c, s);
}

/**
 * (cos θ, sin θ) of θ = offset · inv_freq for a key's offset within its sub-tile (< kKeys, so |θ| < 32 with
 * inv_freq ≤ 1): in float, whose product and sincosf's own reduction are exact enough at such angles.
 */
__device__ __forceinline__ float2 small_rotation(int offset, float inv_freq) {
  float s, c;
  sincosf(float(offset) * inv_freq, &s, &c);
  return make_float2(c, s);
}

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ void store_as(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_as(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

__device__ __forceinline__ void ldmatrix_x2(uint32_t (&r)[2], const void* smem) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(attention::smem_address(smem)));
}
__device__ __forceinline__ void ldmatrix_x2_trans(uint32_t (&r)[2], const void* smem) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(attention::smem_address(smem)));
}

template <typename T, int D>
__global__ void __launch_bounds__(kAttentionThreads, 2) paged_attention_kernel(const __grid_constant__ AttentionParams p) {
  using Smem = AttentionSmem<T, D>;
  using Operand = typename Smem::Operand;
  constexpr bool kMma = kTensorCores<T>;
  constexpr int kValueLd = Smem::kValueLd;
  constexpr int kChunksPerRow = Smem::kRawRow / 16;
  constexpr int kKeysPerPass = kAttentionThreads / kChunksPerRow;  // keys whose rows one pass of the threads copies
  static_assert(kAttentionThreads % kChunksPerRow == 0, "a pass copies whole rows");
  // fp32 form: the O tile of a thread is 4 features (f0 .. f0 + 3) of rows o_row0 + kRowStride · s.
  constexpr int kFeatureGroups = D / 4;
  constexpr int kRowStride = kAttentionThreads / kFeatureGroups;
  // Tensor-core form: warp w owns the 16-row m tile w % 2 and D / 32 n8 tiles of features from (w / 2) · D / 4.
  constexpr int kTiles = D / 32;
  constexpr int kOutRegs = kMma ? kTiles : D / 32;  // o[kOutRegs][4]
  static_assert((D / 32) * kRowStride == kRows, "fp32 O tiles must cover the row block");
  static_assert(std::is_same_v<T, Operand>, "V is copied as stored: the operand type is the pool's");

  extern __shared__ __align__(16) unsigned char smem[];
  const int ld = p.operand_ld;
  Operand* sQ = reinterpret_cast<Operand*>(smem);
  Operand* sK = sQ + kRows * ld;
  Operand* sV = sK + kKeys * ld;
  float* sS = reinterpret_cast<float*>(sV + kKeys * kValueLd);
  int* sRowPos = reinterpret_cast<int*>(sS + kRows * kScoreLd);
  float* sRowSlope = reinterpret_cast<float*>(sRowPos + kRows);
  float* sCorr = sRowSlope + kRows;
  float* sSum = sCorr + kRows;
  int* sKeyOk = reinterpret_cast<int*>(sSum + kRows);
  __nv_bfloat16* sP = reinterpret_cast<__nv_bfloat16*>(sKeyOk + kKeys);
  unsigned char* sRawK = reinterpret_cast<unsigned char*>(sP + (kMma ? kRows * kProbLd : 0));
  unsigned char* sRawV = sRawK + kKeys * Smem::kRawRow;
  // Rotations (cos, sin) by pair: first those of the row block's query positions ([query][pair]), then, once Q̃
  // is built, those of the key offsets jl·θ_f within a sub-tile ([jl][pair]); sBase holds the sub-tile's j0·θ_f.
  // A key's rotation is then the product of two table entries (angle addition) instead of a reduction and a sincos;
  // with xPos both entries carry their share of the key's factor ζ_f^((anchor − j0 − jl)/B).
  int* sRawKeyOk = reinterpret_cast<int*>(sRawV + kKeys * Smem::kRawRow);
  float2* sRot = reinterpret_cast<float2*>(sRawKeyOk + kKeys);
  float2* sBase = sRot + kKeys * kMaxRotaryPairs;
  float* sXposRate = reinterpret_cast<float*>(sBase + kMaxRotaryPairs);
  float* sInvFreq = sXposRate + kMaxRotaryPairs;  // lanes read different pairs: shared, not the parameter bank

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int split = blockIdx.x;
  const int seq_index = int(blockIdx.z / unsigned(p.kv_heads)), kv_head = int(blockIdx.z % unsigned(p.kv_heads));
  const Sequence seq = read_sequence(p.batch, seq_index);
  if (!seq.valid || seq.query_len == 0) return;
  const int64_t len = seq.context_len;
  const int64_t split_begin = int64_t(split) * p.chunk;
  if (split_begin >= len) return;  // the combine reads only the splits that start inside the context
  const int64_t split_end = min(len, split_begin + p.chunk);
  const int64_t first_position = len - seq.query_len;
  const int rows_total = p.group * seq.query_len;
  const int row_blocks = (rows_total + kRows - 1) / kRows;
  const int64_t row_stride = int64_t(p.kv_heads) * D;  // elements between consecutive pool rows of one KV head
  const T* key_base = static_cast<const T*>(p.key_pool) + int64_t(kv_head) * D;
  const T* value_base = static_cast<const T*>(p.value_pool) + int64_t(kv_head) * D;
  const int half = p.rotary_dim / 2;
  const bool split_key = p.key_dim > D;
  // Fragment coordinates of the tensor-core form (g: row in the 8-row group, t: column pair).
  const int g = lane >> 2, t = lane & 3;

  // Read by every row block; the first row block's opening barrier publishes them.
  for (int f = tid; f < half; f += kAttentionThreads) {
    sXposRate[f] = p.has_xpos ? p.xpos_rate[f] : 0.f;
    sInvFreq[f] = p.inv_freq[f];
  }

  for (int block = blockIdx.y; block < row_blocks; block += gridDim.y) {
    const int row0 = block * kRows;
    const int rows = min(kRows, rows_total - row0);
    const int64_t anchor = first_position + row0 / p.group;
    const int64_t last_position = first_position + (row0 + rows - 1) / p.group;
    const int64_t key_end = min(split_end, last_position + 1);
    auto out_row_of = [&](int r) {
      const int gr = row0 + r;
      return (seq.first_row + gr / p.group) * p.heads + kv_head + p.kv_heads * (gr % p.group);
    };

    // Raw K/V rows of keys [j0, j0 + kKeys) into the staging buffers (zeros where no key is read), with each
    // key's flag. A thread copies one 16-byte chunk of the K and the V row of each of its keys, so it looks a key's
    // block up once for both.
    auto issue_loads = [&](int64_t j0) {
      const int chunk = tid % kChunksPerRow;
      for (int jl = tid / kChunksPerRow; jl < kKeys; jl += kKeysPerPass) {
        const int64_t j = j0 + jl;
        const PoolRow at = j < key_end ? pool_row(p.batch, seq, j) : PoolRow{-1, 0};
        const int64_t offset = at.block >= 0 ? (at.block * p.batch.block_size + at.slot) * row_stride : 0;
        const int bytes = jl * Smem::kRawRow + chunk * 16;
        attention::cp_async_16(sRawK + bytes, reinterpret_cast<const unsigned char*>(key_base + offset) + chunk * 16,
                               at.block >= 0);
        attention::cp_async_16(sRawV + bytes,
                               reinterpret_cast<const unsigned char*>(value_base + offset) + chunk * 16, at.block >= 0);
        if (chunk == 0) sRawKeyOk[jl] = at.block >= 0;
      }
      attention::cp_async_commit();
    };

    __syncthreads();  // the previous row block is done with every buffer
    if (split_begin < key_end) issue_loads(split_begin);
    const int64_t query0 = row0 / p.group;  // the row block's first query (of the sequence)
    const int queries = int((row0 + rows - 1) / p.group - query0 + 1);
    for (int qi = warp; qi < queries; qi += kAttentionWarps)
      for (int f = lane; f < half; f += 32)
        sRot[qi * kMaxRotaryPairs + f] = rotation(first_position + query0 + qi, sInvFreq[f]);
    __syncthreads();

    // Q̃ rows (scale · log2 e folded in), their positions and slopes: a warp per row, a lane per rotary pair or
    // per feature past the rotary ones, so each row's query, head and position are worked out once.
    for (int r = warp; r < kRows; r += kAttentionWarps) {
      Operand* dst = sQ + r * ld;
      if (r >= rows) {
        for (int f = lane; f < ld; f += 32) store_as(dst + f, 0.f);
        continue;
      }
      const int gr = row0 + r, i = gr / p.group, head = kv_head + p.kv_heads * (gr % p.group);
      const int64_t position = first_position + i;
      const T* qrow = static_cast<const T*>(p.q) + ((seq.first_row + i) * p.heads + head) * D;
      const bool gs = p.key_scale != nullptr;
      const int64_t gs_row = int64_t(head) * D;
      // The key scale's feature f for this row's head (float32 or bf16 as the model keeps it).
      auto g_at = [&](int f) {
        return p.key_scale_bf16 ? __bfloat162float(static_cast<const __nv_bfloat16*>(p.key_scale)[gs_row + f])
                                : __ldg(static_cast<const float*>(p.key_scale) + gs_row + f);
      };
      const float2* rot = sRot + (i - query0) * kMaxRotaryPairs;
      for (int lo = lane; lo < half; lo += 32) {
        const float2 cs = rot[lo];
        const float z = (p.has_xpos ? exp2f(sXposRate[lo] * float(position - anchor)) : 1.f) * p.scale_log2;
        const float x1 = to_float(qrow[lo]), x2 = to_float(qrow[lo + half]);
        const float first = (x1 * cs.x - x2 * cs.y) * z, second = (x2 * cs.x + x1 * cs.y) * z;
        if (gs) {
          const float ga = g_at(lo), gb = g_at(lo + half);
          store_as(dst + lo, 0.5f * (ga + gb) * first);
          store_as(dst + lo + half, 0.5f * (ga + gb) * second);
          if (split_key) {
            store_as(dst + D + lo, 0.5f * (ga - gb) * first);
            store_as(dst + D + lo + half, 0.5f * (ga - gb) * second);
          }
        } else {
          store_as(dst + lo, first);
          store_as(dst + lo + half, second);
        }
      }
      for (int f = p.rotary_dim + lane; f < D; f += 32)
        store_as(dst + f, to_float(qrow[f]) * (gs ? g_at(f) : 1.f) * p.scale_log2);
      for (int f = p.key_dim + lane; f < ld; f += 32) store_as(dst + f, 0.f);
      if (lane == 0) {
        sRowPos[r] = int(position);
        sRowSlope[r] = p.has_alibi ? p.alibi_slope_log2[head] : 0.f;
      }
    }

    // Softmax state: warp w owns rows 4w .. 4w + 3 (every lane holds the same values).
    float row_max[4], row_sum[4];
#pragma unroll
    for (int s = 0; s < 4; s++) {
      row_max[s] = -INFINITY;
      row_sum[s] = 0.f;
    }
    const int f0 = (tid % kFeatureGroups) * 4, o_row0 = tid / kFeatureGroups;  // fp32 form
    const int m_tile = warp & 1, n_first = (warp >> 1) * (D / 4);            // tensor-core form
    float o[kOutRegs][4];
#pragma unroll
    for (int s = 0; s < kOutRegs; s++)
#pragma unroll
      for (int e = 0; e < 4; e++) o[s][e] = 0.f;

    __syncthreads();  // Q̃ is built: the table takes the rotations of the key offsets
    for (int jl = warp; jl < kKeys; jl += kAttentionWarps)
      for (int f = lane; f < half; f += 32) {
        // With xPos, the offset's factor ζ_f^(−jl/B) rides on its rotation (≤ ζ^(−31/B): no overflow).
        const float2 r = small_rotation(jl, sInvFreq[f]);
        const float z = p.has_xpos ? exp2f(-sXposRate[f] * float(jl)) : 1.f;
        sRot[jl * kMaxRotaryPairs + f] = make_float2(r.x * z, r.y * z);
      }

    for (int64_t j0 = split_begin; j0 < key_end; j0 += kKeys) {
      // The sub-tile's base rotation (the previous sub-tile's readers of sBase passed its middle barrier).
      // With xPos it carries ζ_f^((anchor − j0)/B), so a key's factor ζ_f^((anchor − j0 − jl)/B) is the product of
      // the two table entries: no exp2 per key and pair.
      for (int f = tid; f < half; f += kAttentionThreads) {
        const float2 r = rotation(j0, sInvFreq[f]);
        const float z = p.has_xpos ? exp2f(sXposRate[f] * float(anchor - j0)) : 1.f;
        sBase[f] = make_float2(r.x * z, r.y * z);
      }
      attention::cp_async_wait<0>();
      __syncthreads();  // the sub-tile has landed (every thread's copies) and the last one's P·V is done

      // K̃ in the operand type; V as stored (16-byte chunks).
      const T* rawK = reinterpret_cast<const T*>(sRawK);
      if (tid < kKeys) sKeyOk[tid] = sRawKeyOk[tid];
      for (int item = tid; item < kKeys * kChunksPerRow; item += kAttentionThreads) {
        const int jl = item / kChunksPerRow, chunk = item % kChunksPerRow;
        reinterpret_cast<uint4*>(sV + jl * kValueLd)[chunk] =
            reinterpret_cast<const uint4*>(sRawV + jl * Smem::kRawRow)[chunk];
      }
      // K̃: a warp per key, a lane per rotary pair or per feature past them.
      for (int jl = warp; jl < kKeys; jl += kAttentionWarps) {
        const T* k = rawK + jl * D;
        Operand* dst = sK + jl * ld;
        const float2* step = sRot + jl * kMaxRotaryPairs;
        for (int f = lane; f < half; f += 32) {
          const float2 base = sBase[f], by = step[f];
          // The key's rotation and xPos factor: (c, s) = z · (cos, sin) of (j0 + jl) · θ_f.
          const float c = base.x * by.x - base.y * by.y, s = base.y * by.x + base.x * by.y;
          const float k1 = to_float(k[f]), k2 = to_float(k[f + half]);
          store_as(dst + f, k1 * c - k2 * s);
          store_as(dst + f + half, k2 * c + k1 * s);
          if (split_key) {
            store_as(dst + D + f, k1 * c + k2 * s);
            store_as(dst + D + f + half, k1 * s - k2 * c);
          }
        }
        for (int f = p.rotary_dim + lane; f < D; f += 32) store_as(dst + f, to_float(k[f]));
        for (int f = p.key_dim + lane; f < ld; f += 32) store_as(dst + f, 0.f);
      }
      __syncthreads();  // K̃, V ready; the staging buffers are free
      if (j0 + kKeys < key_end) issue_loads(j0 + kKeys);

      // Masked pairs get −∞ whatever their product (a masked key's factors may be large or zero).
      auto store_score = [&](int r, int key, float dot) {
        const int pq = sRowPos[r], pk = int(j0) + key;
        const bool visible = sKeyOk[key] && pk <= pq;
        sS[r * kScoreLd + key] = visible ? dot - sRowSlope[r] * float(pq - pk) : -INFINITY;
      };
      if constexpr (kMma) {
        // S = Q̃ K̃ᵀ: warp w computes the 16 × 8 tile of rows 16 · (w % 2), keys 8 · (w / 2).
        const int key0 = (warp >> 1) * 8;
        if (m_tile * 16 < rows) {
          float acc[4] = {0.f, 0.f, 0.f, 0.f};
          const int padded = (p.key_dim + 15) / 16 * 16;
          for (int k0 = 0; k0 < padded; k0 += 16) {
            uint32_t a[4], b[2];
            attention::load_a(a, sQ, ld, m_tile * 16, k0, lane);
            ldmatrix_x2(b, sK + (key0 + (lane & 7)) * ld + k0 + ((lane >> 3) & 1) * 8);
            attention::mma_bf16(acc, a, b[0], b[1]);
          }
          const int r = m_tile * 16 + g, key = key0 + 2 * t;
          store_score(r, key, acc[0]);
          store_score(r, key + 1, acc[1]);
          store_score(r + 8, key, acc[2]);
          store_score(r + 8, key + 1, acc[3]);
        }
      } else {
        // S = Q̃ K̃ᵀ: warp w scores rows 8·(w / 2) + {lr, lr + 4} against keys 16·(w % 2) + {lk, lk + 8}.
        const int rt = warp >> 1, kt = warp & 1;
        if (rt * 8 < rows) {
          const int r0 = rt * 8 + (lane >> 3), r1 = r0 + 4;
          const int k0 = kt * 16 + (lane & 7), k1 = k0 + 8;
          float acc00 = 0.f, acc01 = 0.f, acc10 = 0.f, acc11 = 0.f;
          const float* q0 = sQ + r0 * ld;
          const float* q1 = sQ + r1 * ld;
          const float* ka = sK + k0 * ld;
          const float* kb = sK + k1 * ld;
#pragma unroll 4
          for (int f = 0; f < ld; f += 4) {
            const float4 a0 = *reinterpret_cast<const float4*>(q0 + f);
            const float4 a1 = *reinterpret_cast<const float4*>(q1 + f);
            const float4 b0 = *reinterpret_cast<const float4*>(ka + f);
            const float4 b1 = *reinterpret_cast<const float4*>(kb + f);
            acc00 += a0.x * b0.x + a0.y * b0.y + a0.z * b0.z + a0.w * b0.w;
            acc01 += a0.x * b1.x + a0.y * b1.y + a0.z * b1.z + a0.w * b1.w;
            acc10 += a1.x * b0.x + a1.y * b0.y + a1.z * b0.z + a1.w * b0.w;
            acc11 += a1.x * b1.x + a1.y * b1.y + a1.z * b1.z + a1.w * b1.w;
          }
          store_score(r0, k0, acc00);
          store_score(r0, k1, acc01);
          store_score(r1, k0, acc10);
          store_score(r1, k1, acc11);
        }
      }
      __syncthreads();

      // Online softmax: a lane per key; P over S (fp32 form) or into sP (bf16, the tensor-core form).
#pragma unroll
      for (int s = 0; s < 4; s++) {
        const int r = warp * 4 + s;
        if (r >= rows) break;  // warp-uniform
        const float x = sS[r * kScoreLd + lane];
        const float tile_max = warp_max(x);
        const float new_max = fmaxf(row_max[s], tile_max);
        const float base = new_max == -INFINITY ? 0.f : new_max;
        const float correction = exp2f(row_max[s] - base);
        const float prob = exp2f(x - base);
        row_sum[s] = row_sum[s] * correction + warp_sum(prob);
        row_max[s] = new_max;
        if constexpr (kMma)
          sP[r * kProbLd + lane] = __float2bfloat16_rn(prob);
        else
          sS[r * kScoreLd + lane] = prob;
        if (lane == 0) sCorr[r] = correction;
      }
      __syncthreads();

      if constexpr (kMma) {
        // O = O · correction + P V: P (16 rows × 32 keys) from sP, V (32 keys × 8 features per n tile) by
        // transposed ldmatrix.
        if (m_tile * 16 < rows) {
          const float c_lo = sCorr[m_tile * 16 + g], c_hi = sCorr[m_tile * 16 + g + 8];
#pragma unroll
          for (int j = 0; j < kTiles; j++) {
            o[j][0] *= c_lo;
            o[j][1] *= c_lo;
            o[j][2] *= c_hi;
            o[j][3] *= c_hi;
          }
#pragma unroll
          for (int k0 = 0; k0 < kKeys; k0 += 16) {
            uint32_t a[4];
            attention::load_a(a, sP, kProbLd, m_tile * 16, k0, lane);
#pragma unroll
            for (int j = 0; j < kTiles; j++) {
              uint32_t b[2];
              ldmatrix_x2_trans(b, sV + (k0 + (lane & 7) + ((lane >> 3) & 1) * 8) * kValueLd + n_first + 8 * j);
              attention::mma_bf16(o[j], a, b[0], b[1]);
            }
          }
        }
      } else {
        // O = O · correction + P V, 4 features × D/32 rows per thread.
#pragma unroll
        for (int s = 0; s < kOutRegs; s++) {
          const int r = o_row0 + s * kRowStride;
          if (r >= rows) continue;
          const float correction = sCorr[r];
#pragma unroll
          for (int e = 0; e < 4; e++) o[s][e] *= correction;
        }
#pragma unroll 2
        for (int k = 0; k < kKeys; k += 4) {
          float4 v[4];
#pragma unroll
          for (int kk = 0; kk < 4; kk++)
            v[kk] = *reinterpret_cast<const float4*>(reinterpret_cast<const float*>(sV) + (k + kk) * D + f0);
#pragma unroll
          for (int s = 0; s < kOutRegs; s++) {
            const int r = o_row0 + s * kRowStride;
            if (r >= rows) continue;
            const float4 pr = *reinterpret_cast<const float4*>(sS + r * kScoreLd + k);
            const float pk[4] = {pr.x, pr.y, pr.z, pr.w};
#pragma unroll
            for (int kk = 0; kk < 4; kk++) {
              o[s][0] += pk[kk] * v[kk].x;
              o[s][1] += pk[kk] * v[kk].y;
              o[s][2] += pk[kk] * v[kk].z;
              o[s][3] += pk[kk] * v[kk].w;
            }
          }
        }
      }
    }

    // Results: the softmax warps publish their sums; rows that saw no key have sum 0 (zeros out, −∞ max).
#pragma unroll
    for (int s = 0; s < 4; s++) {
      const int r = warp * 4 + s;
      if (r >= rows) break;
      if (lane == 0) {
        sSum[r] = row_sum[s];
        if (p.part_stats) p.part_stats[out_row_of(r) * p.splits + split] = make_float2(row_max[s], row_sum[s]);
      }
    }
    __syncthreads();
    // Four consecutive features (fp32 form) or two (a fragment's column pair) of row r from f.
    auto write_row = [&](int r, int f, const float* values, int count) {
      if (r >= rows) return;
      const int64_t out_row = out_row_of(r);
      if (p.part_out) {
        float* dst = p.part_out + (out_row * p.splits + split) * D + f;
        for (int e = 0; e < count; e++) dst[e] = values[e];
      } else {
        const float sum = sSum[r], inv = sum > 0.f ? 1.f / sum : 0.f;
        T* dst = static_cast<T*>(p.out) + out_row * D + f;
        for (int e = 0; e < count; e++) store_as(dst + e, values[e] * inv);
      }
    };
    if constexpr (kMma) {
#pragma unroll
      for (int j = 0; j < kTiles; j++) {
        const int f = n_first + 8 * j + 2 * t;
        write_row(m_tile * 16 + g, f, &o[j][0], 2);
        write_row(m_tile * 16 + g + 8, f, &o[j][2], 2);
      }
    } else {
#pragma unroll
      for (int s = 0; s < kOutRegs; s++) write_row(o_row0 + s * kRowStride, f0, o[s], 4);
    }
  }
}

constexpr int kCombineThreads = 256;

/**
 * One block per (query, head) row slot of a sequence (grid: max_query_len · heads, num_seqs): merges the row's
 * partial results over the splits that start inside its context, in a fixed order (deterministic). Its time is
 * latency, not bandwidth (a row's partials are 64 KB at 128 splits, in L2): the first round of a thread's partial
 * rows is loaded with the statistics, before the reductions that turn those into weights, so the block waits for
 * memory once at up to kRound rows a thread (combine_round: 16 covers 128 splits at head dim 128, and fewer splits
 * take a smaller round, whose registers let more blocks in); each split's weight is worked out once, by its own
 * thread, when the splits are no more than the threads.
 */
template <typename T, int D, int kRound>
__global__ void __launch_bounds__(kCombineThreads) paged_attention_combine_kernel(const __grid_constant__ AttentionParams p) {
  constexpr int kFeatureGroups = D / 4, kSplitGroups = kCombineThreads / kFeatureGroups;
  __shared__ float4 partial[kSplitGroups][kFeatureGroups];
  __shared__ float weights[kCombineThreads];
  const Sequence seq = read_sequence(p.batch, blockIdx.y);
  const int i = int(blockIdx.x / unsigned(p.heads)), head = int(blockIdx.x % unsigned(p.heads));
  if (!seq.valid || i >= seq.query_len) return;
  const int used = int((seq.context_len + p.chunk - 1) / p.chunk);
  const int64_t out_row = (seq.first_row + i) * p.heads + head;
  const float2* stats = p.part_stats + out_row * p.splits;
  const int fg = threadIdx.x % kFeatureGroups, sg = threadIdx.x / kFeatureGroups;
  // Split s's features of this thread: rows[s · kFeatureGroups].
  const float4* rows = reinterpret_cast<const float4*>(p.part_out + out_row * p.splits * D) + fg;
  float4 v[kRound];
#pragma unroll
  for (int r = 0; r < kRound; r++) {
    const int s = sg + r * kSplitGroups;
    if (s < used) v[r] = rows[int64_t(s) * kFeatureGroups];
  }
  const bool few = used <= kCombineThreads;  // a statistic a thread, its weight shared
  float2 own = make_float2(-INFINITY, 0.f);
  if (few && int(threadIdx.x) < used) own = stats[threadIdx.x];
  float m = own.x;
  if (!few)
    for (int s = threadIdx.x; s < used; s += kCombineThreads) m = fmaxf(m, stats[s].x);
  m = block_max(m);
  const float base = m == -INFINITY ? 0.f : m;
  float sum = 0.f;
  if (few) {
    const float w = int(threadIdx.x) < used ? exp2f(own.x - base) : 0.f;
    weights[threadIdx.x] = w;
    sum = own.y * w;
  } else {
    for (int s = threadIdx.x; s < used; s += kCombineThreads) sum += stats[s].y * exp2f(stats[s].x - base);
  }
  sum = block_sum(sum);  // its barriers also publish `weights`
  float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
  for (int first = 0; first < used; first += kRound * kSplitGroups) {
    if (first > 0) {
#pragma unroll
      for (int r = 0; r < kRound; r++) {
        const int s = first + sg + r * kSplitGroups;
        if (s < used) v[r] = rows[int64_t(s) * kFeatureGroups];
      }
    }
#pragma unroll
    for (int r = 0; r < kRound; r++) {
      const int s = first + sg + r * kSplitGroups;
      if (s >= used) break;
      const float w = few ? weights[s] : exp2f(stats[s].x - base);
      acc.x += w * v[r].x;
      acc.y += w * v[r].y;
      acc.z += w * v[r].z;
      acc.w += w * v[r].w;
    }
  }
  partial[sg][fg] = acc;
  __syncthreads();
  if (sg == 0) {
    for (int g = 1; g < kSplitGroups; g++) {
      const float4 u = partial[g][fg];
      acc.x += u.x;
      acc.y += u.y;
      acc.z += u.z;
      acc.w += u.w;
    }
    const float inv = sum > 0.f ? 1.f / sum : 0.f;
    T* dst = static_cast<T*>(p.out) + out_row * D + fg * 4;
    store_as(dst + 0, acc.x * inv);
    store_as(dst + 1, acc.y * inv);
    store_as(dst + 2, acc.z * inv);
    store_as(dst + 3, acc.w * inv);
  }
}

/** The combine's round (partial rows a thread loads at once) for `splits` splits at head dim `head_dim`: 1, 4 or 16. */
inline int combine_round(int64_t splits, int head_dim) {
  const int64_t per_thread = (splits + kCombineThreads / (head_dim / 4) - 1) / (kCombineThreads / (head_dim / 4));
  return per_thread <= 1 ? 1 : per_thread <= 4 ? 4 : 16;
}

}  // namespace andromeda::cuda::paged
