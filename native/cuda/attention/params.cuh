// The launch parameters every attention kernel receives (by value, as a __grid_constant__), and the
// per-element feature helpers built on them: positions, masks and the ALiBi bias.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace andromeda::cuda::attention {

using bf16 = __nv_bfloat16;

constexpr int kMaxHeads = 256;        // ALiBi slopes travel in the parameters
constexpr int kMaxRotaryPairs = 64;   // rotary_dim ≤ 128
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

struct Params {
  const bf16* q;
  const bf16* k;
  const bf16* v;
  bf16* out;
  float* lse;
  // Backward only.
  const bf16* grad_out;
  bf16* grad_q;
  bf16* grad_k;
  bf16* grad_v;
  float* grad_key_scale;      // [heads, head_dim], accumulated with atomics (zeroed by the launcher)
  const float* delta;         // rowsum(dO ∘ O), [batch, heads, q_len]
  float* grad_q_f32;          // or null: dQ is stored here as float32 [batch, heads, q_len, head_dim] instead of grad_q
  // float32 [batch, k_heads, k_len, head_dim] or null (then dK is stored in grad_k): added with atomics when
  // several query heads share a key head, stored otherwise.
  float* grad_k_accum;
  float* grad_v_accum;        // float32 [batch, kv_heads, k_len, head_dim] when several heads share a KV head

  int batch, heads, kv_heads;
  int k_heads;                // heads of k (and grad_k): kv_heads (k is never expanded per query head)
  int q_len, k_len;
  float scale;                // natural units
  float scale_log2;           // scale · log2(e): scores are kept in base 2
  int causal;
  int query_offset;
  const int32_t* q_pos;
  const int32_t* k_pos;
  const int32_t* q_seg;
  const int32_t* k_seg;
  // The Hopper kernels' per-64-row summaries of q_seg and k_seg (segments.cuh), [batch][blocks] each; set by
  // summarise_segments before their launch.
  const int4* q_seg_blocks;
  const int4* k_seg_blocks;
  const int2* k_seg_queries;  // [batch][k_len]: the queries [x, y) whose id can be key j's (segments.cuh)
  const int32_t* seg_sorted;  // [batch]: 1 where both rows' ids never decrease (k_seg_queries is then exact)
  int has_alibi;
  float alibi_slope_log2[kMaxHeads];  // slope_h · log2(e)
  int rotary_dim;             // 0 = none; a multiple of 16
  const float2* q_rot;        // (cos, sin) [batch or 1][q_len][rotary_dim / 2]
  const float2* k_rot;
  int64_t q_rot_batch_stride; // 0 when positions are the defaults (one table for every batch item)
  int64_t k_rot_batch_stride;
  int has_xpos;
  float xpos_rate[kMaxRotaryPairs];   // log2(ζ_f) / B: the xPos factor of distance δ is exp2(rate · δ)
  const float* key_scale;     // [heads, head_dim] or null

  // Split key scale (pre-pass path with a key scale and kv_heads < heads; NOTES.md): k holds
  // A = z_k ⊙ R(p) k per KV head and split_b holds B = z_k ⊙ J R(−p) k (its first split_rotary_dim
  // columns), and the Hopper kernels build K'_h = c_h ⊙ A + d_h ⊙ B on the rotary columns in shared memory,
  // c_h = (g_f + g_f')/2, d_h = (g_f − g_f')/2 per rotary pair. On the other columns the forward reads k as
  // is (its pre-pass put g_h on q there) and the backward builds g_h ⊙ k.
  int key_split;
  int split_rotary_dim;
  const bf16* split_b;        // [batch, kv_heads, k_len, head_dim]
  const float* split_scale;   // g [heads, head_dim]
  // Backward only: dA += c_h ⊙ dK'_h, dB += d_h ⊙ dK'_h (float32 [batch, kv_heads, k_len, head_dim], atomics),
  // and per (batch item, key tile) the column sums Σ_j A ⊙ dK'_h, Σ_j B ⊙ dK'_h as [heads][2][head_dim]
  // (stored, summed later in a fixed order).
  float* split_grad_a;
  float* split_grad_b;
  float* split_grad_cd;
  // The Hopper kernels' CTA order (heuristics.h hopper_lpt_section; set by their launchers).
  int lpt_section;
};

/** A Hopper CTA's tile, head and batch item: `rank` 0 is its section's longest tile (the launcher maps it). */
struct LptTile {
  int rank, head, batch;
};

/**
 * The grid (tiles, heads, batch) read in sections of p.lpt_section consecutive (batch item, head) pairs, each
 * section's tiles by rank with its heads fastest. A section of 1 is the grid's own order, tiles fastest.
 */
__device__ __forceinline__ LptTile lpt_tile(const Params& p) {
  if (p.lpt_section == 1) return {int(blockIdx.x), int(blockIdx.y), int(blockIdx.z)};
  // 32-bit: the launchers keep tiles × heads × batch below 2^31 (hopper_lpt_section).
  const unsigned tiles = gridDim.x, pairs = gridDim.y * gridDim.z, section = unsigned(p.lpt_section);
  const unsigned linear = blockIdx.x + tiles * (blockIdx.y + gridDim.y * blockIdx.z);
  const unsigned s = linear / (section * tiles), rest = linear - s * section * tiles;
  const unsigned size = min(section, pairs - s * section);
  const unsigned pair = s * section + rest % size;
  return {int(rest / size), int(pair % gridDim.y), int(pair / gridDim.y)};
}

/** c_h (x) and d_h (y) of feature f under the split key scale: pair constants on rotary features, (g_f, 0) past them. */
__device__ __forceinline__ float2 split_scale_of(const float* g_row, int f, int rotary_dim) {
  if (f >= rotary_dim) return make_float2(__ldg(g_row + f), 0.f);
  const int half = rotary_dim / 2, lo = f < half ? f : f - half;
  const float a = __ldg(g_row + lo), b = __ldg(g_row + lo + half);
  return make_float2(0.5f * (a + b), 0.5f * (a - b));
}

/** KV head read by query head h: x-transformers' grouping, h mod kv_heads. */
__device__ __forceinline__ int kv_head_of(const Params& p, int h) { return h % p.kv_heads; }
__device__ __forceinline__ int key_head_of(const Params& p, int h) { return h % p.k_heads; }

__device__ __forceinline__ int query_position(const Params& p, int b, int i) {
  return p.q_pos ? __ldg(p.q_pos + int64_t(b) * p.q_len + i) : p.query_offset + i;
}
__device__ __forceinline__ int key_position(const Params& p, int b, int j) {
  return p.k_pos ? __ldg(p.k_pos + int64_t(b) * p.k_len + j) : j;
}
__device__ __forceinline__ int query_segment(const Params& p, int b, int i) {
  return p.q_seg ? __ldg(p.q_seg + int64_t(b) * p.q_len + i) : 0;
}
__device__ __forceinline__ int key_segment(const Params& p, int b, int j) {
  return p.k_seg ? __ldg(p.k_seg + int64_t(b) * p.k_len + j) : 0;
}

/** What one query row needs to score keys: its index, position and segment. */
struct QueryRow {
  int index;
  int pos;
  int seg;
  bool valid;
};

__device__ __forceinline__ QueryRow query_row(const Params& p, int b, int i) {
  QueryRow r;
  r.index = i;
  r.valid = i < p.q_len;
  const int ic = r.valid ? i : p.q_len - 1;
  r.pos = query_position(p, b, ic);
  r.seg = query_segment(p, b, ic);
  return r;
}

/**
 * The base-2 score of (query row, key j) from the raw dot product of the transformed q and k: scale,
 * ALiBi, and −∞ where masked (key past the end, causal by index, other document).
 */
__device__ __forceinline__ float score_log2(const Params& p, int b, float slope_log2, const QueryRow& row, int j,
                                            float dot, bool check_masks) {
  if (check_masks) {
    if (j >= p.k_len) return -INFINITY;
    if (p.causal && j > row.index + p.query_offset) return -INFINITY;
    if (p.q_seg && row.seg != key_segment(p, b, j)) return -INFINITY;
  }
  float x = dot * p.scale_log2;
  if (p.has_alibi) x -= slope_log2 * fabsf(float(row.pos - key_position(p, b, j)));
  return x;
}

}  // namespace andromeda::cuda::attention
