// What a chained launch (programmatic dependent launch, native/cuda/chained_launch.cuh) saves between two dependent
// kernels, in a stream and replayed from a CUDA graph (the decode step's case): chains of kernels that each wait for
// the previous one (every kernel increments a counter the next reads), plain launches against chained ones.
//   nvcc -O3 -std=c++17 -arch=sm_90a -I native bench/cuda/chained-launch.cu -o /tmp/chained && /tmp/chained
// Two kernels: `tiny` (one CTA, nothing but the dependency: the pure launch gap) and `busy` (a CTA per
// multiprocessor, ~5 µs of arithmetic: a decode step's small kernels). `tiny` increments its counter without an
// atomic, so kernels that overlapped (a chained kernel past its wait too early) would lose counts: the count is
// checked.
#include <cstdio>
#include <vector>

#include "bench_common.h"
#include "cuda/chained_launch.cuh"

namespace andromeda::cuda {
namespace {
cudaStream_t g_stream;
bool g_chained = true;
}  // namespace
cudaStream_t stream() { return g_stream; }
bool chained_launch_enabled() { return g_chained; }
void set_chained_launch(bool on) { g_chained = on; }
}  // namespace andromeda::cuda

using namespace andromeda::cuda;

__global__ void tiny(int* counter) {
  chained_kernel_entry();
  if (threadIdx.x == 0) *counter += 1;
}

__global__ void busy(int* counter, float* sink, int iterations) {
  chained_kernel_entry();
  float x = float(threadIdx.x);
  for (int i = 0; i < iterations; i++) x = fmaf(x, 0.999f, 1.0f);
  if (x == -1.f) sink[threadIdx.x] = x;  // never: keeps the loop
  __syncthreads();
  if (blockIdx.x == 0 && threadIdx.x == 0) atomicAdd(counter, 1);
}

/** Microseconds per kernel of `count` launches of `kernel`, in the stream or from a graph of them. */
template <typename Launch>
double time_chain(Launch launch, int count, bool graph, int* counter) {
  cudaEvent_t start, stop;
  CHECK(cudaEventCreate(&start));
  CHECK(cudaEventCreate(&stop));
  cudaGraphExec_t exec = nullptr;
  if (graph) {
    cudaGraph_t g;
    CHECK(cudaStreamBeginCapture(g_stream, cudaStreamCaptureModeGlobal));
    for (int i = 0; i < count; i++) launch();
    CHECK(cudaStreamEndCapture(g_stream, &g));
    CHECK(cudaGraphInstantiate(&exec, g, 0));
    CHECK(cudaGraphDestroy(g));
    CHECK(cudaGraphLaunch(exec, g_stream));  // warm-up
  } else {
    for (int i = 0; i < count; i++) launch();  // warm-up
  }
  CHECK(cudaStreamSynchronize(g_stream));
  CHECK(cudaMemsetAsync(counter, 0, sizeof(int), g_stream));
  CHECK(cudaEventRecord(start, g_stream));
  if (graph) CHECK(cudaGraphLaunch(exec, g_stream));
  else
    for (int i = 0; i < count; i++) launch();
  CHECK(cudaEventRecord(stop, g_stream));
  CHECK(cudaEventSynchronize(stop));
  float ms = 0;
  CHECK(cudaEventElapsedTime(&ms, start, stop));
  int value = 0;
  CHECK(cudaMemcpy(&value, counter, sizeof(int), cudaMemcpyDeviceToHost));
  if (value != count) {
    std::fprintf(stderr, "counter %d after %d kernels: the chain was not kept in order\n", value, count);
    std::exit(1);
  }
  if (exec) CHECK(cudaGraphExecDestroy(exec));
  CHECK(cudaEventDestroy(start));
  CHECK(cudaEventDestroy(stop));
  return ms * 1e3 / count;
}

int main() {
  CHECK(cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking));
  int sms = 0;
  CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  int* counter;
  float* sink;
  CHECK(cudaMalloc(&counter, sizeof(int)));
  CHECK(cudaMalloc(&sink, 1024 * sizeof(float)));
  constexpr int kCount = 500;
  std::printf("| kernel | launch | µs per kernel, stream | µs per kernel, graph |\n|---|---|---|---|\n");
  for (int kind = 0; kind < 2; kind++) {
    for (int chained = 0; chained < 2; chained++) {
      set_chained_launch(chained != 0);
      auto launch = [&] {
        if (kind == 0) launch_chained("tiny", tiny, dim3(1), dim3(32), 0, counter);
        else launch_chained("busy", busy, dim3(unsigned(sms)), dim3(256), 0, counter, sink, 4000);
      };
      const double in_stream = time_chain(launch, kCount, false, counter);
      const double in_graph = time_chain(launch, kCount, true, counter);
      std::printf("| %s | %s | %.2f | %.2f |\n", kind == 0 ? "tiny (1 CTA)" : "busy (a CTA per SM, ~5 µs)",
                  chained ? "chained" : "plain", in_stream, in_graph);
    }
  }
  return 0;
}
