// Internal: the Hopper (sm_90a, wgmma) backward (backward_hopper_kernel.cuh). heuristics.h decides when it runs.
#pragma once
#include "params.cuh"

namespace andromeda::cuda::attention {

/** Keys per CTA of the Hopper backward (BackwardConfig::kBlockN): its grid's x extent is ⌈k_len / this⌉. */
constexpr int kHopperBackwardKeyTile = 128;

/**
 * The pre-pass path's rotary transform for the dQ conversion: grad_q = Rᵀ(z ⊙ dQ') with `transform`'s tables, xPos
 * rates and grad_q (the call's parameters, transform on) and its xPos anchor, instead of dQ' into grad_q_f32.
 */
struct DqRotary {
  const Params* transform;
  int anchor;
};

/**
 * dQ, dK and dV with the Hopper kernel, on a problem heuristics.h found it can run. `p` is complete (δ, lse,
 * gradients; grad_q_f32 / grad_k_accum / grad_v_accum as the caller set them; with Params::key_split also
 * split_grad_a/b/cd, cd zeroed). dQ goes through a float32 accumulator (scratch from the engine's allocator), then
 * into grad_q (scaled), grad_q_f32, or with `rotary` through the transform into its grad_q.
 */
void launch_backward_hopper(const Params& p, int head_dim, const DqRotary* rotary = nullptr);

}  // namespace andromeda::cuda::attention
