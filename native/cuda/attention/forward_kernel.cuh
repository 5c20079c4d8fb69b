// The tiled forward kernel (FlashAttention-2 on mma.sync): one CTA per (query tile, head, batch item);
// each warp owns 16 query rows held in registers and walks the key tiles, double-buffered through
// cp.async, with an online softmax in base 2 and fp32 accumulators.
#pragma once
#include "tile.cuh"

namespace andromeda::cuda::attention {

template <int D, int kWarps, int kBlockN>
struct ForwardConfig {
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kBlockM = 16 * kWarps;
  static constexpr int LD = tile_ld<D>();
  static constexpr int kSmemBytes = (kBlockM + 4 * kBlockN) * LD * int(sizeof(bf16));  // Q, 2 × K, 2 × V
};

/**
 * kTransform: q and k tiles are rotated / scaled in shared memory (rotary, xPos, key scale). The xPos
 * anchor is the position of the tile's first query, for q and for every key tile it meets.
 */
template <int D, int kWarps, int kBlockN, bool kTransform>
__global__ void __launch_bounds__(kWarps * 32) attention_forward_kernel(const __grid_constant__ Params p) {
  using Cfg = ForwardConfig<D, kWarps, kBlockN>;
  constexpr int LD = Cfg::LD, kBlockM = Cfg::kBlockM, kThreads = Cfg::kThreads;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* sQ = reinterpret_cast<bf16*>(smem);
  bf16* sK = sQ + kBlockM * LD;
  bf16* sV = sK + 2 * kBlockN * LD;

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int q_tile = gridDim.x - 1 - blockIdx.x;  // the longest causal rows first
  const int h = blockIdx.y, b = blockIdx.z, hk = kv_head_of(p, h);
  const int m0 = q_tile * kBlockM;
  const int rows_valid = min(kBlockM, p.q_len - m0);
  const bf16* q = p.q + (int64_t(b) * p.heads + h) * p.q_len * D;
  const bf16* k = p.k + (int64_t(b) * p.kv_heads + hk) * p.k_len * D;
  const bf16* v = p.v + (int64_t(b) * p.kv_heads + hk) * p.k_len * D;
  const float* g_row = p.key_scale ? p.key_scale + int64_t(h) * D : nullptr;
  const float slope = p.has_alibi ? p.alibi_slope_log2[h] : 0.f;

  // Keys any row of the tile may see.
  int n_end = p.k_len;
  if (p.causal) n_end = min(n_end, m0 + rows_valid - 1 + p.query_offset + 1);
  const int n_tiles = n_end > 0 ? (n_end + kBlockN - 1) / kBlockN : 0;

  auto load_kv = [&](int tile, int stage) {
    const int n0 = tile * kBlockN;
    load_tile_async<D, kBlockN, kThreads>(sK + stage * kBlockN * LD, k + int64_t(n0) * D, p.k_len - n0);
    load_tile_async<D, kBlockN, kThreads>(sV + stage * kBlockN * LD, v + int64_t(n0) * D, p.k_len - n0);
  };

  load_tile_async<D, kBlockM, kThreads>(sQ, q + int64_t(m0) * D, rows_valid);
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
    transform_tile<D, kBlockM, kThreads>(sQ, p, b, m0, rows_valid, false, anchor, nullptr);
    __syncthreads();
  }
  uint32_t qf[D / 16][4];
#pragma unroll
  for (int kb = 0; kb < D / 16; kb++) load_a(qf[kb], sQ, LD, warp * 16, kb * 16, lane);

  const QueryRow rows[2] = {query_row(p, b, m0 + warp * 16 + g), query_row(p, b, m0 + warp * 16 + g + 8)};
  float o[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.f, 0.f};

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
      transform_tile<D, kBlockN, kThreads>(kS, p, b, n0, min(kBlockN, p.k_len - n0), true, anchor, g_row);
      __syncthreads();
    }

    // S = Q Kᵀ for this warp's 16 rows.
    float s[kBlockN / 8][4];
#pragma unroll
    for (int n = 0; n < kBlockN / 8; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
    for (int kb = 0; kb < D / 16; kb++) {
#pragma unroll
      for (int np = 0; np < kBlockN / 16; np++) {
        uint32_t bk[4];
        load_b_rows_n(bk, kS, LD, np * 16, kb * 16, lane);
        mma_bf16(s[2 * np], qf[kb], bk[0], bk[1]);
        mma_bf16(s[2 * np + 1], qf[kb], bk[2], bk[3]);
      }
    }

    // Scale, bias, masks; online softmax per row (a row lives in the 4 lanes of a quad).
    const bool check_masks = n0 + kBlockN > p.k_len || (p.causal && n0 + kBlockN - 1 > m0 + p.query_offset) || p.q_seg;
#pragma unroll
    for (int n = 0; n < kBlockN / 8; n++)
#pragma unroll
      for (int e = 0; e < 4; e++)
        s[n][e] = score_log2(p, b, slope, rows[e >> 1], n0 + 8 * n + 2 * t + (e & 1), s[n][e], check_masks);
#pragma unroll
    for (int r = 0; r < 2; r++) {
      float mx = -INFINITY;
#pragma unroll
      for (int n = 0; n < kBlockN / 8; n++) mx = fmaxf(mx, fmaxf(s[n][2 * r], s[n][2 * r + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float new_max = fmaxf(row_max[r], mx);
      const float base = new_max == -INFINITY ? 0.f : new_max;  // a row with nothing visible yet
      const float correction = fast_exp2(row_max[r] - base);
      row_max[r] = new_max;
      float sum = 0.f;
#pragma unroll
      for (int n = 0; n < kBlockN / 8; n++) {
        s[n][2 * r] = fast_exp2(s[n][2 * r] - base);
        s[n][2 * r + 1] = fast_exp2(s[n][2 * r + 1] - base);
        sum += s[n][2 * r] + s[n][2 * r + 1];
      }
      row_sum[r] = row_sum[r] * correction + sum;
#pragma unroll
      for (int n = 0; n < D / 8; n++) {
        o[n][2 * r] *= correction;
        o[n][2 * r + 1] *= correction;
      }
    }

    // O += P V.
#pragma unroll
    for (int kb = 0; kb < kBlockN / 16; kb++) {
      uint32_t pa[4];
      c_to_a(pa, s[2 * kb], s[2 * kb + 1]);
#pragma unroll
      for (int np = 0; np < D / 16; np++) {
        uint32_t bv[4];
        load_b_rows_k(bv, vS, LD, kb * 16, np * 16, lane);
        mma_bf16(o[2 * np], pa, bv[0], bv[1]);
        mma_bf16(o[2 * np + 1], pa, bv[2], bv[3]);
      }
    }
    __syncthreads();  // this stage is refilled next iteration
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
    const int i = rows[r].index;
    if (!rows[r].valid) continue;
#pragma unroll
    for (int n = 0; n < D / 8; n++) {
      *reinterpret_cast<__nv_bfloat162*>(out + int64_t(i) * D + 8 * n + 2 * t) =
          __floats2bfloat162_rn(o[n][2 * r] * inv, o[n][2 * r + 1] * inv);
    }
    if (t == 0) lse[i] = sum > 0.f ? (row_max[r] + log2f(sum)) * kLn2 : -INFINITY;
  }
}

}  // namespace andromeda::cuda::attention
