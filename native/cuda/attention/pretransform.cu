// The pre-pass path of rotary / xPos / key scale (NOTES.md): q and k are transformed once per call into
// bf16 copies that the plain kernels read, and the gradients the plain kernels return (wrt the
// transformed rows, float32) are taken back through the transform once per call.
//
// Work item: a "quad" of four features of one row. Quad t < r/4 holds rotary frequencies 2t and 2t + 1,
// i.e. features (2t, 2t + 1) and their partners (2t + r/2, 2t + 1 + r/2); the others hold four adjacent
// features past the rotary part. Either way: two adjacent pairs, at offsets lo and hi.
//
// xPos: q' = ζ^((p − c)/B) ⊙ R(p) q and k' = ζ^((c − p)/B) ⊙ R(p)(k ⊙ g) with one anchor c per call, or per
// query chunk in the long forward; the launcher keeps the factors that matter far inside float range
// (plan_transform in attention.cu). Factors of keys far before the anchor underflow to 0 (their true
// product with any q' factor is smaller still); the exponent is capped so that none can reach infinity.
#include <algorithm>
#include <memory>
#include <stdexcept>
#include <string>

#include "../common.cuh"
#include "launch.h"
#include "tile.cuh"

namespace andromeda::cuda::attention {
namespace {

struct QuadOffsets {
  int lo, hi;
  bool rotary;
};

__device__ __forceinline__ QuadOffsets quad_offsets(int t, int rotary_dim) {
  if (t < rotary_dim / 4) return {2 * t, 2 * t + rotary_dim / 2, true};
  const int lo = rotary_dim + 4 * (t - rotary_dim / 4);
  return {lo, lo + 2, false};
}

/** cos, sin and xPos factor of the quad's two frequencies for one row. */
struct RotaryFactors {
  float c0, s0, c1, s1, z0, z1;
};

// Cap of the xPos exponent: the planned factors stay ≤ 2^60 (plus the rows of a partly visible key tile);
// anything larger would only meet masked scores, and must stay finite there.
constexpr float kMaxXposExponent = 96.f;

/** xpos_delta: p − anchor for q rows, anchor − p for k rows. */
__device__ __forceinline__ RotaryFactors rotary_factors(const Params& p, bool key_side, int b, int row, int f,
                                                        float xpos_delta) {
  const float4 cs = *reinterpret_cast<const float4*>(rotary_rows(p, key_side, b, row) + f);  // c0 s0 c1 s1
  RotaryFactors r{cs.x, cs.y, cs.z, cs.w, 1.f, 1.f};
  if (p.has_xpos) {
    r.z0 = exp2f(fminf(p.xpos_rate[f] * xpos_delta, kMaxXposExponent));
    r.z1 = exp2f(fminf(p.xpos_rate[f + 1] * xpos_delta, kMaxXposExponent));
  }
  return r;
}

/** x' = z ⊙ R x on the pairs (lo, hi) of the quad's frequencies. */
__device__ __forceinline__ void rotate(float2& lo, float2& hi, const RotaryFactors& r) {
  const float2 a = lo, c = hi;
  lo = make_float2((a.x * r.c0 - c.x * r.s0) * r.z0, (a.y * r.c1 - c.y * r.s1) * r.z1);
  hi = make_float2((c.x * r.c0 + a.x * r.s0) * r.z0, (c.y * r.c1 + a.y * r.s1) * r.z1);
}

/** x̄ = Rᵀ(z ⊙ x̄'): the gradient wrt x of a gradient wrt x' = z ⊙ R x. */
__device__ __forceinline__ void rotate_back(float2& lo, float2& hi, const RotaryFactors& r) {
  const float2 y1 = make_float2(lo.x * r.z0, lo.y * r.z1), y2 = make_float2(hi.x * r.z0, hi.y * r.z1);
  lo = make_float2(y1.x * r.c0 + y2.x * r.s0, y1.y * r.c1 + y2.y * r.s1);
  hi = make_float2(y2.x * r.c0 - y1.x * r.s0, y2.y * r.c1 - y1.y * r.s1);
}

__device__ __forceinline__ float2 load_pair(const bf16* x) {
  return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(x));
}
__device__ __forceinline__ void store_pair(bf16* x, float2 v) {
  *reinterpret_cast<__nv_bfloat162*>(x) = __floats2bfloat162_rn(v.x, v.y);
}
__device__ __forceinline__ float2 mul(float2 a, float2 b) { return make_float2(a.x * b.x, a.y * b.y); }
__device__ __forceinline__ float2 load_scale(const float* g, int f) { return make_float2(__ldg(g + f), __ldg(g + f + 1)); }

/**
 * Rows [first, first + count) of each (batch item, head) into dst [batch][out_heads][dst_len][D] at row
 * i − first: q' (key_side 0, out_heads = heads) or k' (key_side 1) whose head kh reads k head kh mod
 * kv_heads and, with a key scale (then out_heads = heads), scale row kh.
 */
__global__ void pretransform_kernel(const __grid_constant__ Params p, bf16* dst, int key_side, int out_heads,
                                    int head_dim, int anchor, int first, int count, int dst_len) {
  const int quads = head_dim / 4, len = key_side ? p.k_len : p.q_len;
  const int64_t rows = int64_t(p.batch) * out_heads * count;
  ANDROMEDA_GRID_STRIDE(idx, rows * quads) {
    const int64_t row = idx / quads;
    const int t = int(idx % quads), r = int(row % count), head = int((row / count) % out_heads);
    const int b = int(row / (int64_t(count) * out_heads)), i = first + r;
    const bf16* src = key_side ? p.k + ((int64_t(b) * p.kv_heads + head % p.kv_heads) * len + i) * head_dim
                               : p.q + ((int64_t(b) * p.heads + head) * len + i) * head_dim;
    const QuadOffsets o = quad_offsets(t, p.rotary_dim);
    float2 lo = load_pair(src + o.lo), hi = load_pair(src + o.hi);
    if (key_side && p.key_scale) {
      const float* g = p.key_scale + int64_t(head) * head_dim;
      lo = mul(lo, load_scale(g, o.lo));
      hi = mul(hi, load_scale(g, o.hi));
    }
    if (o.rotary) {
      const float delta = key_side ? float(anchor - key_position(p, b, i)) : float(query_position(p, b, i) - anchor);
      rotate(lo, hi, rotary_factors(p, key_side, b, i, o.lo, delta));
    }
    bf16* out = dst + ((int64_t(b) * out_heads + head) * dst_len + r) * head_dim;
    store_pair(out + o.lo, lo);
    store_pair(out + o.hi, hi);
  }
}

/** grad_q [batch][heads][q_len][D] = Rᵀ(z ⊙ dQ') from float32 dQ' of the same shape. */
__global__ void untransform_q_kernel(const __grid_constant__ Params p, const float* dq_prime, bf16* grad_q, int head_dim,
                                     int anchor) {
  const int quads = head_dim / 4;
  const int64_t rows = int64_t(p.batch) * p.heads * p.q_len;
  ANDROMEDA_GRID_STRIDE(idx, rows * quads) {
    const int64_t row = idx / quads;
    const int t = int(idx % quads), i = int(row % p.q_len), b = int(row / (int64_t(p.q_len) * p.heads));
    const QuadOffsets o = quad_offsets(t, p.rotary_dim);
    const float* src = dq_prime + row * head_dim;
    float2 lo = *reinterpret_cast<const float2*>(src + o.lo), hi = *reinterpret_cast<const float2*>(src + o.hi);
    if (o.rotary) rotate_back(lo, hi, rotary_factors(p, false, b, i, o.lo, float(query_position(p, b, i) - anchor)));
    store_pair(grad_q + row * head_dim + o.lo, lo);
    store_pair(grad_q + row * head_dim + o.hi, hi);
  }
}

constexpr int kKeyThreads = 128;
constexpr int kKeyRowsPerThread = 2;

/**
 * One CTA per (key block, KV head hk, batch item). For each key head kh that maps onto hk (kh ≡ hk mod
 * kv_heads: one when k was not expanded, heads / kv_heads when it was), u = Rᵀ(z ⊙ dK'_kh), then
 *   grad_k = Σ_kh g_kh ⊙ u_kh   (g = 1 without a key scale; summed in registers, no atomics)
 *   partial[b · gridDim.x + x][kh] = Σ_{the CTA's keys} k ⊙ u_kh   (key scale only)
 * Thread layout: warp w takes quads [w·Q, (w + 1)·Q) with Q = D/16; lane = slot · Q + quad, so the slots
 * (S = 32/Q of them, each kKeyRowsPerThread keys apart) of one quad sit in one warp and the key-scale sum
 * over the CTA's keys is a fixed butterfly of shuffles: no barrier inside the loop over heads.
 */
template <int D>
__global__ void __launch_bounds__(kKeyThreads)
    untransform_k_kernel(const __grid_constant__ Params p, const float* dk_prime, int k_heads, int anchor, bf16* grad_k,
                         float* dg_partial) {
  constexpr int kQ = D / 16, kSlots = 32 / kQ, kRows = kSlots * kKeyRowsPerThread;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int t = warp * kQ + lane % kQ, slot = lane / kQ;
  const int hk = blockIdx.y, b = blockIdx.z, j0 = blockIdx.x * kRows;
  const QuadOffsets o = quad_offsets(t, p.rotary_dim);
  const bool with_scale = p.key_scale != nullptr;

  int key[kKeyRowsPerThread];
  RotaryFactors rot[kKeyRowsPerThread];
  float2 k_lo[kKeyRowsPerThread], k_hi[kKeyRowsPerThread], dk_lo[kKeyRowsPerThread], dk_hi[kKeyRowsPerThread];
  const bf16* k_rows = p.k + (int64_t(b) * p.kv_heads + hk) * p.k_len * D;
#pragma unroll
  for (int s = 0; s < kKeyRowsPerThread; s++) {
    key[s] = j0 + slot + kSlots * s;
    const int j = min(key[s], p.k_len - 1);
    rot[s] = RotaryFactors{1.f, 0.f, 1.f, 0.f, 1.f, 1.f};
    if (o.rotary) rot[s] = rotary_factors(p, true, b, j, o.lo, float(anchor - key_position(p, b, j)));
    k_lo[s] = k_hi[s] = make_float2(0.f, 0.f);
    if (with_scale) {
      k_lo[s] = load_pair(k_rows + int64_t(j) * D + o.lo);
      k_hi[s] = load_pair(k_rows + int64_t(j) * D + o.hi);
    }
    dk_lo[s] = dk_hi[s] = make_float2(0.f, 0.f);
  }

#pragma unroll 4
  for (int kh = hk; kh < k_heads; kh += p.kv_heads) {
    const float* src = dk_prime + (int64_t(b) * k_heads + kh) * p.k_len * D;
    float2 g_lo = make_float2(1.f, 1.f), g_hi = g_lo, dg_lo = make_float2(0.f, 0.f), dg_hi = dg_lo;
    if (with_scale) {
      g_lo = load_scale(p.key_scale + int64_t(kh) * D, o.lo);
      g_hi = load_scale(p.key_scale + int64_t(kh) * D, o.hi);
    }
#pragma unroll
    for (int s = 0; s < kKeyRowsPerThread; s++) {
      if (key[s] >= p.k_len) continue;
      float2 lo = *reinterpret_cast<const float2*>(src + int64_t(key[s]) * D + o.lo);
      float2 hi = *reinterpret_cast<const float2*>(src + int64_t(key[s]) * D + o.hi);
      if (o.rotary) rotate_back(lo, hi, rot[s]);
      dg_lo.x += k_lo[s].x * lo.x;
      dg_lo.y += k_lo[s].y * lo.y;
      dg_hi.x += k_hi[s].x * hi.x;
      dg_hi.y += k_hi[s].y * hi.y;
      dk_lo[s].x += g_lo.x * lo.x;
      dk_lo[s].y += g_lo.y * lo.y;
      dk_hi[s].x += g_hi.x * hi.x;
      dk_hi[s].y += g_hi.y * hi.y;
    }
    if (dg_partial) {
#pragma unroll
      for (int m = kQ; m < 32; m <<= 1) {
        dg_lo.x += __shfl_xor_sync(0xffffffffu, dg_lo.x, m);
        dg_lo.y += __shfl_xor_sync(0xffffffffu, dg_lo.y, m);
        dg_hi.x += __shfl_xor_sync(0xffffffffu, dg_hi.x, m);
        dg_hi.y += __shfl_xor_sync(0xffffffffu, dg_hi.y, m);
      }
      if (slot == 0) {
        float* dst = dg_partial + ((int64_t(b) * gridDim.x + blockIdx.x) * p.heads + kh) * D;
        *reinterpret_cast<float2*>(dst + o.lo) = dg_lo;
        *reinterpret_cast<float2*>(dst + o.hi) = dg_hi;
      }
    }
  }

  bf16* dst = grad_k + (int64_t(b) * p.kv_heads + hk) * p.k_len * D;
#pragma unroll
  for (int s = 0; s < kKeyRowsPerThread; s++) {
    if (key[s] >= p.k_len) continue;
    store_pair(dst + int64_t(key[s]) * D + o.lo, dk_lo[s]);
    store_pair(dst + int64_t(key[s]) * D + o.hi, dk_hi[s]);
  }
}

constexpr int kSumFeatures = 32, kSumLanes = 8;

/**
 * out[i] = Σ_c partial[c][i] for i < count: a CTA per 32 consecutive i; lane group w sums the chunks
 * c ≡ w (mod 8) in order, then the 8 group sums are added in order (deterministic).
 */
__global__ void __launch_bounds__(kSumFeatures * kSumLanes)
    sum_partials_kernel(const float* partial, int64_t chunks, int count, float* out) {
  __shared__ float sums[kSumLanes][kSumFeatures];
  const int f = threadIdx.x % kSumFeatures, w = threadIdx.x / kSumFeatures;
  const int i = blockIdx.x * kSumFeatures + f;
  float sum = 0.f;
  if (i < count) {
#pragma unroll 8
    for (int64_t c = w; c < chunks; c += kSumLanes) sum += partial[c * count + i];
  }
  sums[w][f] = sum;
  __syncthreads();
  if (w == 0 && i < count) {
    float total = 0.f;
#pragma unroll
    for (int l = 0; l < kSumLanes; l++) total += sums[l][f];
    out[i] = total;
  }
}

template <int D>
void launch_untransform_k_dim(const Params& p, const float* dk_prime, int k_heads, int anchor, bf16* grad_k,
                              float* grad_key_scale) {
  constexpr int kRows = (32 / (D / 16)) * kKeyRowsPerThread;  // keys per CTA
  const unsigned blocks_per_item = unsigned((p.k_len + kRows - 1) / kRows);
  const int64_t chunks = int64_t(p.batch) * blocks_per_item;
  const int count = p.heads * D;
  std::unique_ptr<Scratch> partial;
  if (grad_key_scale) partial = std::make_unique<Scratch>(size_t(std::max<int64_t>(1, chunks * count)) * sizeof(float));
  untransform_k_kernel<D><<<dim3(blocks_per_item, unsigned(p.kv_heads), unsigned(p.batch)), kKeyThreads, 0, stream()>>>(
      p, dk_prime, k_heads, anchor, grad_k, partial ? partial->as<float>() : nullptr);
  check_launch("attention pre-pass: dK back through the transform");
  if (grad_key_scale) {
    sum_partials_kernel<<<unsigned((count + kSumFeatures - 1) / kSumFeatures), kSumFeatures * kSumLanes, 0, stream()>>>(
        partial->as<float>(), chunks, count, grad_key_scale);
    check_launch("attention pre-pass: key-scale gradient sum");
  }
}

}  // namespace

void launch_pretransform(const Params& p, int head_dim, bool key_side, int out_heads, int anchor, bf16* dst, int first,
                         int count, int dst_len) {
  const int len = key_side ? p.k_len : p.q_len;
  if (first < 0 || count < 0 || first + int64_t(count) > len || count > dst_len)
    throw std::invalid_argument("attention pre-pass: rows [" + std::to_string(first) + ", " +
                                std::to_string(first + int64_t(count)) + ") outside [0, " + std::to_string(len) + ")");
  const int64_t work = int64_t(p.batch) * out_heads * count * (head_dim / 4);
  if (work == 0) return;
  pretransform_kernel<<<grid_for(work), kThreads, 0, stream()>>>(p, dst, key_side ? 1 : 0, out_heads, head_dim, anchor,
                                                                 first, count, dst_len);
  check_launch(key_side ? "attention pre-pass: k" : "attention pre-pass: q");
}

void launch_untransform_q(const Params& p, int head_dim, int anchor, const float* dq_prime, bf16* grad_q) {
  const int64_t count = int64_t(p.batch) * p.heads * p.q_len * (head_dim / 4);
  if (count == 0) return;
  untransform_q_kernel<<<grid_for(count), kThreads, 0, stream()>>>(p, dq_prime, grad_q, head_dim, anchor);
  check_launch("attention pre-pass: dQ back through the transform");
}

void launch_untransform_k(const Params& p, int head_dim, int k_heads, int anchor, const float* dk_prime, bf16* grad_k,
                          float* grad_key_scale) {
  if (p.k_len == 0) return;
  switch (head_dim) {
    case 32: launch_untransform_k_dim<32>(p, dk_prime, k_heads, anchor, grad_k, grad_key_scale); break;
    case 64: launch_untransform_k_dim<64>(p, dk_prime, k_heads, anchor, grad_k, grad_key_scale); break;
    case 128: launch_untransform_k_dim<128>(p, dk_prime, k_heads, anchor, grad_k, grad_key_scale); break;
    default: throw std::invalid_argument("attention: head dim " + std::to_string(head_dim) + " (supported: 32, 64, 128)");
  }
}

}  // namespace andromeda::cuda::attention
