// Backward, query side: one CTA per (query tile, head, batch item) walks the key tiles like the
// forward, recomputes P = 2^(S − lse) and accumulates dQ' = scale · Σ dS K' in registers, where
// dS = P ⊙ (dP − δ), dP = dO Vᵀ and δ = rowsum(dO ⊙ O). No atomics: every dQ row has one owner.
// At the end dQ' goes back through xPos and rotary to the gradient of q as given (in-kernel transform),
// or is stored as float32 for the pre-pass path's post-pass (grad_q_f32).
#pragma once
#include "tile.cuh"

namespace andromeda::cuda::attention {

template <int D, int kWarps, int kBlockN>
struct BackwardDqConfig {
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kBlockM = 16 * kWarps;
  static constexpr int LD = tile_ld<D>();
  static constexpr int kSmemBytes = (2 * kBlockM + 4 * kBlockN) * LD * int(sizeof(bf16));  // Q, dO, 2 × K, 2 × V
};

template <int D, int kWarps, int kBlockN, bool kTransform>
__global__ void __launch_bounds__(kWarps * 32) attention_backward_dq_kernel(const __grid_constant__ Params p) {
  using Cfg = BackwardDqConfig<D, kWarps, kBlockN>;
  constexpr int LD = Cfg::LD, kBlockM = Cfg::kBlockM, kThreads = Cfg::kThreads;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* sQ = reinterpret_cast<bf16*>(smem);
  bf16* sdO = sQ + kBlockM * LD;
  bf16* sK = sdO + kBlockM * LD;
  bf16* sV = sK + 2 * kBlockN * LD;

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int q_tile = gridDim.x - 1 - blockIdx.x;
  const int h = blockIdx.y, b = blockIdx.z;
  const int m0 = q_tile * kBlockM;
  const int rows_valid = min(kBlockM, p.q_len - m0);
  const int64_t head_row0 = (int64_t(b) * p.heads + h) * p.q_len;
  const bf16* k = p.k + (int64_t(b) * p.k_heads + key_head_of(p, h)) * p.k_len * D;
  const bf16* v = p.v + (int64_t(b) * p.kv_heads + kv_head_of(p, h)) * p.k_len * D;
  const float* g_row = p.key_scale ? p.key_scale + int64_t(h) * D : nullptr;
  const float slope = p.has_alibi ? p.alibi_slope_log2[h] : 0.f;

  int n_end = p.k_len;
  if (p.causal) n_end = min(n_end, m0 + rows_valid - 1 + p.query_offset + 1);
  const int n_tiles = n_end > 0 ? (n_end + kBlockN - 1) / kBlockN : 0;

  auto load_kv = [&](int tile, int stage) {
    const int n0 = tile * kBlockN;
    load_tile_async<D, kBlockN, kThreads>(sK + stage * kBlockN * LD, k + int64_t(n0) * D, p.k_len - n0);
    load_tile_async<D, kBlockN, kThreads>(sV + stage * kBlockN * LD, v + int64_t(n0) * D, p.k_len - n0);
  };

  load_tile_async<D, kBlockM, kThreads>(sQ, p.q + (head_row0 + m0) * D, rows_valid);
  load_tile_async<D, kBlockM, kThreads>(sdO, p.grad_out + (head_row0 + m0) * D, rows_valid);
  cp_async_commit();
  if (n_tiles > 0) {
    load_kv(0, 0);
    cp_async_commit();
    cp_async_wait<1>();
  } else {
    cp_async_wait<0>();
  }
  __syncthreads();
  const int anchor = query_position(p, b, m0);
  if (kTransform) {
    transform_tile<D, kBlockM, kThreads>(sQ, p, b, m0, rows_valid, false, anchor, nullptr,
                                         p.rotary_dim ? rotary_rows(p, false, b, m0) : nullptr, nullptr);
    __syncthreads();
  }
  uint32_t qf[D / 16][4], dof[D / 16][4];
#pragma unroll
  for (int kb = 0; kb < D / 16; kb++) {
    load_a(qf[kb], sQ, LD, warp * 16, kb * 16, lane);
    load_a(dof[kb], sdO, LD, warp * 16, kb * 16, lane);
  }

  const QueryRow rows[2] = {query_row(p, b, m0 + warp * 16 + g), query_row(p, b, m0 + warp * 16 + g + 8)};
  float lse_log2[2], delta[2];
#pragma unroll
  for (int r = 0; r < 2; r++) {
    const int64_t i = head_row0 + (rows[r].valid ? rows[r].index : 0);
    const float l = p.lse[i];
    lse_log2[r] = (l == -INFINITY || !rows[r].valid) ? INFINITY : l * kLog2e;  // P = 0 for rows that saw nothing
    delta[r] = p.delta[i];
  }
  float dq[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; n++) dq[n][0] = dq[n][1] = dq[n][2] = dq[n][3] = 0.f;

  for (int it = 0; it < n_tiles; it++) {
    const int stage = it & 1;
    if (it + 1 < n_tiles) {
      load_kv(it + 1, stage ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    bf16* kS = sK + stage * kBlockN * LD;
    const bf16* vS = sV + stage * kBlockN * LD;
    const int n0 = it * kBlockN;
    if (kTransform) {
      transform_tile<D, kBlockN, kThreads>(kS, p, b, n0, min(kBlockN, p.k_len - n0), true, anchor, g_row,
                                           p.rotary_dim ? rotary_rows(p, true, b, n0) : nullptr, nullptr);
      __syncthreads();
    }

    float s[kBlockN / 8][4], dp[kBlockN / 8][4];
#pragma unroll
    for (int n = 0; n < kBlockN / 8; n++)
#pragma unroll
      for (int e = 0; e < 4; e++) s[n][e] = dp[n][e] = 0.f;
#pragma unroll
    for (int kb = 0; kb < D / 16; kb++) {
#pragma unroll
      for (int np = 0; np < kBlockN / 16; np++) {
        uint32_t bk[4], bv[4];
        load_b_rows_n(bk, kS, LD, np * 16, kb * 16, lane);
        mma_bf16(s[2 * np], qf[kb], bk[0], bk[1]);
        mma_bf16(s[2 * np + 1], qf[kb], bk[2], bk[3]);
        load_b_rows_n(bv, vS, LD, np * 16, kb * 16, lane);  // dP = dO Vᵀ
        mma_bf16(dp[2 * np], dof[kb], bv[0], bv[1]);
        mma_bf16(dp[2 * np + 1], dof[kb], bv[2], bv[3]);
      }
    }

    const bool check_masks = n0 + kBlockN > p.k_len || (p.causal && n0 + kBlockN - 1 > m0 + p.query_offset) || p.q_seg;
#pragma unroll
    for (int n = 0; n < kBlockN / 8; n++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int r = e >> 1;
        const float x = score_log2(p, b, slope, rows[r], n0 + 8 * n + 2 * t + (e & 1), s[n][e], check_masks);
        const float prob = fast_exp2(x - lse_log2[r]);
        s[n][e] = prob * (dp[n][e] - delta[r]);  // dS
      }
    }

    // dQ' += dS K'.
#pragma unroll
    for (int kb = 0; kb < kBlockN / 16; kb++) {
      uint32_t a[4];
      c_to_a(a, s[2 * kb], s[2 * kb + 1]);
#pragma unroll
      for (int np = 0; np < D / 16; np++) {
        uint32_t bk[4];
        load_b_rows_k(bk, kS, LD, kb * 16, np * 16, lane);
        mma_bf16(dq[2 * np], a, bk[0], bk[1]);
        mma_bf16(dq[2 * np + 1], a, bk[2], bk[3]);
      }
    }
    __syncthreads();
  }

#pragma unroll
  for (int n = 0; n < D / 8; n++)
#pragma unroll
    for (int e = 0; e < 4; e++) dq[n][e] *= p.scale;
  if (kTransform && p.rotary_dim > 0) {
    const float2* t0 = rows[0].valid ? rotary_rows(p, false, b, rows[0].index) : nullptr;
    const float2* t1 = rows[1].valid ? rotary_rows(p, false, b, rows[1].index) : nullptr;
    untransform<D>(dq, p, t0, t1, float(rows[0].pos - anchor), float(rows[1].pos - anchor), t);
  }
#pragma unroll
  for (int r = 0; r < 2; r++) {
    if (!rows[r].valid) continue;
    const int64_t row = (head_row0 + rows[r].index) * D;
#pragma unroll
    for (int n = 0; n < D / 8; n++) {
      if (p.grad_q_f32) {
        *reinterpret_cast<float2*>(p.grad_q_f32 + row + 8 * n + 2 * t) = make_float2(dq[n][2 * r], dq[n][2 * r + 1]);
      } else {
        *reinterpret_cast<__nv_bfloat162*>(p.grad_q + row + 8 * n + 2 * t) =
            __floats2bfloat162_rn(dq[n][2 * r], dq[n][2 * r + 1]);
      }
    }
  }
}

}  // namespace andromeda::cuda::attention
