// Batched GEMM, GotoBLAS/BLIS style:
//
//   for jc (NC columns of B/C)
//     for pc (KC of the inner dimension)          pack B[pc.., jc..] → Bp  (kc × nc, NR-column panels)
//       for ic (MC rows of this thread's range)   pack A[ic.., pc..] → Ap  (mc × kc, MR-row panels; per thread)
//         for ir (MR)   A micro-panel stays in L1
//           for jr (NR) B micro-panel streams from L2 → micro-kernel (MR × NR register tile, FMA)
//
// Packing converts to the compute type (float for float32/bfloat16/float16, double for float64) and
// resolves transposes, leading dimensions and zero-padding of edge tiles, so the micro-kernel only
// ever sees full tiles; partial tiles go through a small buffer. Micro-kernels exist for AVX-512,
// AVX2+FMA, NEON and portable C++, chosen at run time (simd.h). Work is split over the engine's threads
// (parallel.h):
// across batch items when there are enough of them, else across a 2-D grid of C inside each GEMM
// (each thread packs its own panels; no barriers inside a GEMM). Half-precision outputs are written once (no K blocking), so
// they are rounded a single time.
#if defined(__x86_64__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "../common/dtype.h"
#include "kernels.h"
#include "parallel.h"
#include "gemm.h"
#include "simd.h"
#include "target_region.h"
#include "simd_kernels.h"

namespace andromeda::cpu {
namespace {

template <typename C>
using KernelFn = void (*)(int64_t kc, const C* a, const C* b, C* c, int64_t ldc, C alpha, C beta);

template <typename C>
struct GemmKernel {
  KernelFn<C> fn;
  int mr, nr;          // register tile
  int64_t mc, kc, nc;  // cache blocks (mc multiple of mr, nc multiple of nr)
  const char* name;
};

// ---------------------------------------------------------------------------------------------
// Micro-kernels. Each instruction set gets its own namespace compiled under a target pragma; only
// intrinsics and local templates are used inside (no shared inline code that could be emitted
// with the wider instruction set and reused elsewhere).

#if defined(__x86_64__)
ANDROMEDA_TARGET_BEGIN("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")
namespace k512 {
struct VF {
  using T = float; using R = __m512; static constexpr int L = 16;
  static inline R zero() { return _mm512_setzero_ps(); }
  static inline R load(const T* p) { return _mm512_loadu_ps(p); }
  static inline void store(T* p, R v) { _mm512_storeu_ps(p, v); }
  static inline R set1(T v) { return _mm512_set1_ps(v); }
  static inline R fma(R a, R b, R c) { return _mm512_fmadd_ps(a, b, c); }
  static inline R mul(R a, R b) { return _mm512_mul_ps(a, b); }
};
struct VD {
  using T = double; using R = __m512d; static constexpr int L = 8;
  static inline R zero() { return _mm512_setzero_pd(); }
  static inline R load(const T* p) { return _mm512_loadu_pd(p); }
  static inline void store(T* p, R v) { _mm512_storeu_pd(p, v); }
  static inline R set1(T v) { return _mm512_set1_pd(v); }
  static inline R fma(R a, R b, R c) { return _mm512_fmadd_pd(a, b, c); }
  static inline R mul(R a, R b) { return _mm512_mul_pd(a, b); }
};
#include "gemm_kernel.inc"
void sgemm(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha, float beta) {
  micro_kernel<VF, 8, 2>(kc, a, b, c, ldc, alpha, beta);
}
void sgemm_row(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha, float beta) {
  micro_kernel<VF, 1, 2>(kc, a, b, c, ldc, alpha, beta);
}
void dgemm(int64_t kc, const double* a, const double* b, double* c, int64_t ldc, double alpha, double beta) {
  micro_kernel<VD, 12, 2>(kc, a, b, c, ldc, alpha, beta);
}
}  // namespace k512
ANDROMEDA_TARGET_END

ANDROMEDA_TARGET_BEGIN("avx2,fma")
namespace k256 {
struct VF {
  using T = float; using R = __m256; static constexpr int L = 8;
  static inline R zero() { return _mm256_setzero_ps(); }
  static inline R load(const T* p) { return _mm256_loadu_ps(p); }
  static inline void store(T* p, R v) { _mm256_storeu_ps(p, v); }
  static inline R set1(T v) { return _mm256_set1_ps(v); }
  static inline R fma(R a, R b, R c) { return _mm256_fmadd_ps(a, b, c); }
  static inline R mul(R a, R b) { return _mm256_mul_ps(a, b); }
};
struct VD {
  using T = double; using R = __m256d; static constexpr int L = 4;
  static inline R zero() { return _mm256_setzero_pd(); }
  static inline R load(const T* p) { return _mm256_loadu_pd(p); }
  static inline void store(T* p, R v) { _mm256_storeu_pd(p, v); }
  static inline R set1(T v) { return _mm256_set1_pd(v); }
  static inline R fma(R a, R b, R c) { return _mm256_fmadd_pd(a, b, c); }
  static inline R mul(R a, R b) { return _mm256_mul_pd(a, b); }
};
#include "gemm_kernel.inc"
void sgemm(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha, float beta) {
  micro_kernel<VF, 6, 2>(kc, a, b, c, ldc, alpha, beta);
}
void sgemm_row(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha, float beta) {
  micro_kernel<VF, 1, 2>(kc, a, b, c, ldc, alpha, beta);
}
void dgemm(int64_t kc, const double* a, const double* b, double* c, int64_t ldc, double alpha, double beta) {
  micro_kernel<VD, 6, 2>(kc, a, b, c, ldc, alpha, beta);
}
}  // namespace k256
ANDROMEDA_TARGET_END

#elif defined(__aarch64__)
// NEON is part of the aarch64 baseline: no target pragma.
namespace kneon {
struct VF {
  using T = float; using R = float32x4_t; static constexpr int L = 4;
  static inline R zero() { return vdupq_n_f32(0.f); }
  static inline R load(const T* p) { return vld1q_f32(p); }
  static inline void store(T* p, R v) { vst1q_f32(p, v); }
  static inline R set1(T v) { return vdupq_n_f32(v); }
  static inline R fma(R a, R b, R c) { return vfmaq_f32(c, a, b); }
  static inline R mul(R a, R b) { return vmulq_f32(a, b); }
};
struct VD {
  using T = double; using R = float64x2_t; static constexpr int L = 2;
  static inline R zero() { return vdupq_n_f64(0.0); }
  static inline R load(const T* p) { return vld1q_f64(p); }
  static inline void store(T* p, R v) { vst1q_f64(p, v); }
  static inline R set1(T v) { return vdupq_n_f64(v); }
  static inline R fma(R a, R b, R c) { return vfmaq_f64(c, a, b); }
  static inline R mul(R a, R b) { return vmulq_f64(a, b); }
};
#include "gemm_kernel.inc"
// 24 accumulators of the 32 vector registers, 3 (4) for B and one broadcast of A, as BLIS's armv8a kernels.
void sgemm(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha, float beta) {
  micro_kernel<VF, 8, 3>(kc, a, b, c, ldc, alpha, beta);
}
void sgemm_row(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha, float beta) {
  micro_kernel<VF, 1, 3>(kc, a, b, c, ldc, alpha, beta);
}
void dgemm(int64_t kc, const double* a, const double* b, double* c, int64_t ldc, double alpha, double beta) {
  micro_kernel<VD, 6, 4>(kc, a, b, c, ldc, alpha, beta);
}
}  // namespace kneon
#endif

// Portable micro-kernel (vectorised by the compiler for the baseline target: SSE2 or NEON).
template <typename C, int MR, int NR>
void generic_kernel(int64_t kc, const C* __restrict a, const C* __restrict b, C* __restrict c, int64_t ldc, C alpha, C beta) {
  C acc[MR][NR] = {};
  for (int64_t p = 0; p < kc; p++) {
    for (int i = 0; i < MR; i++) {
      const C av = a[i];
      for (int j = 0; j < NR; j++) acc[i][j] += av * b[j];
    }
    a += MR;
    b += NR;
  }
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NR; j++) {
      C* cp = c + i * ldc + j;
      *cp = beta == C(0) ? alpha * acc[i][j] : alpha * acc[i][j] + beta * *cp;
    }
}

template <typename C>
const GemmKernel<C>& select_kernel();

// One-row kernels for float GEMMs of a single row of C (batch-1 decoding: every weight is used once, so a
// register tile of MR rows would spend MR - 1 rows of FMAs on padding and pack a B block too large for L1).
// Same NR and kc as the tile kernel above and the same FMA order per element, so a row gets the same bits
// as it would inside a larger GEMM; nc = NR packs one B panel at a time, consumed from L1 at once.
const GemmKernel<float>* select_row_kernel() {
  static const GemmKernel<float> generic{generic_kernel<float, 1, 8>, 1, 8, 1, 256, 8, "generic 1x8"};
#if defined(__x86_64__)
  static const GemmKernel<float> avx512{k512::sgemm_row, 1, 32, 1, 256, 32, "avx512 1x32"};
  static const GemmKernel<float> avx2{k256::sgemm_row, 1, 16, 1, 256, 16, "avx2 1x16"};
  switch (active_isa()) {
    case Isa::Avx512: return &avx512;
    case Isa::Avx2: return &avx2;
    default: break;
  }
#elif defined(__aarch64__)
  static const GemmKernel<float> neon{kneon::sgemm_row, 1, 12, 1, 256, 12, "neon 1x12"};
  if (active_isa() == Isa::Neon) return &neon;
#endif
  return &generic;
}

template <>
const GemmKernel<float>& select_kernel<float>() {
  static const GemmKernel<float> generic{generic_kernel<float, 4, 8>, 4, 8, 128, 256, 512, "generic 4x8"};
#if defined(__x86_64__)
  // 8 × 32 on AVX-512 (16 zmm accumulators), 6 × 16 on AVX2 (12 ymm accumulators). Blocks measured
  // on Zen 4 (32 KiB L1d, 1 MiB L2): A micro-panel 8 KiB in L1, B block kc × nc streamed from L2/L3.
  static const GemmKernel<float> avx512{k512::sgemm, 8, 32, 128, 256, 1024, "avx512 8x32"};
  static const GemmKernel<float> avx2{k256::sgemm, 6, 16, 120, 256, 1024, "avx2 6x16"};
  switch (active_isa()) {
    case Isa::Avx512: return avx512;
    case Isa::Avx2: return avx2;
    default: break;
  }
#elif defined(__aarch64__)
  // Blocks as on x86 (64 KiB L1d and 1 MiB or more of L2 on Neoverse and Apple cores); not tuned on ARM hardware.
  static const GemmKernel<float> neon{kneon::sgemm, 8, 12, 128, 256, 1008, "neon 8x12"};
  if (active_isa() == Isa::Neon) return neon;
#endif
  return generic;
}

template <>
const GemmKernel<double>& select_kernel<double>() {
  static const GemmKernel<double> generic{generic_kernel<double, 4, 4>, 4, 4, 128, 128, 256, "generic 4x4"};
#if defined(__x86_64__)
  static const GemmKernel<double> avx512{k512::dgemm, 12, 16, 120, 128, 256, "avx512 12x16"};
  static const GemmKernel<double> avx2{k256::dgemm, 6, 8, 120, 128, 256, "avx2 6x8"};
  switch (active_isa()) {
    case Isa::Avx512: return avx512;
    case Isa::Avx2: return avx2;
    default: break;
  }
#elif defined(__aarch64__)
  static const GemmKernel<double> neon{kneon::dgemm, 6, 8, 120, 128, 256, "neon 6x8"};
  if (active_isa() == Isa::Neon) return neon;
#endif
  return generic;
}

// ---------------------------------------------------------------------------------------------
// Packing buffers: per thread, grown on demand and kept (no allocation per call in steady state).

template <typename C>
C* thread_buffer(int slot, size_t count) {
  struct Buf {
    void* p = nullptr;
    size_t bytes = 0;
    ~Buf() { std::free(p); }
  };
  static thread_local Buf bufs[2];
  Buf& b = bufs[slot];
  const size_t need = (count * sizeof(C) + 63) / 64 * 64 + 64;
  if (b.bytes < need) {
    std::free(b.p);
    b.p = std::aligned_alloc(64, need);
    if (!b.p) {
      b.bytes = 0;
      throw std::bad_alloc();
    }
    b.bytes = need;
  }
  return static_cast<C*>(b.p);
}

template <typename T, typename C>
struct Problem {
  const T* a;
  const T* b;
  T* c;
  bool ta, tb;
  int64_t m, n, k, lda, ldb, ldc;
  C alpha, beta;
};

template <typename T, typename C>
inline C ld(const T* p) {
  return C(load(p));
}

// A[i0 .. i0+rows, p0 .. p0+kc] → MR-row panels: dst[panel][p][i], zero-padded to MR rows.
template <typename T, typename C>
void pack_a(const Problem<T, C>& P, int64_t i0, int64_t rows, int64_t p0, int64_t kc, int MR, C* __restrict dst) {
  for (int64_t ir = 0; ir < rows; ir += MR) {
    const int r = int(std::min<int64_t>(MR, rows - ir));
    C* d = dst + ir * kc;
    if (!P.ta && std::is_same<T, float>::value && std::is_same<C, float>::value && r == MR && MR % 8 == 0) {
      // MR rows × kc → kc × MR: 8 × 8 register transposes
      f32_ops().transpose(reinterpret_cast<const float*>(P.a + (i0 + ir) * P.lda + p0), P.lda, reinterpret_cast<float*>(d), MR, MR, kc);
    } else if (!P.ta) {  // A(i, p) = a[i·lda + p]
      for (int i = 0; i < r; i++) {
        const T* src = P.a + (i0 + ir + i) * P.lda + p0;
        for (int64_t p = 0; p < kc; p++) d[p * MR + i] = ld<T, C>(src + p);
      }
    } else {  // A(i, p) = a[p·lda + i]
      for (int64_t p = 0; p < kc; p++) {
        const T* src = P.a + (p0 + p) * P.lda + i0 + ir;
        for (int i = 0; i < r; i++) d[p * MR + i] = ld<T, C>(src + i);
      }
    }
    if (r < MR)
      for (int64_t p = 0; p < kc; p++)
        for (int i = r; i < MR; i++) d[p * MR + i] = C(0);
  }
}

// B[p0 .. p0+kc, j0 .. j0+cols] (cols ≤ NR) → one panel dst[p][j], zero-padded to NR columns.
template <typename T, typename C>
void pack_b_panel(const Problem<T, C>& P, int64_t p0, int64_t kc, int64_t j0, int cols, int NR, C* __restrict dst) {
  if (!P.tb) {  // B(p, j) = b[p·ldb + j]
    for (int64_t p = 0; p < kc; p++) {
      const T* src = P.b + (p0 + p) * P.ldb + j0;
      C* d = dst + p * NR;
      if (std::is_same<T, C>::value && cols == NR) {
        std::memcpy(d, src, sizeof(C) * NR);
      } else {
        for (int j = 0; j < cols; j++) d[j] = ld<T, C>(src + j);
        for (int j = cols; j < NR; j++) d[j] = C(0);
      }
    }
  } else if (std::is_same<T, float>::value && std::is_same<C, float>::value && cols == NR && NR % 8 == 0) {
    // NR columns stored as rows of length kc → kc × NR: 8 × 8 register transposes
    f32_ops().transpose(reinterpret_cast<const float*>(P.b + j0 * P.ldb + p0), P.ldb, reinterpret_cast<float*>(dst), NR, NR, kc);
  } else {  // B(p, j) = b[j·ldb + p]
    for (int j = 0; j < cols; j++) {
      const T* src = P.b + (j0 + j) * P.ldb + p0;
      for (int64_t p = 0; p < kc; p++) dst[p * NR + j] = ld<T, C>(src + p);
    }
    if (cols < NR)
      for (int64_t p = 0; p < kc; p++)
        for (int j = cols; j < NR; j++) dst[p * NR + j] = C(0);
  }
}

// Multiplies the packed block Ap (rows × kc) by packed columns Bp (cols × kc) into C[i0.., j0..].
template <typename T, typename C>
void macro_kernel(const Problem<T, C>& P, const GemmKernel<C>& K, const C* Ap, const C* Bp, int64_t i0, int64_t rows,
                  int64_t j0, int64_t cols, int64_t kc, C beta) {
  const int MR = K.mr, NR = K.nr;
  alignas(64) C tile[1024];
  for (int64_t ir = 0; ir < rows; ir += MR) {
    const int r = int(std::min<int64_t>(MR, rows - ir));
    const C* a = Ap + ir * kc;
    for (int64_t jr = 0; jr < cols; jr += NR) {
      const int cn = int(std::min<int64_t>(NR, cols - jr));
      const C* b = Bp + jr * kc;
      T* cp = P.c + (i0 + ir) * P.ldc + j0 + jr;
      // One-row kernels take the tile path too, so that a row rounds as it does inside a partial MR-row tile
      // (alpha, then beta·C: two roundings) and a one-row GEMM gives the bits of that row of a larger one.
      if (std::is_same<T, C>::value && r == MR && cn == NR && MR > 1) {
        K.fn(kc, a, b, reinterpret_cast<C*>(cp), P.ldc, P.alpha, beta);
      } else {
        K.fn(kc, a, b, tile, NR, C(1), C(0));
        for (int i = 0; i < r; i++) {
          T* crow = cp + i * P.ldc;
          const C* trow = tile + i * NR;
          if (beta == C(0)) {
            for (int j = 0; j < cn; j++) store(crow + j, P.alpha * trow[j]);
          } else {
            for (int j = 0; j < cn; j++) store(crow + j, P.alpha * trow[j] + beta * ld<T, C>(crow + j));
          }
        }
      }
    }
  }
}

struct Blocking {
  int64_t mc, kc, nc;
};

template <typename T, typename C>
Blocking blocking_for(const Problem<T, C>& P, const GemmKernel<C>& K) {
  Blocking b{K.mc, std::min(P.k, K.kc), K.nc};
  if (!std::is_same<T, C>::value) {
    // Half-precision C is rounded once: the whole inner dimension in one block, with the B block
    // kept near K.kc × K.nc elements.
    b.kc = P.k;
    const int64_t budget = K.kc * K.nc;
    b.nc = std::max<int64_t>(K.nr, budget / std::max<int64_t>(P.k, 1) / K.nr * K.nr);
    b.nc = std::min(b.nc, K.nc);
  }
  return b;
}

// Splits `threads` into a tm × tn grid over C's MR-row and NR-column panels. Each thread packs the
// A rows and B columns it needs (no shared buffers, hence no barriers: a thread that the OS
// deschedules delays only its own share). The grid minimises an estimate of per-thread cycles:
// compute at ~32 flop/cycle plus ~1 cycle per packed element.
void grid_for(int64_t m_panels, int64_t n_panels, int MR, int NR, int64_t k, int64_t nc, int threads, int& tm, int& tn) {
  double best = -1;
  tm = threads;
  tn = 1;
  for (int a = threads; a >= 1; a--) {
    if (threads % a) continue;
    const int b = threads / a;
    const double rows = double((m_panels + a - 1) / a * MR), cols = double((n_panels + b - 1) / b * NR);
    const double col_blocks = std::ceil(cols / double(nc));
    const double cost = rows * cols * double(k) * 2 / 32 + (rows * col_blocks + cols) * double(k);
    if (best < 0 || cost < best) {
      best = cost;
      tm = a;
      tn = b;
    }
  }
}

// The part of one GEMM that thread `tid` of `threads` computes (all of it when threads == 1).
template <typename T, typename C>
void gemm_part(const Problem<T, C>& P, const GemmKernel<C>& K, int tid, int threads) {
  const Blocking bl = blocking_for(P, K);
  const int64_t MR = K.mr, NR = K.nr;
  const int64_t m_panels = (P.m + MR - 1) / MR, n_panels = (P.n + NR - 1) / NR;
  int tm = 1, tn = 1;
  if (threads > 1) grid_for(m_panels, n_panels, K.mr, K.nr, P.k, bl.nc, threads, tm, tn);
  const int ti = tid / tn, tj = tid % tn;
  const int64_t m0 = std::min(P.m, m_panels * ti / tm * MR), m1 = std::min(P.m, m_panels * (ti + 1) / tm * MR);
  const int64_t n0 = std::min(P.n, n_panels * tj / tn * NR), n1 = std::min(P.n, n_panels * (tj + 1) / tn * NR);
  if (m0 >= m1 || n0 >= n1) return;
  const int64_t mc_cap = std::min<int64_t>(bl.mc, (m1 - m0 + MR - 1) / MR * MR);
  const int64_t nc_cap = std::min<int64_t>(bl.nc, (n1 - n0 + NR - 1) / NR * NR);
  C* Ap = thread_buffer<C>(0, size_t(mc_cap * bl.kc));
  C* Bp = thread_buffer<C>(1, size_t(nc_cap * bl.kc));
  for (int64_t jc = n0; jc < n1; jc += bl.nc) {
    const int64_t nc = std::min(bl.nc, n1 - jc);
    for (int64_t pc = 0; pc < P.k; pc += bl.kc) {
      const int64_t kc = std::min(bl.kc, P.k - pc);
      for (int64_t q = 0; q * NR < nc; q++)
        pack_b_panel(P, pc, kc, jc + q * NR, int(std::min(NR, nc - q * NR)), int(NR), Bp + q * NR * kc);
      const C beta = pc == 0 ? P.beta : C(1);
      for (int64_t ic = m0; ic < m1; ic += bl.mc) {
        const int64_t mc = std::min(bl.mc, m1 - ic);
        pack_a(P, ic, mc, pc, kc, int(MR), Ap);
        macro_kernel(P, K, Ap, Bp, ic, mc, jc, nc, kc, beta);
      }
    }
  }
}

template <typename T, typename C>
void scale_c(const Problem<T, C>& P) {  // k == 0: C = beta · C
  for (int64_t i = 0; i < P.m; i++)
    for (int64_t j = 0; j < P.n; j++) {
      T* cp = P.c + i * P.ldc + j;
      store(cp, P.beta == C(0) ? C(0) : P.beta * ld<T, C>(cp));
    }
}

template <typename C>
const GemmKernel<C>& kernel_for(int64_t m) {
  if constexpr (std::is_same<C, float>::value) {
    if (m == 1) return *select_row_kernel();
  }
  return select_kernel<C>();
}

template <typename T, typename C>
void gemm_typed(const GemmArgs& g) {
  const GemmKernel<C>& K = kernel_for<C>(g.m);
  const T* A = reinterpret_cast<const T*>(g.a);
  const T* B = reinterpret_cast<const T*>(g.b);
  T* Cm = reinterpret_cast<T*>(g.c);
  auto problem = [&](int64_t bi) {
    return Problem<T, C>{A + bi * g.stride_a, B + bi * g.stride_b, Cm + bi * g.stride_c, g.trans_a, g.trans_b,
                         g.m, g.n, g.k, g.lda, g.ldb, g.ldc, C(g.alpha), C(g.beta)};
  };
  if (g.k == 0) {
    for (int64_t bi = 0; bi < g.batch; bi++) scale_c(problem(bi));
    return;
  }
  const double flops = 2.0 * double(g.m) * double(g.n) * double(g.k);
  int threads = in_parallel() ? 1 : thread_count();
  if (flops * double(g.batch) < 2e5) threads = 1;
  if (threads == 1) {
    for (int64_t bi = 0; bi < g.batch; bi++) gemm_part(problem(bi), K, 0, 1);
    return;
  }
  // Whole GEMMs per task when the batch divides evenly (or is large); else each one is split into a
  // grid of `threads` parts. Every element is summed over k in the same order whatever the split.
  if (g.batch >= threads && (g.batch % threads == 0 || g.batch >= 4 * threads)) {
    parallel_tasks(g.batch, [&](int64_t bi, int) { gemm_part(problem(bi), K, 0, 1); });
    return;
  }
  parallel_tasks(threads, [&](int64_t part, int) {
    for (int64_t bi = 0; bi < g.batch; bi++) gemm_part(problem(bi), K, int(part), threads);
  });
}

}  // namespace

void gemm(const GemmArgs& g) {
  if (g.m <= 0 || g.n <= 0 || g.batch <= 0) return;
  switch (DType(g.dtype)) {
    case DType::F32: gemm_typed<float, float>(g); break;
    case DType::F64: gemm_typed<double, double>(g); break;
    case DType::BF16: gemm_typed<bf16, float>(g); break;
    case DType::F16: gemm_typed<f16, float>(g); break;
    default: throw std::invalid_argument("gemm: needs a floating dtype");
  }
}

void gemm_shared_input(int dtype, int64_t m, int64_t k, const char* a, const SharedInputPart* parts, size_t count) {
  for (size_t p = 0; p < count; p++) {
    if (parts[p].dtype != dtype || parts[p].m != m || parts[p].k != k)
      throw std::invalid_argument("matmulSharedInput: part " + std::to_string(p) + " differs from A in dtype, m or k");
  }
  if (m > 0 && k == 0) throw std::invalid_argument("matmulSharedInput: k == 0 (the caller fills C instead)");
  for (size_t p = 0; p < count; p++) {
    gemm(linear_product(dtype, m, parts[p].n, k, a, parts[p].b, parts[p].c));
  }
}

void gemm_bias_gelu(int dtype, int64_t m, int64_t n, int64_t k, const char* a, const char* b, const char* bias,
                    char* out) {
  gemm(linear_product(dtype, m, n, k, a, b, out));
  // The same two steps as linear then biasGelu: the same bits.
  bias_gelu(dtype, out, bias, out, m, n);
}

const char* gemm_kernel_name(int dtype) {
  return DType(dtype) == DType::F64 ? select_kernel<double>().name : select_kernel<float>().name;
}

}  // namespace andromeda::cpu
