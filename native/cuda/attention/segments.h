// Internal: the per-call summary of segment ids the Hopper kernels use to skip and mask tiles (segments.cuh).
#pragma once
#include <memory>

#include "../runtime.h"
#include "params.cuh"

namespace andromeda::cuda::attention {

/**
 * Where p carries segments: summarises them (one small kernel on the engine's stream) into scratch and points
 * p.q_seg_blocks / p.k_seg_blocks at it; returns the scratch, to be kept alive until the kernels are queued. Without
 * segments: nothing (null).
 */
std::unique_ptr<Scratch> summarise_segments(Params& p);

}  // namespace andromeda::cuda::attention
