// Launches the Hopper backward (backward_hopper_kernel.cuh) and decides, per call, whether it runs instead of
// the mma.sync kernels (backward_hopper.h lists the ANDROMEDA_ATTENTION_BACKWARD values).
//
// As for the Hopper forward, the kernels are compiled for every architecture of the build with an empty body
// below sm_90a, so the choice checks both the device and that this object carries an sm_90a image. dQ is
// accumulated in float32 scratch (zeroed here, in the kernel's block order) and converted to grad_q (bf16,
// scaled) or grad_q_f32 (the pre-pass path's dQ') by dq_from_accum_kernel.
#include <cuda.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "../runtime.h"
#include "hopper_host.h"
#include "backward_hopper.h"
#include "backward_hopper_kernel.cuh"

namespace andromeda::cuda::attention {
namespace {

using hopper::BackwardConfig;
using hopper::BackwardMaps;

enum class Choice { Auto, Mma, Hopper, CpAsync, TmaRed, Tma };
enum class Variant { CpAsync, TmaRed, Tma };
// The TMA variants are faster (32k × 24 × 128: 30.5 ms vs 38.1 ms) but wedged their load pipeline on small
// problems on the H100 (e.g. 4 heads × 130 tokens, 2026-11-25; cause not found yet): cp.async is the default.
constexpr Variant kDefaultVariant = Variant::CpAsync;

const char* const kEnv = "ANDROMEDA_ATTENTION_BACKWARD";
// One full tile of each: 64 queries per step, 128 keys per CTA (backward_hopper_kernel.cuh).
constexpr int kMinQueries = 64, kMinKeys = 128;
// Auto keeps the mma.sync kernels (which need no scratch) when the float32 dQ accumulator would be larger.
constexpr double kAutoAccumulatorLimit = 4.0 * (1ull << 30);

Choice choice_from_env(std::string& value) {
  return choice_named_by_env(kEnv, Choice::Auto,
                             {{"mma", Choice::Mma}, {"hopper", Choice::Hopper}, {"hopper-cpasync", Choice::CpAsync},
                              {"hopper-tma-red", Choice::TmaRed}, {"hopper-tma", Choice::Tma}},
                             value);
}

/** Whether the kernels of this object were compiled for sm_90a (else their bodies are empty). */
bool has_sm90a_image() {
  static const bool has = compiled_for_sm90a(
      reinterpret_cast<const void*>(hopper::attention_backward_hopper_kernel<128, true, true, false>),
      "attention: reading the Hopper backward kernel's attributes");
  return has;
}

int64_t accumulator_elements(const Params& p, int head_dim) {
  return int64_t(p.batch) * p.heads * hopper::dq_accum_rows(p.q_len) * head_dim;
}

std::string unsupported_reason(const Params& p, int head_dim, bool transform, bool tma) {
  if (head_dim != 64 && head_dim != 128) return "head dim " + std::to_string(head_dim) + " (the Hopper kernel takes 64 and 128)";
  if (transform) return "rotary, xPos or a key scale is applied in the kernels (only the mma.sync kernels do that)";
  if (p.key_split && tma) return "the split key scale runs on hopper-cpasync only";
  if (p.q_pos || p.k_pos) return "custom positions are given";
  if (p.q_seg || p.k_seg) return "segments are given";
  // Smaller problems gain nothing from it, and a load box larger than the tensor wedged the pipeline on the
  // H100 (1 × 1 tokens, 2026-11-25): they keep the mma.sync kernels.
  if (p.q_len < kMinQueries || p.k_len < kMinKeys) {
    return "fewer than " + std::to_string(kMinQueries) + " queries or " + std::to_string(kMinKeys) + " keys (" +
           std::to_string(p.q_len) + " × " + std::to_string(p.k_len) + ")";
  }
  if (p.k_heads <= 0 || p.heads % p.k_heads != 0 || p.heads % p.kv_heads != 0) return "k_heads and kv_heads must divide heads";
  if (int64_t(p.batch) * p.heads * p.q_len + 256 >= (int64_t(1) << 31)) return "batch · heads · queries reaches 2^31";
  if (tma && reinterpret_cast<uintptr_t>(p.lse) % 16 != 0) return "lse does not start on a 16-byte boundary (TMA)";
  if (device_major() != 9) return "the GPU has compute capability " + std::to_string(device_major()) + ".x (needs 9.x)";
  if (!has_sm90a_image()) return "the engine was built without sm_90a (ANDROMEDA_CUDA_ARCHS)";
  return "";
}

void encode(CUtensorMap* map, CUtensorMapDataType type, cuuint32_t rank, const void* data, const cuuint64_t* dims,
            const cuuint64_t* strides, const cuuint32_t* box, CUtensorMapSwizzle swizzle, const char* what) {
  const cuuint32_t element_strides[3] = {1, 1, 1};
  const CUresult r = encode_tiled()(map, type, rank, const_cast<void*>(data), dims, strides, box, element_strides,
                                    CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                                    CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS)
    throw std::runtime_error(std::string("attention backward: cuTensorMapEncodeTiled failed for ") + what + " (CUresult " +
                             std::to_string(int(r)) + ")");
}

/** [items][len][D] bf16: boxes of 64 features × box_rows rows, 128-byte swizzle, zeros past the end. */
CUtensorMap tile_map(const bf16* data, int D, int len, int items, int box_rows, const char* what) {
  CUtensorMap map;
  const cuuint64_t dims[3] = {cuuint64_t(D), cuuint64_t(len), cuuint64_t(items)};
  const cuuint64_t strides[2] = {cuuint64_t(D) * 2, cuuint64_t(len) * D * 2};
  const cuuint32_t box[3] = {64, cuuint32_t(box_rows), 1};
  encode(&map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3, data, dims, strides, box, CU_TENSOR_MAP_SWIZZLE_128B, what);
  return map;
}

/** `count` float32 as a 1-D tensor read in boxes of `box` elements, zeros past the end. */
CUtensorMap vector_map(const float* data, int64_t count, int box, const char* what) {
  CUtensorMap map;
  const cuuint64_t dims[1] = {cuuint64_t(count)};
  const cuuint64_t strides[1] = {0};  // unused at rank 1
  const cuuint32_t box_dims[1] = {cuuint32_t(box)};
  encode(&map, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, 1, data, dims, strides, box_dims, CU_TENSOR_MAP_SWIZZLE_NONE, what);
  return map;
}

template <int D, Variant V, bool kAlibi, bool kSplit>
void launch(const Params& p, float* dq_accum) {
  constexpr bool kTma = V != Variant::CpAsync;
  constexpr bool kDqBulk = V == Variant::Tma;
  using Cfg = BackwardConfig<D>;
  auto kernel = hopper::attention_backward_hopper_kernel<D, kTma, kDqBulk, kAlibi, kSplit>;
  static const cudaError_t attr = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Cfg::kSmemBytes);
  check(attr, "attention backward (Hopper): raising the shared-memory limit");
  BackwardMaps maps{};
  if constexpr (kTma) {
    maps.q = tile_map(p.q, D, p.q_len, p.batch * p.heads, Cfg::kBlockM, "q");
    maps.dout = tile_map(p.grad_out, D, p.q_len, p.batch * p.heads, Cfg::kBlockM, "grad_out");
    maps.k = tile_map(p.k, D, p.k_len, p.batch * p.k_heads, Cfg::kBlockN, "k");
    maps.v = tile_map(p.v, D, p.k_len, p.batch * p.kv_heads, Cfg::kBlockN, "v");
    const int64_t rows = int64_t(p.batch) * p.heads * p.q_len;
    maps.lse = vector_map(p.lse, rows, Cfg::kBlockM, "lse");
    maps.delta = vector_map(p.delta, rows, Cfg::kBlockM, "delta");
  }
  const dim3 grid(unsigned((p.k_len + Cfg::kBlockN - 1) / Cfg::kBlockN), unsigned(p.heads), unsigned(p.batch));
  kernel<<<grid, kTma ? 384 : 256, Cfg::kSmemBytes, stream()>>>(p, maps, dq_accum);
  check_launch("attention backward kernel (Hopper)");
}

template <int D, Variant V>
void launch_features(const Params& p, float* dq_accum) {
  if constexpr (V == Variant::CpAsync) {
    if (p.key_split) return p.has_alibi ? launch<D, V, true, true>(p, dq_accum) : launch<D, V, false, true>(p, dq_accum);
  }
  p.has_alibi ? launch<D, V, true, false>(p, dq_accum) : launch<D, V, false, false>(p, dq_accum);
}

template <Variant V>
void launch_variant(const Params& p, int head_dim, float* dq_accum) {
  head_dim == 64 ? launch_features<64, V>(p, dq_accum) : launch_features<128, V>(p, dq_accum);
}

void launch_dq_conversion(const Params& p, int head_dim, const float* dq_accum, int64_t elements) {
  const int64_t count4 = elements / 4;
  const int threads = 256;
  const unsigned blocks = unsigned(std::min<int64_t>((count4 + threads - 1) / threads, 132 * 16));
  const float4* src = reinterpret_cast<const float4*>(dq_accum);
  if (head_dim == 64) {
    hopper::dq_from_accum_kernel<64><<<blocks, threads, 0, stream()>>>(src, count4, p.q_len, p.scale, p.grad_q, p.grad_q_f32);
  } else {
    hopper::dq_from_accum_kernel<128><<<blocks, threads, 0, stream()>>>(src, count4, p.q_len, p.scale, p.grad_q, p.grad_q_f32);
  }
  check_launch("attention backward: dQ conversion (Hopper)");
}

Variant variant_of(Choice choice) {
  return choice == Choice::CpAsync ? Variant::CpAsync
         : choice == Choice::TmaRed ? Variant::TmaRed
         : choice == Choice::Tma    ? Variant::Tma
                                    : kDefaultVariant;
}

/** Why the Hopper backward chosen by `choice` does not run here ("" when it does; Mma gives a reason too). */
std::string skip_reason(const Params& p, int head_dim, bool transform, Choice choice) {
  if (choice == Choice::Mma) return std::string(kEnv) + "=mma";
  const std::string reason = unsupported_reason(p, head_dim, transform, variant_of(choice) != Variant::CpAsync);
  if (!reason.empty()) return reason;
  if (choice == Choice::Auto && double(accumulator_elements(p, head_dim)) * 4 > kAutoAccumulatorLimit)
    return "its dQ accumulator would exceed 4 GiB";
  return "";
}

}  // namespace

bool backward_hopper_split_ready(const Params& p, int head_dim) {
  std::string value;
  Params split = p;
  split.key_split = 1;
  return skip_reason(split, head_dim, false, choice_from_env(value)).empty();
}

bool launch_backward_hopper_if_chosen(const Params& p, int head_dim, bool transform) {
  std::string value;
  const Choice choice = choice_from_env(value);
  const Variant variant = variant_of(choice);
  const std::string skip = skip_reason(p, head_dim, transform, choice);
  if (p.key_split && !skip.empty()) {
    // The caller asks for the split key scale only where backward_hopper_split_ready said yes.
    throw std::logic_error("attention: the split key scale reached a backward that cannot build K'_h (" + skip + ")");
  }
  if (choice == Choice::Mma) return false;
  if (!skip.empty()) {
    if (choice == Choice::Auto) return false;
    throw std::invalid_argument(std::string("attention: ") + kEnv + "=" + value + " but the Hopper backward cannot run: " + skip);
  }
  const int64_t elements = accumulator_elements(p, head_dim);

  Scratch dq_accum(size_t(elements) * sizeof(float));
  check(cudaMemsetAsync(dq_accum.as<float>(), 0, size_t(elements) * sizeof(float), stream()),
        "attention backward (Hopper): clearing the dQ accumulator");
  switch (variant) {
    case Variant::CpAsync: launch_variant<Variant::CpAsync>(p, head_dim, dq_accum.as<float>()); break;
    case Variant::TmaRed: launch_variant<Variant::TmaRed>(p, head_dim, dq_accum.as<float>()); break;
    case Variant::Tma: launch_variant<Variant::Tma>(p, head_dim, dq_accum.as<float>()); break;
  }
  launch_dq_conversion(p, head_dim, dq_accum.as<float>(), elements);
  return true;
}

}  // namespace andromeda::cuda::attention
