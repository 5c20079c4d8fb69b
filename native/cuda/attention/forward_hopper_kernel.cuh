// The Hopper (sm_90a) forward: FlashAttention with warpgroup MMA. One CTA per (128-query tile, head, batch
// item); two consumer warpgroups own 64 query rows each and walk the key tiles (kBlockN keys) in order:
//   S = Q Kᵀ         wgmma m64n{kBlockN}k16, Q and K both from shared memory (K-major descriptors)
//   online softmax   fp32 in registers, base 2 (ex2.approx), masks only on tiles that need them
//   O += P V         wgmma m64n{D}k16, P from registers (bf16), V from shared memory (MN-major descriptor)
// Loads: a third warpgroup (producer) shrinks to 24 registers and one of its threads issues TMA tile loads into
// a ring of K/V stages with full/empty mbarriers per stage, separately for K and V; consumers get 240 registers.
// Order: S(j) = Q Kⱼᵀ and O += P(j−1) V(j−1) are issued together, and the softmax of S(j) runs while the P·V
// product does (FlashAttention-3's intra-warpgroup overlap).
//
// Supported: head dims 64 and 128, bf16, causal by index (with the query offset), ALiBi with default
// positions (template kAlibi), GQA (key_head_of for K, kv_head_of for V), and the split key scale
// (template kSplit, for Params::key_split): TMA brings A into the K slot and B into a B slot, producer warps 1–3 turn the slot's
// rotary columns into K'_h = c_h ⊙ A + d_h ⊙ B (split_key.cuh), fence the async proxy and arrive on the stage's
// "k ready" barrier, which the consumers wait on instead of "k full". Packed documents (segment ids): only the key
// tiles of the query tile's documents are walked, ids compared only on tiles that mix documents (segments.cuh).
// Custom positions and the in-kernel q/k transform (rotary, xPos, key scale) stay on the mma.sync kernel
// (heuristics.h decides).
#pragma once
#include <cuda.h>

#include "forward_hopper_ptx.cuh"
#include "mma.cuh"
#include "params.cuh"
#include "segments.cuh"
#include "split_key.cuh"

namespace andromeda::cuda::attention::hopper {

/** TMA descriptors of q, k and v (and B of the split key scale), viewed as 3-D tensors [batch·heads][len][head dim]. */
struct TensorMaps {
  CUtensorMap q, k, v, b;
};

template <int D, int kBlockN_, int kStages_>
struct ForwardConfig {
  static constexpr int kBlockM = 128;  // two consumer warpgroups × 64 rows
  static constexpr int kBlockN = kBlockN_;
  static constexpr int kStages = kStages_;
  static constexpr int kColBlocks = D / 64;  // 64-feature column blocks of 128 bytes a row
  static constexpr int kThreads = 384;  // producer warpgroup + two consumer warpgroups
  static constexpr int kQBytes = kBlockM * D * 2;
  static constexpr int kTileBytes = kBlockN * D * 2;  // one K or V tile
  static constexpr int kKOffset = kQBytes;
  static constexpr int kVOffset = kKOffset + kStages * kTileBytes;
  static constexpr int kBarrierOffset = kVOffset + kStages * kTileBytes;
  // q full; per stage k full, k empty, v full, v empty, k ready (split key scale: K'_h built)
  static constexpr int kBarriers = 1 + 5 * kStages;
  static constexpr int kSmemBytes = kBarrierOffset + 8 * kBarriers + 1024;  // + slack to align the base to 1 KiB
  // Split key scale only: a B tile per stage after the barriers, ⌈r/64⌉ column blocks of kBlockN rows each.
  static constexpr int kBOffset = (kBarrierOffset + 8 * kBarriers + 1023) / 1024 * 1024;
  static constexpr int kBBlockBytes = kBlockN * 128;
  static constexpr int split_smem_bytes(int rotary_dim) {
    return kBOffset + kStages * ((rotary_dim + 63) / 64) * kBBlockBytes + 1024;
  }
  static constexpr int kMaxSmemBytes = kBOffset + kStages * kColBlocks * kBBlockBytes + 1024;
  static_assert(kMaxSmemBytes <= 227 * 1024, "shared memory");
  static_assert(D == 64 || D == 128, "head dim 64 or 128");
  static_assert(kBlockN == 64 || kBlockN == 128, "key tile of 64 or 128");
};

template <int N>
__device__ __forceinline__ void wgmma_ss(float (&d)[N / 2], uint64_t a, uint64_t b, int accumulate) {
  if constexpr (N == 64) wgmma_ss_m64n64k16(d, a, b, accumulate);
  else wgmma_ss_m64n128k16(d, a, b, accumulate);
}
template <int N>
__device__ __forceinline__ void wgmma_rs_mn(float (&d)[N / 2], const uint32_t (&a)[4], uint64_t b, int accumulate) {
  if constexpr (N == 64) wgmma_rs_m64n64k16_mn(d, a, b, accumulate);
  else wgmma_rs_m64n128k16_mn(d, a, b, accumulate);
}

/**
 * Scale, ALiBi, masks and the online-softmax update of one S tile held by a thread (rows r = 0, 1: row0 + 8r).
 * Scores end as unnormalised probabilities p = 2^(x − m) with x = s·scale·log2e − slope·log2e·|Δpos|.
 * Without ALiBi the max is taken on the raw scores (scale > 0) and x − m is one FMA.
 *   dpos[r]:  query position − (first key of the tile + 2t), the distance to the thread's column 0
 *   limit[r]: last visible key − (first key of the tile + 2t); columns c > limit are masked
 * corr[r] is the factor the row's O and sum must be multiplied by.
 */
template <int kBlockN, bool kAlibi, bool kMasked>
__device__ __forceinline__ void softmax_tile(float (&s)[kBlockN / 2], float (&row_max)[2], float (&row_sum)[2],
                                             float (&corr)[2], float scale_log2, float slope, const float (&dpos)[2],
                                             const int (&limit)[2]) {
  const float k = kAlibi ? 1.f : scale_log2;
#pragma unroll
  for (int j = 0; j < kBlockN / 8; j++) {
#pragma unroll
    for (int e = 0; e < 4; e++) {
      const int r = e >> 1, c = 8 * j + (e & 1);
      float x = s[4 * j + e];
      if constexpr (kAlibi) x = fmaf(x, scale_log2, -slope * fabsf(dpos[r] - float(c)));
      if constexpr (kMasked) x = c > limit[r] ? -INFINITY : x;
      s[4 * j + e] = x;
    }
  }
  // Max and sum over four independent chains each: a single chain of kBlockN / 4 dependent operations per row
  // would be latency-bound.
#pragma unroll
  for (int r = 0; r < 2; r++) {
    float m4[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
#pragma unroll
    for (int j = 0; j < kBlockN / 8; j++) m4[j % 4] = fmaxf(m4[j % 4], fmaxf(s[4 * j + 2 * r], s[4 * j + 2 * r + 1]));
    float mx = fmaxf(fmaxf(m4[0], m4[1]), fmaxf(m4[2], m4[3]));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    const float new_max = fmaxf(row_max[r], mx * k);
    const float base = new_max == -INFINITY ? 0.f : new_max;  // a row with nothing visible yet
    corr[r] = fast_exp2(row_max[r] - base);
    row_max[r] = new_max;
    float sum4[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
    for (int j = 0; j < kBlockN / 8; j++) {
      s[4 * j + 2 * r] = fast_exp2(fmaf(s[4 * j + 2 * r], k, -base));
      s[4 * j + 2 * r + 1] = fast_exp2(fmaf(s[4 * j + 2 * r + 1], k, -base));
      sum4[j % 4] += s[4 * j + 2 * r] + s[4 * j + 2 * r + 1];
    }
    row_sum[r] = row_sum[r] * corr[r] + ((sum4[0] + sum4[1]) + (sum4[2] + sum4[3]));
  }
}

/**
 * Whether warpgroup rows summarised by `rows` need the per-element id comparison against the key tile [n0, n0 + kBlockN):
 * not when its key blocks (those before the end of the keys) hold the rows' one id.
 */
template <int kBlockN>
__device__ __forceinline__ bool forward_tile_mixed(int4 rows, const int4* k_blocks, int n0, int k_len) {
  static_assert(kBlockN % kSegmentBlockRows == 0, "key tiles are whole summarised blocks");
  bool mixed = false;
#pragma unroll
  for (int i = 0; i < kBlockN / kSegmentBlockRows; i++) {
    const int first = n0 + i * kSegmentBlockRows;
    if (first < k_len) mixed |= segment_pair_mixed(rows, k_blocks[first / kSegmentBlockRows]);
  }
  return mixed;
}

/**
 * −∞ on the scores of an S tile (layout of softmax_tile) whose key lies in another document than the thread's row
 * (rows r: queries row0 + 8r):
 * column c = 8j + 2t + (e & 1) of row r = e >> 1 is key n0 + c. Keys past the end are left to the end mask.
 */
template <int kBlockN>
__device__ __forceinline__ void mask_other_segments(float (&s)[kBlockN / 2], const int32_t* q_seg_row,
                                                    const int32_t* k_seg_row, int n0, int q_len, int k_len, int t, int row0) {
  int row_seg[2];
#pragma unroll
  for (int r = 0; r < 2; r++) row_seg[r] = __ldg(q_seg_row + min(row0 + 8 * r, q_len - 1));
#pragma unroll
  for (int j = 0; j < kBlockN / 8; j++) {
#pragma unroll
    for (int e = 0; e < 2; e++) {
      const int key = n0 + 8 * j + 2 * t + e;
      if (key >= k_len) continue;
      const int id = __ldg(k_seg_row + key);
#pragma unroll
      for (int r = 0; r < 2; r++) s[4 * j + 2 * r + e] = id == row_seg[r] ? s[4 * j + 2 * r + e] : -INFINITY;
    }
  }
}

template <int D, int kBlockN, int kStages, bool kAlibi, bool kSplit = false>
__global__ void __launch_bounds__(ForwardConfig<D, kBlockN, kStages>::kThreads, 1)
    attention_forward_hopper_kernel(const __grid_constant__ Params p, const __grid_constant__ TensorMaps maps) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using Cfg = ForwardConfig<D, kBlockN, kStages>;
  // The split key scale's producer warps combine tiles: 40 registers (no spills with the combine's rows not unrolled); the consumers give up 8
  // (ptxas: no spills at 232 either), keeping 384 threads within the 64,512 registers of the launch.
  constexpr int kProducerRegisters = kSplit ? 40 : 24, kConsumerRegisters = kSplit ? 232 : 240;
  constexpr int kBlockM = Cfg::kBlockM;
  extern __shared__ unsigned char smem_raw[];
  const uint32_t base = (smem_address(smem_raw) + 1023u) & ~1023u;
  const uint32_t sQ = base, sK = base + Cfg::kKOffset, sV = base + Cfg::kVOffset;
  const uint32_t bars = base + Cfg::kBarrierOffset;
  const uint32_t q_full = bars;
  auto k_full = [&](int s) { return bars + 8u * (1 + s); };
  auto k_empty = [&](int s) { return bars + 8u * (1 + kStages + s); };
  auto v_full = [&](int s) { return bars + 8u * (1 + 2 * kStages + s); };
  auto v_empty = [&](int s) { return bars + 8u * (1 + 3 * kStages + s); };
  auto k_ready = [&](int s) { return bars + 8u * (1 + 4 * kStages + s); };
  constexpr bool split = kSplit;
  const int b_blocks = split ? (p.split_rotary_dim + 63) / 64 : 0;
  const uint32_t sB = base + Cfg::kBOffset;
  auto b_slot = [&](int s) { return sB + uint32_t(s * b_blocks * Cfg::kBBlockBytes); };

  const LptTile order = lpt_tile(p);
  const int q_tile = gridDim.x - 1 - order.rank;  // the longest causal rows first
  const int h = order.head, b = order.batch;
  const int m0 = q_tile * kBlockM;
  const int rows_valid = min(kBlockM, p.q_len - m0);
  int n_begin = 0, n_end = p.k_len;  // keys any row of the tile may see
  if (p.causal) n_end = min(n_end, m0 + rows_valid + p.query_offset);
  const int4* q_seg_blocks = p.q_seg ? p.q_seg_blocks + int64_t(b) * segment_blocks(p.q_len) : nullptr;
  if (q_seg_blocks) {  // packed documents: only the keys of the tile's documents
    n_begin = q_seg_blocks[m0 / kSegmentBlockRows].z;
    n_end = min(n_end, q_seg_blocks[(m0 + rows_valid - 1) / kSegmentBlockRows].w);
  }
  // The tiles walked are tile_first + j for j < n_tiles (pipeline stages and phases count j).
  const int tile_first = n_begin / kBlockN;
  const int n_tiles = n_end > 0 ? max(0, (n_end + kBlockN - 1) / kBlockN - tile_first) : 0;

  if (threadIdx.x == 0) {
    mbarrier_init(q_full, 1);
    for (int s = 0; s < kStages; s++) {
      mbarrier_init(k_full(s), 1);
      mbarrier_init(v_full(s), 1);
      mbarrier_init(k_empty(s), 8);  // lane 0 of each consumer warp
      mbarrier_init(v_empty(s), 8);
      mbarrier_init(k_ready(s), 96);  // every thread of producer warps 1–3 (split key scale)
    }
    mbarrier_init_fence();
  }
  __syncthreads();
  if (threadIdx.x < 128) {  // producer warpgroup: one thread issues every load
    set_max_registers_decrease<kProducerRegisters>();
    if (split && threadIdx.x >= 32) {
      // Warps 1–3 build K'_h of each tile once its A and B landed.
      const float* g_row = p.split_scale + int64_t(h) * D;
      const int lane = threadIdx.x & 31, warp = (threadIdx.x >> 5) - 1;
      for (int j = 0; j < n_tiles; j++) {
        const int s = j % kStages;
        mbarrier_wait(k_full(s), (j / kStages) & 1);
        if (96 % (p.split_rotary_dim / 8) == 0)
          combine_split_tile_chunks<kBlockN>(sK + s * Cfg::kTileBytes, b_slot(s), g_row, p.split_rotary_dim, threadIdx.x - 32, 96);
        else
          combine_split_tile<kBlockN>(sK + s * Cfg::kTileBytes, b_slot(s), g_row, p.split_rotary_dim, warp, 3, lane);
        fence_proxy_async();  // generic-proxy writes, read by wgmma through the async proxy
        mbarrier_arrive(k_ready(s));
      }
      return;
    }
    if (threadIdx.x == 0 && n_tiles > 0) {
      tma_prefetch_descriptor(&maps.q);
      tma_prefetch_descriptor(&maps.k);
      tma_prefetch_descriptor(&maps.v);
      if (split) tma_prefetch_descriptor(&maps.b);
      const int q_row = b * p.heads + h, k_row = b * p.k_heads + key_head_of(p, h),
                v_row = b * p.kv_heads + kv_head_of(p, h);
      mbarrier_arrive_expect_tx(q_full, Cfg::kQBytes);
#pragma unroll
      for (int cb = 0; cb < Cfg::kColBlocks; cb++) tma_load_3d(sQ + cb * kBlockM * 128, &maps.q, q_full, cb * 64, m0, q_row);
      auto load_k = [&](int j) {
        const int s = j % kStages, use = j / kStages;
        if (j >= kStages) mbarrier_wait(k_empty(s), (use - 1) & 1);
        mbarrier_arrive_expect_tx(k_full(s), Cfg::kTileBytes + b_blocks * Cfg::kBBlockBytes);
#pragma unroll
        for (int cb = 0; cb < Cfg::kColBlocks; cb++)
          tma_load_3d(sK + s * Cfg::kTileBytes + cb * kBlockN * 128, &maps.k, k_full(s), cb * 64, (tile_first + j) * kBlockN, k_row);
        for (int cb = 0; cb < b_blocks; cb++)
          tma_load_3d(b_slot(s) + cb * Cfg::kBBlockBytes, &maps.b, k_full(s), cb * 64, (tile_first + j) * kBlockN, k_row);
      };
      auto load_v = [&](int j) {
        const int s = j % kStages, use = j / kStages;
        if (j >= kStages) mbarrier_wait(v_empty(s), (use - 1) & 1);
        mbarrier_arrive_expect_tx(v_full(s), Cfg::kTileBytes);
#pragma unroll
        for (int cb = 0; cb < Cfg::kColBlocks; cb++)
          tma_load_3d(sV + s * Cfg::kTileBytes + cb * kBlockN * 128, &maps.v, v_full(s), cb * 64, (tile_first + j) * kBlockN, v_row);
      };
      if constexpr (kSplit) {
        // K'_h of a tile is ready only after the combine, so its K (and B) go out one V earlier: K(j) waits for
        // S(j − stages) alone, not also for P·V of the tile before, which gives the combine half a tile more time.
        for (int j = 0; j <= n_tiles; j++) {
          if (j < n_tiles) load_k(j);
          if (j > 0) load_v(j - 1);
        }
      } else {
        for (int j = 0; j < n_tiles; j++) {
          load_k(j);
          load_v(j);
        }
      }
    }
    return;
  }
  set_max_registers_increase<kConsumerRegisters>();

  // ---- Consumers: 2 warpgroups × 64 rows ----
  const int tid = threadIdx.x - 128;
  const int wg = tid >> 7, warp = (tid >> 5) & 3, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const int row0 = m0 + 64 * wg + 16 * warp + g;  // this thread's rows: row0, row0 + 8
  const float slope = kAlibi ? p.alibi_slope_log2[h] : 0.f;
  const int wg_first_row = m0 + 64 * wg;

  float o[D / 2];
#pragma unroll
  for (int i = 0; i < D / 2; i++) o[i] = 0.f;
  float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.f, 0.f};
  float s[kBlockN / 2];  // the first k step of each S product overwrites it (zeroed once so it is never undefined)
#pragma unroll
  for (int i = 0; i < kBlockN / 2; i++) s[i] = 0.f;
  uint32_t pa[kBlockN / 16][4];

  auto issue_s = [&](int j) {
    const uint32_t q_tile_addr = sQ + wg * 64 * 128, k_tile = sK + (j % kStages) * Cfg::kTileBytes;
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
      const uint32_t a = q_tile_addr + (kk / 4) * (kBlockM * 128) + (kk % 4) * 32;
      const uint32_t bk = k_tile + (kk / 4) * (kBlockN * 128) + (kk % 4) * 32;
      wgmma_ss<kBlockN>(s, smem_descriptor(a, 16, 1024), smem_descriptor(bk, 16, 1024), kk > 0);
    }
    wgmma_commit();
  };
  auto issue_pv = [&](int j) {
    const uint32_t v_tile = sV + (j % kStages) * Cfg::kTileBytes;
    wgmma_fence();
#pragma unroll
    for (int kb = 0; kb < kBlockN / 16; kb++)
      wgmma_rs_mn<D>(o, pa[kb], smem_descriptor(v_tile + kb * 16 * 128, kBlockN * 128, 1024), 1);
    wgmma_commit();
  };
  // The softmax of tile j (S in registers, its wgmma complete); returns the rescale factors of O.
  auto softmax = [&](int j, float (&corr)[2]) {
    const int n0 = (tile_first + j) * kBlockN;
    // Packed documents: ids compared only where this warpgroup's rows and the key tile are not one document (read per
    // tile, not kept in registers).
    if (p.q_seg && forward_tile_mixed<kBlockN>(p.q_seg_blocks[int64_t(b) * segment_blocks(p.q_len) +
                                                             min(wg_first_row, p.q_len - 1) / kSegmentBlockRows],
                                              p.k_seg_blocks + int64_t(b) * segment_blocks(p.k_len), n0, p.k_len))
      mask_other_segments<kBlockN>(s, p.q_seg + int64_t(b) * p.q_len, p.k_seg + int64_t(b) * p.k_len, n0, p.q_len, p.k_len,
                                   t, row0);
    float dpos[2];
    int limit[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
      const int i = row0 + 8 * r;
      dpos[r] = float(i + p.query_offset - n0 - 2 * t);
      const int last = p.causal ? min(p.k_len - 1, i + p.query_offset) : p.k_len - 1;
      limit[r] = last - n0 - 2 * t;
    }
    const bool masked = n0 + kBlockN > p.k_len || (p.causal && n0 + kBlockN - 1 > wg_first_row + p.query_offset);
    // Heads without a slope (andromeda-3b: 12 of 24) skip the bias arithmetic: the branch is uniform per CTA.
    if (kAlibi && slope != 0.f) {
      if (masked) softmax_tile<kBlockN, kAlibi, true>(s, row_max, row_sum, corr, p.scale_log2, slope, dpos, limit);
      else softmax_tile<kBlockN, kAlibi, false>(s, row_max, row_sum, corr, p.scale_log2, slope, dpos, limit);
    } else {
      if (masked) softmax_tile<kBlockN, false, true>(s, row_max, row_sum, corr, p.scale_log2, slope, dpos, limit);
      else softmax_tile<kBlockN, false, false>(s, row_max, row_sum, corr, p.scale_log2, slope, dpos, limit);
    }
  };
  auto rescale_o = [&](const float (&corr)[2]) {
#pragma unroll
    for (int i = 0; i < D / 2; i++) o[i] *= corr[(i >> 1) & 1];
  };
  auto convert_p = [&]() {
#pragma unroll
    for (int kb = 0; kb < kBlockN / 16; kb++) {
      pa[kb][0] = pack_bf16(s[8 * kb + 0], s[8 * kb + 1]);
      pa[kb][1] = pack_bf16(s[8 * kb + 2], s[8 * kb + 3]);
      pa[kb][2] = pack_bf16(s[8 * kb + 4], s[8 * kb + 5]);
      pa[kb][3] = pack_bf16(s[8 * kb + 6], s[8 * kb + 7]);
    }
  };
  // Consumer side of the pipeline: wait until tile j's K (V) landed; say its K (V) is no longer read.
  auto wait_k = [&](int j) { mbarrier_wait(split ? k_ready(j % kStages) : k_full(j % kStages), (j / kStages) & 1); };
  auto wait_v = [&](int j) { mbarrier_wait(v_full(j % kStages), (j / kStages) & 1); };
  auto release_k = [&](int j) {
    if (lane == 0) mbarrier_arrive(k_empty(j % kStages));
  };
  auto release_v = [&](int j) {
    if (lane == 0) mbarrier_arrive(v_empty(j % kStages));
  };

  if (n_tiles > 0) {
    mbarrier_wait(q_full, 0);
    float corr[2];
    wait_k(0);
    issue_s(0);
    wgmma_wait<0>();
    fence_operands(s);
    release_k(0);
    softmax(0, corr);
    convert_p();
    for (int j = 1; j < n_tiles; j++) {
      wait_k(j);
      wait_v(j - 1);
      issue_s(j);
      issue_pv(j - 1);
      wgmma_wait<1>();  // S(j) done; P(j−1)·V(j−1) may still run
      fence_operands(s);
      release_k(j);
      softmax(j, corr);
      wgmma_wait<0>();
      fence_operands(o);
      release_v(j - 1);
      rescale_o(corr);
      convert_p();
    }
    wait_v(n_tiles - 1);
    issue_pv(n_tiles - 1);
    wgmma_wait<0>();
    fence_operands(o);
    release_v(n_tiles - 1);
  }

  // Normalise, write out and lse (−∞ and zeros for rows that saw no key).
  bf16* out = p.out + (int64_t(b) * p.heads + h) * p.q_len * D;
  float* lse = p.lse + (int64_t(b) * p.heads + h) * p.q_len;
#pragma unroll
  for (int r = 0; r < 2; r++) {
    float sum = row_sum[r];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    const float inv = sum > 0.f ? 1.f / sum : 0.f;
    const int i = row0 + 8 * r;
    if (i >= p.q_len) continue;
#pragma unroll
    for (int j = 0; j < D / 8; j++) {
      *reinterpret_cast<__nv_bfloat162*>(out + int64_t(i) * D + 8 * j + 2 * t) =
          __floats2bfloat162_rn(o[4 * j + 2 * r] * inv, o[4 * j + 2 * r + 1] * inv);
    }
    if (t == 0) lse[i] = sum > 0.f ? (row_max[r] + log2f(sum)) * kLn2 : -INFINITY;
  }
#endif
}

}  // namespace andromeda::cuda::attention::hopper
