// Device selection, the engine's stream, and host↔device copies.
#include <cstdio>
#include <mutex>
#include <string>

#include "engine.h"
#include "runtime.h"

namespace andromeda::cuda {
namespace {

int g_device = -1;
cudaStream_t g_stream = nullptr;
int g_sm_count = 0;
int g_shared_memory_optin = 0;
std::mutex g_init_mutex;

}  // namespace

cudaStream_t stream() { return g_stream; }
int sm_count() { return g_sm_count; }
int shared_memory_optin() { return g_shared_memory_optin; }

int device_count() {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    cudaGetLastError();
    throw std::runtime_error(std::string(cudaGetErrorName(status)) + " (" + cudaGetErrorString(status) + ")");
  }
  return count;
}

void init(int device) {
  std::lock_guard<std::mutex> lock(g_init_mutex);
  if (g_device == device) return;
  if (g_device >= 0) {
    throw std::runtime_error("this process already uses cuda:" + std::to_string(g_device) +
                             "; one CUDA device per process is supported (start one process per GPU)");
  }
  const int count = device_count();
  if (device < 0 || device >= count) {
    throw std::runtime_error("cuda:" + std::to_string(device) + " does not exist (" + std::to_string(count) + " device(s) visible)");
  }
  check(cudaSetDevice(device), "cudaSetDevice");
  check(cudaDeviceGetAttribute(&g_sm_count, cudaDevAttrMultiProcessorCount, device), "cudaDeviceGetAttribute");
  check(cudaDeviceGetAttribute(&g_shared_memory_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device),
        "cudaDeviceGetAttribute");
  check(cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking), "cudaStreamCreate");
  g_device = device;
}

std::string device_description() {
  cudaDeviceProp prop;
  check(cudaGetDeviceProperties(&prop, g_device), "cudaGetDeviceProperties");
  char buf[512];
  std::snprintf(buf, sizeof buf, "%s (sm_%d%d, %d SMs, %.1f GiB)", prop.name, prop.major, prop.minor,
                prop.multiProcessorCount, double(prop.totalGlobalMem) / double(1ull << 30));
  return buf;
}

namespace {

/** Copies and waits cannot be recorded in a graph: refused while a capture is open (graph.cc aborts it). */
void refuse_during_capture(const char* what) {
  if (capturing()) {
    throw std::runtime_error(std::string(what) +
                             " inside captureGraph: a CUDA graph replays device work only, so the function may not "
                             "copy between host and device nor wait for the device (upload inputs before replay(), "
                             "read results after it)");
  }
}

}  // namespace

void synchronize() {
  refuse_during_capture("synchronize (a wait for the device)");
  check(cudaStreamSynchronize(g_stream), "cudaStreamSynchronize (an earlier kernel failed)");
}

void upload(char* dst, const void* src, size_t bytes) {
  refuse_during_capture("upload (a host→device copy)");
  if (bytes == 0) return;
  // From pageable memory the call returns once the source is staged, so the caller may reuse it.
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, g_stream), "upload (cudaMemcpyAsync host→device)");
}

void download(void* dst, const char* src, size_t bytes) {
  refuse_during_capture("download (a device→host read)");
  if (bytes == 0) return;
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, g_stream), "download (cudaMemcpyAsync device→host)");
  synchronize();
}

}  // namespace andromeda::cuda
