// Times the few-row matrix product's kernel (native/cuda/gemv_kernel.cuh) at every k split for the decode shapes
// of andromeda-3b and orca, checks each result against a float64 product on the host, and prints which split the
// engine's rule (gemv_split) picks, so the rule can be judged against the measured best. Built and run alone:
//
//   nvcc -O3 -std=c++17 -arch=sm_90a -I native bench/cuda/gemv-splits.cu -o /tmp/gemv-splits && /tmp/gemv-splits
//
// Each timed launch reads a different copy of B, cycling over more bytes than L2 holds, as decode does (a layer's
// weights are read once per step and the model is far larger than L2).
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "bench_common.h"
#include "cuda/gemv_kernel.cuh"

using namespace andromeda::cuda;
using namespace andromeda::cuda::gemv_kernels;

namespace {

using andromeda::bf16_to_float;
using andromeda::float_to_bf16;

struct Shape {
  const char* name;
  int64_t n, k;
};

template <int kRowsA, int kSplit>
void launch(const bf16* a, const bf16* b, bf16* c, int64_t n, int64_t k) {
  gemv_kernel<bf16, kRowsA, kSplit>
      <<<unsigned(gemv_blocks(n, kSplit)), kGemvThreads>>>(a, k, gemv_single<bf16>(b, k, c, n, nullptr, n), 1.f, k);
}

template <int kRowsA>
void launch_split(int split, const bf16* a, const bf16* b, bf16* c, int64_t n, int64_t k) {
  switch (split) {
    case 1: launch<kRowsA, 1>(a, b, c, n, k); break;
    case 2: launch<kRowsA, 2>(a, b, c, n, k); break;
    case 4: launch<kRowsA, 4>(a, b, c, n, k); break;
    default: launch<kRowsA, 8>(a, b, c, n, k);
  }
}

void run(int m, int split, const bf16* a, const bf16* b, bf16* c, int64_t n, int64_t k) {
  if (m == 1) launch_split<1>(split, a, b, c, n, k);
  else launch_split<8>(split, a, b, c, n, k);
}

}  // namespace

int main() {
  const cudaDeviceProp prop = device_properties();
  const int device_sms = prop.multiProcessorCount;
  std::printf("# %s, %d SMs, L2 %d MB\n", prop.name, device_sms, prop.l2CacheSize >> 20);
  const Shape shapes[] = {
      {"3b query", 3072, 2560},  {"3b key/value", 128, 2560}, {"3b output", 2560, 3072},
      {"3b ff up", 10240, 2560}, {"3b ff down", 2560, 10240}, {"3b vocab", 50432, 2560},
      {"orca query", 2048, 2048}, {"orca ff up", 8192, 2048}, {"orca ff down", 2048, 8192},
  };
  std::printf("| shape | n | k | m | split | blocks | µs | TB/s | max rel. error | rule | old rule |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n");
  for (const Shape& s : shapes) {
    const int64_t bytes = s.n * s.k * 2;
    const int copies = int(std::max<int64_t>(2, (int64_t(prop.l2CacheSize) * 4) / bytes + 1));
    std::vector<uint16_t> hb(size_t(s.n * s.k)), ha(size_t(8 * s.k));
    uint32_t state = 12345;
    auto next = [&]() {
      state ^= state << 13, state ^= state >> 17, state ^= state << 5;
      return float(state) / 4294967296.f - 0.5f;
    };
    for (auto& x : hb) x = float_to_bf16(next());
    for (auto& x : ha) x = float_to_bf16(next());
    std::vector<double> reference(size_t(8 * s.n));
    for (int i = 0; i < 8; i++)
      for (int64_t r = 0; r < s.n; r++) {
        double sum = 0;
        for (int64_t j = 0; j < s.k; j++) sum += double(bf16_to_float(ha[size_t(i * s.k + j)])) * bf16_to_float(hb[size_t(r * s.k + j)]);
        reference[size_t(i * s.n + r)] = sum;
      }
    bf16 *a, *b, *c;
    CHECK(cudaMalloc(&a, ha.size() * 2));
    CHECK(cudaMalloc(&b, size_t(bytes) * copies));
    CHECK(cudaMalloc(&c, size_t(8 * s.n) * 2));
    CHECK(cudaMemcpy(a, ha.data(), ha.size() * 2, cudaMemcpyHostToDevice));
    for (int copy = 0; copy < copies; copy++)
      CHECK(cudaMemcpy(reinterpret_cast<char*>(b) + size_t(bytes) * copy, hb.data(), size_t(bytes), cudaMemcpyHostToDevice));
    const int rule = gemv_split(s.n, s.k, device_sms);
    int old_rule = 8;
    for (int split = 1; split < 8; split *= 2)
      if (gemv_blocks(s.n, split) >= 2 * 8 * device_sms) {
        old_rule = split;
        break;
      }
    for (int m : {1, 8})
      for (int split : {1, 2, 4, 8}) {
        CHECK(cudaMemset(c, 0, size_t(8 * s.n) * 2));
        run(m, split, a, b, c, s.n, s.k);
        CHECK(cudaGetLastError());
        std::vector<uint16_t> hc(size_t(m * s.n));
        CHECK(cudaMemcpy(hc.data(), c, hc.size() * 2, cudaMemcpyDeviceToHost));
        double error = 0;
        for (int i = 0; i < m; i++)
          for (int64_t r = 0; r < s.n; r++) {
            const double want = reference[size_t(i * s.n + r)], got = bf16_to_float(hc[size_t(i * s.n + r)]);
            error = std::max(error, std::fabs(got - want) / (std::fabs(want) + 0.05 * std::sqrt(double(s.k) / 12)));
          }
        const int reps = 200;
        for (int w = 0; w < copies; w++)
          run(m, split, a, reinterpret_cast<bf16*>(reinterpret_cast<char*>(b) + size_t(bytes) * w), c, s.n, s.k);
        cudaEvent_t start, stop;
        CHECK(cudaEventCreate(&start));
        CHECK(cudaEventCreate(&stop));
        CHECK(cudaEventRecord(start));
        for (int rep = 0; rep < reps; rep++)
          run(m, split, a, reinterpret_cast<bf16*>(reinterpret_cast<char*>(b) + size_t(bytes) * (rep % copies)), c,
              s.n, s.k);
        CHECK(cudaEventRecord(stop));
        CHECK(cudaEventSynchronize(stop));
        float ms = 0;
        CHECK(cudaEventElapsedTime(&ms, start, stop));
        const double us = 1000.0 * ms / reps;
        std::printf("| %s | %lld | %lld | %d | %d | %lld | %.2f | %.2f | %.1e | %s | %s |\n", s.name, (long long)s.n,
                    (long long)s.k, m, split, (long long)gemv_blocks(s.n, split), us, bytes / us / 1e6, error,
                    split == rule ? "**rule**" : "", split == old_rule ? "old" : "");
        CHECK(cudaEventDestroy(start));
        CHECK(cudaEventDestroy(stop));
      }
    CHECK(cudaFree(a));
    CHECK(cudaFree(b));
    CHECK(cudaFree(c));
  }
  return 0;
}
