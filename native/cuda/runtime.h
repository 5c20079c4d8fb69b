// Internal helpers shared by the engine's host code (.cc, compiled by g++) and kernels (.cu):
// the engine's stream, and CUDA error checks that throw instead of aborting.
#pragma once
#include <cuda_runtime_api.h>

#include <stdexcept>
#include <string>

namespace andromeda::cuda {

/** The one stream every kernel and copy of the engine is enqueued on. */
cudaStream_t stream();

inline void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    // Clear the sticky last-error slot for recoverable errors so the next call starts clean.
    cudaGetLastError();
    throw std::runtime_error(std::string(what) + ": " + cudaGetErrorName(status) + " (" + cudaGetErrorString(status) + ")");
  }
}

/** After a kernel launch: reports launch failures (bad configuration, missing image) at once. */
inline void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

/**
 * Relaxed stream-capture mode on this thread while in scope: for calls that CUDA counts as unsafe during a capture
 * (cudaMalloc, library setup) but that record no stream work, so a capture open on this thread stays valid.
 */
class RelaxedCaptureMode {
 public:
  RelaxedCaptureMode() { cudaThreadExchangeStreamCaptureMode(&previous_); }
  ~RelaxedCaptureMode() { cudaThreadExchangeStreamCaptureMode(&previous_); }
  RelaxedCaptureMode(const RelaxedCaptureMode&) = delete;
  RelaxedCaptureMode& operator=(const RelaxedCaptureMode&) = delete;

 private:
  cudaStreamCaptureMode previous_ = cudaStreamCaptureModeRelaxed;
};

/** Scratch device memory from the caching allocator, returned when the guard goes out of scope. */
class Scratch {
 public:
  explicit Scratch(size_t bytes);
  ~Scratch();
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  template <typename T> T* as() const { return reinterpret_cast<T*>(ptr_); }

 private:
  char* ptr_;
};

}  // namespace andromeda::cuda
