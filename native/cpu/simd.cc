// Instruction-set detection for the run-time dispatch declared in simd.h.
#include "simd.h"

#if defined(__x86_64__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <algorithm>

namespace andromeda::cpu {
namespace {

Isa detect() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  // libgcc's checks include the OS's XSAVE state support (XCR0) for AVX and AVX-512 registers.
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("fma"))
    return Isa::Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::Avx2;
  return Isa::Generic;
#elif defined(__aarch64__)
  return Isa::Neon;  // Advanced SIMD with FMA is mandatory in ARMv8-A
#else
  return Isa::Generic;
#endif
}

// The instruction sets of this architecture by rank (Isa's values), with their names.
#if defined(__x86_64__)
constexpr const char* kIsaNames[] = {"generic", "avx2", "avx512"};
constexpr const char* kIsaChoices = "'generic', 'avx2' or 'avx512'";
#elif defined(__aarch64__)
constexpr const char* kIsaNames[] = {"generic", "neon"};
constexpr const char* kIsaChoices = "'generic' or 'neon'";
#else
constexpr const char* kIsaNames[] = {"generic"};
constexpr const char* kIsaChoices = "'generic'";
#endif
constexpr int kIsaCount = int(sizeof(kIsaNames) / sizeof(kIsaNames[0]));

std::atomic<int> g_limit{kIsaCount - 1};

}  // namespace

Isa cpu_isa() {
  static const Isa isa = detect();
  return isa;
}

Isa active_isa() {
  const int limit = g_limit.load(std::memory_order_relaxed);
  const int best = int(cpu_isa());
  return Isa(limit < best ? limit : best);
}

void limit_isa(Isa isa) { g_limit.store(int(isa), std::memory_order_relaxed); }

const char* isa_name(Isa isa) {
  const int rank = int(isa);
  return rank >= 0 && rank < kIsaCount ? kIsaNames[rank] : "generic";
}

bool parse_isa(const std::string& name, Isa* isa) {
  for (int rank = 0; rank < kIsaCount; rank++)
    if (name == kIsaNames[rank]) {
      *isa = Isa(rank);
      return true;
    }
  return false;
}

const char* isa_choices() { return kIsaChoices; }

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

#if defined(__x86_64__)
// Independent accumulator chains (16 zmm / 12 ymm, fitting the register file) cover FMA latency × throughput.
#define ANDROMEDA_FMA_LOOP(R, SET1, FMA, LANES, NACC)                                    \
  R acc[NACC];                                                                    \
  for (int i = 0; i < NACC; i++) acc[i] = SET1(float(i) * 1e-3f);                 \
  const R x = SET1(0.999999f), y = SET1(1e-7f);                                   \
  const auto t0 = std::chrono::steady_clock::now();                               \
  for (int64_t it = 0; it < iters; it++) {                                        \
    _Pragma("GCC unroll 16") for (int i = 0; i < NACC; i++) acc[i] = FMA(acc[i], x, y); \
  }                                                                               \
  const double s = seconds_since(t0);                                             \
  float sink = 0;                                                                 \
  for (int i = 0; i < NACC; i++) sink += reinterpret_cast<const float*>(&acc[i])[0]; \
  volatile float keep = sink;                                                     \
  (void)keep;                                                                     \
  return double(iters) * NACC * LANES * 2 / s / 1e9;

__attribute__((target("avx512f,fma"))) double fma_gflops_512(int64_t iters) {
  ANDROMEDA_FMA_LOOP(__m512, _mm512_set1_ps, _mm512_fmadd_ps, 16, 16)
}
__attribute__((target("avx2,fma"))) double fma_gflops_256(int64_t iters) {
  ANDROMEDA_FMA_LOOP(__m256, _mm256_set1_ps, _mm256_fmadd_ps, 8, 12)
}
#undef ANDROMEDA_FMA_LOOP
#elif defined(__aarch64__)
// 24 independent chains of 4-lane FMAs (of 32 vector registers): covers 4 cycles of latency on up to
// 4 FMA pipes (Neoverse V2, Apple cores).
double fma_gflops_neon(int64_t iters) {
  constexpr int kChains = 24;
  float32x4_t acc[kChains];
  for (int i = 0; i < kChains; i++) acc[i] = vdupq_n_f32(float(i) * 1e-3f);
  const float32x4_t x = vdupq_n_f32(0.999999f), y = vdupq_n_f32(1e-7f);
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t it = 0; it < iters; it++) {
#pragma GCC unroll 24
    for (int i = 0; i < kChains; i++) acc[i] = vfmaq_f32(y, acc[i], x);
  }
  const double s = seconds_since(t0);
  float sink = 0;
  for (int i = 0; i < kChains; i++) sink += vgetq_lane_f32(acc[i], 0);
  volatile float keep = sink;
  (void)keep;
  return double(iters) * kChains * 4 * 2 / s / 1e9;
}
#endif

}  // namespace

double measure_clock_ghz() {
#if !defined(__x86_64__)
  return 0;  // no multiply latency common to the architecture's cores to count cycles with
#else
  // Many short runs (~3 ms each): on a busy machine some of them run without being preempted.
  double best = 0;
  for (int run = 0; run < 60; run++) {
    const int64_t iters = 400'000;
    uint64_t x = 3;
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < iters; i++) {
      // 8 dependent 64-bit multiplies (3 cycles each on Zen and on Intel cores; unlike add-immediate
      // chains, which recent Intel cores can fold at rename, they execute in order).
      asm volatile("imul %0, %0\n\timul %0, %0\n\timul %0, %0\n\timul %0, %0\n\t"
                   "imul %0, %0\n\timul %0, %0\n\timul %0, %0\n\timul %0, %0" : "+r"(x));
    }
    const double s = seconds_since(t0);
    volatile uint64_t keep = x;
    (void)keep;
    best = std::max(best, double(iters) * 8 * 3 / s / 1e9);
  }
  return best;
#endif
}

double measure_fma_gflops(Isa isa) {
  double best = 0;
#if defined(__x86_64__)
  const int64_t iters = 200'000;
  for (int run = 0; run < 40; run++) {
    if (isa == Isa::Avx512 && cpu_isa() == Isa::Avx512) best = std::max(best, fma_gflops_512(iters));
    else if (isa >= Isa::Avx2 && cpu_isa() >= Isa::Avx2) best = std::max(best, fma_gflops_256(iters));
  }
#elif defined(__aarch64__)
  if (isa == Isa::Neon)
    for (int run = 0; run < 40; run++) best = std::max(best, fma_gflops_neon(100'000));
#else
  (void)isa;
#endif
  return best;
}

}  // namespace andromeda::cpu
