// Shared-memory tiles of bf16 rows: asynchronous loads, and the position-dependent transform of q and k
// (key scale, rotary, relative xPos) applied in place once a tile has landed; plus the inverse of the
// transform on gradient accumulators held in registers.
//
// Tiles are row-major with a row stride of D + 8 elements: the 16-byte pad puts the 8 rows that one
// ldmatrix reads in distinct banks.
#pragma once
#include "mma.cuh"
#include "params.cuh"

namespace andromeda::cuda::attention {

template <int D> constexpr int tile_ld() { return D + 8; }

/** Copies rows [0, Rows) of a contiguous [rows][D] global block; rows ≥ valid become zeros. */
template <int D, int Rows, int Threads>
__device__ __forceinline__ void load_tile_async(bf16* tile, const bf16* rows, int valid) {
  constexpr int kChunks = D / 8;  // 16-byte chunks per row
  for (int c = threadIdx.x; c < Rows * kChunks; c += Threads) {
    const int row = c / kChunks, col = (c % kChunks) * 8;
    const bool ok = row < valid;
    cp_async_16(tile + row * tile_ld<D>() + col, ok ? rows + int64_t(row) * D + col : rows, ok);
  }
}

/** The rotary table (cos, sin) of row `first` of batch item b: [rows][rotary_dim / 2]. */
__device__ __forceinline__ const float2* rotary_rows(const Params& p, bool key_side, int b, int first) {
  const int half = p.rotary_dim / 2;
  return key_side ? p.k_rot + b * p.k_rot_batch_stride + int64_t(first) * half
                  : p.q_rot + b * p.q_rot_batch_stride + int64_t(first) * half;
}

/**
 * Prefetch for the transform of a tile of rows [first, first + Rows): its rotary table rows into
 * table[Rows][rotary_dim / 2] and, when positions are given, its positions into positions[Rows]. Rows
 * past `valid` are zero-filled. Without this the transform would wait on L2 between two barriers.
 */
template <int Rows, int Threads>
__device__ __forceinline__ void load_transform_inputs_async(float2* table, int* positions, const Params& p, bool key_side,
                                                            int b, int first, int valid) {
  const int half = p.rotary_dim / 2;
  if (half > 0) {
    const float2* src = rotary_rows(p, key_side, b, first);
    const int chunks = half / 2;  // 16 bytes = two (cos, sin) pairs
    for (int c = threadIdx.x; c < Rows * chunks; c += Threads) {
      const int row = c / chunks, col = (c % chunks) * 2;
      const bool ok = row < valid;
      cp_async_16(table + row * half + col, ok ? src + int64_t(row) * half + col : src, ok);
    }
  }
  const int32_t* pos = key_side ? p.k_pos : p.q_pos;
  if (pos && p.has_xpos) {
    const int64_t base = int64_t(b) * (key_side ? p.k_len : p.q_len) + first;
    for (int row = threadIdx.x; row < Rows; row += Threads) {
      const bool ok = row < valid;
      cp_async_4(positions + row, ok ? pos + base + row : pos, ok);
    }
  }
}

/**
 * In place on rows [0, valid) of a tile holding rows first.. of q (key_side false) or k (true):
 *   k: x ← ζ^((anchor − p)/B) ⊙ R(p) (x ⊙ g)      q: x ← ζ^((p − anchor)/B) ⊙ R(p) x
 * where g is the key scale row of the query head (or null), R rotates pairs (f, f + r/2) of the first r
 * features and ζ applies to those features only. `table` holds the tile's rotary rows ([Rows][r/2], shared
 * or global memory); `staged_positions` its positions when custom positions were prefetched, else null. Products of a transformed q and k of the same anchor
 * carry exactly ζ^((p_q − p_k)/B), whatever the anchor, and stay finite near it.
 */
template <int D, int Rows, int Threads>
__device__ void transform_tile(bf16* tile, const Params& p, int b, int first, int valid, bool key_side, int anchor,
                               const float* __restrict__ g, const float2* table, const int* staged_positions) {
  constexpr int LD = tile_ld<D>();
  const int half = p.rotary_dim / 2;
  if (half > 0) {
    const int pairs = half / 2;  // two frequencies per work item
    for (int item = threadIdx.x; item < Rows * pairs; item += Threads) {
      const int row = item / pairs, f = (item % pairs) * 2;
      if (row >= valid) continue;
      __nv_bfloat162* lo_p = reinterpret_cast<__nv_bfloat162*>(tile + row * LD + f);
      __nv_bfloat162* hi_p = reinterpret_cast<__nv_bfloat162*>(tile + row * LD + f + half);
      float2 lo = __bfloat1622float2(*lo_p), hi = __bfloat1622float2(*hi_p);
      if (g) {
        lo.x *= g[f];
        lo.y *= g[f + 1];
        hi.x *= g[f + half];
        hi.y *= g[f + half + 1];
      }
      const float4 cs = *reinterpret_cast<const float4*>(table + int64_t(row) * half + f);  // c0 s0 c1 s1
      float z0 = 1.f, z1 = 1.f;
      if (p.has_xpos) {
        const int pos = staged_positions && (key_side ? p.k_pos : p.q_pos)
                            ? staged_positions[row]
                            : (key_side ? key_position(p, b, first + row) : query_position(p, b, first + row));
        const float delta = float(key_side ? anchor - pos : pos - anchor);
        z0 = exp2f(p.xpos_rate[f] * delta);
        z1 = exp2f(p.xpos_rate[f + 1] * delta);
      }
      *lo_p = __floats2bfloat162_rn((lo.x * cs.x - hi.x * cs.y) * z0, (lo.y * cs.z - hi.y * cs.w) * z1);
      *hi_p = __floats2bfloat162_rn((hi.x * cs.x + lo.x * cs.y) * z0, (hi.y * cs.z + lo.y * cs.w) * z1);
    }
  }
  if (g && p.rotary_dim < D) {
    const int tail = (D - p.rotary_dim) / 2;
    for (int item = threadIdx.x; item < Rows * tail; item += Threads) {
      const int row = item / tail, f = p.rotary_dim + (item % tail) * 2;
      if (row >= valid) continue;
      __nv_bfloat162* x = reinterpret_cast<__nv_bfloat162*>(tile + row * LD + f);
      const float2 v = __bfloat1622float2(*x);
      *x = __floats2bfloat162_rn(v.x * g[f], v.y * g[f + 1]);
    }
  }
}

/**
 * Gradient accumulators of one warp's 16 rows × D (C layout) with respect to a transformed row x' =
 * z ⊙ R(p) x (rotated part only) become gradients with respect to x: x̄ = Rᵀ(z ⊙ x̄'). Pairs (f, f + r/2)
 * sit in n tiles n and n + r/16 of the same thread. delta is the xPos exponent numerator of each of the
 * thread's two rows (p − anchor for q, anchor − p for k); table rows are null for rows past the end.
 */
template <int D, int HalfTiles>
__device__ __forceinline__ void untransform_rows(float (&acc)[D / 8][4], const Params& p, const float2* table0,
                                                 const float2* table1, float delta0, float delta1, int t) {
#pragma unroll
  for (int n = 0; n < HalfTiles; n++) {
#pragma unroll
    for (int e = 0; e < 4; e++) {
      const int f = 8 * n + 2 * t + (e & 1);
      const float2* table = (e >> 1) ? table1 : table0;
      if (!table) continue;
      const float2 cs = table[f];
      const float z = p.has_xpos ? exp2f(p.xpos_rate[f] * ((e >> 1) ? delta1 : delta0)) : 1.f;
      const float y1 = acc[n][e] * z, y2 = acc[n + HalfTiles][e] * z;
      acc[n][e] = y1 * cs.x + y2 * cs.y;
      acc[n + HalfTiles][e] = y2 * cs.x - y1 * cs.y;
    }
  }
}

/** untransform_rows with the rotary width chosen at run time (rotary_dim / 16 cases, resolved statically). */
template <int D>
__device__ __forceinline__ void untransform(float (&acc)[D / 8][4], const Params& p, const float2* table0,
                                            const float2* table1, float delta0, float delta1, int t) {
  switch (p.rotary_dim / 16) {
    case 1: untransform_rows<D, 1>(acc, p, table0, table1, delta0, delta1, t); break;
    case 2: untransform_rows<D, 2>(acc, p, table0, table1, delta0, delta1, t); break;
    case 3: if constexpr (D >= 48) untransform_rows<D, 3>(acc, p, table0, table1, delta0, delta1, t); break;
    case 4: if constexpr (D >= 64) untransform_rows<D, 4>(acc, p, table0, table1, delta0, delta1, t); break;
    case 5: if constexpr (D >= 80) untransform_rows<D, 5>(acc, p, table0, table1, delta0, delta1, t); break;
    case 6: if constexpr (D >= 96) untransform_rows<D, 6>(acc, p, table0, table1, delta0, delta1, t); break;
    case 7: if constexpr (D >= 112) untransform_rows<D, 7>(acc, p, table0, table1, delta0, delta1, t); break;
    case 8: if constexpr (D >= 128) untransform_rows<D, 8>(acc, p, table0, table1, delta0, delta1, t); break;
    default: break;
  }
}

}  // namespace andromeda::cuda::attention
