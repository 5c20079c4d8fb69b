// Host-side helpers the Hopper (sm_90a) attention kernels' launchers share: whether the device runs them, and
// the driver's TMA descriptor encoder (reached through the runtime's driver entry point: the engine does not
// link libcuda).
#pragma once
#include <cuda.h>

namespace andromeda::cuda::attention {

using EncodeTiled = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*, const cuuint64_t*,
                                 const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave, CUtensorMapSwizzle,
                                 CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

/** cuTensorMapEncodeTiled, looked up once; throws when the driver has none. */
EncodeTiled encode_tiled();

/**
 * Whether the Hopper kernels can run here: the device has compute capability 9.x and this build carries sm_90a
 * images (below sm_90a the Hopper kernels' bodies are empty). Read once.
 */
bool hopper_device();

}  // namespace andromeda::cuda::attention
