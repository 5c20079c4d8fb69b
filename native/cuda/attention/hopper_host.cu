// Host-side helpers of the Hopper attention launchers (hopper_host.h), and what the kernel choice sees of a
// launch (launch.h: kernel_problem).
#include "hopper_host.h"

#include <cuda_runtime.h>

#include <stdexcept>

#include "../runtime.h"
#include "launch.h"

namespace andromeda::cuda::attention {
namespace {

// Compiled for every architecture of the build like the Hopper kernels: the image the runtime picks for this device
// says whether they carry code here.
__global__ void sm90a_probe_kernel() {}

int device_major() {
  int device = 0, value = 0;
  check(cudaGetDevice(&device), "attention: cudaGetDevice");
  check(cudaDeviceGetAttribute(&value, cudaDevAttrComputeCapabilityMajor, device), "attention: compute capability");
  return value;
}

bool compiled_for_sm90a() {
  cudaFuncAttributes attr{};
  check(cudaFuncGetAttributes(&attr, reinterpret_cast<const void*>(sm90a_probe_kernel)), "attention: reading the sm_90a probe's attributes");
  return attr.binaryVersion >= 90;
}

}  // namespace

bool hopper_device() {
  static const bool hopper = device_major() == 9 && compiled_for_sm90a();
  return hopper;
}

KernelProblem kernel_problem(const Params& p, int head_dim, bool transform) {
  KernelProblem k;
  k.head_dim = head_dim;
  k.batch = p.batch;
  k.heads = p.heads;
  k.k_heads = p.k_heads;
  k.kv_heads = p.kv_heads;
  k.q_len = p.q_len;
  k.k_len = p.k_len;
  k.transform_in_kernel = transform;
  k.key_split = p.key_split != 0;
  k.custom_positions = p.q_pos || p.k_pos;
  k.positive_scale = p.scale_log2 > 0.f;
  k.hopper_device = hopper_device();
  return k;
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

}  // namespace andromeda::cuda::attention
