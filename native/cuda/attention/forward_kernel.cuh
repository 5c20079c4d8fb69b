// The tiled forward kernel (FlashAttention-2 on mma.sync): one CTA per (query tile, head, batch item);
// each warp owns kMTiles × 16 query rows and walks the key tiles, double-buffered through cp.async, with
// an online softmax in base 2 and fp32 accumulators. With two row tiles per warp every K/V fragment read
// from shared memory feeds four MMAs instead of two, which halves shared-memory traffic per FLOP (the
// limit of the one-tile layout); q fragments are then re-read from shared memory per k step.
#pragma once
#include "tile.cuh"

namespace andromeda::cuda::attention {

template <int D, int kWarps, int kMTiles, int kBlockN>
struct ForwardConfig {
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kBlockM = 16 * kMTiles * kWarps;
  static constexpr int LD = tile_ld<D>();
  static constexpr int kSmemBytes = (kBlockM + 4 * kBlockN) * LD * int(sizeof(bf16));  // Q, 2 × K, 2 × V
  // With the transform: per stage the tile's rotary rows (rotary_dim / 2 pairs) and positions.
  static constexpr int transform_bytes(int rotary_dim) {
    return 2 * kBlockN * (rotary_dim / 2) * int(sizeof(float2)) + 2 * kBlockN * int(sizeof(int));
  }
};

/**
 * kTransform: q and k tiles are rotated / scaled in shared memory (rotary, xPos, key scale). The xPos
 * anchor is the position of the tile's first query, for q and for every key tile it meets.
 */
template <int D, int kWarps, int kMTiles, int kBlockN, bool kTransform>
__global__ void __launch_bounds__(kWarps * 32) attention_forward_kernel(const __grid_constant__ Params p) {
  using Cfg = ForwardConfig<D, kWarps, kMTiles, kBlockN>;
  constexpr int LD = Cfg::LD, kBlockM = Cfg::kBlockM, kThreads = Cfg::kThreads;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* sQ = reinterpret_cast<bf16*>(smem);
  bf16* sK = sQ + kBlockM * LD;
  bf16* sV = sK + 2 * kBlockN * LD;
  // Only with kTransform: per stage the tile's rotary rows ([kBlockN][rotary_dim / 2]) and positions.
  const int rot_half = p.rotary_dim / 2;
  float2* sRot = reinterpret_cast<float2*>(sV + 2 * kBlockN * LD);
  int* sPos = reinterpret_cast<int*>(sRot + 2 * kBlockN * rot_half);

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int q_tile = gridDim.x - 1 - blockIdx.x;  // the longest causal rows first
  const int h = blockIdx.y, b = blockIdx.z;
  const int m0 = q_tile * kBlockM;
  const int warp_row0 = warp * 16 * kMTiles;  // this warp's first row within the tile
  const int rows_valid = min(kBlockM, p.q_len - m0);
  const bf16* q = p.q + (int64_t(b) * p.heads + h) * p.q_len * D;
  const bf16* k = p.k + (int64_t(b) * p.k_heads + key_head_of(p, h)) * p.k_len * D;
  const bf16* v = p.v + (int64_t(b) * p.kv_heads + kv_head_of(p, h)) * p.k_len * D;
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
    if constexpr (kTransform)
      load_transform_inputs_async<kBlockN, kThreads>(sRot + stage * kBlockN * rot_half, sPos + stage * kBlockN, p, true, b,
                                                     n0, p.k_len - n0);
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
    transform_tile<D, kBlockM, kThreads>(sQ, p, b, m0, rows_valid, false, anchor, nullptr,
                                         p.rotary_dim ? rotary_rows(p, false, b, m0) : nullptr, nullptr);
    __syncthreads();
  }

  // Row r of m tile mt is m0 + warp_row0 + 16 mt + g + 8 r. Its position and segment are re-read per key
  // tile (cached loads) rather than kept: at head dim 128 every register is needed for O and S.
  const int thread_row0 = m0 + warp_row0 + g;
  float o[kMTiles][D / 8][4];
  float row_max[kMTiles][2], row_sum[kMTiles][2];
#pragma unroll
  for (int mt = 0; mt < kMTiles; mt++) {
#pragma unroll
    for (int r = 0; r < 2; r++) {
      row_max[mt][r] = -INFINITY;
      row_sum[mt][r] = 0.f;
    }
#pragma unroll
    for (int n = 0; n < D / 8; n++) o[mt][n][0] = o[mt][n][1] = o[mt][n][2] = o[mt][n][3] = 0.f;
  }

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
                                           sRot + stage * kBlockN * rot_half, sPos + stage * kBlockN);
      __syncthreads();
    }

    // S = Q Kᵀ for this warp's rows.
    float s[kMTiles][kBlockN / 8][4];
#pragma unroll
    for (int mt = 0; mt < kMTiles; mt++)
#pragma unroll
      for (int n = 0; n < kBlockN / 8; n++) s[mt][n][0] = s[mt][n][1] = s[mt][n][2] = s[mt][n][3] = 0.f;
#pragma unroll
    for (int kb = 0; kb < D / 16; kb++) {
      uint32_t a[kMTiles][4];
#pragma unroll
      for (int mt = 0; mt < kMTiles; mt++) load_a(a[mt], sQ, LD, warp_row0 + 16 * mt, kb * 16, lane);
#pragma unroll
      for (int np = 0; np < kBlockN / 16; np++) {
        uint32_t bk[4];
        load_b_rows_n(bk, kS, LD, np * 16, kb * 16, lane);
#pragma unroll
        for (int mt = 0; mt < kMTiles; mt++) {
          mma_bf16(s[mt][2 * np], a[mt], bk[0], bk[1]);
          mma_bf16(s[mt][2 * np + 1], a[mt], bk[2], bk[3]);
        }
      }
    }

    // Scale, bias, masks; online softmax per row (a row lives in the 4 lanes of a quad).
    const bool check_masks = n0 + kBlockN > p.k_len || (p.causal && n0 + kBlockN - 1 > m0 + p.query_offset) || p.q_seg;
#pragma unroll
    for (int mt = 0; mt < kMTiles; mt++) {
      const QueryRow rows[2] = {query_row(p, b, thread_row0 + 16 * mt), query_row(p, b, thread_row0 + 16 * mt + 8)};
#pragma unroll
      for (int n = 0; n < kBlockN / 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++)
          s[mt][n][e] = score_log2(p, b, slope, rows[e >> 1], n0 + 8 * n + 2 * t + (e & 1), s[mt][n][e], check_masks);
#pragma unroll
      for (int r = 0; r < 2; r++) {
        float mx = -INFINITY;
#pragma unroll
        for (int n = 0; n < kBlockN / 8; n++) mx = fmaxf(mx, fmaxf(s[mt][n][2 * r], s[mt][n][2 * r + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float new_max = fmaxf(row_max[mt][r], mx);
        const float base = new_max == -INFINITY ? 0.f : new_max;  // a row with nothing visible yet
        const float correction = fast_exp2(row_max[mt][r] - base);
        row_max[mt][r] = new_max;
        float sum = 0.f;
#pragma unroll
        for (int n = 0; n < kBlockN / 8; n++) {
          s[mt][n][2 * r] = fast_exp2(s[mt][n][2 * r] - base);
          s[mt][n][2 * r + 1] = fast_exp2(s[mt][n][2 * r + 1] - base);
          sum += s[mt][n][2 * r] + s[mt][n][2 * r + 1];
        }
        row_sum[mt][r] = row_sum[mt][r] * correction + sum;
#pragma unroll
        for (int n = 0; n < D / 8; n++) {
          o[mt][n][2 * r] *= correction;
          o[mt][n][2 * r + 1] *= correction;
        }
      }
    }

    // O += P V.
#pragma unroll
    for (int kb = 0; kb < kBlockN / 16; kb++) {
      uint32_t pa[kMTiles][4];
#pragma unroll
      for (int mt = 0; mt < kMTiles; mt++) c_to_a(pa[mt], s[mt][2 * kb], s[mt][2 * kb + 1]);
#pragma unroll
      for (int np = 0; np < D / 16; np++) {
        uint32_t bv[4];
        load_b_rows_k(bv, vS, LD, kb * 16, np * 16, lane);
#pragma unroll
        for (int mt = 0; mt < kMTiles; mt++) {
          mma_bf16(o[mt][2 * np], pa[mt], bv[0], bv[1]);
          mma_bf16(o[mt][2 * np + 1], pa[mt], bv[2], bv[3]);
        }
      }
    }
    __syncthreads();  // this stage is refilled next iteration
  }

  // Normalise, write out and lse (−∞ and zeros for rows that saw no key).
  bf16* out = p.out + (int64_t(b) * p.heads + h) * p.q_len * D;
  float* lse = p.lse + (int64_t(b) * p.heads + h) * p.q_len;
#pragma unroll
  for (int mt = 0; mt < kMTiles; mt++) {
#pragma unroll
    for (int r = 0; r < 2; r++) {
      float sum = row_sum[mt][r];
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      const float inv = sum > 0.f ? 1.f / sum : 0.f;
      const int i = thread_row0 + 16 * mt + 8 * r;
      if (i >= p.q_len) continue;
#pragma unroll
      for (int n = 0; n < D / 8; n++) {
        *reinterpret_cast<__nv_bfloat162*>(out + int64_t(i) * D + 8 * n + 2 * t) =
            __floats2bfloat162_rn(o[mt][n][2 * r] * inv, o[mt][n][2 * r + 1] * inv);
      }
      if (t == 0) lse[i] = sum > 0.f ? (row_max[mt][r] + log2f(sum)) * kLn2 : -INFINITY;
    }
  }
}

}  // namespace andromeda::cuda::attention
