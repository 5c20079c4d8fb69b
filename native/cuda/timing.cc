// GPU-side timing marks for the profiler: events recorded on the engine's stream between kernels, so the
// device's own clock times each call without the waits that serialise host and device; and the range an outside
// profiler (Nsight Compute with --profile-from-start off) records.
#include <cuda_profiler_api.h>

#include <vector>

#include "engine.h"
#include "runtime.h"

namespace andromeda::cuda {
namespace {

std::vector<cudaEvent_t> g_events;  // a pool reused across rounds; never shrinks
size_t g_used = 0;

}  // namespace

int timing_mark() {
  if (g_used == g_events.size()) {
    cudaEvent_t event;
    check(cudaEventCreate(&event), "cudaEventCreate");
    g_events.push_back(event);
  }
  check(cudaEventRecord(g_events[g_used], stream()), "cudaEventRecord");
  return int(g_used++);
}

std::vector<double> timing_read() {
  synchronize();
  std::vector<double> ms(g_used > 0 ? g_used - 1 : 0);
  for (size_t i = 1; i < g_used; i++) {
    float elapsed = 0;
    check(cudaEventElapsedTime(&elapsed, g_events[i - 1], g_events[i]), "cudaEventElapsedTime");
    ms[i - 1] = elapsed;
  }
  g_used = 0;
  return ms;
}

void profiler_range(bool on) {
  check(on ? cudaProfilerStart() : cudaProfilerStop(), on ? "cudaProfilerStart" : "cudaProfilerStop");
}

}  // namespace andromeda::cuda
