// The Hopper (sm_90a) attention backward: FlashAttention-2/3's one-kernel form with warpgroup MMA. One CTA per
// (128-key tile, query head, batch item); two consumer warpgroups own 64 keys each and walk the query tiles
// (64 queries) that can see them. Per query tile, rows = this warpgroup's keys:
//   Sᵀ  = K Qᵀ,  dPᵀ = V dOᵀ      wgmma m64n64k16, both operands K-major in shared memory
//   Pᵀ  = 2^(Sᵀ·scale·log2e − ALiBi − lse·log2e), masked;  dSᵀ = Pᵀ ∘ (dPᵀ − δ)      (registers, fp32)
//   dV += Pᵀ dO,  dK += dSᵀ Q     wgmma m64n{D}k16, A from registers (bf16), B MN-major
//   dQ  = dS K (this query tile's share from these 128 keys): dSᵀ goes through shared memory, A and B MN-major.
//        Each warpgroup computes one 64×64 block and adds it to a float32 accumulator in global memory: at head
//        dim 128 features 64·wg.. over all 128 keys (both warpgroups' dSᵀ: a barrier between them), at 64 all
//        features over its own 64 keys (no barrier; both partial blocks are added). Added with
//        red.global.add.v4.f32 per thread. The accumulator keeps each 64×64 block in the wgmma register order
//        (each thread's float4s contiguous); dq_from_accum_kernel converts it.
// dK, dV stay in registers across the walk; at the end they are stored (scaled), or added to the float32
// accumulators of grouped heads, by the same rules as the mma.sync kernels (backward_dkdv_kernel.cuh).
// Loads: 256 threads, no warp specialisation; K, V once, and Q, dO, lse, δ of the next query tile copied by
// cp.async while the current one is used; two CTA barriers per tile.
// Supported: head dims 64 and 128, bf16, causal by index with the query offset, ALiBi with default positions,
// GQA/MQA (key_head_of for K, kv_head_of for V), the split key scale (template kSplit), packed documents (segment
// ids: only the query tiles of the key tile's documents, ids compared only on tiles that mix documents; segments.cuh).
// heuristics.h sends everything else to the mma.sync kernels.
#pragma once
#include <cuda.h>

#include "backward_hopper.h"
#include "backward_hopper_ptx.cuh"
#include "forward_hopper_kernel.cuh"
#include "mma.cuh"
#include "params.cuh"
#include "rotary_pairs.cuh"
#include "segments.cuh"
#include "split_key.cuh"

namespace andromeda::cuda::attention::hopper {

template <int D>
struct BackwardConfig {
  static constexpr int kBlockN = 128;                 // keys per CTA: two consumer warpgroups × 64
  static constexpr int kBlockM = 64;                  // queries per step (registers: Sᵀ, dPᵀ next to dK, dV)
  static constexpr int kStages = 2;                   // Q / dO ring
  static constexpr int kColBlocks = D / 64;
  static constexpr int kKvTileBytes = kBlockN * D * 2;
  static constexpr int kQTileBytes = kBlockM * D * 2;
  static constexpr int kDsBytes = kBlockN * kBlockM * 2;  // dSᵀ, bf16
  static constexpr int kColumnSumBlockBytes = 64 * 64 * 4;       // a 64×64 float32 block (the split key scale's column sums)
  static constexpr int kStatBytes = kBlockM * 4;          // lse, δ or the segment ids of one query tile
  static constexpr int kKOffset = 0;
  static constexpr int kVOffset = kKOffset + kKvTileBytes;
  static constexpr int kQOffset = kVOffset + kKvTileBytes;
  static constexpr int kDoOffset = kQOffset + kStages * kQTileBytes;
  static constexpr int kDsOffset = kDoOffset + kStages * kQTileBytes;  // two buffers (alternate query tiles)
  static constexpr int kColumnSumOffset = kDsOffset + 2 * kDsBytes;           // scratch of the split key scale's column sums
  static constexpr int kStatOffset = kColumnSumOffset + 2 * kColumnSumBlockBytes;    // per stage: lse, δ (, segment ids)
  static constexpr int kSmemBytes = kStatOffset + kStages * 3 * kStatBytes + 1024;  // + slack to align the base to 1 KiB
  static_assert(D == 64 || D == 128, "head dim 64 or 128");
  static_assert(kSmemBytes <= 227 * 1024, "shared memory");
  static_assert(kBlockN == kHopperBackwardKeyTile, "backward_hopper.h names the key tile");
  static_assert(2 * kColumnSumBlockBytes >= 8 * 2 * D * 4, "the split key scale's column sums fit their scratch");
};

/**
 * Rows of the dQ accumulator per batch·head: q_len rounded up to 128 (whole 64-row blocks of every tile size). In
 * 32-bit arithmetic for the kernels; heuristics.h sizes the accumulator with the same rule (backward_hopper.cu checks).
 */
__host__ __device__ constexpr int dq_accum_rows(int q_len) { return (q_len + 127) / 128 * 128; }

/**
 * Pᵀ in place of Sᵀ for one thread's two keys (rows r = 0, 1) and the query columns c = 8jj + 2t + (0, 1):
 * 2^(s·scale_log2 − slope·|dpos[r] + c − 2t| − lse·log2e), zero where the pair is masked. `lo[r] ≤ c − 2t < hi[r]`
 * is the visible range; with kSegments also only queries whose id (query_segments, the tile's ids in shared memory)
 * is the key's (key_segments[r]). Masks are selects, not products: lse may be −∞ there, and the score of a pair
 * across documents is not bounded by the query's lse (its 2^x may be +∞).
 */
template <int kBlockM, bool kAlibi, bool kMasked, bool kSegments = false>
__device__ __forceinline__ void probabilities(float (&s)[kBlockM / 2], const float* lse, int t, float scale_log2, float slope,
                                              const float (&dpos)[2], const int (&lo)[2], const int (&hi)[2],
                                              const int* query_segments = nullptr, const int (&key_segments)[2] = {0, 0}) {
  static_assert(kMasked || !kSegments, "segment ids are compared on the masked path");
#pragma unroll
  for (int jj = 0; jj < kBlockM / 8; jj++) {
    const float2 l = *reinterpret_cast<const float2*>(lse + 8 * jj + 2 * t);
    int2 ids = make_int2(0, 0);
    if constexpr (kSegments) ids = *reinterpret_cast<const int2*>(query_segments + 8 * jj + 2 * t);
#pragma unroll
    for (int e = 0; e < 4; e++) {
      const int r = e >> 1, c = 8 * jj + (e & 1);
      const float lse_log2 = ((e & 1) ? l.y : l.x) * kLog2e;
      float x;
      if constexpr (kAlibi) x = fmaf(s[4 * jj + e], scale_log2, -fmaf(slope, fabsf(dpos[r] + float(c)), lse_log2));
      else x = fmaf(s[4 * jj + e], scale_log2, -lse_log2);
      float prob = fast_exp2(x);
      if constexpr (kSegments)
        prob = (c >= lo[r] && c < hi[r] && ((e & 1) ? ids.y : ids.x) == key_segments[r]) ? prob : 0.f;
      else if constexpr (kMasked)
        prob = (c >= lo[r] && c < hi[r]) ? prob : 0.f;
      s[4 * jj + e] = prob;
    }
  }
}

/** dSᵀ = Pᵀ ∘ (dPᵀ − δ) in place of dPᵀ. */
template <int kBlockM>
__device__ __forceinline__ void score_gradients(float (&dp)[kBlockM / 2], const float (&prob)[kBlockM / 2], const float* delta,
                                                int t) {
#pragma unroll
  for (int jj = 0; jj < kBlockM / 8; jj++) {
    const float2 d = *reinterpret_cast<const float2*>(delta + 8 * jj + 2 * t);
#pragma unroll
    for (int e = 0; e < 4; e++) dp[4 * jj + e] = prob[4 * jj + e] * (dp[4 * jj + e] - ((e & 1) ? d.y : d.x));
  }
}

/** Accumulator tile (rows of this warp, kBlockM columns) → A fragments of the next product, rounded to bf16. */
template <int kBlockM>
__device__ __forceinline__ void to_a_fragments(uint32_t (&a)[kBlockM / 16][4], const float (&x)[kBlockM / 2]) {
#pragma unroll
  for (int kb = 0; kb < kBlockM / 16; kb++) {
#pragma unroll
    for (int i = 0; i < 4; i++) a[kb][i] = pack_bf16(x[8 * kb + 2 * i], x[8 * kb + 2 * i + 1]);
  }
}

/**
 * The split key scale's end of a CTA (256 threads, key tile n0, query head h): dK'_h (scaled, in the accumulator
 * layout: dk[4jj + 2r + e] is key row key_row + 8r, feature 8jj + 2t + e) goes to
 *   dA += c_h ⊙ dK'_h, dB += d_h ⊙ dK'_h (rotary features)        float atomics, shared by the KV head's query heads
 *   partial [b·tiles + tile][h][0][f] = Σ_j A ⊙ dK'_h, [..][1][f] = Σ_j B ⊙ dK'_h   stored
 * The column sums: two rows per thread, the 8 row groups of a warp by shuffles, the 8 warps through `scratch`
 * (2 · 8 · D floats of shared memory no longer in use) in a fixed order.
 */
template <int D>
__device__ __forceinline__ void split_key_gradients(const Params& p, const float (&dk)[D / 2], float* scratch, int k_item,
                                                    int n0, int h, int b, int key_row, int tid) {
  const int lane = tid & 31, warp = tid >> 5, t = lane & 3, g = lane >> 2;
  const float* g_row = p.split_scale + int64_t(h) * D;
  const int rot = p.split_rotary_dim;
#pragma unroll
  for (int jj = 0; jj < D / 8; jj++) {
    const int f = 8 * jj + 2 * t;
    const float2 s0 = split_scale_of(g_row, f, rot), s1 = split_scale_of(g_row, f + 1, rot);
    float ca0 = 0.f, ca1 = 0.f, cb0 = 0.f, cb1 = 0.f;
#pragma unroll
    for (int r = 0; r < 2; r++) {
      const int j = n0 + key_row + 8 * r;
      if (j >= p.k_len) continue;
      const int64_t at = (int64_t(k_item) * p.k_len + j) * D + f;
      const float x0 = dk[4 * jj + 2 * r], x1 = dk[4 * jj + 2 * r + 1];
      const float2 a = unpack_bf16x2(*reinterpret_cast<const uint32_t*>(p.k + at));
      ca0 = fmaf(a.x, x0, ca0);
      ca1 = fmaf(a.y, x1, ca1);
      red_add_v2(p.split_grad_a + at, s0.x * x0, s1.x * x1);
      if (f < rot) {
        const float2 bb = unpack_bf16x2(*reinterpret_cast<const uint32_t*>(p.split_b + at));
        cb0 = fmaf(bb.x, x0, cb0);
        cb1 = fmaf(bb.y, x1, cb1);
        red_add_v2(p.split_grad_b + at, s0.y * x0, s1.y * x1);
      }
    }
#pragma unroll
    for (int m = 4; m < 32; m <<= 1) {
      ca0 += __shfl_xor_sync(0xffffffffu, ca0, m);
      ca1 += __shfl_xor_sync(0xffffffffu, ca1, m);
      cb0 += __shfl_xor_sync(0xffffffffu, cb0, m);
      cb1 += __shfl_xor_sync(0xffffffffu, cb1, m);
    }
    if (g == 0) {
      float* row = scratch + warp * 2 * D;
      row[f] = ca0;
      row[f + 1] = ca1;
      row[D + f] = cb0;
      row[D + f + 1] = cb1;
    }
  }
  __syncthreads();
  float* partial = p.split_grad_cd + ((int64_t(b) * gridDim.x + n0 / kHopperBackwardKeyTile) * p.heads + h) * 2 * D;
  for (int i = tid; i < 2 * D; i += 256) {
    float sum = 0.f;
#pragma unroll
    for (int w = 0; w < 8; w++) sum += scratch[w * 2 * D + i];
    partial[i] = sum;
  }
}

__device__ __forceinline__ void cp_async_16_to(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0));
}

/**
 * cp.async of rows [0, Rows) of a contiguous [rows][D] bf16 block into the swizzled layout: column block cb
 * of row r at tile + cb·Rows·128 + r·128, its 16-byte chunk c at chunk position c ^ (r % 8). Rows ≥ valid
 * become zeros.
 */
template <int D, int Rows, int Threads>
__device__ __forceinline__ void load_rows_swizzled(uint32_t tile, const bf16* rows, int valid, int tid) {
  constexpr int kChunks = D / 8;
  for (int c = tid; c < Rows * kChunks; c += Threads) {
    const int r = c / kChunks, chunk = c % kChunks;
    const int cb = chunk / 8, cc = chunk % 8;
    const bool ok = r < valid;
    const uint32_t dst = tile + cb * Rows * 128 + r * 128 + ((cc ^ (r & 7)) << 4);
    cp_async_16_to(dst, ok ? rows + int64_t(r) * D + chunk * 8 : rows, ok);
  }
}

// kSegments: packed documents (Params::q_seg). A template parameter, not a runtime test: at head dim 128 the kernel
// sits at 255 registers, and the segment code in the other instantiations made ptxas spill.
template <int D, bool kAlibi, bool kSplit = false, bool kSegments = false>
__global__ void __launch_bounds__(256, 1)
    attention_backward_hopper_kernel(const __grid_constant__ Params p, float* __restrict__ dq_accum) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using Cfg = BackwardConfig<D>;
  constexpr int kBlockM = Cfg::kBlockM, kBlockN = Cfg::kBlockN, kStages = Cfg::kStages;
  extern __shared__ unsigned char smem_raw[];
  const uint32_t raw = smem_address(smem_raw);
  const uint32_t base = (raw + 1023u) & ~1023u;
  unsigned char* const smem = smem_raw + (base - raw);  // generic pointer to the aligned base
  const uint32_t sK = base + Cfg::kKOffset, sV = base + Cfg::kVOffset, sQ = base + Cfg::kQOffset,
                 sDo = base + Cfg::kDoOffset, sDs = base + Cfg::kDsOffset, sColumnSums = base + Cfg::kColumnSumOffset,
                 sStat = base + Cfg::kStatOffset;
  constexpr int kStats = kSegments ? 3 : 2;  // per stage: lse, δ (and the query tile's segment ids)
  auto stat_lse = [&](int s) { return sStat + uint32_t(s * kStats * Cfg::kStatBytes); };
  auto stat_delta = [&](int s) { return sStat + uint32_t(s * kStats * Cfg::kStatBytes + Cfg::kStatBytes); };
  auto stat_segment = [&](int s) { return sStat + uint32_t(s * kStats * Cfg::kStatBytes + 2 * Cfg::kStatBytes); };

  // First key tiles first (causal: the ones that see the most queries), over sections of heads whose Q, dO and dQ
  // rows the CTAs in flight share in L2 (lpt_tile).
  const LptTile order = lpt_tile(p);
  const int h = order.head, b = order.batch;
  const int n0 = order.rank * kBlockN;
  const int bh = b * p.heads + h;
  const int k_item = b * p.k_heads + key_head_of(p, h), v_item = b * p.kv_heads + kv_head_of(p, h);
  const int m_tiles = (p.q_len + kBlockM - 1) / kBlockM;
  // First query tile with a row that sees a key of this tile (causal: query i sees key j when j ≤ i + offset).
  const int64_t first_row = p.causal ? max(int64_t(0), int64_t(n0) - p.query_offset) : 0;
  int m_first = int(min(first_row / kBlockM, int64_t(m_tiles))), m_end = m_tiles;
  if constexpr (kSegments) {  // packed documents: only the query tiles of this key tile's documents
    const int4* k_seg_blocks = p.k_seg_blocks + int64_t(b) * segment_blocks(p.k_len);
    const int keys = min(kBlockN, p.k_len - n0);
    m_first = max(m_first, k_seg_blocks[n0 / kSegmentBlockRows].z / kBlockM);
    m_end = min(m_end, (k_seg_blocks[(n0 + keys - 1) / kSegmentBlockRows].w + kBlockM - 1) / kBlockM);
  }
  const int n_iters = kSegments ? max(0, m_end - m_first) : m_tiles - m_first;

  // ---- Consumers: 2 warpgroups × 64 keys ----
  const int tid = threadIdx.x;
  const int wg = tid >> 7, warp = (tid >> 5) & 3, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const int key_row = 64 * wg + 16 * warp + g;  // this thread's keys in the tile: key_row, key_row + 8
  const float slope = kAlibi ? p.alibi_slope_log2[h] : 0.f;
  const int wg_n0 = n0 + 64 * wg;
  static_assert(kBlockM == kSegmentBlockRows && kBlockN == 2 * kSegmentBlockRows, "query tiles and warpgroup keys are summarised blocks");

  // cp.async ring: group 0 holds K, V and query tile 0; group it holds query tile it.
  const bf16* q_src = p.q + int64_t(bh) * p.q_len * D;
  const bf16* do_src = p.grad_out + int64_t(bh) * p.q_len * D;
  const float* lse_src = p.lse + int64_t(bh) * p.q_len;
  const float* delta_src = p.delta + int64_t(bh) * p.q_len;
  auto cp_async_query_tile = [&](int it) {
    const int s = it % kStages, m0 = (m_first + it) * kBlockM;
    load_rows_swizzled<D, kBlockM, 256>(sQ + s * Cfg::kQTileBytes, q_src + int64_t(m0) * D, p.q_len - m0, tid);
    load_rows_swizzled<D, kBlockM, 256>(sDo + s * Cfg::kQTileBytes, do_src + int64_t(m0) * D, p.q_len - m0, tid);
    for (int i = tid; i < kBlockM; i += 256) {
      const bool ok = m0 + i < p.q_len;
      cp_async_4_to(stat_lse(s) + 4 * i, lse_src + (ok ? m0 + i : 0), ok);
      cp_async_4_to(stat_delta(s) + 4 * i, delta_src + (ok ? m0 + i : 0), ok);
      if constexpr (kSegments) cp_async_4_to(stat_segment(s) + 4 * i, p.q_seg + int64_t(b) * p.q_len + (ok ? m0 + i : 0), ok);
    }
  };

  float dk[D / 2], dv[D / 2];
#pragma unroll
  for (int i = 0; i < D / 2; i++) dk[i] = dv[i] = 0.f;
  const int dq_row_blocks = dq_accum_rows(p.q_len) / 64;

  if (n_iters > 0) {
    if constexpr (kSplit) {  // K'_h = c_h ⊙ A + d_h ⊙ B (g_h ⊙ A past the rotary features), built once per CTA
      const int64_t first = (int64_t(k_item) * p.k_len + n0) * D;
      build_split_key_tile<D, kBlockN, 256>(sK, p.k + first, p.split_b + first, p.split_scale + int64_t(h) * D,
                                            p.split_rotary_dim, p.k_len - n0, tid);
    } else {
      load_rows_swizzled<D, kBlockN, 256>(sK, p.k + (int64_t(k_item) * p.k_len + n0) * D, p.k_len - n0, tid);
    }
    load_rows_swizzled<D, kBlockN, 256>(sV, p.v + (int64_t(v_item) * p.k_len + n0) * D, p.k_len - n0, tid);
    cp_async_query_tile(0);
    cp_async_commit();

    // Per key row r: visible query columns lo ≤ c − 2t < hi (relative to the tile), ALiBi distance at c = 2t.
    int key_index[2];
#pragma unroll
    for (int r = 0; r < 2; r++) key_index[r] = n0 + key_row + 8 * r;

    for (int it = 0; it < n_iters; it++) {
      const int s = it % kStages;
      const int m0 = (m_first + it) * kBlockM;
      const uint32_t q_tile = sQ + s * Cfg::kQTileBytes, do_tile = sDo + s * Cfg::kQTileBytes;
      const float* lse = reinterpret_cast<const float*>(smem + (stat_lse(s) - base));
      const float* delta = reinterpret_cast<const float*>(smem + (stat_delta(s) - base));

      __syncthreads();  // everyone is done with the stage the next copies overwrite
      if (it + 1 < n_iters) cp_async_query_tile(it + 1);
      cp_async_commit();
      cp_async_wait<1>();
      fence_proxy_async();  // cp.async wrote through the generic proxy; wgmma reads through the async proxy
      __syncthreads();

      // Sᵀ = K Qᵀ and dPᵀ = V dOᵀ for this warpgroup's 64 keys. Two loops, not one lambda for both: the lambda
      // moves ptxas to spill 8 bytes in the split-key-scale instantiation.
      float st[kBlockM / 2], dpt[kBlockM / 2];
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < D / 16; kk++) {
        const uint32_t a = sK + (kk / 4) * (kBlockN * 128) + wg * (64 * 128) + (kk % 4) * 32;
        const uint32_t bq = q_tile + (kk / 4) * (kBlockM * 128) + (kk % 4) * 32;
        if (kk == 0) wgmma_ss_init<kBlockM>(st, smem_descriptor(a, 16, 1024), smem_descriptor(bq, 16, 1024));
        else wgmma_ss<kBlockM>(st, smem_descriptor(a, 16, 1024), smem_descriptor(bq, 16, 1024), 1);
      }
      wgmma_commit();
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < D / 16; kk++) {
        const uint32_t a = sV + (kk / 4) * (kBlockN * 128) + wg * (64 * 128) + (kk % 4) * 32;
        const uint32_t bd = do_tile + (kk / 4) * (kBlockM * 128) + (kk % 4) * 32;
        if (kk == 0) wgmma_ss_init<kBlockM>(dpt, smem_descriptor(a, 16, 1024), smem_descriptor(bd, 16, 1024));
        else wgmma_ss<kBlockM>(dpt, smem_descriptor(a, 16, 1024), smem_descriptor(bd, 16, 1024), 1);
      }
      wgmma_commit();

      // Pᵀ while dPᵀ is computed.
      wgmma_wait<1>();
      fence_operands(st);
      const bool masked = m0 + kBlockM > p.q_len || wg_n0 + 64 > p.k_len ||
                          (p.causal && int64_t(wg_n0) + 63 > int64_t(m0) + p.query_offset);
      // Packed documents: ids compared only where this warpgroup's keys and the query tile are not one document.
      const bool mixed =
          kSegments && segment_pair_mixed(p.k_seg_blocks[int64_t(b) * segment_blocks(p.k_len) + min(wg_n0, p.k_len - 1) / kSegmentBlockRows],
                                        p.q_seg_blocks[int64_t(b) * segment_blocks(p.q_len) + m0 / kSegmentBlockRows]);
      if (masked || mixed) {
        float dpos[2];
        int lo[2], hi[2];
#pragma unroll
        for (int r = 0; r < 2; r++) {
          const int64_t j = key_index[r];
          dpos[r] = float(int64_t(m0) + p.query_offset - j + 2 * t);
          const int64_t first = p.causal ? j - p.query_offset - m0 : 0;  // first visible column
          const int64_t end = j < p.k_len ? int64_t(p.q_len) - m0 : 0;    // one past the last
          lo[r] = int(min(max(first, int64_t(0)), int64_t(kBlockM))) - 2 * t;
          hi[r] = int(min(max(end, int64_t(0)), int64_t(kBlockM))) - 2 * t;
        }
        // Packed documents: each key's visible columns narrowed to its document's queries (exact where the ids
        // never decrease); other layouts compare ids per element.
        bool compare_ids = false;
        if (mixed) {
#pragma unroll
          for (int r = 0; r < 2; r++) {
            const int2 queries = __ldg(p.k_seg_queries + int64_t(b) * p.k_len + min(key_index[r], p.k_len - 1));
            lo[r] = max(lo[r], queries.x - m0 - 2 * t);
            hi[r] = min(hi[r], queries.y - m0 - 2 * t);
          }
          compare_ids = __ldg(p.seg_sorted + b) == 0;
        }
        if (compare_ids) {
          int key_segment_ids[2];
#pragma unroll
          for (int r = 0; r < 2; r++) key_segment_ids[r] = __ldg(p.k_seg + int64_t(b) * p.k_len + min(key_index[r], p.k_len - 1));
          const int* query_segments = reinterpret_cast<const int*>(smem + (stat_segment(s) - base));
          probabilities<kBlockM, kAlibi, true, true>(st, lse, t, p.scale_log2, slope, dpos, lo, hi, query_segments,
                                                     key_segment_ids);
        } else {
          probabilities<kBlockM, kAlibi, true>(st, lse, t, p.scale_log2, slope, dpos, lo, hi);
        }
      } else {
        float dpos[2];
        const int lo[2] = {0, 0}, hi[2] = {kBlockM, kBlockM};
#pragma unroll
        for (int r = 0; r < 2; r++) dpos[r] = float(int64_t(m0) + p.query_offset - key_index[r] + 2 * t);
        probabilities<kBlockM, kAlibi, false>(st, lse, t, p.scale_log2, slope, dpos, lo, hi);
      }
      uint32_t pa[kBlockM / 16][4];
      to_a_fragments<kBlockM>(pa, st);

      // dV += Pᵀ dO (runs while dSᵀ is computed).
      wgmma_fence();
#pragma unroll
      for (int kb = 0; kb < kBlockM / 16; kb++)
        wgmma_rs_mn<D>(dv, pa[kb], smem_descriptor(do_tile + kb * 16 * 128, kBlockM * 128, 1024), 1);
      wgmma_commit();

      wgmma_wait<1>();  // dPᵀ done
      fence_operands(dpt);
      score_gradients<kBlockM>(dpt, st, delta, t);
      uint32_t da[kBlockM / 16][4];
      to_a_fragments<kBlockM>(da, dpt);

      // dSᵀ → shared memory (rows = keys, 64-query column blocks, 128-byte swizzle) for dQ = dS K.
      const uint32_t ds_tile = sDs + (it & 1) * Cfg::kDsBytes;
#pragma unroll
      for (int kb = 0; kb < kBlockM / 16; kb++) {
#pragma unroll
        for (int i = 0; i < 4; i++) {
          const int jj = 2 * kb + (i >> 1), row = key_row + 8 * (i & 1);
          st_shared_b32(ds_tile + (jj / 8) * (kBlockN * 128) + row * 128 + (((jj % 8) ^ (row & 7)) << 4) + 4 * t, da[kb][i]);
        }
      }
      fence_proxy_async();

      // dQ block of this warpgroup: features 64·wg.. over all keys at head dim 128; at 64 all features over the
      // warpgroup's own keys (rows 64·wg.. of dSᵀ and K). Issued before dK += dSᵀ Q so that its store into the
      // accumulator runs while dK is computed.
      constexpr bool kAllKeys = D == 128;
      if constexpr (kAllKeys) named_barrier_sync(1, 256);  // both warpgroups' dSᵀ are in shared memory
      else named_barrier_sync(2 + wg, 128);                // this warpgroup's dSᵀ is
      float dq[32];
      const uint32_t a0 = ds_tile + (kAllKeys ? 0 : wg * 64 * 128);
      const uint32_t b0 = sK + (kAllKeys ? wg * kBlockN * 128 : wg * 64 * 128);
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < (kAllKeys ? kBlockN : 64) / 16; kk++) {
        const uint64_t da_desc = smem_descriptor(a0 + kk * 16 * 128, kBlockN * 128, 1024);
        const uint64_t db_desc = smem_descriptor(b0 + kk * 16 * 128, kBlockN * 128, 1024);
        if (kk == 0) wgmma_ss_m64n64k16_tt_init(dq, da_desc, db_desc);
        else wgmma_ss_m64n64k16_tt(dq, da_desc, db_desc, 1);
      }
      wgmma_commit();
#pragma unroll
      for (int kb = 0; kb < kBlockM / 16; kb++)
        wgmma_rs_mn<D>(dk, da[kb], smem_descriptor(q_tile + kb * 16 * 128, kBlockM * 128, 1024), 1);
      wgmma_commit();
      wgmma_wait<1>();  // dV and dQ done; dK may still run
      fence_operands(dq);

      // dQ block → the accumulator, in register order: float4 i of thread (warp, lane) at ((i·4 + warp)·32 + lane)·4.
      const int row_block = m0 / 64, col_block = kAllKeys ? wg : 0;
      float* block = dq_accum + ((int64_t(bh) * dq_row_blocks + row_block) * (D / 64) + col_block) * 4096;
#pragma unroll
      for (int i = 0; i < 8; i++)
        red_add_v4(block + ((i * 4 + warp) * 32 + lane) * 4, dq[4 * i], dq[4 * i + 1], dq[4 * i + 2], dq[4 * i + 3]);

      wgmma_wait<0>();
      fence_operands(dk);
      fence_operands(dv);
    }
  }

  // dK (scaled), dV: stored when one query head owns the rows, else added to the float32 accumulators.
#pragma unroll
  for (int i = 0; i < D / 2; i++) dk[i] *= p.scale;
  const bool k_shared = p.k_heads != p.heads;
  // Nothing to add (the split key scale's column-sum partials were zeroed by the launcher).
  if (n_iters == 0 && (kSplit || (p.grad_k_accum && k_shared)) && p.grad_v_accum) return;
#pragma unroll
  for (int r = 0; r < 2; r++) {
    const int j = n0 + key_row + 8 * r;
    if (j >= p.k_len) continue;
    const int64_t k_row = (int64_t(k_item) * p.k_len + j) * D, v_row = (int64_t(v_item) * p.k_len + j) * D;
#pragma unroll
    for (int jj = 0; jj < D / 8; jj++) {
      const int f = 8 * jj + 2 * t;
      const float k0 = dk[4 * jj + 2 * r], k1 = dk[4 * jj + 2 * r + 1];
      const float v0 = dv[4 * jj + 2 * r], v1 = dv[4 * jj + 2 * r + 1];
      if constexpr (!kSplit) {  // (the split key scale's dK' goes to dA, dB below)
        if (p.grad_k_accum && k_shared) red_add_v2(p.grad_k_accum + k_row + f, k0, k1);
        else if (p.grad_k_accum) *reinterpret_cast<float2*>(p.grad_k_accum + k_row + f) = make_float2(k0, k1);
        else *reinterpret_cast<__nv_bfloat162*>(p.grad_k + k_row + f) = __floats2bfloat162_rn(k0, k1);
      }
      if (p.grad_v_accum) red_add_v2(p.grad_v_accum + v_row + f, v0, v1);
      else *reinterpret_cast<__nv_bfloat162*>(p.grad_v + v_row + f) = __floats2bfloat162_rn(v0, v1);
    }
  }
  if constexpr (kSplit) {
    split_key_gradients<D>(p, dk, reinterpret_cast<float*>(smem + (sColumnSums - base)), k_item, n0, h, b, key_row, tid);
  }
#endif
}

/**
 * grad_q (bf16) or grad_q_f32 = scale · dQ from the accumulator [batch·heads][dq_accum_rows / 64][D / 64][4096] whose
 * 64×64 blocks hold float4 i of (warp, lane) at ((i·4 + warp)·32 + lane)·4: rows 16·warp + lane/4 (+ 8 for the
 * second pair), columns 8i + 2·(lane % 4) (+ 1).
 */
template <int D>
__global__ void dq_from_accum_kernel(const float4* __restrict__ accum, int64_t count4, int q_len, float scale,
                                     bf16* __restrict__ grad_q, float* __restrict__ grad_q_f32) {
  const int row_blocks = dq_accum_rows(q_len) / 64;
  for (int64_t x = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; x < count4; x += int64_t(gridDim.x) * blockDim.x) {
    const int within = int(x % 1024);  // float4 index inside the 64×64 block
    const int64_t blk = x / 1024;
    const int col_block = int(blk % (D / 64));
    const int64_t rest = blk / (D / 64);
    const int row_block = int(rest % row_blocks);
    const int64_t bh = rest / row_blocks;
    const int i = within / 128, warp = (within / 32) % 4, lane = within % 32;
    const int row = row_block * 64 + 16 * warp + lane / 4, col = col_block * 64 + 8 * i + 2 * (lane % 4);
    const float4 v = accum[x];
#pragma unroll
    for (int half = 0; half < 2; half++) {
      const int rr = row + 8 * half;
      if (rr >= q_len) continue;
      const float a = (half ? v.z : v.x) * scale, b = (half ? v.w : v.y) * scale;
      const int64_t at = (bh * q_len + rr) * D + col;
      if (grad_q_f32) *reinterpret_cast<float2*>(grad_q_f32 + at) = make_float2(a, b);
      else *reinterpret_cast<__nv_bfloat162*>(grad_q + at) = __floats2bfloat162_rn(a, b);
    }
  }
}

/**
 * The pair of columns (c, c + 1), c even, of row r of one 64-row block of the accumulator above (its D / 64 column
 * blocks of 4,096 floats one after another): float4 ((i·4 + warp)·32 + lane) with i = (c % 64) / 8, warp = r / 16,
 * lane = (r % 8)·4 + (c % 8) / 2, its first half for rows r % 16 < 8 and its second for the others.
 */
__device__ __forceinline__ float2 dq_accum_pair(const float* row_block, int r, int c) {
  const int cc = c % 64;
  const int float4_index = ((cc / 8) * 4 + r / 16) * 32 + (r % 8) * 4 + (cc % 8) / 2;
  return *reinterpret_cast<const float2*>(row_block + (c / 64) * 4096 + float4_index * 4 + ((r % 16) / 8) * 2);
}

/**
 * The pre-pass path with rotary: grad_q (bf16) = Rᵀ(z ⊙ scale · dQ') straight from the accumulator, which holds dQ'
 * (the gradient wrt the transformed rows q'); `p` carries the call's transform (rotary tables, xPos rates) and
 * grad_q, `anchor` its xPos anchor. One quad of one row a thread (rotary_pairs.cuh), as the pre-pass's own
 * untransform_q_kernel, without the float32 dQ' between them.
 */
template <int D, typename Index>
__global__ void dq_rotary_from_accum_kernel(const float* __restrict__ accum, const __grid_constant__ Params p,
                                            int anchor) {
  constexpr int kQuads = D / 4;
  const int row_blocks = dq_accum_rows(p.q_len) / 64;
  // Index: 32-bit where the work fits (the launcher picks), so that the row arithmetic is no 64-bit division.
  const Index work = Index(p.batch) * Index(p.heads) * Index(p.q_len) * Index(kQuads);
  for (Index x = Index(blockIdx.x) * blockDim.x + threadIdx.x; x < work; x += Index(gridDim.x) * blockDim.x) {
    const Index row = x / Index(kQuads);
    const int t = int(x % Index(kQuads)), i = int(row % Index(p.q_len));
    const int64_t bh = int64_t(row / Index(p.q_len));
    const int b = int(bh / p.heads);
    const float* block = accum + (bh * row_blocks + i / 64) * (D / 64) * 4096;
    const QuadOffsets o = quad_offsets(t, p.rotary_dim);
    float2 lo = dq_accum_pair(block, i % 64, o.lo), hi = dq_accum_pair(block, i % 64, o.hi);
    lo = make_float2(lo.x * p.scale, lo.y * p.scale);
    hi = make_float2(hi.x * p.scale, hi.y * p.scale);
    if (o.rotary) rotate_back(lo, hi, rotary_factors(p, false, b, i, o.lo, float(query_position(p, b, i) - anchor)));
    bf16* dst = p.grad_q + int64_t(row) * D;
    *reinterpret_cast<__nv_bfloat162*>(dst + o.lo) = __floats2bfloat162_rn(lo.x, lo.y);
    *reinterpret_cast<__nv_bfloat162*>(dst + o.hi) = __floats2bfloat162_rn(hi.x, hi.y);
  }
}

}  // namespace andromeda::cuda::attention::hopper
