// Does warming L2 during a decode step's latency-bound stretch make its weight products faster? Times andromeda-3b's
// batch-1 layer of products — query/key/value (3,328 × 2,560), then a stand-in for the head norms, scatter and
// paged attention (a kernel holding every SM for W µs while memory idles), then the output (2,560 × 3,072),
// feed-forward up (10,240 × 2,560) and down (2,560 × 10,240) — with and without a prefetch (l2_prefetch_kernel.cuh)
// of the output weight and the first bytes of the up weight launched before the stand-in. Each layer reads its
// own weights, eight layers (1.1 GB) replayed as one graph, so nothing stays in L2 from one replay to the next.
// Prints µs a layer for each prefetch budget; also checks that the products' results do not change.
//
//   nvcc -O3 -std=c++17 -arch=sm_90a -I native bench/cuda/l2-prefetch.cu -o /tmp/l2-prefetch && /tmp/l2-prefetch
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "bench_common.h"
#include "cuda/gemv_kernel.cuh"
#include "l2_prefetch_kernel.cuh"

using namespace andromeda::cuda;
using namespace andromeda::cuda::gemv_kernels;
using andromeda::cuda::prefetch_kernels::PrefetchRegions;
using andromeda::cuda::prefetch_kernels::prefetch_kernel;

namespace {

constexpr int kLayers = 8;
constexpr int64_t kDim = 2560, kHidden = 10240, kQkv = 3328, kHeadsDim = 3072;

/** Holds every SM for `ns` nanoseconds (the global timer), touching no memory: the attention's stand-in. */
__global__ void idle_kernel(uint64_t ns) {
  uint64_t t0, t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
  do asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t)); while (t - t0 < ns);
}

template <int kSplit>
void launch(const bf16* a, const bf16* b, bf16* c, int64_t n, int64_t k, cudaStream_t s) {
  gemv_kernel<bf16, 1, kSplit>
      <<<unsigned(gemv_blocks(n, kSplit)), kGemvThreads, 0, s>>>(a, k, gemv_single<bf16>(b, k, c, n, nullptr, n), 1.f, k);
}

void product(const bf16* a, const bf16* b, bf16* c, int64_t n, int64_t k, int sms, cudaStream_t s) {
  switch (gemv_split(n, k, sms)) {
    case 1: launch<1>(a, b, c, n, k, s); break;
    case 2: launch<2>(a, b, c, n, k, s); break;
    case 4: launch<4>(a, b, c, n, k, s); break;
    default: launch<8>(a, b, c, n, k, s);
  }
}

struct Layer {
  bf16 *qkv, *out, *up, *down;
};

}  // namespace

int main() {
  const cudaDeviceProp prop = device_properties();
  const int sms = prop.multiProcessorCount;
  std::printf("# %s, %d SMs, L2 %d MB\n", prop.name, sms, prop.l2CacheSize >> 20);
  std::vector<Layer> layers(kLayers);
  std::vector<uint16_t> host(size_t(kHidden * kDim));
  uint32_t state = 12345;
  for (auto& x : host) {
    state ^= state << 13, state ^= state >> 17, state ^= state << 5;
    x = andromeda::float_to_bf16(float(state) / 4294967296.f - 0.5f);
  }
  auto weight = [&](int64_t n, int64_t k) {
    bf16* p;
    CHECK(cudaMalloc(&p, size_t(n * k) * 2));
    CHECK(cudaMemcpy(p, host.data(), size_t(n * k) * 2, cudaMemcpyHostToDevice));
    return p;
  };
  for (Layer& l : layers)
    l = {weight(kQkv, kDim), weight(kDim, kHeadsDim), weight(kHidden, kDim), weight(kDim, kHidden)};
  bf16 *x, *y;  // one input row (reused by every product: its values do not matter to the timing) and the outputs
  CHECK(cudaMalloc(&x, size_t(kHidden) * 2));
  CHECK(cudaMalloc(&y, size_t(kHidden) * 2 * 4));
  CHECK(cudaMemcpy(x, host.data(), size_t(kHidden) * 2, cudaMemcpyHostToDevice));
  cudaStream_t stream;
  CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));

  const int64_t out_bytes = kDim * kHeadsDim * 2, up_bytes = kHidden * kDim * 2;
  std::vector<uint16_t> reference;
  std::printf("| idle µs | prefetch MB | µs a layer | products µs a layer | saved µs | outputs |\n");
  std::printf("|---:|---:|---:|---:|---:|---|\n");
  for (int idle_us : {10, 20})
    for (int budget_mb : {0, 8, 16, 24, 32, 40}) {
      const int64_t budget = int64_t(budget_mb) << 20;
      auto record = [&]() {
        for (const Layer& l : layers) {
          product(x, l.qkv, y, kQkv, kDim, sms, stream);
          if (budget > 0) {
            PrefetchRegions regions{};
            regions.begin[0] = reinterpret_cast<const char*>(l.out);
            regions.bytes[0] = std::min(budget, out_bytes);
            regions.begin[1] = reinterpret_cast<const char*>(l.up);
            regions.bytes[1] = std::min(up_bytes, std::max<int64_t>(0, budget - out_bytes)) / 16 * 16;
            regions.count = regions.bytes[1] > 0 ? 2 : 1;
            prefetch_kernel<<<sms, prefetch_kernels::kPrefetchThreads, 0, stream>>>(regions);
          }
          idle_kernel<<<sms, 32, 0, stream>>>(uint64_t(idle_us) * 1000);
          product(x, l.out, y + kHidden, kDim, kHeadsDim, sms, stream);
          product(x, l.up, y + 2 * kHidden, kHidden, kDim, sms, stream);
          product(x, l.down, y + 3 * kHidden, kDim, kHidden, sms, stream);
        }
      };
      cudaGraph_t graph;
      cudaGraphExec_t exec;
      CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
      record();
      CHECK(cudaStreamEndCapture(stream, &graph));
      CHECK(cudaGraphInstantiate(&exec, graph, 0));
      for (int w = 0; w < 3; w++) CHECK(cudaGraphLaunch(exec, stream));
      CHECK(cudaStreamSynchronize(stream));
      std::vector<uint16_t> got(size_t(kHidden) * 4);
      CHECK(cudaMemcpy(got.data(), y, got.size() * 2, cudaMemcpyDeviceToHost));
      if (reference.empty()) reference = got;
      const bool same = got == reference;
      const int reps = 50;
      cudaEvent_t start, stop;
      CHECK(cudaEventCreate(&start));
      CHECK(cudaEventCreate(&stop));
      CHECK(cudaEventRecord(start, stream));
      for (int r = 0; r < reps; r++) CHECK(cudaGraphLaunch(exec, stream));
      CHECK(cudaEventRecord(stop, stream));
      CHECK(cudaEventSynchronize(stop));
      float ms = 0;
      CHECK(cudaEventElapsedTime(&ms, start, stop));
      const double per_layer = 1000.0 * ms / reps / kLayers;
      static double baseline = 0;
      if (budget == 0) baseline = per_layer;
      std::printf("| %d | %d | %.2f | %.2f | %.2f | %s |\n", idle_us, budget_mb, per_layer, per_layer - idle_us,
                  baseline - per_layer, same ? "same" : "DIFFER");
      CHECK(cudaGraphExecDestroy(exec));
      CHECK(cudaGraphDestroy(graph));
      CHECK(cudaEventDestroy(start));
      CHECK(cudaEventDestroy(stop));
    }
  return 0;
}
