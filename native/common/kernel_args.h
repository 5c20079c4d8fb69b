// Argument structs that both engines' kernels take (native/abi/kernels.mjs gathers their fields with `into`).
// Pointers already include the element offset; dtype arguments are codes of andromeda::DType. Each engine's
// namespace names them (cpu/kernels.h, cuda/engine.h), the CUDA engine's GemmArgs adding a bias.
#pragma once
#include <cstdint>

namespace andromeda {

struct GemmArgs {
  int dtype;
  bool trans_a, trans_b;
  int64_t m, n, k;
  double alpha, beta;
  const char* a; int64_t lda, stride_a;
  const char* b; int64_t ldb, stride_b;
  char* c; int64_t ldc, stride_c;
  int64_t batch;
};

/** C[m, n] = A[m, k] · B[n, k]ᵀ with all three contiguous, one batch: a linear layer's product without a bias. */
inline GemmArgs linear_product(int dtype, int64_t m, int64_t n, int64_t k, const char* a, const char* b, char* c) {
  GemmArgs g{};
  g.dtype = dtype, g.trans_a = false, g.trans_b = true, g.m = m, g.n = n, g.k = k, g.alpha = 1, g.beta = 0;
  g.a = a, g.lda = k, g.b = b, g.ldb = k, g.c = c, g.ldc = n, g.batch = 1;
  return g;
}

// One product of Engine.matmulSharedInput: C[m, n] = A[m, k] · B[n, k]ᵀ with the call's A (B and C contiguous).
// dtype, m and k repeat the call's own (the glue checks each part's buffers against them).
struct SharedInputPart {
  int dtype;
  int64_t m, k, n;
  const char* b;
  char* c;
};

// One AdamW step's hyperparameters (both moment kinds). With clip_sum_of_squares set the step clips on its own
// (native/fused/adamw/clip.h): it reads the gradients' sum of squares from the engine's memory, where
// sumOfSquaresManyTo left it, so that the host need not wait for the norm before it enqueues the step.
struct AdamWArgs {
  double lr, beta1, beta2, eps, weight_decay, bias_correction1, bias_correction2, grad_scale;
  const double* clip_sum_of_squares;  // null: no clipping here (grad_scale as given)
  double clip_max_norm;
};

// One step's ragged batch over a paged KV cache (PagedBatchArgs in src/engine/engine.ts). The int32 buffers
// are on the engine's device and may hold anything: kernels bound every value they read by the integer
// fields. Sequence s owns query rows query_start[s] .. query_start[s + 1] − 1 and context_lens[s] keys; key
// position p sits in block block_tables[s · max_blocks_per_seq + p / block_size], row p % block_size.
struct PagedBatch {
  int64_t total_queries;  // rows of q / x / out
  int64_t num_seqs, block_size, num_blocks, max_blocks_per_seq, max_query_len, max_context_len;
  const int32_t* query_start;   // [num_seqs + 1]
  const int32_t* context_lens;  // [num_seqs]
  const int32_t* block_tables;  // [num_seqs, max_blocks_per_seq]
};

// Engine.pagedAttention: q and out [total_queries, heads, head_dim]; pools [num_blocks, block_size, kv_heads,
// head_dim] in `dtype`, keys as projected (key scale, rotary and xPos applied by the kernel).
struct PagedAttentionArgs : PagedBatch {
  int dtype;
  int64_t heads, kv_heads, head_dim;
  double scale;
  const float* alibi_slopes;  // [heads] (host memory) or null
  int64_t rotary_dim;
  const float* rotary_inv_freq;  // [rotary_dim / 2] (host memory) or null
  double xpos_scale_base;        // 0: no xPos
  int key_scale_dtype;           // float32, or the pools' dtype
  const char* key_scale;         // [heads, head_dim] on the device, or null
  int64_t window;                // sliding window: a query at p sees keys p − window < j ≤ p; 0: none
  double soft_cap;               // scores become soft_cap · tanh(score / soft_cap) before ALiBi; 0: none
};

}  // namespace andromeda
