// The split key scale (NOTES.md, "Split key scale"): the Hopper kernels build the key tile of query head h,
// K'_h = c_h ⊙ A + d_h ⊙ B on the rotary features, from the per-KV-head A = z ⊙ R(p) k and B = z ⊙ J R(−p) k, in
// shared memory. Tiles use the 128-byte-swizzled layout of the Hopper kernels: column block cb (64 features) of row
// r at tile + cb·Rows·128 + r·128, its 16-byte chunk c at chunk position c ^ (r % 8). The combination is elementwise,
// so A, B and K' share addresses; only a word's column picks its (c, d).
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

#include "mma.cuh"
#include "params.cuh"
#include "shared_memory.cuh"

namespace andromeda::cuda::attention {

__device__ __forceinline__ float2 unpack_bf16x2(uint32_t w) {
  return make_float2(__uint_as_float(w << 16), __uint_as_float(w & 0xffff0000u));
}

/** c ⊙ a + d ⊙ b on the two features of a bf16x2 word; s0, s1 = (c, d) of its first and second feature. */
__device__ __forceinline__ uint32_t combine_split_word(uint32_t a, uint32_t b, float2 s0, float2 s1) {
  const float2 x = unpack_bf16x2(a), y = unpack_bf16x2(b);
  return pack_bf16(fmaf(s0.y, y.x, s0.x * x.x), fmaf(s1.y, y.y, s1.x * x.y));
}

/** Byte offset of feature f (even) of row r in a swizzled tile of Rows rows. */
template <int Rows>
__device__ __forceinline__ uint32_t swizzled_offset(int r, int f) {
  const int cb = f >> 6, within = f & 63;
  return uint32_t(cb * Rows * 128 + r * 128 + ((((within >> 3) ^ (r & 7))) << 4) + (within & 7) * 2);
}

/**
 * In place, the rotary features of a tile that holds A (k_tile) into K'_h = c_h ⊙ A + d_h ⊙ B, B from b_tile (same
 * layout, its first ⌈r/64⌉ column blocks): rows [0, Rows), words (feature pairs) w < r/2. `warps` warps share the
 * work: warp `warp` takes rows warp, warp + warps, …, lane l the words l and l + 32, whose (c, d) are read once per
 * word from g_row (the head's key scale). Used by the Hopper forward's producer warps (few registers: at most four
 * scale values are live).
 */
template <int Rows>
__device__ __forceinline__ void combine_split_tile(uint32_t k_tile, uint32_t b_tile, const float* g_row, int rotary_dim,
                                                   int warp, int warps, int lane) {
  const int words = rotary_dim / 2;
#pragma unroll 1
  for (int w = lane; w < words; w += 32) {
    const float2 s0 = split_scale_of(g_row, 2 * w, rotary_dim), s1 = split_scale_of(g_row, 2 * w + 1, rotary_dim);
#pragma unroll 2
    for (int r = warp; r < Rows; r += warps) {
      const uint32_t off = swizzled_offset<Rows>(r, 2 * w);
      st_shared_b32(k_tile + off, combine_split_word(ld_shared_b32(k_tile + off), ld_shared_b32(b_tile + off), s0, s1));
    }
  }
}

/** d = a ⊙ b + c on two bf16 lanes (one instruction; each product and sum rounded to bf16). */
__device__ __forceinline__ uint32_t fma_bf16x2(uint32_t a, uint32_t b, uint32_t c) {
  uint32_t d;
  asm("fma.rn.bf16x2 %0, %1, %2, %3;\n" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
}

/**
 * combine_split_tile in 16-byte chunks (8 features) with bf16x2 arithmetic: c ⊙ A + d ⊙ B as two packed
 * multiply-adds per word. The producer warps' combine is on the forward's critical path (the consumers wait for
 * K'_h of every tile) and shares the SM's issue slots with the consumers' softmax, so it is written for the
 * fewest instructions: one 16-byte load of A and of B and one store per chunk, the chunk's packed (c, d) kept in
 * registers, one swizzle computation per row. The products round to bf16 before the sum (K'_h itself is stored
 * in bf16). Thread `tid` of `threads` keeps one chunk column (tid mod r/8) and walks the rows; needs threads to
 * be a multiple of r/8 (96 threads: r ∈ {16, 32, 48, 64, 96, 128}); other widths take combine_split_tile.
 */
template <int Rows>
__device__ __forceinline__ void combine_split_tile_chunks(uint32_t k_tile, uint32_t b_tile, const float* g_row,
                                                          int rotary_dim, int tid, int threads) {
  const int chunks = rotary_dim / 8, column = tid % chunks, f0 = column * 8;
  // split_scale_of for 8 features at once (they lie in one half of the rotary pairs, r/2 being a multiple of 8),
  // from float2 loads: feature by feature the 16 scalar loads push the producer past its 40 registers (spills).
  const int half = rotary_dim / 2, lo = f0 < half ? f0 : f0 - half;
  uint32_t c[4], d[4];
#pragma unroll
  for (int i = 0; i < 4; i++) {
    const float2 ga = __ldg(reinterpret_cast<const float2*>(g_row + lo) + i), gb = __ldg(reinterpret_cast<const float2*>(g_row + lo + half) + i);
    c[i] = pack_bf16(0.5f * (ga.x + gb.x), 0.5f * (ga.y + gb.y));
    d[i] = pack_bf16(0.5f * (ga.x - gb.x), 0.5f * (ga.y - gb.y));
  }
  constexpr uint32_t kNegativeZeros = 0x80008000u;  // the additive identity of a product, sign kept
  // swizzled_offset with the column block hoisted out of the row loop: calling it per row spills (ptxas -v).
  const uint32_t block = uint32_t((f0 >> 6) * Rows * 128), chunk = uint32_t((f0 & 63) >> 3);
  const uint32_t k_block = k_tile + block, b_block = b_tile + block;
#pragma unroll 1  // unrolled, the producer's 40 registers spill
  for (int r = tid / chunks; r < Rows; r += threads / chunks) {
    const uint32_t off = uint32_t(r) * 128u + ((chunk ^ uint32_t(r & 7)) << 4);
    const uint4 a = ld_shared_v4_b32(k_block + off), b = ld_shared_v4_b32(b_block + off);
    st_shared_v4_b32(k_block + off, fma_bf16x2(c[0], a.x, fma_bf16x2(d[0], b.x, kNegativeZeros)),
                     fma_bf16x2(c[1], a.y, fma_bf16x2(d[1], b.y, kNegativeZeros)),
                     fma_bf16x2(c[2], a.z, fma_bf16x2(d[2], b.z, kNegativeZeros)),
                     fma_bf16x2(c[3], a.w, fma_bf16x2(d[3], b.w, kNegativeZeros)));
  }
}

/**
 * The backward's K'_h tile from global memory: rows [0, Rows) of A and B ([rows][D], B's first r features used) into
 * the swizzled tile, K'_h = c_h ⊙ A + d_h ⊙ B on the rotary features and g_h ⊙ A past them; rows ≥ valid zero.
 * Every thread of `Threads` takes 16-byte chunks (8 features: all rotary or none, r being a multiple of 16).
 */
template <int D, int Rows, int Threads>
__device__ __forceinline__ void build_split_key_tile(uint32_t tile, const bf16* a_rows, const bf16* b_rows,
                                                     const float* g_row, int rotary_dim, int valid, int tid) {
  constexpr int kChunks = D / 8;
  for (int c = tid; c < Rows * kChunks; c += Threads) {
    const int r = c / kChunks, chunk = c % kChunks, f0 = chunk * 8;
    uint32_t out[4] = {0u, 0u, 0u, 0u};
    if (r < valid) {
      const uint4 av = *reinterpret_cast<const uint4*>(a_rows + int64_t(r) * D + f0);
      uint4 bv = make_uint4(0u, 0u, 0u, 0u);
      if (f0 < rotary_dim) bv = *reinterpret_cast<const uint4*>(b_rows + int64_t(r) * D + f0);
      const uint32_t aw[4] = {av.x, av.y, av.z, av.w}, bw[4] = {bv.x, bv.y, bv.z, bv.w};
#pragma unroll
      for (int i = 0; i < 4; i++) {
        out[i] = combine_split_word(aw[i], bw[i], split_scale_of(g_row, f0 + 2 * i, rotary_dim),
                                    split_scale_of(g_row, f0 + 2 * i + 1, rotary_dim));
      }
    }
    st_shared_v4_b32(tile + swizzled_offset<Rows>(r, f0), out[0], out[1], out[2], out[3]);
  }
}

}  // namespace andromeda::cuda::attention
