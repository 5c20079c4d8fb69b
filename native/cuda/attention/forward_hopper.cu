// Launches the Hopper forward (forward_hopper_kernel.cuh) and decides, per call, whether it runs instead of
// the mma.sync kernel (forward_hopper.h lists the ANDROMEDA_ATTENTION_FORWARD values).
//
// The kernels are compiled for every architecture of the build but have an empty body below sm_90a, so the
// choice checks both the device (compute capability 9.x) and that this object carries an sm_90a image.
// TMA descriptors are encoded per call on the host (cuTensorMapEncodeTiled, reached through the runtime's
// driver entry point: the engine does not link libcuda).
#include <cuda.h>

#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "../runtime.h"
#include "hopper_host.h"
#include "forward_hopper.h"
#include "forward_hopper_kernel.cuh"

namespace andromeda::cuda::attention {
namespace {

using hopper::ForwardConfig;
using hopper::TensorMaps;

enum class Choice { Auto, Mma, Hopper, CpAsync, TmaSerial, Tma, TmaPingPong };
enum class Variant { CpAsync, TmaSerial, Tma, TmaPingPong };
constexpr Variant kDefaultVariant = Variant::Tma;
constexpr int kBlockN = 128;

const char* const kEnv = "ANDROMEDA_ATTENTION_FORWARD";

Choice choice_from_env(std::string& value) {
  return choice_named_by_env(kEnv, Choice::Auto,
                             {{"mma", Choice::Mma}, {"hopper", Choice::Hopper}, {"hopper-cpasync", Choice::CpAsync},
                              {"hopper-tma-serial", Choice::TmaSerial}, {"hopper-tma", Choice::Tma},
                              {"hopper-tma-pingpong", Choice::TmaPingPong}},
                             value);
}

/** Whether the kernels of this object were compiled for sm_90a (else their bodies are empty). */
bool has_sm90a_image() {
  static const bool has = compiled_for_sm90a(
      reinterpret_cast<const void*>(hopper::attention_forward_hopper_kernel<128, kBlockN, 2, true, true, false, false>),
      "attention: reading the Hopper kernel's attributes");
  return has;
}

Variant variant_of(Choice choice) {
  return choice == Choice::CpAsync       ? Variant::CpAsync
         : choice == Choice::TmaSerial   ? Variant::TmaSerial
         : choice == Choice::Tma         ? Variant::Tma
         : choice == Choice::TmaPingPong ? Variant::TmaPingPong
                                         : kDefaultVariant;
}

std::string unsupported_reason(const Params& p, int head_dim, bool transform, Variant variant) {
  if (head_dim != 64 && head_dim != 128) return "head dim " + std::to_string(head_dim) + " (the Hopper kernel takes 64 and 128)";
  if (transform) return "rotary, xPos or a key scale is on (only the mma.sync kernel applies them)";
  if (p.key_split && variant == Variant::CpAsync) return "the split key scale needs a TMA variant (hopper-cpasync has no producer warps)";
  if (p.q_pos || p.k_pos) return "custom positions are given";
  if (p.q_seg || p.k_seg) return "segments are given";
  if (p.k_len == 0) return "there are no keys";
  if (!(p.scale_log2 > 0.f)) return "the scale is not positive";
  if (p.k_heads <= 0 || p.heads % p.k_heads != 0) return "k_heads must divide heads";
  if (device_major() != 9) return "the GPU has compute capability " + std::to_string(device_major()) + ".x (needs 9.x)";
  if (!has_sm90a_image()) return "the engine was built without sm_90a (ANDROMEDA_CUDA_ARCHS)";
  return "";
}

/** [items][len][D] bf16 as a TMA tensor: boxes of 64 features × box_rows rows, 128-byte swizzle, zeros past the end. */
CUtensorMap tile_map(const bf16* data, int D, int len, int items, int box_rows, const char* what) {
  CUtensorMap map;
  const cuuint64_t dims[3] = {cuuint64_t(D), cuuint64_t(len), cuuint64_t(items)};
  const cuuint64_t strides[2] = {cuuint64_t(D) * 2, cuuint64_t(len) * D * 2};
  const cuuint32_t box[3] = {64, cuuint32_t(box_rows), 1};
  const cuuint32_t element_strides[3] = {1, 1, 1};
  const CUresult r = encode_tiled()(&map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3, const_cast<bf16*>(data), dims, strides, box,
                                    element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                                    CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS)
    throw std::runtime_error(std::string("attention: cuTensorMapEncodeTiled failed for ") + what + " (CUresult " +
                             std::to_string(int(r)) + ")");
  return map;
}

template <int D, Variant V, bool kAlibi, bool kSplit>
void launch(const Params& p) {
  constexpr bool kTma = V != Variant::CpAsync;
  constexpr bool kOverlap = V == Variant::Tma || V == Variant::TmaPingPong;
  constexpr bool kPingPong = V == Variant::TmaPingPong;
  constexpr int kStages = D == 64 ? 3 : 2;
  using Cfg = ForwardConfig<D, kBlockN, kStages, kTma>;
  auto kernel = hopper::attention_forward_hopper_kernel<D, kBlockN, kStages, kTma, kOverlap, kPingPong, kAlibi, kSplit>;
  // The split key scale's kernels may hold B tiles (a launch asks only for what it uses).
  static const cudaError_t attr = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                       kSplit ? Cfg::kMaxSmemBytes : Cfg::kSmemBytes);
  check(attr, "attention forward (Hopper): raising the shared-memory limit");
  TensorMaps maps{};
  if constexpr (kTma) {
    maps.q = tile_map(p.q, D, p.q_len, p.batch * p.heads, Cfg::kBlockM, "q");
    maps.k = tile_map(p.k, D, p.k_len, p.batch * p.k_heads, kBlockN, "k");
    maps.v = tile_map(p.v, D, p.k_len, p.batch * p.kv_heads, kBlockN, "v");
    if (p.key_split) maps.b = tile_map(p.split_b, D, p.k_len, p.batch * p.k_heads, kBlockN, "the split key scale's B");
  }
  const int smem = p.key_split ? Cfg::split_smem_bytes(p.split_rotary_dim) : Cfg::kSmemBytes;
  const dim3 grid(unsigned((p.q_len + Cfg::kBlockM - 1) / Cfg::kBlockM), unsigned(p.heads), unsigned(p.batch));
  kernel<<<grid, Cfg::kThreads, smem, stream()>>>(p, maps);
  check_launch("attention forward kernel (Hopper)");
}

template <int D, Variant V>
void launch_features(const Params& p) {
  if constexpr (V != Variant::CpAsync) {
    if (p.key_split) return p.has_alibi ? launch<D, V, true, true>(p) : launch<D, V, false, true>(p);
  }
  p.has_alibi ? launch<D, V, true, false>(p) : launch<D, V, false, false>(p);
}

template <Variant V>
void launch_variant(const Params& p, int head_dim) {
  head_dim == 64 ? launch_features<64, V>(p) : launch_features<128, V>(p);
}

}  // namespace

bool forward_hopper_split_ready(const Params& p, int head_dim) {
  std::string value;
  const Choice choice = choice_from_env(value);
  if (choice == Choice::Mma) return false;
  Params split = p;
  split.key_split = 1;
  return unsupported_reason(split, head_dim, false, variant_of(choice)).empty();
}

bool launch_forward_hopper_if_chosen(const Params& p, int head_dim, bool transform) {
  std::string value;
  const Choice choice = choice_from_env(value);
  const Variant variant = variant_of(choice);
  const std::string reason = choice == Choice::Mma ? "" : unsupported_reason(p, head_dim, transform, variant);
  if (p.key_split && (choice == Choice::Mma || !reason.empty())) {
    // The caller asks for the split key scale only where forward_hopper_split_ready said yes.
    throw std::logic_error("attention: the split key scale reached a forward that cannot build K'_h (" +
                           (reason.empty() ? std::string(kEnv) + "=mma" : reason) + ")");
  }
  if (choice == Choice::Mma) return false;
  if (!reason.empty()) {
    if (choice == Choice::Auto) return false;
    throw std::invalid_argument(std::string("attention: ") + kEnv + "=" + value + " but the Hopper forward cannot run: " + reason);
  }
  switch (variant) {
    case Variant::CpAsync: launch_variant<Variant::CpAsync>(p, head_dim); break;
    case Variant::TmaSerial: launch_variant<Variant::TmaSerial>(p, head_dim); break;
    case Variant::Tma: launch_variant<Variant::Tma>(p, head_dim); break;
    case Variant::TmaPingPong: launch_variant<Variant::TmaPingPong>(p, head_dim); break;
  }
  return true;
}

}  // namespace andromeda::cuda::attention
