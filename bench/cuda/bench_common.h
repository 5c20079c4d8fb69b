// What the standalone CUDA benches of this folder share: a CUDA call checked where it is made, the device's
// properties, and the engines' host conversions of bf16 bits (native/common/dtype.h: andromeda::bf16_to_float,
// andromeda::float_to_bf16).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/dtype.h"

#define CHECK(call)                                                                             \
  do {                                                                                          \
    cudaError_t e = (call);                                                                     \
    if (e != cudaSuccess) {                                                                     \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e)); \
      std::exit(1);                                                                             \
    }                                                                                           \
  } while (0)

/** Device 0's properties: its name, multiprocessors (the launch rules take them) and L2 size for a bench's header. */
inline cudaDeviceProp device_properties() {
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0));
  return prop;
}
