// Launches the Hopper forward (forward_hopper_kernel.cuh) with TMA descriptors encoded per call on the host
// (cuTensorMapEncodeTiled, reached through the runtime's driver entry point: the engine does not link libcuda).
#include <cuda.h>

#include <memory>
#include <stdexcept>
#include <string>

#include "../runtime.h"
#include "forward_hopper.h"
#include "forward_hopper_kernel.cuh"
#include "heuristics.h"
#include "hopper_host.h"
#include "segments.h"

namespace andromeda::cuda::attention {
namespace {

using hopper::ForwardConfig;
using hopper::TensorMaps;

constexpr int kBlockN = 128;

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

template <int D, bool kAlibi, bool kSplit>
void launch(const Params& p) {
  constexpr int kStages = D == 64 ? 3 : 2;
  using Cfg = ForwardConfig<D, kBlockN, kStages>;
  auto kernel = hopper::attention_forward_hopper_kernel<D, kBlockN, kStages, kAlibi, kSplit>;
  // The split key scale's kernels may hold B tiles (a launch asks only for what it uses).
  static const cudaError_t attr = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                       kSplit ? Cfg::kMaxSmemBytes : Cfg::kSmemBytes);
  check(attr, "attention forward (Hopper): raising the shared-memory limit");
  TensorMaps maps{};
  maps.q = tile_map(p.q, D, p.q_len, p.batch * p.heads, Cfg::kBlockM, "q");
  maps.k = tile_map(p.k, D, p.k_len, p.batch * p.k_heads, kBlockN, "k");
  maps.v = tile_map(p.v, D, p.k_len, p.batch * p.kv_heads, kBlockN, "v");
  if (p.key_split) maps.b = tile_map(p.split_b, D, p.k_len, p.batch * p.k_heads, kBlockN, "the split key scale's B");
  const int smem = p.key_split ? Cfg::split_smem_bytes(p.split_rotary_dim) : Cfg::kSmemBytes;
  const dim3 grid(unsigned((p.q_len + Cfg::kBlockM - 1) / Cfg::kBlockM), unsigned(p.heads), unsigned(p.batch));
  Params ordered = p;
  ordered.lpt_section =
      hopper_lpt_section(hopper_forward_lpt_bytes(p.k_len, D, p.heads, p.kv_heads), int64_t(p.heads) * p.batch, grid.x);
  kernel<<<grid, Cfg::kThreads, smem, stream()>>>(ordered, maps);
  check_launch("attention forward kernel (Hopper)");
}

template <int D>
void launch_features(const Params& p) {
  if (p.key_split) return p.has_alibi ? launch<D, true, true>(p) : launch<D, false, true>(p);
  p.has_alibi ? launch<D, true, false>(p) : launch<D, false, false>(p);
}

}  // namespace

void launch_forward_hopper(const Params& given, int head_dim) {
  Params p = given;
  const std::unique_ptr<Scratch> segment_summary = summarise_segments(p);  // packed documents: tile ranges and masks
  switch (head_dim) {
    case 64: launch_features<64>(p); break;
    case 128: launch_features<128>(p); break;
    default: throw std::logic_error("attention: head dim " + std::to_string(head_dim) + " reached the Hopper forward");
  }
}

}  // namespace andromeda::cuda::attention
