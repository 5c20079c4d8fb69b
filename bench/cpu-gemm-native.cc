// Standalone float32 GEMM timing of the CPU engine (no Node needed), for machines where only a C++
// compiler is at hand, e.g. to compare with PyTorch on the same cores (bench/cpu-gemm-torch.py):
//   g++ -O3 -std=c++17 -fopenmp bench/cpu-gemm-native.cc native/cpu/gemm.cc native/cpu/simd.cc -o /tmp/gemm-bench
//   /tmp/gemm-bench 1 2 16        (thread counts)
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "../native/cpu/gemm.h"
#include "../native/cpu/kernels.h"
#include "../native/cpu/simd.h"

using namespace andromeda::cpu;

struct Shape { const char* name; int64_t m, n, k; bool ta, tb; int64_t batch; };

int main(int argc, char** argv) {
  const Shape shapes[] = {
    {"square 512", 512, 512, 512, false, false, 1},
    {"square 1024", 1024, 1024, 1024, false, false, 1},
    {"square 2048", 2048, 2048, 2048, false, false, 1},
    {"x.Wt 2048x256x256", 2048, 256, 256, false, true, 1},
    {"x.Wt 2048x1024x256", 2048, 1024, 256, false, true, 1},
    {"h.Wt 2048x256x1024", 2048, 256, 1024, false, true, 1},
    {"dY.W 2048x256x1024", 2048, 256, 1024, false, false, 1},
    {"dYt.X 1024x256x2048", 1024, 256, 2048, true, false, 1},
    {"dYt.X 256x256x2048", 256, 256, 2048, true, false, 1},
    {"QKt 32x256x256x64", 256, 256, 64, false, true, 32},
    {"PV 32x256x64x256", 256, 64, 256, false, false, 32},
  };
  std::printf("# isa %s, gemm %s, clock %.2f GHz, fma %.1f GFLOP/s per core\n", isa_name(active_isa()),
              gemm_kernel_name(0), measure_clock_ghz(), measure_fma_gflops(active_isa()));
  for (int ai = 1; ai < argc; ai++) {
    const int threads = std::atoi(argv[ai]);
    omp_set_num_threads(threads);
    for (const Shape& s : shapes) {
      std::vector<float> a(size_t(s.m * s.k * s.batch)), b(size_t(s.k * s.n * s.batch)), c(size_t(s.m * s.n * s.batch));
      for (size_t i = 0; i < a.size(); i++) a[i] = float(i % 7) * 0.1f - 0.3f;
      for (size_t i = 0; i < b.size(); i++) b[i] = float(i % 5) * 0.1f - 0.2f;
      GemmArgs g{0, s.ta, s.tb, s.m, s.n, s.k, 1.0, 0.0, reinterpret_cast<const char*>(a.data()), s.ta ? s.m : s.k, s.m * s.k,
                 reinterpret_cast<const char*>(b.data()), s.tb ? s.k : s.n, s.k * s.n, reinterpret_cast<char*>(c.data()),
                 s.n, s.m * s.n, s.batch};
      gemm(g);
      double best = 1e9;
      const auto t0 = std::chrono::steady_clock::now();
      for (int rep = 0; rep < 200; rep++) {
        const auto a0 = std::chrono::steady_clock::now();
        gemm(g);
        const auto a1 = std::chrono::steady_clock::now();
        best = std::min(best, std::chrono::duration<double>(a1 - a0).count());
        if (rep >= 3 && std::chrono::duration<double>(a1 - t0).count() > 0.5) break;
      }
      std::printf("%d\t%s\t%.1f\n", threads, s.name, 2.0 * s.m * s.n * s.k * s.batch / best / 1e9);
    }
  }
  return 0;
}
