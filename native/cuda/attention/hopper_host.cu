// Host-side helpers of the Hopper attention launchers (hopper_host.h).
#include "hopper_host.h"

#include <cuda_runtime.h>

#include <stdexcept>

#include "../runtime.h"

namespace andromeda::cuda::attention {

int device_major() {
  static const int major = [] {
    int device = 0, value = 0;
    check(cudaGetDevice(&device), "attention: cudaGetDevice");
    check(cudaDeviceGetAttribute(&value, cudaDevAttrComputeCapabilityMajor, device), "attention: compute capability");
    return value;
  }();
  return major;
}

EncodeTiled encode_tiled() {
  static const EncodeTiled fn = [] {
    void* ptr = nullptr;
    cudaDriverEntryPointQueryResult found{};
    check(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &ptr, 12000, cudaEnableDefault, &found),
          "attention: looking up cuTensorMapEncodeTiled");
    if (found != cudaDriverEntryPointSuccess || !ptr) throw std::runtime_error("attention: the driver has no cuTensorMapEncodeTiled");
    return reinterpret_cast<EncodeTiled>(ptr);
  }();
  return fn;
}

bool compiled_for_sm90a(const void* kernel, const char* what) {
  cudaFuncAttributes attr{};
  check(cudaFuncGetAttributes(&attr, kernel), what);
  return attr.binaryVersion >= 90;
}

}  // namespace andromeda::cuda::attention
