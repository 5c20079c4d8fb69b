// CPU kernels of the Andromeda engine. Pointers already include the element offset; dtype arguments
// are codes of andromeda::DType. Every kernel is synchronous and parallelised internally.
#pragma once
#include <cstdint>

#include "../common/counter_random.h"

namespace andromeda::cpu {

void copy_strided(int src_dtype, const char* src, const int64_t* src_strides, int dst_dtype, char* dst,
                  const int64_t* dst_strides, const int64_t* shape, int rank);
void fill(int dtype, char* dst, int64_t count, double value);
void unary(int op, int dtype, const char* x, char* out, int64_t count, double scalar);
void unary_grad(int op, int dtype, const char* x, const char* grad_out, char* grad_in, int64_t count);
void binary(int op, int dtype, const char* a, const int64_t* a_strides, const char* b, const int64_t* b_strides,
            char* out, const int64_t* shape, int rank);
void reduce(int op, int dtype, const char* x, char* out, int64_t outer, int64_t size, int64_t inner);

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
void gemm(const GemmArgs& args);

void softmax(int dtype, const char* x, char* out, int64_t rows, int64_t cols, bool log);
void softmax_grad(int dtype, const char* y, const char* grad_out, char* grad_in, int64_t rows, int64_t cols, bool log);
// Statistics buffers (norm stats, losses, lse, grad_loss) are float64 when dtype is float64, else float32.
void norm(bool rms, int dtype, const char* x, const char* weight, const char* bias, char* out, char* stats,
          int64_t rows, int64_t cols, double eps);
void norm_grad(bool rms, int dtype, const char* x, const char* weight, const char* stats, const char* grad_out,
               char* grad_in, char* grad_weight, char* grad_bias, int64_t rows, int64_t cols);
void cross_entropy(int dtype, const char* logits, const int32_t* targets, char* losses, char* lse, int64_t rows,
                   int64_t vocab, int64_t ignore_index);
void cross_entropy_grad(int dtype, const char* logits, const int32_t* targets, const char* lse,
                        const char* grad_loss, char* grad_logits, int64_t rows, int64_t vocab, int64_t ignore_index);
int64_t embedding(int dtype, const char* table, const int32_t* ids, char* out, int64_t count, int64_t dim, int64_t vocab);
void embedding_grad(int dtype, const int32_t* ids, const char* grad_out, char* grad_table, int64_t count, int64_t dim);
void dropout(int dtype, const char* x, char* out, int64_t count, double p, uint64_t seed);
/** normal: a + b·N(0, 1); else uniform in [a, b). Element i depends only on (seed, i). */
void random_fill(int dtype, char* dst, int64_t count, bool normal, double a, double b, uint64_t seed);

struct AdamWArgs {
  double lr, beta1, beta2, eps, weight_decay, bias_correction1, bias_correction2, grad_scale;
};
void adamw(float* param, int grad_dtype, const char* grad, float* m, float* v, int64_t count, const AdamWArgs& args);
double sum_of_squares(int dtype, const char* x, int64_t count);

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
void attention_forward(const AttentionArgs& args, const char* q, const char* k, const char* v, char* out, char* lse);
// Overwrites grad_q, grad_k, grad_v and (when not null) grad_key_scale.
void attention_backward(const AttentionArgs& args, const char* q, const char* k, const char* v, const char* out,
                        const char* lse, const char* grad_out, char* grad_q, char* grad_k, char* grad_v,
                        char* grad_key_scale);

}  // namespace andromeda::cpu
