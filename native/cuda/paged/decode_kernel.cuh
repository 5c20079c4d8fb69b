// Paged attention for decode steps: one query per sequence, bfloat16 pools. NOTES.md (this folder), "Decode kernel",
// has the design and why the general kernel (attention_kernel.cuh) is slow here.
//
// One CTA of 8 warps per (key split, sequence × KV head). Its rows are the heads of the group reading this KV head,
// for the sequence's one query: at most 32 rows, two m16 tiles (one when the group is ≤ 16). The CTA builds Q̃ once,
// with every thread, from q and key-scale rows staged by cp.async (all loads in flight together); the xPos anchor is
// the query's own position, so a key's factor ζ^((p_q − p_k)/B) is at most 1. Then each warp walks 16-key slices of
// the split alone, FlashAttention-2 style, with no CTA barrier:
//   - the raw K/V rows arrive by cp.async into the warp's two-stage buffer (the next slice's while this one is
//     worked on; its block-table entries are read one slice earlier still), each copy instruction taking whole
//     rows, 16-byte chunks XOR-swizzled by row so that ldmatrix reads them without bank conflicts;
//   - the warp builds the part of K̃ that differs from K (the rotary features, and the B half of the key-scale split:
//     attention_kernel.cuh's header has the algebra) in its own tile; the features past them are read from the raw
//     rows as stored;
//   - S = Q̃ K̃ᵀ stays in the mma accumulators; the masks, ALiBi and the online softmax run in registers (quad
//     shuffles), and P feeds O += P V from registers, V read by transposed ldmatrix from the raw rows.
// At the end the warps' (O, max, sum) meet in shared memory and each thread merges a few (row, 4 features) over the
// warps in a fixed order (deterministic). The CTA writes what the general kernel writes — one split: the output;
// several: unnormalised partial rows and (max, sum) — so the same combine kernel finishes.
#pragma once
#include <cuda_bf16.h>

#include <cstddef>
#include <cstdint>

#include "../attention/mma.cuh"
#include "../common.cuh"
#include "attention_kernel.cuh"
#include "batch.cuh"

namespace andromeda::cuda::paged {

constexpr int kDecodeThreads = 256;
constexpr int kDecodeWarps = kDecodeThreads / 32;
constexpr int kDecodeRows = 32;  // rows a CTA can hold: the group's heads (two m16 tiles)
constexpr int kSliceKeys = 16;   // keys a warp takes at a time (one k16 step of P V)

/** Where everything sits in the decode kernel's shared memory (byte offsets), for a head dim and rotary split. */
struct DecodeLayout {
  int tile_rot;  // K̃ tile columns of the A half: the rotary features rounded up to a k16 step
  int tile_b;    // columns of the B half (key scale with rotary), rounded up to a k16 step; 0 without
  int ldq;       // row stride of Q̃ (elements): D + tile_b, plus 8 (conflict-free ldmatrix rows)
  int ldt;       // row stride of a warp's K̃ tile: tile_rot + tile_b, plus 8
  size_t stage_bytes;  // the warps' raw stages [stage][warp][K | V][16 keys][D] — reused by the merge as
                       // [warp][32 rows][D] fp32, the same size
  size_t q_off, tile_off, rot_off, stat_off, bytes;
};

__host__ __device__ inline DecodeLayout decode_layout(int head_dim, int rotary_dim, bool split_key) {
  DecodeLayout l{};
  l.tile_rot = (rotary_dim + 15) / 16 * 16;
  l.tile_b = split_key ? l.tile_rot : 0;
  l.ldq = head_dim + l.tile_b + 8;
  l.ldt = l.tile_rot + l.tile_b + 8;
  l.stage_bytes = size_t(2) * kDecodeWarps * 2 * kSliceKeys * head_dim * sizeof(__nv_bfloat16);
  l.q_off = l.stage_bytes;
  l.tile_off = l.q_off + sizeof(__nv_bfloat16) * kDecodeRows * l.ldq;
  const size_t tiles = l.tile_rot > 0 ? sizeof(__nv_bfloat16) * kDecodeWarps * kSliceKeys * l.ldt : 0;
  l.rot_off = l.tile_off + tiles;
  l.stat_off = l.rot_off + sizeof(float2) * kSliceKeys * (rotary_dim / 2);
  l.bytes = l.stat_off + sizeof(float2) * kDecodeWarps * kDecodeRows;
  return l;
}

/**
 * Position of 16-byte chunk `chunk` of raw row `row` (K or V, D bf16 features): XOR-swizzled so that the 8 rows an
 * ldmatrix reads at one logical chunk fall on 8 different 16-byte bank groups of a 128-byte line.
 */
template <int D>
__device__ __forceinline__ int swizzled_chunk(int row, int chunk) {
  constexpr int kChunks = D / 8;
  if constexpr (kChunks >= 8) {
    return chunk ^ (row & 7);
  } else {
    return chunk ^ ((row / (8 / kChunks)) & (kChunks - 1));  // several rows share a 128-byte line
  }
}

/** Feature f of raw row `row` in a swizzled stage. */
template <int D>
__device__ __forceinline__ float raw_feature(const __nv_bfloat16* rows, int row, int f) {
  return __bfloat162float(rows[row * D + swizzled_chunk<D>(row, f >> 3) * 8 + (f & 7)]);
}

/** A lane's key of a slice, located one slice ahead: its block-table entry as read (checked when used) and slot. */
struct PendingKey {
  int id;
  int slot;
  bool in_range;
};

template <int D>
__global__ void __launch_bounds__(kDecodeThreads, 1) paged_decode_kernel(const __grid_constant__ AttentionParams p) {
  constexpr int kChunks = D / 8;           // 16-byte chunks of a K or V row
  constexpr int kNTiles = D / 8;           // n8 tiles of a row of O
  constexpr int kRowsPerCopy = 32 / kChunks;  // raw rows one copy instruction of the warp takes
  constexpr int kSwizzleMask = (kNTiles < 8 ? kNTiles : 8) - 1;  // O tiles swizzled by row in the merge
  static_assert(kSliceKeys * 2 == 32, "two lanes per key locate a slice");
  static_assert(32 % kChunks == 0 && kSliceKeys % (32 / kChunks) == 0, "copies of whole rows");

  extern __shared__ __align__(16) unsigned char smem[];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t = lane & 3;  // fragment coordinates
  const int split = blockIdx.x;
  const int seq_index = int(blockIdx.y / unsigned(p.kv_heads)), kv_head = int(blockIdx.y % unsigned(p.kv_heads));
  const Sequence seq = read_sequence(p.batch, seq_index);
  if (!seq.valid || seq.query_len == 0) return;
  const int64_t len = seq.context_len;
  const int64_t split_begin = int64_t(split) * p.chunk;
  if (split_begin >= len) return;  // the combine reads only the splits that start inside the context
  const int64_t key_end = min(len, split_begin + p.chunk);
  const int64_t position = len - 1;  // the query's: maxQueryLen is 1, so a sequence's query_len is 1
  const int slices = int((key_end - split_begin + kSliceKeys - 1) / kSliceKeys);
  const int group = p.group, half = p.rotary_dim / 2;
  const bool split_key = p.key_dim > D, two_tiles = group > 16;
  const DecodeLayout L = decode_layout(D, p.rotary_dim, split_key);

  bf16* stages = reinterpret_cast<bf16*>(smem);
  bf16* sQ = reinterpret_cast<bf16*>(smem + L.q_off);
  bf16* sTile = reinterpret_cast<bf16*>(smem + L.tile_off) + warp * kSliceKeys * L.ldt;
  float2* sOffset = reinterpret_cast<float2*>(smem + L.rot_off);  // [jl][pair]: rotation and xPos of offset jl
  float2* sStat = reinterpret_cast<float2*>(smem + L.stat_off);    // [warp][row]: (max, sum)
  // q and key-scale rows, staged in the second half of the stages (free until the warps' second slices).
  bf16* sQRaw = reinterpret_cast<bf16*>(smem + L.stage_bytes / 2);
  unsigned char* sScaleRaw = smem + L.stage_bytes / 2 + sizeof(bf16) * kDecodeRows * D;
  auto stage_keys = [&](int stage) { return stages + (stage * kDecodeWarps + warp) * 2 * kSliceKeys * D; };

  const int64_t row_stride = int64_t(p.kv_heads) * D;  // elements between consecutive pool rows of one KV head
  const bf16* key_base = static_cast<const bf16*>(p.key_pool) + int64_t(kv_head) * D;
  const bf16* value_base = static_cast<const bf16*>(p.value_pool) + int64_t(kv_head) * D;
  auto head_of = [&](int r) { return kv_head + p.kv_heads * r; };

  // 1. The q and key-scale rows of the group's heads (attention.cu checks both start on 16 bytes).
  const int64_t q_row0 = seq.first_row * p.heads;
  for (int i = tid; i < group * kChunks; i += kDecodeThreads) {
    const int r = i / kChunks, c = i % kChunks;
    attention::cp_async_16(sQRaw + r * D + c * 8, static_cast<const bf16*>(p.q) + (q_row0 + head_of(r)) * D + c * 8,
                           true);
  }
  if (p.key_scale) {
    const int element = p.key_scale_bf16 ? 2 : 4, row_chunks = D * element / 16;
    for (int i = tid; i < group * row_chunks; i += kDecodeThreads) {
      const int r = i / row_chunks, c = i % row_chunks;
      attention::cp_async_16(
          sScaleRaw + (r * D * element) + c * 16,
          static_cast<const unsigned char*>(p.key_scale) + (int64_t(head_of(r)) * D * element) + c * 16, true);
    }
  }
  attention::cp_async_commit();

  // 2. The warp's first slice: block-table entry, then the copies (after the q group, so waiting for q does not
  //    wait for K/V). A slice's mask has bit 2·jl set when key jl is read (inside the range, a valid block id).
  auto locate = [&](int slice) {
    const int64_t j = split_begin + int64_t(slice) * kSliceKeys + (lane >> 1);
    PendingKey k{-1, 0, slice < slices && j < key_end};
    if (k.in_range) {
      const uint32_t size = uint32_t(p.batch.block_size), at = uint32_t(j);  // j < 2^30 (attention.cu)
      const uint32_t index = at / size;
      k.id = __ldg(seq.table + index);
      k.slot = int(at - index * size);
    }
    return k;
  };
  // Lane pair (2·jl, 2·jl + 1) located key jl; the copies are laid out by whole rows instead — 32 lanes over
  // kRowsPerCopy rows of kChunks chunks a copy instruction, each lane taking its row's offset from the pair that
  // located it — so the two lanes of a 32-byte sector share an instruction: half the sector requests of one lane
  // per 16 bytes of two rows.
  auto issue = [&](const PendingKey& k, int stage) {
    const bool ok = k.in_range && k.id >= 0 && int64_t(k.id) < p.batch.num_blocks;
    const long long offset = ok ? (int64_t(k.id) * p.batch.block_size + k.slot) * row_stride : 0;
    bf16* k_dst = stage_keys(stage);
    bf16* v_dst = k_dst + kSliceKeys * D;
    const int c = lane % kChunks;
#pragma unroll
    for (int i = 0; i < kSliceKeys / kRowsPerCopy; i++) {
      const int jl = i * kRowsPerCopy + lane / kChunks;
      const long long row = __shfl_sync(0xffffffffu, offset, 2 * jl);
      const bool read = __shfl_sync(0xffffffffu, int(ok), 2 * jl) != 0;
      const int at = jl * D + swizzled_chunk<D>(jl, c) * 8;
      attention::cp_async_16(k_dst + at, key_base + row + c * 8, read);
      attention::cp_async_16(v_dst + at, value_base + row + c * 8, read);
    }
    attention::cp_async_commit();
    return __ballot_sync(0xffffffffu, ok);
  };
  PendingKey pending = locate(warp);
  uint32_t key_mask = 0u;
  if (warp < slices)
    key_mask = issue(pending, 0);
  else
    attention::cp_async_commit();  // an empty group, so that waiting for "all but the newest" waits for q
  pending = locate(warp + kDecodeWarps);

  // 3. Rotations. A lane owns rotary pairs lane and lane + 32 (rotary_dim ≤ 128). The query's: (cos, sin) of its
  //    position; the offsets': sOffset[jl][f] = ζ_f^(−jl/B) · (cos, sin)(jl · θ_f), so that a key's rotation and
  //    factor are the product of its slice's base (computed once a slice) and its offset's entry.
  float inv_freq[2], rate[2];
  float2 query_rotation[2];
#pragma unroll
  for (int i = 0; i < 2; i++) {
    const int f = lane + 32 * i;
    inv_freq[i] = f < half ? p.inv_freq[f] : 0.f;
    rate[i] = f < half && p.has_xpos ? p.xpos_rate[f] : 0.f;
    query_rotation[i] = f < half ? rotation(position, inv_freq[i]) : make_float2(1.f, 0.f);
  }
  for (int jl = warp; jl < kSliceKeys; jl += kDecodeWarps)
#pragma unroll
    for (int i = 0; i < 2; i++) {
      const int f = lane + 32 * i;
      if (f >= half) break;
      const float2 r = small_rotation(jl, inv_freq[i]);
      const float z = exp2f(-rate[i] * float(jl));  // ≤ ζ^(−15/B): no overflow
      sOffset[jl * half + f] = make_float2(r.x * z, r.y * z);
    }
  // The B half's padding columns of the warp's K̃ tile are never written by the slices: zero them once (Q̃ is zero
  // there, but 0 · NaN from stale shared memory would not be).
  if (split_key)
    for (int i = lane; i < kSliceKeys * (L.tile_b - p.rotary_dim); i += 32) {
      const int jl = i / (L.tile_b - p.rotary_dim), f = L.tile_rot + p.rotary_dim + i % (L.tile_b - p.rotary_dim);
      sTile[jl * L.ldt + f] = __float2bfloat16_rn(0.f);
    }

  // 4. Q̃ = scale · log2 e · [c_h ⊙ q' | d_h ⊙ q'] (attention_kernel.cuh's header), a warp per row; zero rows past the
  //    group and zero columns past key_dim.
  attention::cp_async_wait<1>();  // the q group (the warp's first slice may still be in flight)
  __syncthreads();
  {
    const bool has_scale = p.key_scale != nullptr;
    const bf16* scale_bf16 = reinterpret_cast<const bf16*>(sScaleRaw);
    const float* scale_f32 = reinterpret_cast<const float*>(sScaleRaw);
    for (int r = warp; r < kDecodeRows; r += kDecodeWarps) {
      bf16* dst = sQ + r * L.ldq;
      if (r >= group) {
        for (int f = lane; f < L.ldq; f += 32) dst[f] = __float2bfloat16_rn(0.f);
        continue;
      }
      const bf16* q = sQRaw + r * D;
      auto g_at = [&](int f) {
        if (!has_scale) return 1.f;
        return p.key_scale_bf16 ? __bfloat162float(scale_bf16[r * D + f]) : scale_f32[r * D + f];
      };
#pragma unroll
      for (int i = 0; i < 2; i++) {
        const int f = lane + 32 * i;
        if (f >= half) break;
        const float2 cs = query_rotation[i];
        const float x1 = __bfloat162float(q[f]), x2 = __bfloat162float(q[f + half]);
        const float first = (x1 * cs.x - x2 * cs.y) * p.scale_log2, second = (x2 * cs.x + x1 * cs.y) * p.scale_log2;
        const float ga = g_at(f), gb = g_at(f + half);
        dst[f] = __float2bfloat16_rn(0.5f * (ga + gb) * first);
        dst[f + half] = __float2bfloat16_rn(0.5f * (ga + gb) * second);
        if (split_key) {
          dst[D + f] = __float2bfloat16_rn(0.5f * (ga - gb) * first);
          dst[D + f + half] = __float2bfloat16_rn(0.5f * (ga - gb) * second);
        }
      }
      for (int f = p.rotary_dim + lane; f < D; f += 32)
        dst[f] = __float2bfloat16_rn(__bfloat162float(q[f]) * g_at(f) * p.scale_log2);
      for (int f = p.key_dim + lane; f < L.ldq; f += 32) dst[f] = __float2bfloat16_rn(0.f);
    }
  }
  __syncthreads();  // Q̃ and the offset table are ready; the staging area is free for the second slices

  // 5. The warp's slices. Softmax state per (m tile, row half): rows mt·16 + g + 8·hr; every lane of a quad holds
  //    the same max, and its own part of the sum (reduced at the end).
  float o[2][kNTiles][4];
  float row_max[2][2], row_sum[2][2], slope[2][2];
#pragma unroll
  for (int mt = 0; mt < 2; mt++) {
#pragma unroll
    for (int n = 0; n < kNTiles; n++)
#pragma unroll
      for (int e = 0; e < 4; e++) o[mt][n][e] = 0.f;
#pragma unroll
    for (int hr = 0; hr < 2; hr++) {
      const int r = mt * 16 + g + 8 * hr;
      row_max[mt][hr] = -INFINITY;
      row_sum[mt][hr] = 0.f;
      slope[mt][hr] = p.has_alibi && r < group ? p.alibi_slope_log2[head_of(r)] : 0.f;
    }
  }

  int stage = 0;
  for (int slice = warp; slice < slices; slice += kDecodeWarps, stage ^= 1) {
    const int64_t j0 = split_begin + int64_t(slice) * kSliceKeys;
    const uint32_t mask = key_mask;
    if (slice + kDecodeWarps < slices) {
      key_mask = issue(pending, stage ^ 1);
      pending = locate(slice + 2 * kDecodeWarps);
      attention::cp_async_wait<1>();
    } else {
      attention::cp_async_wait<0>();
    }
    __syncwarp();
    const bf16* raw_k = stage_keys(stage);
    const bf16* raw_v = raw_k + kSliceKeys * D;

    // K̃'s rotary part (and the B half): a lane per pair, the slice's base rotation and xPos factor once.
#pragma unroll
    for (int i = 0; i < 2; i++) {
      const int f = lane + 32 * i;
      if (f >= half) break;
      float2 base = rotation(j0, inv_freq[i]);
      const float z = exp2f(rate[i] * float(position - j0));  // ≤ 1: rates are negative, j0 ≤ position
      base.x *= z;
      base.y *= z;
#pragma unroll 4
      for (int jl = 0; jl < kSliceKeys; jl++) {
        const float2 by = sOffset[jl * half + f];
        const float c = base.x * by.x - base.y * by.y, s = base.y * by.x + base.x * by.y;
        const float k1 = raw_feature<D>(raw_k, jl, f), k2 = raw_feature<D>(raw_k, jl, f + half);
        bf16* dst = sTile + jl * L.ldt;
        dst[f] = __float2bfloat16_rn(k1 * c - k2 * s);
        dst[f + half] = __float2bfloat16_rn(k2 * c + k1 * s);
        if (split_key) {
          dst[L.tile_rot + f] = __float2bfloat16_rn(k1 * c + k2 * s);
          dst[L.tile_rot + f + half] = __float2bfloat16_rn(k1 * s - k2 * c);
        }
      }
    }
    // Features between the last rotary one and the tile's k16 edge (rotary dims that are not multiples of 16).
    const int gap = L.tile_rot - p.rotary_dim;
    for (int i = lane; i < kSliceKeys * gap; i += 32) {
      const int jl = i / gap, f = p.rotary_dim + i % gap;
      sTile[jl * L.ldt + f] = __float2bfloat16_rn(raw_feature<D>(raw_k, jl, f));
    }
    __syncwarp();

    // S = Q̃ K̃ᵀ: keys 0–7 and 8–15 of the slice (n tiles 0, 1) for each m tile. B from the tile for the rotary
    // steps and the B half, from the raw rows for the features past the rotary ones.
    float acc[2][2][4];
#pragma unroll
    for (int mt = 0; mt < 2; mt++)
#pragma unroll
      for (int n = 0; n < 2; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) acc[mt][n][e] = 0.f;
    const int m8 = lane >> 3, b_key = (lane & 7) + (m8 >> 1) * 8;
    for (int k0 = 0; k0 < D + L.tile_b; k0 += 16) {
      const int kc = k0 + (m8 & 1) * 8;
      const bf16* b_at = k0 < L.tile_rot ? sTile + b_key * L.ldt + kc
                         : k0 < D        ? raw_k + b_key * D + swizzled_chunk<D>(b_key, kc >> 3) * 8
                                         : sTile + b_key * L.ldt + L.tile_rot + (kc - D);
      uint32_t b[4], a[4];
      attention::ldmatrix_x4(b, b_at);
      attention::load_a(a, sQ, L.ldq, 0, k0, lane);
      attention::mma_bf16(acc[0][0], a, b[0], b[1]);
      attention::mma_bf16(acc[0][1], a, b[2], b[3]);
      if (two_tiles) {
        attention::load_a(a, sQ, L.ldq, 16, k0, lane);
        attention::mma_bf16(acc[1][0], a, b[0], b[1]);
        attention::mma_bf16(acc[1][1], a, b[2], b[3]);
      }
    }

    // Masks, ALiBi and the online softmax; acc becomes P.
#pragma unroll
    for (int mt = 0; mt < 2; mt++) {
      if (mt == 1 && !two_tiles) break;
#pragma unroll
      for (int hr = 0; hr < 2; hr++) {
        float tile_max = -INFINITY;
#pragma unroll
        for (int n = 0; n < 2; n++)
#pragma unroll
          for (int e = 0; e < 2; e++) {
            const int key = n * 8 + 2 * t + e;
            const bool visible = (mask >> (2 * key)) & 1u;
            float& x = acc[mt][n][2 * hr + e];
            x = visible ? x - slope[mt][hr] * float(position - (j0 + key)) : -INFINITY;
            tile_max = fmaxf(tile_max, x);
          }
        tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
        tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 2));
        const float new_max = fmaxf(row_max[mt][hr], tile_max);
        const float base = new_max == -INFINITY ? 0.f : new_max;
        const float correction = exp2f(row_max[mt][hr] - base);
        row_max[mt][hr] = new_max;
        float sum = 0.f;
#pragma unroll
        for (int n = 0; n < 2; n++)
#pragma unroll
          for (int e = 0; e < 2; e++) {
            float& x = acc[mt][n][2 * hr + e];
            x = exp2f(x - base);
            sum += x;
          }
        row_sum[mt][hr] = row_sum[mt][hr] * correction + sum;
#pragma unroll
        for (int n = 0; n < kNTiles; n++) {
          o[mt][n][2 * hr] *= correction;
          o[mt][n][2 * hr + 1] *= correction;
        }
      }
    }

    // O += P V: P (16 rows × 16 keys) from the accumulators; V by transposed ldmatrix, two n8 tiles at a time.
    uint32_t pa[2][4];
    attention::c_to_a(pa[0], acc[0][0], acc[0][1]);
    attention::c_to_a(pa[1], acc[1][0], acc[1][1]);
    const int v_key = (lane & 7) + (m8 & 1) * 8;
#pragma unroll
    for (int nb = 0; nb < kNTiles / 2; nb++) {
      uint32_t b[4];
      attention::ldmatrix_x4_trans(b, raw_v + v_key * D + swizzled_chunk<D>(v_key, 2 * nb + (m8 >> 1)) * 8);
      attention::mma_bf16(o[0][2 * nb], pa[0], b[0], b[1]);
      attention::mma_bf16(o[0][2 * nb + 1], pa[0], b[2], b[3]);
      if (two_tiles) {
        attention::mma_bf16(o[1][2 * nb], pa[1], b[0], b[1]);
        attention::mma_bf16(o[1][2 * nb + 1], pa[1], b[2], b[3]);
      }
    }
    __syncwarp();  // the stage and the tile are read: the next slice's copies and K̃ may overwrite them
  }

  // 6. Merge. Every warp's copies have landed (its last slice waited for all), but other warps may still read their
  //    stages: wait for all before the stages become the warps' O.
#pragma unroll
  for (int mt = 0; mt < 2; mt++)
#pragma unroll
    for (int hr = 0; hr < 2; hr++) {
      row_sum[mt][hr] += __shfl_xor_sync(0xffffffffu, row_sum[mt][hr], 1);
      row_sum[mt][hr] += __shfl_xor_sync(0xffffffffu, row_sum[mt][hr], 2);
    }
  __syncthreads();
  float* sO = reinterpret_cast<float*>(smem);  // [warp][row][D], n8 tiles swizzled by row
#pragma unroll
  for (int mt = 0; mt < 2; mt++) {
    if (mt == 1 && !two_tiles) break;
#pragma unroll
    for (int hr = 0; hr < 2; hr++) {
      const int r = mt * 16 + g + 8 * hr;
      float* dst = sO + (warp * kDecodeRows + r) * D;
#pragma unroll
      for (int n = 0; n < kNTiles; n++)
        *reinterpret_cast<float2*>(dst + (n ^ (r & kSwizzleMask)) * 8 + 2 * t) =
            make_float2(o[mt][n][2 * hr], o[mt][n][2 * hr + 1]);
      if (t == 0) sStat[warp * kDecodeRows + r] = make_float2(row_max[mt][hr], row_sum[mt][hr]);
    }
  }
  __syncthreads();
  constexpr int kQuads = D / 4;
  for (int item = tid; item < group * kQuads; item += kDecodeThreads) {
    const int r = item / kQuads, col = (item % kQuads) * 4;
    float m = -INFINITY;
#pragma unroll
    for (int w = 0; w < kDecodeWarps; w++) m = fmaxf(m, sStat[w * kDecodeRows + r].x);
    const float base = m == -INFINITY ? 0.f : m;
    const int at = ((col >> 3) ^ (r & kSwizzleMask)) * 8 + (col & 7);
    float sum = 0.f;
    float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
    for (int w = 0; w < kDecodeWarps; w++) {
      const float2 st = sStat[w * kDecodeRows + r];
      const float weight = exp2f(st.x - base);
      const float4 v = *reinterpret_cast<const float4*>(sO + (w * kDecodeRows + r) * D + at);
      sum += weight * st.y;
      acc.x += weight * v.x;
      acc.y += weight * v.y;
      acc.z += weight * v.z;
      acc.w += weight * v.w;
    }
    const int64_t out_row = q_row0 + head_of(r);
    if (p.part_out) {
      *reinterpret_cast<float4*>(p.part_out + (out_row * p.splits + split) * D + col) = acc;
      if (col == 0) p.part_stats[out_row * p.splits + split] = make_float2(m, sum);
    } else {
      const float inv = sum > 0.f ? 1.f / sum : 0.f;
      bf16* dst = static_cast<bf16*>(p.out) + out_row * D + col;
      dst[0] = __float2bfloat16_rn(acc.x * inv);
      dst[1] = __float2bfloat16_rn(acc.y * inv);
      dst[2] = __float2bfloat16_rn(acc.z * inv);
      dst[3] = __float2bfloat16_rn(acc.w * inv);
    }
  }
}

}  // namespace andromeda::cuda::paged
