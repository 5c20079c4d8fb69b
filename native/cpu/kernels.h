// Argument structs of the CPU engine's kernels. Pointers already include the element offset; dtype arguments
// are codes of andromeda::DType. Every kernel is synchronous and parallelised internally.
#pragma once
#include <cstdint>

#include "../common/counter_random.h"
#include "../common/kernel_args.h"

namespace andromeda::cpu {

using andromeda::AdamWArgs;
using andromeda::GemmArgs;

// Fused attention (attention.cc): FlashAttention-style tiles with online softmax, memory linear in the
// sequence length. Semantics are those of AttentionArgs in src/engine/engine.ts (head h reads KV
// head h mod kv_heads; the causal mask compares indices, key j ≤ query i + query_offset).
struct AttentionArgs {
  int dtype;                  // q, k, v, out, grad_out and the q/k/v gradients: F32, F64 or BF16
  int lse_dtype;              // F32 or F64
  int key_scale_dtype;        // of key_scale and grad_key_scale: F32, F64 or BF16
  int64_t batch, heads, kv_heads, query_len, key_len, head_dim;
  double scale;
  bool causal;
  int64_t query_offset;
  const float* alibi_slopes;  // [heads] or null
  int64_t rotary_dim;
  const float* rotary_inv_freq;  // [rotary_dim / 2] or null
  double xpos_scale_base;        // 0: no xPos
  const char* key_scale;         // [heads, head_dim] or null
  const int32_t* query_positions;  // [batch, query_len] or null
  const int32_t* key_positions;    // [batch, key_len] or null
  const int32_t* query_segments;   // [batch, query_len] or null
  const int32_t* key_segments;     // [batch, key_len] or null
  // Scratch budgets in bytes (negative: the defaults, 512 MiB and 256 MiB). Above the first the forward
  // prepares keys per tile pair instead of sharing one prepared copy; above the second the backward
  // runs its dQ accumulation in several passes. Results are the same either way.
  double key_cache_bytes = -1;
  double dq_accumulator_bytes = -1;
};

}  // namespace andromeda::cpu

// The kernel functions themselves, declared once for both engines (native/abi/kernels.mjs), with the fused
// ops (native/fused/<op>/<op>.h) and the reference attention (attention_reference.h). Semantics: the
// Engine methods of src/engine/engine.ts. Statistics buffers (norm stats, losses, lse, grad_loss) are float64
// when dtype is float64, else float32. attention_backward overwrites grad_q, grad_k, grad_v and (when not
// null) grad_key_scale.
#define ANDROMEDA_ENGINE_NS andromeda::cpu
#define ANDROMEDA_ENGINE_CPU 1
#define ANDROMEDA_ENGINE_CUDA 0
#include "../abi/generated/kernels.h"
