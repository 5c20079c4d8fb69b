// Split-KV decode (flash-decoding): a few queries against a long KV cache. One CTA per (key chunk, KV
// head, batch item) scores every query row of every head sharing that KV head, so each K/V element is
// read once per group; a combine kernel merges the chunks' partial (max, sum, output) rows.
//
// Decode is bound by reading the cache, so it runs on CUDA cores in fp32: lane j of a warp scores key j
// of a 32-key sub-tile against the warp's rows. Rotary, xPos and the key scale act on q instead of k:
// with k' = z ⊙ R(k ⊙ g) and cz = z·cos θ, sz = z·sin θ (per key and frequency, shared by all heads),
//   q·k' = Σ_f<r/2 cz (k_f qa + k_f+h qb) + sz (k_f qc − k_f+h qd) + Σ_f≥r k_f qe,
//   qa = q_f g_f, qb = q_f+h g_f+h, qc = q_f+h g_f, qd = q_f g_f+h, qe = q_f g_f,
// computed once per row (q already rotated and xPos-scaled relative to the anchor).
#pragma once
#include "../common.cuh"
#include "tile.cuh"

namespace andromeda::cuda::attention {

constexpr int kDecodeWarps = 8;
constexpr int kDecodeRowsPerWarp = 8;
constexpr int kDecodeMaxRows = kDecodeWarps * kDecodeRowsPerWarp;
constexpr int kDecodeKeys = 32;

template <int D>
struct DecodeConfig {
  static constexpr int kThreads = kDecodeWarps * 32;
  static constexpr int kQWidth = 2 * D;             // ≥ D + rotary_dim: qa qb qc qd (r/2 each) then qe
  static constexpr int kKLd = D + 1;                // fp32 rows, padded against bank conflicts
  static constexpr int kRotLd = D / 2 + 1;
  static constexpr int kSmemBytes =
      (kDecodeMaxRows * kQWidth + 2 * kDecodeKeys * kKLd + 2 * kDecodeKeys * kRotLd) * int(sizeof(float));
};

/** Partial results of one chunk: out (unnormalised) [rows][splits][D] and (max, sum) in base 2. */
template <int D>
__global__ void __launch_bounds__(kDecodeWarps * 32)
    attention_decode_kernel(const __grid_constant__ Params p, float* part_out, float2* part_stats, int chunk) {
  using Cfg = DecodeConfig<D>;
  constexpr int QW = Cfg::kQWidth, KLD = Cfg::kKLd, RLD = Cfg::kRotLd, kThreads = Cfg::kThreads;
  extern __shared__ __align__(16) unsigned char smem[];
  float* sQ = reinterpret_cast<float*>(smem);
  float* sK = sQ + kDecodeMaxRows * QW;
  float* sV = sK + kDecodeKeys * KLD;
  float* sCz = sV + kDecodeKeys * KLD;
  float* sSz = sCz + kDecodeKeys * RLD;

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int split = blockIdx.x, splits = gridDim.x, hk = blockIdx.y, b = blockIdx.z;
  const int group = p.heads / p.kv_heads;
  const int rows = group * p.q_len;
  const int half = p.rotary_dim / 2, r_dim = p.rotary_dim;
  const int anchor = query_position(p, b, 0);
  // Row r: query r % q_len of head hk + kv_heads · (r / q_len) (the heads h with h mod kv_heads = hk).
  auto head_of = [&](int r) { return hk + p.kv_heads * (r / p.q_len); };
  // Rows are dealt round-robin: row r = slot · warps + warp, so every warp has work from 8 rows up.
  const int slots = (rows - warp + kDecodeWarps - 1) / kDecodeWarps;

  // Prepared query rows (unrolled so that several rows' loads are in flight at once).
#pragma unroll 4
  for (int item = threadIdx.x; item < rows * D; item += kThreads) {
    const int r = item / D, f = item % D, h = head_of(r), i = r % p.q_len;
    const bf16* q = p.q + ((int64_t(b) * p.heads + h) * p.q_len + i) * D;
    const float* g = p.key_scale ? p.key_scale + int64_t(h) * D : nullptr;
    float* dst = sQ + r * QW;
    if (f < half) {
      const float2 cs = rotary_rows(p, false, b, i)[f];
      const float z = p.has_xpos ? exp2f(p.xpos_rate[f] * float(query_position(p, b, i) - anchor)) : 1.f;
      const float x1 = __bfloat162float(q[f]), x2 = __bfloat162float(q[f + half]);
      const float q1 = (x1 * cs.x - x2 * cs.y) * z, q2 = (x2 * cs.x + x1 * cs.y) * z;  // rotated q_f, q_f+h
      const float g1 = g ? g[f] : 1.f, g2 = g ? g[f + half] : 1.f;
      dst[f] = q1 * g1;
      dst[half + f] = q2 * g2;
      dst[2 * half + f] = q2 * g1;
      dst[3 * half + f] = q1 * g2;
    } else if (f >= r_dim) {
      dst[2 * r_dim + (f - r_dim)] = __bfloat162float(q[f]) * (g ? g[f] : 1.f);
    }
  }

  const int c0 = split * chunk;
  int c1 = min(p.k_len, c0 + chunk);
  if (p.causal) c1 = min(c1, p.q_len - 1 + p.query_offset + 1);

  // Per row slot of this warp: running max and sum (base 2) and D / 32 output features per lane.
  float row_max[kDecodeRowsPerWarp], row_sum[kDecodeRowsPerWarp], o[kDecodeRowsPerWarp][D / 32];
#pragma unroll
  for (int s = 0; s < kDecodeRowsPerWarp; s++) {
    row_max[s] = -INFINITY;
    row_sum[s] = 0.f;
#pragma unroll
    for (int c = 0; c < D / 32; c++) o[s][c] = 0.f;
  }
  const bf16* k = p.k + (int64_t(b) * p.kv_heads + hk) * p.k_len * D;
  const bf16* v = p.v + (int64_t(b) * p.kv_heads + hk) * p.k_len * D;

  for (int j0 = c0; j0 < c1; j0 += kDecodeKeys) {
    __syncthreads();  // the previous sub-tile (and, the first time, the query rows) are done with
    // Stage K, V and the per-key rotary × xPos factors: every load of the sub-tile is issued before the
    // first store (a loop that stores as it loads waits on memory once per item).
    constexpr int kStageItems = kDecodeKeys * (D / 2) / kThreads;
    static_assert(kStageItems * kThreads == kDecodeKeys * (D / 2), "the staging loop must divide evenly");
    float2 kvals[kStageItems], vvals[kStageItems], rot[kStageItems];
#pragma unroll
    for (int u = 0; u < kStageItems; u++) {
      const int item = threadIdx.x + u * kThreads;
      const int jl = item / (D / 2), f = (item % (D / 2)) * 2, j = j0 + jl;
      kvals[u] = vvals[u] = make_float2(0.f, 0.f);
      if (j < c1) {
        kvals[u] = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(k + int64_t(j) * D + f));
        vvals[u] = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(v + int64_t(j) * D + f));
      }
      const int jr = item / max(half, 1), fr = item % max(half, 1);
      if (item < kDecodeKeys * half) rot[u] = rotary_rows(p, true, b, min(j0 + jr, p.k_len - 1))[fr];
    }
#pragma unroll
    for (int u = 0; u < kStageItems; u++) {
      const int item = threadIdx.x + u * kThreads;
      const int jl = item / (D / 2), f = (item % (D / 2)) * 2;
      sK[jl * KLD + f] = kvals[u].x;
      sK[jl * KLD + f + 1] = kvals[u].y;
      sV[jl * KLD + f] = vvals[u].x;
      sV[jl * KLD + f + 1] = vvals[u].y;
      if (item < kDecodeKeys * half) {
        const int jr = item / half, fr = item % half;
        const float z = p.has_xpos ? exp2f(p.xpos_rate[fr] * float(anchor - key_position(p, b, min(j0 + jr, p.k_len - 1)))) : 1.f;
        sCz[jr * RLD + fr] = rot[u].x * z;
        sSz[jr * RLD + fr] = rot[u].y * z;
      }
    }
    __syncthreads();

    const int j = j0 + lane;
    float dot[kDecodeRowsPerWarp];
#pragma unroll
    for (int s = 0; s < kDecodeRowsPerWarp; s++) dot[s] = 0.f;
    const float* kr = sK + lane * KLD;
    for (int f = 0; f < half; f++) {
      const float k1 = kr[f], k2 = kr[f + half], cz = sCz[lane * RLD + f], sz = sSz[lane * RLD + f];
#pragma unroll
      for (int s = 0; s < kDecodeRowsPerWarp; s++) {
        if (s >= slots) break;
        const float* qr = sQ + (s * kDecodeWarps + warp) * QW;
        dot[s] += cz * (k1 * qr[f] + k2 * qr[half + f]) + sz * (k1 * qr[2 * half + f] - k2 * qr[3 * half + f]);
      }
    }
    for (int f = r_dim; f < D; f++) {
      const float kf = kr[f];
#pragma unroll
      for (int s = 0; s < kDecodeRowsPerWarp; s++) {
        if (s >= slots) break;
        dot[s] += kf * sQ[(s * kDecodeWarps + warp) * QW + r_dim + f];
      }
    }

#pragma unroll
    for (int s = 0; s < kDecodeRowsPerWarp; s++) {
      const int r = s * kDecodeWarps + warp;
      if (s >= slots) break;  // warp-uniform
      const int h = head_of(r);
      const QueryRow row = query_row(p, b, r % p.q_len);
      const float slope = p.has_alibi ? p.alibi_slope_log2[h] : 0.f;
      const float x = j < c1 ? score_log2(p, b, slope, row, j, dot[s], true) : -INFINITY;
      float mx = x;
#pragma unroll
      for (int o2 = 16; o2 > 0; o2 >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o2));
      const float new_max = fmaxf(row_max[s], mx);
      const float base = new_max == -INFINITY ? 0.f : new_max;
      const float correction = fast_exp2(row_max[s] - base);
      const float prob = fast_exp2(x - base);
      float sum = prob;
#pragma unroll
      for (int o2 = 16; o2 > 0; o2 >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o2);
      row_max[s] = new_max;
      row_sum[s] = row_sum[s] * correction + sum;
#pragma unroll
      for (int c = 0; c < D / 32; c++) o[s][c] *= correction;
      for (int jj = 0; jj < kDecodeKeys; jj++) {
        const float pj = __shfl_sync(0xffffffffu, prob, jj);
#pragma unroll
        for (int c = 0; c < D / 32; c++) o[s][c] += pj * sV[jj * KLD + lane + 32 * c];
      }
    }
  }

#pragma unroll
  for (int s = 0; s < kDecodeRowsPerWarp; s++) {
    const int r = s * kDecodeWarps + warp;
    if (s >= slots) break;
    const int64_t out_row = (int64_t(b) * p.heads + head_of(r)) * p.q_len + r % p.q_len;
    const int64_t part = out_row * splits + split;
#pragma unroll
    for (int c = 0; c < D / 32; c++) part_out[part * D + lane + 32 * c] = o[s][c];
    if (lane == 0) part_stats[part] = make_float2(row_max[s], row_sum[s]);
  }
}

constexpr int kCombineThreads = 256;

/**
 * One block per output row merges the chunks and writes out and lse. The 256 threads split the chunks
 * among kCombineThreads / D groups (one feature per thread) so that the loads overlap; a plain loop over
 * hundreds of chunks waits on memory once per chunk.
 */
template <int D>
__global__ void __launch_bounds__(kCombineThreads)
    attention_decode_combine_kernel(const __grid_constant__ Params p, const float* part_out, const float2* part_stats,
                                    int splits) {
  constexpr int kGroups = kCombineThreads / D;
  __shared__ float partial[kGroups][D];
  const int64_t row = blockIdx.x;
  const float2* stats = part_stats + row * splits;
  float m = -INFINITY;
  for (int s = threadIdx.x; s < splits; s += kCombineThreads) m = fmaxf(m, stats[s].x);
  m = block_max(m);
  const float base = m == -INFINITY ? 0.f : m;
  float sum = 0.f;
  for (int s = threadIdx.x; s < splits; s += kCombineThreads) sum += stats[s].y * fast_exp2(stats[s].x - base);
  sum = block_sum(sum);
  const int f = threadIdx.x % D, group = threadIdx.x / D;
  float acc = 0.f;
#pragma unroll 4
  for (int s = group; s < splits; s += kGroups) acc += part_out[(row * splits + s) * D + f] * fast_exp2(stats[s].x - base);
  partial[group][f] = acc;
  __syncthreads();
  if (group == 0) {
    for (int gi = 1; gi < kGroups; gi++) acc += partial[gi][f];
    p.out[row * D + f] = __float2bfloat16_rn(sum > 0.f ? acc / sum : 0.f);
    if (f == 0) p.lse[row] = sum > 0.f ? (m + log2f(sum)) * kLn2 : -INFINITY;
  }
}

}  // namespace andromeda::cuda::attention
