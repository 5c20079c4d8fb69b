// Fused attention on the GPU (FlashAttention-2 style, bf16 operands, fp32 softmax): forward with saved
// log-sum-exp, backward (dQ, dK, dV, d keyScale), and a split-KV decode path. Semantics are those of
// AttentionArgs in src/engine/engine.ts; NOTES.md beside this file says how each feature is computed.
//
// Every pointer is a device address (already offset to the first element), except the ALiBi slopes and
// rotary inverse frequencies, which are host arrays (they travel to the kernels as launch parameters).
// Work is enqueued on the engine's stream; errors are thrown as std::invalid_argument (bad arguments)
// or std::runtime_error (CUDA failures).
#pragma once
#include <cstdint>

#include "heuristics.h"

namespace andromeda::cuda {

struct AttentionProblem {
  int batch = 0, heads = 0, kv_heads = 0;
  int64_t q_len = 0, k_len = 0;
  int head_dim = 0;
  // andromeda::DType code of q, k, v, out and the gradients: bfloat16 (2), or float32 (0), which is
  // narrowed to bf16 for the tensor cores (so it has bf16-operand accuracy).
  int dtype = 2;
  double scale = 0;
  bool causal = false;
  int64_t query_offset = 0;
  const float* alibi_slopes = nullptr;     // host [heads], or null for no ALiBi
  int rotary_dim = 0;                      // 0: no rotary
  const float* rotary_inv_freq = nullptr;  // host [rotary_dim / 2]
  double xpos_scale_base = 0;              // 0: no xPos
  const float* key_scale = nullptr;        // device float32 [heads, head_dim], or null
  const int32_t* q_positions = nullptr;    // device int32 [batch, q_len] or null (query_offset + i)
  const int32_t* k_positions = nullptr;    // device int32 [batch, k_len] or null (j)
  const int32_t* q_segments = nullptr;     // device int32 [batch, q_len] or null
  const int32_t* k_segments = nullptr;     // device int32 [batch, k_len] or null
  // Range of the custom positions when the caller knows it (has_position_range); lets xPos use the pre-pass.
  bool has_position_range = false;
  int64_t position_min = 0, position_max = 0;

  int64_t q_elements() const { return int64_t(batch) * heads * q_len * head_dim; }
  int64_t kv_elements() const { return int64_t(batch) * kv_heads * k_len * head_dim; }
};

/** Which forward kernel runs: the tiled tensor-core kernel, the split-KV decode kernel, or the better one. */
enum class AttentionPath { Auto = 0, Tiled = 1, Decode = 2 };

/**
 * Where the tiled kernels get rotary, xPos and the key scale applied (NOTES.md): Kernel, per tile in shared memory;
 * Prepass, once per call into bf16 copies of q and k (and back on the gradients) wherever float range allows xPos
 * with one anchor, the forward past that in query chunks with an anchor each (default positions), else per tile;
 * Auto, the pre-pass unless its scratch would exceed 2 GiB.
 */
enum class AttentionTransform { Auto = 0, Kernel = 1, Prepass = 2 };

/**
 * The kernels a call runs on. Everything Auto is the shipped choice (attention/heuristics.h: a pure function of the
 * problem and the device); tests and benchmarks name one explicitly to compare kernels and paths on one problem. A
 * named kernel that cannot run the problem is an error naming the reason.
 */
struct AttentionChoices {
  AttentionPath path = AttentionPath::Auto;
  attention::KernelRequest forward = attention::KernelRequest::Auto;   // the tiled forward's kernel
  attention::KernelRequest backward = attention::KernelRequest::Auto;  // the backward's kernels
  AttentionTransform transform = AttentionTransform::Auto;
};

/**
 * What the tiled forward and the backward do with the transform for this problem under `choices`: "none" (no
 * transform), "kernel", "prepass" (both on the pre-pass with one xPos anchor), "chunked" (xPos past one anchor's
 * range: the forward on the pre-pass in query chunks with an anchor each, the backward in the kernels), "split"
 * (the split key scale), "chunked-split", or "split-forward" / "split-backward" / "prepass-forward" /
 * "prepass-backward" when only one pass takes the pre-pass.
 */
const char* attention_transform_plan(const AttentionProblem& problem, const AttentionChoices& choices);

/** out [batch, heads, q_len, head_dim] and lse float32 [batch, heads, q_len] (natural log; −∞ for rows that see no key). */
void attention_forward(const AttentionProblem& problem, const char* q, const char* k, const char* v, char* out,
                       float* lse, const AttentionChoices& choices = {});

/** One or a few queries against a long KV cache: attention_forward on the split-KV decode kernel. */
void attention_decode(const AttentionProblem& problem, const char* q, const char* k, const char* v, char* out, float* lse);

/**
 * Gradients with respect to q, k, v as given (before key scale, rotary and xPos) from the forward's out and
 * lse. grad_k / grad_v are summed over the query heads that share a KV head. grad_key_scale (float32
 * [heads, head_dim], required when key_scale is set, else ignored) is overwritten.
 */
void attention_backward(const AttentionProblem& problem, const char* q, const char* k, const char* v, const char* out,
                        const float* lse, const char* grad_out, char* grad_q, char* grad_k, char* grad_v,
                        float* grad_key_scale, const AttentionChoices& choices = {});

}  // namespace andromeda::cuda
