// Launches the Hopper backward (backward_hopper_kernel.cuh). dQ is accumulated in float32 scratch (zeroed here, in
// the kernel's block order) and converted to grad_q (bf16, scaled) or grad_q_f32 (the pre-pass path's dQ') by
// dq_from_accum_kernel, or on the pre-pass path with rotary straight through the transform into grad_q by
// dq_rotary_from_accum_kernel.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

#include "../common.cuh"
#include "../runtime.h"
#include "backward_hopper.h"
#include "backward_hopper_kernel.cuh"
#include "heuristics.h"
#include "segments.h"

namespace andromeda::cuda::attention {
namespace {

static_assert(hopper::dq_accum_rows(1) == hopper_dq_accumulator_rows(1) && hopper::dq_accum_rows(128) == hopper_dq_accumulator_rows(128) &&
                  hopper::dq_accum_rows(300) == hopper_dq_accumulator_rows(300),
              "heuristics.h sizes the dQ accumulator as the kernel lays it out");

using hopper::BackwardConfig;

int64_t accumulator_elements(const Params& p, int head_dim) {
  return int64_t(p.batch) * p.heads * hopper::dq_accum_rows(p.q_len) * head_dim;
}

template <int D, bool kAlibi, bool kSplit, bool kSegments>
void launch(const Params& p, float* dq_accum) {
  using Cfg = BackwardConfig<D>;
  auto kernel = hopper::attention_backward_hopper_kernel<D, kAlibi, kSplit, kSegments>;
  static const cudaError_t attr = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Cfg::kSmemBytes);
  check(attr, "attention backward (Hopper): raising the shared-memory limit");
  const dim3 grid(unsigned((p.k_len + Cfg::kBlockN - 1) / Cfg::kBlockN), unsigned(p.heads), unsigned(p.batch));
  Params ordered = p;
  ordered.lpt_section = hopper_lpt_section(hopper_backward_lpt_bytes(p.q_len, D), int64_t(p.heads) * p.batch, grid.x);
  kernel<<<grid, 256, Cfg::kSmemBytes, stream()>>>(ordered, dq_accum);
  check_launch("attention backward kernel (Hopper)");
}

template <int D, bool kSegments>
void launch_features(const Params& p, float* dq_accum) {
  if (p.key_split)
    return p.has_alibi ? launch<D, true, true, kSegments>(p, dq_accum) : launch<D, false, true, kSegments>(p, dq_accum);
  p.has_alibi ? launch<D, true, false, kSegments>(p, dq_accum) : launch<D, false, false, kSegments>(p, dq_accum);
}

template <int D>
void launch_layout(const Params& p, float* dq_accum) {
  p.q_seg ? launch_features<D, true>(p, dq_accum) : launch_features<D, false>(p, dq_accum);
}

void launch_dq_conversion(const Params& p, int head_dim, const float* dq_accum, int64_t elements, const DqRotary* rotary) {
  if (rotary) {
    const int64_t work = int64_t(p.batch) * p.heads * p.q_len * (head_dim / 4);
    if (work == 0) return;
    const auto launch = [&](auto kernel) {
      kernel<<<grid_for(work), kThreads, 0, stream()>>>(dq_accum, *rotary->transform, rotary->anchor);
    };
    const bool narrow = work < (int64_t(1) << 31);
    if (head_dim == 64)
      narrow ? launch(hopper::dq_rotary_from_accum_kernel<64, uint32_t>) : launch(hopper::dq_rotary_from_accum_kernel<64, uint64_t>);
    else
      narrow ? launch(hopper::dq_rotary_from_accum_kernel<128, uint32_t>) : launch(hopper::dq_rotary_from_accum_kernel<128, uint64_t>);
    check_launch("attention backward: dQ' through the rotary transform (Hopper)");
    return;
  }
  const int64_t count4 = elements / 4;
  const unsigned blocks = grid_for(count4);
  const float4* src = reinterpret_cast<const float4*>(dq_accum);
  if (head_dim == 64) {
    hopper::dq_from_accum_kernel<64><<<blocks, kThreads, 0, stream()>>>(src, count4, p.q_len, p.scale, p.grad_q, p.grad_q_f32);
  } else {
    hopper::dq_from_accum_kernel<128><<<blocks, kThreads, 0, stream()>>>(src, count4, p.q_len, p.scale, p.grad_q, p.grad_q_f32);
  }
  check_launch("attention backward: dQ conversion (Hopper)");
}

}  // namespace

void launch_backward_hopper(const Params& given, int head_dim, const DqRotary* rotary) {
  Params p = given;
  const std::unique_ptr<Scratch> segment_summary = summarise_segments(p);  // packed documents: tile ranges and masks
  if (head_dim != 64 && head_dim != 128)
    throw std::logic_error("attention: head dim " + std::to_string(head_dim) + " reached the Hopper backward");
  const int64_t elements = accumulator_elements(p, head_dim);
  Scratch dq_accum(size_t(elements) * sizeof(float));
  check(cudaMemsetAsync(dq_accum.as<float>(), 0, size_t(elements) * sizeof(float), stream()),
        "attention backward (Hopper): clearing the dQ accumulator");
  head_dim == 64 ? launch_layout<64>(p, dq_accum.as<float>()) : launch_layout<128>(p, dq_accum.as<float>());
  launch_dq_conversion(p, head_dim, dq_accum.as<float>(), elements, rotary);
}

}  // namespace andromeda::cuda::attention
