// The float32 kernels of simd_kernels.inc, compiled for AVX-512, AVX2+FMA (x86-64), NEON (aarch64)
// and portable C++ (the baseline target, which the compiler vectorises with SSE2 or NEON where it
// can), selected at run time.
#include "simd_kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

#include <cmath>
#include <cstdint>

#include "simd.h"
#include "target_region.h"

// GCC 12 reports its own _mm512_reduce_* helpers (which start from an undefined vector) as
// uninitialised, and the ABI note for vector-returning lambdas is moot here (internal linkage).
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#pragma GCC diagnostic ignored "-Wpsabi"

namespace andromeda::cpu {

// ---- portable: one lane ---------------------------------------------------------------------
namespace generic {
namespace {
struct V {
  using R = float;
  static constexpr int L = 1;
  static inline R zero() { return 0.f; }
  static inline R set1(float v) { return v; }
  static inline R load(const float* p) { return *p; }
  static inline void store(float* p, R v) { *p = v; }
  static inline R load_part(const float* p, int64_t n, float fill) { return n > 0 ? *p : fill; }
  static inline void store_part(float* p, R v, int64_t n) { if (n > 0) *p = v; }
  static inline R add(R a, R b) { return a + b; }
  static inline R sub(R a, R b) { return a - b; }
  static inline R mul(R a, R b) { return a * b; }
  static inline R div(R a, R b) { return a / b; }
  static inline R fma(R a, R b, R c) { return a * b + c; }
  static inline R fnma(R a, R b, R c) { return c - a * b; }
  static inline R max(R a, R b) { return a > b ? a : b; }
  static inline R min(R a, R b) { return a < b ? a : b; }
  static inline R sqrt(R a) { return std::sqrt(a); }
  static inline R abs(R a) { return std::fabs(a); }
  static inline R neg(R a) { return -a; }
  static inline R exp(R a) { return std::exp(a); }
  static inline R expn(R a) { return std::exp(a); }
  static inline R select_gt(R a, R b, R x, R y) { return a > b ? x : y; }
  static inline float hsum(R a) { return a; }
  static inline float hmax(R a) { return a; }
  static inline R rcp(R a) { return 1.f / a; }
  static inline void transpose8(const float* s, int64_t ss, float* d, int64_t ds) {
    for (int r = 0; r < 8; r++)
      for (int c = 0; c < 8; c++) d[c * ds + r] = s[r * ss + c];
  }
};
constexpr const char* kIsaName = "generic";
#include "simd_kernels.inc"
}  // namespace
const F32Ops& ops() { return kOps; }
}  // namespace generic

// Shared constants of the vector exp: exp(x) = 2^n · p(r), n = round(x·log2 e), r = x − n·ln 2,
// p a degree-7 polynomial (Cephes expf), |error| ≈ 1 ulp. x > 88.72 gives +inf, x < −87.33 gives 0
// (no subnormal results), NaN stays NaN.
#define ANDROMEDA_EXP_CONSTANTS                                            \
  constexpr float kExpHi = 88.72283935546875f, kExpLo = -87.33654022216797f; \
  constexpr float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;

#if defined(__x86_64__)
// ---- AVX-512 ----------------------------------------------------------------------------------
ANDROMEDA_TARGET_BEGIN("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")
namespace avx512 {
namespace {
struct V {
  using R = __m512;
  static constexpr int L = 16;
  static inline __mmask16 mask(int64_t n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1); }
  static inline R zero() { return _mm512_setzero_ps(); }
  static inline R set1(float v) { return _mm512_set1_ps(v); }
  static inline R load(const float* p) { return _mm512_loadu_ps(p); }
  static inline void store(float* p, R v) { _mm512_storeu_ps(p, v); }
  static inline R load_part(const float* p, int64_t n, float fill) { return _mm512_mask_loadu_ps(_mm512_set1_ps(fill), mask(n), p); }
  static inline void store_part(float* p, R v, int64_t n) { _mm512_mask_storeu_ps(p, mask(n), v); }
  static inline R add(R a, R b) { return _mm512_add_ps(a, b); }
  static inline R sub(R a, R b) { return _mm512_sub_ps(a, b); }
  static inline R mul(R a, R b) { return _mm512_mul_ps(a, b); }
  static inline R div(R a, R b) { return _mm512_div_ps(a, b); }
  static inline R fma(R a, R b, R c) { return _mm512_fmadd_ps(a, b, c); }
  static inline R fnma(R a, R b, R c) { return _mm512_fnmadd_ps(a, b, c); }
  static inline R max(R a, R b) { return _mm512_max_ps(a, b); }
  static inline R min(R a, R b) { return _mm512_min_ps(a, b); }
  static inline R sqrt(R a) { return _mm512_sqrt_ps(a); }
  static inline R abs(R a) { return _mm512_abs_ps(a); }
  static inline R neg(R a) { return _mm512_xor_ps(a, _mm512_set1_ps(-0.f)); }
  static inline R select_gt(R a, R b, R x, R y) { return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_GT_OQ), y, x); }
  static inline float hsum(R a) { return _mm512_reduce_add_ps(a); }
  static inline float hmax(R a) { return _mm512_reduce_max_ps(a); }
  // 1/a from the 14-bit estimate and one Newton step (~23 bits), for finite a ≥ 1 (erfc's t).
  static inline R rcp(R a) {
    const R r = _mm512_rcp14_ps(a);
    return _mm512_mul_ps(r, _mm512_fnmadd_ps(a, r, _mm512_set1_ps(2.f)));
  }
  static inline void transpose8(const float* s, int64_t ss, float* d, int64_t ds) {
    const __m256 r0 = _mm256_loadu_ps(s), r1 = _mm256_loadu_ps(s + ss), r2 = _mm256_loadu_ps(s + 2 * ss),
                 r3 = _mm256_loadu_ps(s + 3 * ss), r4 = _mm256_loadu_ps(s + 4 * ss), r5 = _mm256_loadu_ps(s + 5 * ss),
                 r6 = _mm256_loadu_ps(s + 6 * ss), r7 = _mm256_loadu_ps(s + 7 * ss);
    const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
                 t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
                 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE),
                 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE),
                 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE),
                 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(d, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(d + ds, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(d + 2 * ds, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(d + 3 * ds, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(d + 4 * ds, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(d + 5 * ds, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(d + 6 * ds, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(d + 7 * ds, _mm256_permute2f128_ps(u3, u7, 0x31));
  }

  static inline R exp(R x) {
    ANDROMEDA_EXP_CONSTANTS
    const R xc = _mm512_min_ps(_mm512_max_ps(x, set1(kExpLo)), set1(kExpHi));
    const R n = _mm512_roundscale_ps(_mm512_mul_ps(xc, set1(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    R r = _mm512_fnmadd_ps(n, set1(kLn2Hi), xc);
    r = _mm512_fnmadd_ps(n, set1(kLn2Lo), r);
    R p = set1(1.9875691500e-4f);
    p = fma(p, r, set1(1.3981999507e-3f));
    p = fma(p, r, set1(8.3334519073e-3f));
    p = fma(p, r, set1(4.1665795894e-2f));
    p = fma(p, r, set1(1.6666665459e-1f));
    p = fma(p, r, set1(5.0000001201e-1f));
    p = fma(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, set1(1.f)));
    // 2^n in two factors so that n = 128 (x near the top of the range) does not overflow the exponent.
    const __m512i e = _mm512_cvtps_epi32(n);
    const __m512i e1 = _mm512_srai_epi32(e, 1), e2 = _mm512_sub_epi32(e, e1);
    const R s1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(e1, _mm512_set1_epi32(127)), 23));
    const R s2 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(e2, _mm512_set1_epi32(127)), 23));
    R y = _mm512_mul_ps(_mm512_mul_ps(p, s1), s2);
    y = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, set1(kExpLo), _CMP_LT_OQ), y, zero());
    y = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, set1(kExpHi), _CMP_GT_OQ), y, set1(__builtin_inff()));
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), y, x);
  }
  // exp for x ≤ ~0 (softmax, log-sum-exp, Gaussian tails): one scale factor, no overflow handling.
  static inline R expn(R x) {
    ANDROMEDA_EXP_CONSTANTS
    (void)kExpHi;
    const R xc = _mm512_max_ps(set1(kExpLo), x);  // NaN stays NaN (max returns its second operand)
    const R n = _mm512_roundscale_ps(_mm512_mul_ps(xc, set1(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    R r = _mm512_fnmadd_ps(n, set1(kLn2Hi), xc);
    r = _mm512_fnmadd_ps(n, set1(kLn2Lo), r);
    R p = set1(1.9875691500e-4f);
    p = fma(p, r, set1(1.3981999507e-3f));
    p = fma(p, r, set1(8.3334519073e-3f));
    p = fma(p, r, set1(4.1665795894e-2f));
    p = fma(p, r, set1(1.6666665459e-1f));
    p = fma(p, r, set1(5.0000001201e-1f));
    p = fma(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, set1(1.f)));
    const R s = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23));
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, set1(kExpLo), _CMP_LT_OQ), _mm512_mul_ps(p, s), zero());
  }
};
constexpr const char* kIsaName = "avx512";
#include "simd_kernels.inc"
}  // namespace
const F32Ops& ops() { return kOps; }
}  // namespace avx512
ANDROMEDA_TARGET_END

// ---- AVX2 + FMA ---------------------------------------------------------------------------------
ANDROMEDA_TARGET_BEGIN("avx2,fma")
namespace avx2 {
namespace {
alignas(32) const int32_t kMaskTable[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
struct V {
  using R = __m256;
  static constexpr int L = 8;
  static inline __m256i mask(int64_t n) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kMaskTable + 8 - (n >= 8 ? 8 : n))); }
  static inline R zero() { return _mm256_setzero_ps(); }
  static inline R set1(float v) { return _mm256_set1_ps(v); }
  static inline R load(const float* p) { return _mm256_loadu_ps(p); }
  static inline void store(float* p, R v) { _mm256_storeu_ps(p, v); }
  static inline R load_part(const float* p, int64_t n, float fill) {
    const __m256i m = mask(n);
    return _mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
  }
  static inline void store_part(float* p, R v, int64_t n) { _mm256_maskstore_ps(p, mask(n), v); }
  static inline R add(R a, R b) { return _mm256_add_ps(a, b); }
  static inline R sub(R a, R b) { return _mm256_sub_ps(a, b); }
  static inline R mul(R a, R b) { return _mm256_mul_ps(a, b); }
  static inline R div(R a, R b) { return _mm256_div_ps(a, b); }
  static inline R fma(R a, R b, R c) { return _mm256_fmadd_ps(a, b, c); }
  static inline R fnma(R a, R b, R c) { return _mm256_fnmadd_ps(a, b, c); }
  static inline R max(R a, R b) { return _mm256_max_ps(a, b); }
  static inline R min(R a, R b) { return _mm256_min_ps(a, b); }
  static inline R sqrt(R a) { return _mm256_sqrt_ps(a); }
  static inline R abs(R a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.f), a); }
  static inline R neg(R a) { return _mm256_xor_ps(a, _mm256_set1_ps(-0.f)); }
  static inline R select_gt(R a, R b, R x, R y) { return _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, b, _CMP_GT_OQ)); }
  static inline float hsum(R a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static inline float hmax(R a) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  // 1/a from the 12-bit estimate and one Newton step (~22 bits), for finite a ≥ 1 (erfc's t).
  static inline R rcp(R a) {
    const R r = _mm256_rcp_ps(a);
    return _mm256_mul_ps(r, _mm256_fnmadd_ps(a, r, _mm256_set1_ps(2.f)));
  }
  static inline void transpose8(const float* s, int64_t ss, float* d, int64_t ds) {
    const __m256 r0 = _mm256_loadu_ps(s), r1 = _mm256_loadu_ps(s + ss), r2 = _mm256_loadu_ps(s + 2 * ss),
                 r3 = _mm256_loadu_ps(s + 3 * ss), r4 = _mm256_loadu_ps(s + 4 * ss), r5 = _mm256_loadu_ps(s + 5 * ss),
                 r6 = _mm256_loadu_ps(s + 6 * ss), r7 = _mm256_loadu_ps(s + 7 * ss);
    const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
                 t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
                 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE),
                 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE),
                 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE),
                 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(d, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(d + ds, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(d + 2 * ds, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(d + 3 * ds, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(d + 4 * ds, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(d + 5 * ds, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(d + 6 * ds, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(d + 7 * ds, _mm256_permute2f128_ps(u3, u7, 0x31));
  }

  static inline R exp(R x) {
    ANDROMEDA_EXP_CONSTANTS
    const R xc = _mm256_min_ps(_mm256_max_ps(x, set1(kExpLo)), set1(kExpHi));
    const R n = _mm256_round_ps(_mm256_mul_ps(xc, set1(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    R r = _mm256_fnmadd_ps(n, set1(kLn2Hi), xc);
    r = _mm256_fnmadd_ps(n, set1(kLn2Lo), r);
    R p = set1(1.9875691500e-4f);
    p = fma(p, r, set1(1.3981999507e-3f));
    p = fma(p, r, set1(8.3334519073e-3f));
    p = fma(p, r, set1(4.1665795894e-2f));
    p = fma(p, r, set1(1.6666665459e-1f));
    p = fma(p, r, set1(5.0000001201e-1f));
    p = fma(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, set1(1.f)));
    const __m256i e = _mm256_cvtps_epi32(n);
    const __m256i e1 = _mm256_srai_epi32(e, 1), e2 = _mm256_sub_epi32(e, e1);
    const R s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(e1, _mm256_set1_epi32(127)), 23));
    const R s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(e2, _mm256_set1_epi32(127)), 23));
    R y = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
    y = _mm256_blendv_ps(y, zero(), _mm256_cmp_ps(x, set1(kExpLo), _CMP_LT_OQ));
    y = _mm256_blendv_ps(y, set1(__builtin_inff()), _mm256_cmp_ps(x, set1(kExpHi), _CMP_GT_OQ));
    return _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
  }
  // exp for x ≤ ~0 (softmax, log-sum-exp, Gaussian tails): one scale factor, no overflow handling.
  static inline R expn(R x) {
    ANDROMEDA_EXP_CONSTANTS
    (void)kExpHi;
    const R xc = _mm256_max_ps(set1(kExpLo), x);
    const R n = _mm256_round_ps(_mm256_mul_ps(xc, set1(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    R r = _mm256_fnmadd_ps(n, set1(kLn2Hi), xc);
    r = _mm256_fnmadd_ps(n, set1(kLn2Lo), r);
    R p = set1(1.9875691500e-4f);
    p = fma(p, r, set1(1.3981999507e-3f));
    p = fma(p, r, set1(8.3334519073e-3f));
    p = fma(p, r, set1(4.1665795894e-2f));
    p = fma(p, r, set1(1.6666665459e-1f));
    p = fma(p, r, set1(5.0000001201e-1f));
    p = fma(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, set1(1.f)));
    const R s = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
    return _mm256_blendv_ps(_mm256_mul_ps(p, s), zero(), _mm256_cmp_ps(x, set1(kExpLo), _CMP_LT_OQ));
  }
};
constexpr const char* kIsaName = "avx2";
#include "simd_kernels.inc"
}  // namespace
const F32Ops& ops() { return kOps; }
}  // namespace avx2
ANDROMEDA_TARGET_END
#elif defined(__aarch64__)
// ---- NEON (Advanced SIMD, part of every aarch64 CPU: no target pragma) -------------------------
namespace neon {
namespace {
struct V {
  using R = float32x4_t;
  static constexpr int L = 4;
  static inline R zero() { return vdupq_n_f32(0.f); }
  static inline R set1(float v) { return vdupq_n_f32(v); }
  static inline R load(const float* p) { return vld1q_f32(p); }
  static inline void store(float* p, R v) { vst1q_f32(p, v); }
  // Tails of fewer than 4 lanes go through a register-sized buffer (NEON has no masked load/store).
  static inline R load_part(const float* p, int64_t n, float fill) {
    if (n >= 4) return vld1q_f32(p);
    float lanes[4] = {fill, fill, fill, fill};
    for (int64_t i = 0; i < n; i++) lanes[i] = p[i];
    return vld1q_f32(lanes);
  }
  static inline void store_part(float* p, R v, int64_t n) {
    if (n >= 4) {
      vst1q_f32(p, v);
      return;
    }
    float lanes[4];
    vst1q_f32(lanes, v);
    for (int64_t i = 0; i < n; i++) p[i] = lanes[i];
  }
  static inline R add(R a, R b) { return vaddq_f32(a, b); }
  static inline R sub(R a, R b) { return vsubq_f32(a, b); }
  static inline R mul(R a, R b) { return vmulq_f32(a, b); }
  static inline R div(R a, R b) { return vdivq_f32(a, b); }
  static inline R fma(R a, R b, R c) { return vfmaq_f32(c, a, b); }
  static inline R fnma(R a, R b, R c) { return vfmsq_f32(c, a, b); }
  static inline R max(R a, R b) { return vmaxq_f32(a, b); }
  static inline R min(R a, R b) { return vminq_f32(a, b); }
  static inline R sqrt(R a) { return vsqrtq_f32(a); }
  static inline R abs(R a) { return vabsq_f32(a); }
  static inline R neg(R a) { return vnegq_f32(a); }
  static inline R select_gt(R a, R b, R x, R y) { return vbslq_f32(vcgtq_f32(a, b), x, y); }
  static inline float hsum(R a) { return vaddvq_f32(a); }
  static inline float hmax(R a) { return vmaxvq_f32(a); }
  // 1/a from the 8-bit estimate and two Newton steps (~23 bits), for finite a ≥ 1 (erfc's t).
  static inline R rcp(R a) {
    R r = vrecpeq_f32(a);
    r = vmulq_f32(r, vrecpsq_f32(a, r));
    return vmulq_f32(r, vrecpsq_f32(a, r));
  }
  // d[c·ds + r] = s[r·ss + c] for a 4 × 4 block: lanes paired by 32-bit then by 64-bit transposes.
  static inline void transpose4(const float* s, int64_t ss, float* d, int64_t ds) {
    const R r0 = vld1q_f32(s), r1 = vld1q_f32(s + ss), r2 = vld1q_f32(s + 2 * ss), r3 = vld1q_f32(s + 3 * ss);
    const float64x2_t t0 = vreinterpretq_f64_f32(vtrn1q_f32(r0, r1)), t1 = vreinterpretq_f64_f32(vtrn2q_f32(r0, r1)),
                      t2 = vreinterpretq_f64_f32(vtrn1q_f32(r2, r3)), t3 = vreinterpretq_f64_f32(vtrn2q_f32(r2, r3));
    vst1q_f32(d, vreinterpretq_f32_f64(vtrn1q_f64(t0, t2)));
    vst1q_f32(d + ds, vreinterpretq_f32_f64(vtrn1q_f64(t1, t3)));
    vst1q_f32(d + 2 * ds, vreinterpretq_f32_f64(vtrn2q_f64(t0, t2)));
    vst1q_f32(d + 3 * ds, vreinterpretq_f32_f64(vtrn2q_f64(t1, t3)));
  }
  static inline void transpose8(const float* s, int64_t ss, float* d, int64_t ds) {
    transpose4(s, ss, d, ds);
    transpose4(s + 4, ss, d + 4 * ds, ds);
    transpose4(s + 4 * ss, ss, d + 4, ds);
    transpose4(s + 4 * ss + 4, ss, d + 4 * ds + 4, ds);
  }

  // The polynomial of the x86 versions: n rounds to nearest even there (vrndnq) as here.
  static inline R exp_poly(R xc, R* n_out) {
    ANDROMEDA_EXP_CONSTANTS
    (void)kExpHi;
    (void)kExpLo;
    const R n = vrndnq_f32(vmulq_f32(xc, set1(kLog2e)));
    R r = vfmsq_f32(xc, n, set1(kLn2Hi));
    r = vfmsq_f32(r, n, set1(kLn2Lo));
    R p = set1(1.9875691500e-4f);
    p = fma(p, r, set1(1.3981999507e-3f));
    p = fma(p, r, set1(8.3334519073e-3f));
    p = fma(p, r, set1(4.1665795894e-2f));
    p = fma(p, r, set1(1.6666665459e-1f));
    p = fma(p, r, set1(5.0000001201e-1f));
    *n_out = n;
    return fma(p, vmulq_f32(r, r), vaddq_f32(r, set1(1.f)));
  }
  static inline R pow2(int32x4_t e) { return vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(e, vdupq_n_s32(127)), 23)); }

  static inline R exp(R x) {
    ANDROMEDA_EXP_CONSTANTS
    (void)kLog2e;
    (void)kLn2Hi;
    (void)kLn2Lo;
    R n;
    const R p = exp_poly(vminq_f32(vmaxq_f32(x, set1(kExpLo)), set1(kExpHi)), &n);
    // 2^n in two factors so that n = 128 (x near the top of the range) does not overflow the exponent.
    const int32x4_t e = vcvtq_s32_f32(n);
    const int32x4_t e1 = vshrq_n_s32(e, 1), e2 = vsubq_s32(e, e1);
    R y = vmulq_f32(vmulq_f32(p, pow2(e1)), pow2(e2));
    y = vbslq_f32(vcltq_f32(x, set1(kExpLo)), zero(), y);
    y = vbslq_f32(vcgtq_f32(x, set1(kExpHi)), set1(__builtin_inff()), y);
    return vbslq_f32(vceqq_f32(x, x), y, x);  // NaN stays NaN
  }
  // exp for x ≤ ~0 (softmax, log-sum-exp, Gaussian tails): one scale factor, no overflow handling.
  static inline R expn(R x) {
    ANDROMEDA_EXP_CONSTANTS
    (void)kExpHi;
    (void)kLog2e;
    (void)kLn2Hi;
    (void)kLn2Lo;
    R n;
    const R p = exp_poly(vmaxq_f32(set1(kExpLo), x), &n);  // NaN stays NaN (vmaxq propagates it)
    return vbslq_f32(vcltq_f32(x, set1(kExpLo)), zero(), vmulq_f32(p, pow2(vcvtq_s32_f32(n))));
  }
};
constexpr const char* kIsaName = "neon";
#include "simd_kernels.inc"
}  // namespace
const F32Ops& ops() { return kOps; }
}  // namespace neon
#endif
#undef ANDROMEDA_EXP_CONSTANTS

const F32Ops& f32_ops() {
#if defined(__x86_64__)
  switch (active_isa()) {
    case Isa::Avx512: return avx512::ops();
    case Isa::Avx2: return avx2::ops();
    default: break;
  }
#elif defined(__aarch64__)
  if (active_isa() == Isa::Neon) return neon::ops();
#endif
  return generic::ops();
}

}  // namespace andromeda::cpu
