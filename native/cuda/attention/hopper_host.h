// Host-side helpers the Hopper (sm_90a) attention kernels' launchers share: the device's compute capability and
// the driver's TMA descriptor encoder (reached through the runtime's driver entry point: the engine does not
// link libcuda).
#pragma once
#include <cuda.h>

#include <cstdlib>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <utility>

namespace andromeda::cuda::attention {

/** Compute capability major of the engine's device (read once). */
int device_major();

using EncodeTiled = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*, const cuuint64_t*,
                                 const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave, CUtensorMapSwizzle,
                                 CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

/** cuTensorMapEncodeTiled, looked up once; throws when the driver has none. */
EncodeTiled encode_tiled();

/** Whether `kernel` has an sm_90a image in this build (without one the Hopper kernels' bodies are empty). */
bool compiled_for_sm90a(const void* kernel, const char* what);

/**
 * The launcher choice an environment variable names: `value` receives its text; unset, empty or "auto" give
 * `automatic`; any other text must be one of `names`, else the error lists what is accepted.
 */
template <typename Choice>
Choice choice_named_by_env(const char* env, Choice automatic, std::initializer_list<std::pair<const char*, Choice>> names,
                           std::string& value) {
  const char* v = std::getenv(env);
  value = v ? v : "";
  if (value.empty() || value == "auto") return automatic;
  std::string expected = "auto";
  size_t i = 0;
  for (const auto& [name, choice] : names) {
    if (value == name) return choice;
    expected += (++i == names.size() ? " or " : ", ") + std::string(name);
  }
  throw std::invalid_argument(std::string("attention: ") + env + "=" + value + " (expected " + expected + ")");
}

}  // namespace andromeda::cuda::attention
