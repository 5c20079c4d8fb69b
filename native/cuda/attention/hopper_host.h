// Host-side helpers the Hopper (sm_90a) attention kernels' launchers share: the device's compute capability and
// the driver's TMA descriptor encoder (reached through the runtime's driver entry point: the engine does not
// link libcuda).
#pragma once
#include <cuda.h>

namespace andromeda::cuda::attention {

/** Compute capability major of the engine's device (read once). */
int device_major();

using EncodeTiled = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*, const cuuint64_t*,
                                 const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave, CUtensorMapSwizzle,
                                 CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

/** cuTensorMapEncodeTiled, looked up once; throws when the driver has none. */
EncodeTiled encode_tiled();

}  // namespace andromeda::cuda::attention
