// Internal: the host-side launchers of each kernel family, called by attention.cu once the problem is
// validated and the launch parameters are built. Each checks its launch and throws on failure.
#pragma once
#include <cstdint>

#include "heuristics.h"
#include "params.cuh"

namespace andromeda::cuda::attention {

struct DqRotary;  // backward_hopper.h

/** What the kernel choice (heuristics.h) sees of a launch, with this engine's device. `transform`: in-kernel. */
KernelProblem kernel_problem(const Params& p, int head_dim, bool transform);

/**
 * Tiled tensor-core forward on the kernel heuristics.h chooses for `request` (an error naming the reason where the
 * requested kernel cannot run). `transform`: rotary, xPos or key scale is applied in the kernel tiles.
 */
void launch_forward_tiled(const Params& p, int head_dim, bool transform, KernelRequest request);

/** Split-KV decode into partial rows, then their combination; scratch comes from the engine's allocator. */
void launch_decode(const Params& p, int head_dim);

/** δ = rowsum(dO ⊙ O) into p.delta (float32 [batch, heads, q_len]). */
void launch_delta(const Params& p, const bf16* out, float* delta, int head_dim);

void launch_backward_dq(const Params& p, int head_dim, bool transform);
void launch_backward_dkdv(const Params& p, int head_dim, bool transform);
/** The backward kernel heuristics.h chooses for `request` (an error naming the reason where it cannot run). */
Kernel backward_kernel(const Params& p, int head_dim, bool transform, KernelRequest request);
/**
 * dQ, dK and dV on the kernels heuristics.h chooses for `request`: the Hopper kernel (backward_hopper.h; `rotary`
 * only there), or launch_backward_dq (when there are queries) and launch_backward_dkdv.
 */
void launch_backward(const Params& p, int head_dim, bool transform, KernelRequest request,
                     const DqRotary* rotary = nullptr);

/** What launch_pretransform writes (pretransform.cu). */
enum class PretransformMode {
  Query = 0,           // q' = z_q ⊙ R(p) q
  QueryScaleRest = 1,  // q', times g_h past the rotary features (the split forward)
  Key = 2,             // k' = z_k ⊙ R(p)(k ⊙ g), one head per KV head (no key scale, or kv_heads = heads)
  KeySplit = 3,        // A = z_k ⊙ R(p) k and B = z_k ⊙ J R(−p) k (rotary features) per KV head
};

/**
 * The pre-pass path (pretransform.cu). `p` carries the transform (tables, xPos rates, key scale); anchor
 * is the xPos anchor c of the call (or of the query chunk). Writes rows [first, first + count) of each
 * (batch item, head) as rows [0, count) of dst [batch][out_heads][dst_len][D] (and of dst_b for KeySplit):
 * out_heads = heads for the query modes, kv_heads for the key modes (Key with a key scale only when
 * kv_heads = heads: k is never expanded per query head).
 */
void launch_pretransform(const Params& p, int head_dim, PretransformMode mode, int out_heads, int anchor, bf16* dst,
                         int first, int count, int dst_len, bf16* dst_b = nullptr);
/** grad_q = Rᵀ(z ⊙ dQ') from float32 dQ' [batch][heads][q_len][D]. */
void launch_untransform_q(const Params& p, int head_dim, int anchor, const float* dq_prime, bf16* grad_q);
/**
 * grad_k [batch][kv_heads][k_len][D] = Σ over the key heads kh ≡ h (mod kv_heads) of g_kh ⊙ Rᵀ(z ⊙ dK'_kh)
 * from float32 dK' [batch][k_heads][k_len][D]; with a key scale also grad_key_scale [heads][D] (overwritten,
 * summed in a fixed order).
 */
void launch_untransform_k(const Params& p, int head_dim, int k_heads, int anchor, const float* dk_prime, bf16* grad_k,
                          float* grad_key_scale);
/**
 * The split backward's post-pass: grad_k [batch][kv_heads][k_len][D] = Rᵀ(z ⊙ dA) + R J (z ⊙ dB) on the rotary
 * features, dA past them; grad_key_scale [heads][D] (overwritten) from the column-sum partials
 * cd_partial [cd_chunks][heads][2][D] (Params::split_grad_cd), summed in a fixed order.
 */
void launch_untransform_k_split(const Params& p, int head_dim, int anchor, const float* grad_a, const float* grad_b,
                                bf16* grad_k, const float* cd_partial, int64_t cd_chunks, float* grad_key_scale);

/** float32 → bf16 copy of `count` elements (the summed dK / dV of grouped heads, float32 inputs). */
void launch_to_bf16(const float* src, bf16* dst, int64_t count);
/** bf16 → float32 copy (results for float32 callers). */
void launch_to_f32(const bf16* src, float* dst, int64_t count);

/**
 * Rotary (cos θ, sin θ) tables [items][len][pairs] with θ = position · inv_freq, in double precision.
 * positions: device int32 [items][len], or null for default_first + t (then items is 1).
 */
struct InvFreq {
  float value[kMaxRotaryPairs];
};
void launch_rotary_table(float2* table, const int32_t* positions, int64_t default_first, int items, int len, int pairs,
                         const InvFreq& inv_freq);

}  // namespace andromeda::cuda::attention
