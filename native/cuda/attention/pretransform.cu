// The pre-pass path of rotary / xPos / key scale (NOTES.md): q and k are transformed once per call into
// bf16 copies that the plain kernels read, and the gradients the plain kernels return (wrt the
// transformed rows, float32) are taken back through the transform once per call.
//
// Work item: a "quad" of four features of one row (rotary_pairs.cuh).
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
#include "rotary_pairs.cuh"
#include "tile.cuh"

namespace andromeda::cuda::attention {
namespace {

__device__ __forceinline__ float2 load_pair(const bf16* x) {
  return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(x));
}
__device__ __forceinline__ void store_pair(bf16* x, float2 v) {
  *reinterpret_cast<__nv_bfloat162*>(x) = __floats2bfloat162_rn(v.x, v.y);
}
__device__ __forceinline__ float2 mul(float2 a, float2 b) { return make_float2(a.x * b.x, a.y * b.y); }
__device__ __forceinline__ float2 load_scale(const float* g, int f) { return make_float2(__ldg(g + f), __ldg(g + f + 1)); }

/** B = z ⊙ J R(−p) x on the pairs (lo, hi): (z(x cos θ + y sin θ), z(x sin θ − y cos θ)) per frequency. */
__device__ __forceinline__ void rotate_split_b(float2& lo, float2& hi, const RotaryFactors& r) {
  const float2 a = lo, c = hi;
  lo = make_float2((a.x * r.c0 + c.x * r.s0) * r.z0, (a.y * r.c1 + c.y * r.s1) * r.z1);
  hi = make_float2((a.x * r.s0 - c.x * r.c0) * r.z0, (a.y * r.s1 - c.y * r.c1) * r.z1);
}

/**
 * Rows [first, first + count) of each (batch item, head) into dst [batch][out_heads][dst_len][D] at row
 * i − first, by mode (PretransformMode):
 *   Query:          q' = z_q ⊙ R(p) q (out_heads = heads)
 *   QueryScaleRest: q' as Query, times g_h on the features past the rotary ones (the split forward: K keeps
 *                   k there, so the key scale moves onto q)
 *   Key:            k' = z_k ⊙ R(p)(k ⊙ g_kh), head kh from k head kh mod kv_heads and scale row kh (out_heads
 *                   = kv_heads, or = heads without kv sharing)
 *   KeySplit:       A = z_k ⊙ R(p) k into dst and B = z_k ⊙ J R(−p) k into dst_b (its rotary features only),
 *                   per KV head (out_heads = kv_heads); past the rotary features A = k
 */
template <typename Index>
__global__ void pretransform_kernel(const __grid_constant__ Params p, bf16* dst, bf16* dst_b, int mode, int out_heads,
                                    int head_dim, int anchor, int first, int count, int dst_len) {
  const bool key_side = mode == int(PretransformMode::Key) || mode == int(PretransformMode::KeySplit);
  const int quads = head_dim / 4, len = key_side ? p.k_len : p.q_len;
  // Index: 32-bit where the work fits (the launcher picks), so that the row arithmetic is no 64-bit division.
  const Index work = Index(p.batch) * Index(out_heads) * Index(count) * Index(quads);
  for (Index idx = Index(blockIdx.x) * blockDim.x + threadIdx.x; idx < work; idx += Index(gridDim.x) * blockDim.x) {
    const Index row = idx / Index(quads);
    const int t = int(idx % Index(quads)), r = int(row % Index(count)), head = int((row / Index(count)) % Index(out_heads));
    const int b = int(row / (Index(count) * Index(out_heads))), i = first + r;
    const bf16* src = key_side ? p.k + ((int64_t(b) * p.kv_heads + head % p.kv_heads) * len + i) * head_dim
                               : p.q + ((int64_t(b) * p.heads + head) * len + i) * head_dim;
    const QuadOffsets o = quad_offsets(t, p.rotary_dim);
    float2 lo = load_pair(src + o.lo), hi = load_pair(src + o.hi);
    const bool scaled = (mode == int(PretransformMode::Key) && p.key_scale) ||
                        (mode == int(PretransformMode::QueryScaleRest) && !o.rotary);
    if (scaled) {
      const float* g = p.key_scale + int64_t(head) * head_dim;
      lo = mul(lo, load_scale(g, o.lo));
      hi = mul(hi, load_scale(g, o.hi));
    }
    const int64_t out_row = ((int64_t(b) * out_heads + head) * dst_len + r) * head_dim;
    if (o.rotary) {
      const float delta = key_side ? float(anchor - key_position(p, b, i)) : float(query_position(p, b, i) - anchor);
      const RotaryFactors f = rotary_factors(p, key_side, b, i, o.lo, delta);
      if (mode == int(PretransformMode::KeySplit)) {
        float2 b_lo = lo, b_hi = hi;
        rotate_split_b(b_lo, b_hi, f);
        store_pair(dst_b + out_row + o.lo, b_lo);
        store_pair(dst_b + out_row + o.hi, b_hi);
      }
      rotate(lo, hi, f);
    }
    store_pair(dst + out_row + o.lo, lo);
    store_pair(dst + out_row + o.hi, hi);
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

/**
 * The split backward's dk [batch][kv_heads][k_len][D] from dA, dB (float32, summed over the query heads of each
 * KV head): with u = z ⊙ dA, v = z ⊙ dB on a rotary pair (x = f, y = f + r/2),
 *   dk_x = (u_x + v_x) cos θ + (u_y + v_y) sin θ,   dk_y = (v_x − u_x) sin θ + (u_y − v_y) cos θ
 * (A = z R(p) k contributes Rᵀ u, B = z J R(−p) k contributes R(p) J v); past the rotary features dk = dA.
 */
__global__ void untransform_k_split_kernel(const __grid_constant__ Params p, const float* grad_a, const float* grad_b,
                                           bf16* grad_k, int head_dim, int anchor) {
  const int quads = head_dim / 4;
  const int64_t rows = int64_t(p.batch) * p.kv_heads * p.k_len;
  ANDROMEDA_GRID_STRIDE(idx, rows * quads) {
    const int64_t row = idx / quads;
    const int t = int(idx % quads), j = int(row % p.k_len), b = int(row / (int64_t(p.k_len) * p.kv_heads));
    const QuadOffsets o = quad_offsets(t, p.rotary_dim);
    const float* a = grad_a + row * head_dim;
    float2 lo = *reinterpret_cast<const float2*>(a + o.lo), hi = *reinterpret_cast<const float2*>(a + o.hi);
    if (o.rotary) {
      const RotaryFactors r = rotary_factors(p, true, b, j, o.lo, float(anchor - key_position(p, b, j)));
      const float* bb = grad_b + row * head_dim;
      const float2 v_lo = *reinterpret_cast<const float2*>(bb + o.lo), v_hi = *reinterpret_cast<const float2*>(bb + o.hi);
      const float ux0 = lo.x * r.z0, ux1 = lo.y * r.z1, uy0 = hi.x * r.z0, uy1 = hi.y * r.z1;
      const float vx0 = v_lo.x * r.z0, vx1 = v_lo.y * r.z1, vy0 = v_hi.x * r.z0, vy1 = v_hi.y * r.z1;
      lo = make_float2((ux0 + vx0) * r.c0 + (uy0 + vy0) * r.s0, (ux1 + vx1) * r.c1 + (uy1 + vy1) * r.s1);
      hi = make_float2((vx0 - ux0) * r.s0 + (uy0 - vy0) * r.c0, (vx1 - ux1) * r.s1 + (uy1 - vy1) * r.c1);
    }
    store_pair(grad_k + row * head_dim + o.lo, lo);
    store_pair(grad_k + row * head_dim + o.hi, hi);
  }
}

/**
 * grad_key_scale [heads][D] from the summed column sums cd [heads][2][D] (Σ A ⊙ dK'_h, then Σ B ⊙ dK'_h): on a
 * rotary pair (f, f' = f + r/2) with C = cd_A[f] + cd_A[f'] and E = cd_B[f] + cd_B[f'] (the gradients wrt
 * c_h = (g_f + g_f')/2 and d_h = (g_f − g_f')/2), dg_f = (C + E)/2 and dg_f' = (C − E)/2; elsewhere dg_f = cd_A[f].
 */
__global__ void split_key_scale_gradient_kernel(const float* cd, float* grad_key_scale, int heads, int head_dim,
                                                int rotary_dim) {
  ANDROMEDA_GRID_STRIDE(idx, int64_t(heads) * head_dim) {
    const int f = int(idx % head_dim), h = int(idx / head_dim);
    const float* a = cd + int64_t(h) * 2 * head_dim;
    const float* bsum = a + head_dim;
    float g = a[f];
    if (f < rotary_dim) {
      const int half = rotary_dim / 2, lo = f < half ? f : f - half;
      const float c = a[lo] + a[lo + half], e = bsum[lo] + bsum[lo + half];
      g = f < half ? 0.5f * (c + e) : 0.5f * (c - e);
    }
    grad_key_scale[idx] = g;
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

void launch_pretransform(const Params& p, int head_dim, PretransformMode mode, int out_heads, int anchor, bf16* dst,
                         int first, int count, int dst_len, bf16* dst_b) {
  const bool key_side = mode == PretransformMode::Key || mode == PretransformMode::KeySplit;
  const int len = key_side ? p.k_len : p.q_len;
  if (first < 0 || count < 0 || first + int64_t(count) > len || count > dst_len)
    throw std::invalid_argument("attention pre-pass: rows [" + std::to_string(first) + ", " +
                                std::to_string(first + int64_t(count)) + ") outside [0, " + std::to_string(len) + ")");
  if (mode == PretransformMode::KeySplit && (!dst_b || out_heads != p.kv_heads))
    throw std::invalid_argument("attention pre-pass: the split keys need B and one head per KV head");
  if (mode == PretransformMode::QueryScaleRest && !p.key_scale)
    throw std::invalid_argument("attention pre-pass: moving the key scale onto q needs the key scale");
  const int64_t work = int64_t(p.batch) * out_heads * count * (head_dim / 4);
  if (work == 0) return;
  const auto launch = [&](auto kernel) {
    kernel<<<grid_for(work), kThreads, 0, stream()>>>(p, dst, dst_b, int(mode), out_heads, head_dim, anchor, first, count,
                                                      dst_len);
  };
  work < (int64_t(1) << 31) ? launch(pretransform_kernel<uint32_t>) : launch(pretransform_kernel<uint64_t>);
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

void launch_untransform_k_split(const Params& p, int head_dim, int anchor, const float* grad_a, const float* grad_b,
                                bf16* grad_k, const float* cd_partial, int64_t cd_chunks, float* grad_key_scale) {
  const int64_t count = int64_t(p.batch) * p.kv_heads * p.k_len * (head_dim / 4);
  if (count > 0) {
    untransform_k_split_kernel<<<grid_for(count), kThreads, 0, stream()>>>(p, grad_a, grad_b, grad_k, head_dim, anchor);
    check_launch("attention split pre-pass: dk from dA, dB");
  }
  const int sums = p.heads * 2 * head_dim;
  Scratch cd(size_t(sums) * sizeof(float));
  sum_partials_kernel<<<unsigned((sums + kSumFeatures - 1) / kSumFeatures), kSumFeatures * kSumLanes, 0, stream()>>>(
      cd_partial, cd_chunks, sums, cd.as<float>());
  check_launch("attention split pre-pass: key-scale column sums");
  split_key_scale_gradient_kernel<<<grid_for(int64_t(p.heads) * head_dim), kThreads, 0, stream()>>>(
      cd.as<float>(), grad_key_scale, p.heads, head_dim, p.rotary_dim);
  check_launch("attention split pre-pass: key-scale gradient");
}

}  // namespace andromeda::cuda::attention
