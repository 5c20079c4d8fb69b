// Internal: the Hopper (sm_90a, wgmma) backward and the run-time choice between it and the mma.sync kernels.
//
// ANDROMEDA_ATTENTION_BACKWARD (read at every call) picks the backward:
//   unset / auto     the Hopper kernel where it applies (compute capability 9.x, head dim 64 or 128, no rotary,
//                    xPos, key scale, custom positions or segments, at least 64 queries and 128 keys, its float32
//                    dQ accumulator ≤ 4 GiB), else the mma.sync kernels (backward_dq_kernel.cuh, backward_dkdv_kernel.cuh)
//   mma              always the mma.sync kernels
//   hopper           the default Hopper variant; an error where it does not apply
//   hopper-cpasync   cp.async loads by all 256 threads, no warp specialisation, dQ added with red.global (the simple one)
//   hopper-tma-red   TMA producer warpgroup + 2 consumer warpgroups, dQ added with red.global   (experimental)
//   hopper-tma       TMA producer + consumers, dQ added by one bulk reduction (cp.reduce.async.bulk) per 64×64 block
//                    (experimental)
// The split key scale (Params::key_split) runs on hopper-cpasync only; the caller routes it elsewhere when
// backward_hopper_split_ready says no.
// The default (auto, hopper) is hopper-cpasync: the two TMA variants are faster but wedged on small problems on
// the H100 (the kernel traps after its wait limit: cudaErrorIllegalInstruction), cause not yet found (NOTES.md).
#pragma once
#include "params.cuh"

namespace andromeda::cuda::attention {

/** Keys per CTA of the Hopper backward (BackwardConfig::kBlockN): its grid's x extent is ⌈k_len / this⌉. */
constexpr int kHopperBackwardKeyTile = 128;

/**
 * Runs dQ, dK and dV with the Hopper kernel when ANDROMEDA_ATTENTION_BACKWARD and the problem call for it and returns
 * true; returns false when the mma.sync kernels should run. Throws when a Hopper variant is forced but cannot run.
 * `p` is complete (δ, lse, gradients; grad_q_f32 / grad_k_accum / grad_v_accum as the caller set them).
 */
bool launch_backward_hopper_if_chosen(const Params& p, int head_dim, bool transform);

/**
 * Whether the backward that ANDROMEDA_ATTENTION_BACKWARD picks for this problem can take the split key scale
 * (Params::key_split; then split_grad_a/b/cd must be set, cd zeroed, and grad_q_f32 and grad_v_accum as the
 * pre-pass path sets them): hopper-cpasync (the default) where it applies. `p` needs shapes, positions, segments.
 */
bool backward_hopper_split_ready(const Params& p, int head_dim);

}  // namespace andromeda::cuda::attention
