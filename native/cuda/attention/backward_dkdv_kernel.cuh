// Backward, key side: one CTA per (key tile, query head, batch item). Each warp owns 16 keys and works
// on transposed scores, Sᵀ = K' Q'ᵀ, so its dK and dV rows stay in its registers while the CTA walks the
// query tiles (double-buffered Q and dO through cp.async):
//   Pᵀ = 2^(Sᵀ − lse),  dV += Pᵀ dO,  dPᵀ = V dOᵀ,  dSᵀ = Pᵀ ⊙ (dPᵀ − δ),  dK' += scale · dSᵀ Q'.
// xPos is anchored at the key tile's first position here (q tiles are transformed per key tile). At
// the end dK' goes back through xPos, rotary and the key scale (whose gradient is summed with atomics);
// rows are stored when one query head owns them, otherwise added to float32 accumulators (K and V apart:
// a K expanded per query head by the pre-pass is owned by one head while its V is still shared).
#pragma once
#include "tile.cuh"

namespace andromeda::cuda::attention {

template <int D, int kWarps, int kBlockM>
struct BackwardDkDvConfig {
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kBlockN = 16 * kWarps;
  static constexpr int LD = tile_ld<D>();
  // K', V, 2 × Q, 2 × dO, then per stage the query rows' lse, δ, position and segment (as loaded).
  static constexpr int kTileBytes = (2 * kBlockN + 4 * kBlockM) * LD * int(sizeof(bf16));
  static constexpr int kSmemBytes = kTileBytes + 2 * 4 * kBlockM * 4;
};

template <int D, int kWarps, int kBlockM, bool kTransform>
__global__ void __launch_bounds__(kWarps * 32) attention_backward_dkdv_kernel(const __grid_constant__ Params p) {
  using Cfg = BackwardDkDvConfig<D, kWarps, kBlockM>;
  constexpr int LD = Cfg::LD, kBlockN = Cfg::kBlockN, kThreads = Cfg::kThreads;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* sK = reinterpret_cast<bf16*>(smem);
  bf16* sV = sK + kBlockN * LD;
  bf16* sQ = sV + kBlockN * LD;
  bf16* sdO = sQ + 2 * kBlockM * LD;
  float* sInfo = reinterpret_cast<float*>(smem + Cfg::kTileBytes);  // [stage][4][kBlockM]

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int key_tile = gridDim.x - 1 - blockIdx.x;  // early keys see the most queries: start them first
  const int h = blockIdx.y, b = blockIdx.z;
  const int n0 = key_tile * kBlockN;
  const int keys_valid = min(kBlockN, p.k_len - n0);
  const int64_t k_row0 = (int64_t(b) * p.k_heads + key_head_of(p, h)) * p.k_len;
  const int64_t v_row0 = (int64_t(b) * p.kv_heads + kv_head_of(p, h)) * p.k_len;
  const int64_t head_row0 = (int64_t(b) * p.heads + h) * p.q_len;
  const float* g_row = p.key_scale ? p.key_scale + int64_t(h) * D : nullptr;
  const float slope = p.has_alibi ? p.alibi_slope_log2[h] : 0.f;

  const int m_first = p.causal ? max(0, n0 - p.query_offset) / kBlockM : 0;
  const int m_tiles = (p.q_len + kBlockM - 1) / kBlockM;

  auto load_q = [&](int tile, int stage) {
    const int m0 = tile * kBlockM;
    const int valid = min(kBlockM, p.q_len - m0);
    load_tile_async<D, kBlockM, kThreads>(sQ + stage * kBlockM * LD, p.q + (head_row0 + m0) * D, valid);
    load_tile_async<D, kBlockM, kThreads>(sdO + stage * kBlockM * LD, p.grad_out + (head_row0 + m0) * D, valid);
    // Per-query statistics, asynchronously too (rows past the end are zero and masked).
    float* info = sInfo + stage * 4 * kBlockM;
    for (int i = threadIdx.x; i < kBlockM; i += kThreads) {
      const int row = m0 + i;
      const bool ok = row < p.q_len;
      cp_async_4(info + i, p.lse + head_row0 + (ok ? row : 0), ok);
      cp_async_4(info + kBlockM + i, p.delta + head_row0 + (ok ? row : 0), ok);
      if (p.q_pos) cp_async_4(info + 2 * kBlockM + i, p.q_pos + int64_t(b) * p.q_len + (ok ? row : 0), ok);
      if (p.q_seg) cp_async_4(info + 3 * kBlockM + i, p.q_seg + int64_t(b) * p.q_len + (ok ? row : 0), ok);
    }
  };

  load_tile_async<D, kBlockN, kThreads>(sK, p.k + k_row0 * D + int64_t(n0) * D, keys_valid);
  load_tile_async<D, kBlockN, kThreads>(sV, p.v + v_row0 * D + int64_t(n0) * D, keys_valid);
  cp_async_commit();
  if (m_first < m_tiles) {
    load_q(m_first, 0);
    cp_async_commit();
    cp_async_wait<1>();
  } else {
    cp_async_wait<0>();
  }
  __syncthreads();
  const int anchor = key_position(p, b, n0);
  if (kTransform) {
    transform_tile<D, kBlockN, kThreads>(sK, p, b, n0, keys_valid, true, anchor, g_row,
                                         p.rotary_dim ? rotary_rows(p, true, b, n0) : nullptr, nullptr);
    __syncthreads();
  }

  // The thread's two keys (rows g and g + 8 of the warp's 16).
  int key_index[2], key_pos[2], key_seg[2];
#pragma unroll
  for (int r = 0; r < 2; r++) {
    key_index[r] = n0 + warp * 16 + g + 8 * r;
    const int jc = min(key_index[r], p.k_len - 1);
    key_pos[r] = key_position(p, b, jc);
    key_seg[r] = key_segment(p, b, jc);
  }
  float dk[D / 8][4], dv[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; n++)
#pragma unroll
    for (int e = 0; e < 4; e++) dk[n][e] = dv[n][e] = 0.f;

  for (int mt = m_first; mt < m_tiles; mt++) {
    const int stage = (mt - m_first) & 1;
    if (mt + 1 < m_tiles) {
      load_q(mt + 1, stage ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    bf16* qS = sQ + stage * kBlockM * LD;
    const bf16* doS = sdO + stage * kBlockM * LD;
    const float* info = sInfo + stage * 4 * kBlockM;
    const int m0 = mt * kBlockM;
    if (kTransform) {
      transform_tile<D, kBlockM, kThreads>(qS, p, b, m0, min(kBlockM, p.q_len - m0), false, anchor, nullptr,
                                           p.rotary_dim ? rotary_rows(p, false, b, m0) : nullptr, nullptr);
      __syncthreads();
    }

    // Sᵀ = K' Q'ᵀ and dPᵀ = V dOᵀ for this warp's 16 keys.
    float s[kBlockM / 8][4], dp[kBlockM / 8][4];
#pragma unroll
    for (int n = 0; n < kBlockM / 8; n++)
#pragma unroll
      for (int e = 0; e < 4; e++) s[n][e] = dp[n][e] = 0.f;
#pragma unroll
    for (int kb = 0; kb < D / 16; kb++) {
      uint32_t ak[4], av[4];
      load_a(ak, sK, LD, warp * 16, kb * 16, lane);
      load_a(av, sV, LD, warp * 16, kb * 16, lane);
#pragma unroll
      for (int np = 0; np < kBlockM / 16; np++) {
        uint32_t bq[4], bd[4];
        load_b_rows_n(bq, qS, LD, np * 16, kb * 16, lane);
        mma_bf16(s[2 * np], ak, bq[0], bq[1]);
        mma_bf16(s[2 * np + 1], ak, bq[2], bq[3]);
        load_b_rows_n(bd, doS, LD, np * 16, kb * 16, lane);
        mma_bf16(dp[2 * np], av, bd[0], bd[1]);
        mma_bf16(dp[2 * np + 1], av, bd[2], bd[3]);
      }
    }

    // Pᵀ (kept in s) and dSᵀ (in dp). Column c of the tile is query m0 + c.
    const bool check_masks = m0 + kBlockM > p.q_len || n0 + kBlockN > p.k_len ||
                             (p.causal && n0 + kBlockN - 1 > m0 + p.query_offset) || p.q_seg;
#pragma unroll
    for (int n = 0; n < kBlockM / 8; n++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int r = e >> 1, c = 8 * n + 2 * t + (e & 1), i = m0 + c, j = key_index[r];
        bool visible = true;
        if (check_masks) {
          visible = i < p.q_len && j < p.k_len && (!p.causal || j <= i + p.query_offset) &&
                    (!p.q_seg || __float_as_int(info[3 * kBlockM + c]) == key_seg[r]);
        }
        float x = s[n][e] * p.scale_log2;
        if (p.has_alibi) {
          const int qpos = p.q_pos ? __float_as_int(info[2 * kBlockM + c]) : p.query_offset + i;
          x -= slope * fabsf(float(qpos - key_pos[r]));
        }
        const float lse = info[c];
        const float prob = visible && lse != -INFINITY ? fast_exp2(x - lse * kLog2e) : 0.f;
        s[n][e] = prob;
        dp[n][e] = prob * (dp[n][e] - info[kBlockM + c]);
      }
    }

    // dV += Pᵀ dO and dK' += dSᵀ Q'.
#pragma unroll
    for (int kb = 0; kb < kBlockM / 16; kb++) {
      uint32_t ap[4], ads[4];
      c_to_a(ap, s[2 * kb], s[2 * kb + 1]);
      c_to_a(ads, dp[2 * kb], dp[2 * kb + 1]);
#pragma unroll
      for (int np = 0; np < D / 16; np++) {
        uint32_t bd[4], bq[4];
        load_b_rows_k(bd, doS, LD, kb * 16, np * 16, lane);
        mma_bf16(dv[2 * np], ap, bd[0], bd[1]);
        mma_bf16(dv[2 * np + 1], ap, bd[2], bd[3]);
        load_b_rows_k(bq, qS, LD, kb * 16, np * 16, lane);
        mma_bf16(dk[2 * np], ads, bq[0], bq[1]);
        mma_bf16(dk[2 * np + 1], ads, bq[2], bq[3]);
      }
    }
    __syncthreads();
  }

  // dK' → gradient of k ⊙ g before rotary (u), then of k (g ⊙ u) and of g (k ⊙ u, summed over keys).
#pragma unroll
  for (int n = 0; n < D / 8; n++)
#pragma unroll
    for (int e = 0; e < 4; e++) dk[n][e] *= p.scale;
  if (kTransform && p.rotary_dim > 0) {
    const float2* t0 = key_index[0] < p.k_len ? rotary_rows(p, true, b, key_index[0]) : nullptr;
    const float2* t1 = key_index[1] < p.k_len ? rotary_rows(p, true, b, key_index[1]) : nullptr;
    untransform<D>(dk, p, t0, t1, float(anchor - key_pos[0]), float(anchor - key_pos[1]), t);
  }
  if (g_row) {
    const bf16* k = p.k + k_row0 * D;
#pragma unroll
    for (int n = 0; n < D / 8; n++) {
#pragma unroll
      for (int c = 0; c < 2; c++) {
        const int f = 8 * n + 2 * t + c;
        float partial = 0.f;
#pragma unroll
        for (int r = 0; r < 2; r++)
          if (key_index[r] < p.k_len) partial += __bfloat162float(k[int64_t(key_index[r]) * D + f]) * dk[n][2 * r + c];
        partial += __shfl_xor_sync(0xffffffffu, partial, 4);
        partial += __shfl_xor_sync(0xffffffffu, partial, 8);
        partial += __shfl_xor_sync(0xffffffffu, partial, 16);
        if (g == 0) atomicAdd(p.grad_key_scale + int64_t(h) * D + f, partial);
        dk[n][c] *= g_row[f];
        dk[n][2 + c] *= g_row[f];
      }
    }
  }

  const bool k_shared = p.k_heads != p.heads;  // several query heads add into one key head's rows
#pragma unroll
  for (int r = 0; r < 2; r++) {
    const int j = key_index[r];
    if (j >= p.k_len) continue;
    const int64_t k_row = (k_row0 + j) * D, v_row = (v_row0 + j) * D;
#pragma unroll
    for (int n = 0; n < D / 8; n++) {
      const int f = 8 * n + 2 * t;
      if (p.grad_k_accum && k_shared) {
        atomicAdd(p.grad_k_accum + k_row + f, dk[n][2 * r]);
        atomicAdd(p.grad_k_accum + k_row + f + 1, dk[n][2 * r + 1]);
      } else if (p.grad_k_accum) {
        *reinterpret_cast<float2*>(p.grad_k_accum + k_row + f) = make_float2(dk[n][2 * r], dk[n][2 * r + 1]);
      } else {
        *reinterpret_cast<__nv_bfloat162*>(p.grad_k + k_row + f) = __floats2bfloat162_rn(dk[n][2 * r], dk[n][2 * r + 1]);
      }
      if (p.grad_v_accum) {
        atomicAdd(p.grad_v_accum + v_row + f, dv[n][2 * r]);
        atomicAdd(p.grad_v_accum + v_row + f + 1, dv[n][2 * r + 1]);
      } else {
        *reinterpret_cast<__nv_bfloat162*>(p.grad_v + v_row + f) = __floats2bfloat162_rn(dv[n][2 * r], dv[n][2 * r + 1]);
      }
    }
  }
}

}  // namespace andromeda::cuda::attention
