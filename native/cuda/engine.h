// Host-callable entry points of the CUDA engine. Pointers are device addresses that already include
// the element offset; dtype arguments are codes of andromeda::DType. Every kernel is enqueued on the
// engine's stream and returns without waiting; errors are thrown as std::runtime_error.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

// The fused ops declare both engines' forms side by side (native/fused/<op>/<op>.h).
#include "../fused/adamw/adamw.h"
#include "../fused/add_norm/add_norm.h"
#include "../fused/bias_gelu/bias_gelu.h"
#include "../fused/embedding_gather/embedding_gather.h"
#include "../fused/head_norm/head_norm.h"
#include "../fused/sum_squares/sum_squares.h"
#include "../fused/token_shift/token_shift.h"

namespace andromeda::cuda {

// ---- Device and stream (context.cc) ----
/** Number of CUDA devices, or throws with the runtime's reason (no driver, no device). */
int device_count();
/** Selects the device, creates the stream; idempotent for the same index. */
void init(int device);
/** "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 79.1 GiB)". */
std::string device_description();
int sm_count();
void synchronize();
void upload(char* dst, const void* src, size_t bytes);
void download(void* dst, const char* src, size_t bytes);

// ---- Profiling marks (timing.cc) ----
/** Records an event on the stream; returns its index in the current round. */
int timing_mark();
/** Waits, returns the milliseconds between consecutive marks of the round, and starts a new round. */
std::vector<double> timing_read();

// ---- Memory (allocator.cc) ----
struct MemoryStats {
  size_t allocated, peak, reserved, cached_blocks, live_blocks, device_free, device_total;
};
char* alloc(size_t bytes);
void free(char* ptr);
MemoryStats memory_stats();
void reset_peak();
/** Returns every cached (unused) block to the driver. */
void empty_cache();
/** Caps the bytes the allocator may reserve (0 = no cap); for tests of the out-of-memory path. */
void set_memory_limit(size_t bytes);

// ---- Kernels ----
void copy_strided(int src_dtype, const char* src, const int64_t* src_strides, int dst_dtype, char* dst,
                  const int64_t* dst_strides, const int64_t* shape, int rank);
void fill(int dtype, char* dst, int64_t count, double value);
void unary(int op, int dtype, const char* x, char* out, int64_t count, double scalar);
void unary_grad(int op, int dtype, const char* x, const char* grad_out, char* grad_in, int64_t count);
void binary(int op, int dtype, const char* a, const int64_t* a_strides, const char* b, const int64_t* b_strides,
            char* out, const int64_t* shape, int rank);
void reduce(int op, int dtype, const char* x, char* out, int64_t outer, int64_t size, int64_t inner);
double sum_of_squares(int dtype, const char* x, int64_t count);

struct GemmArgs {
  int dtype;
  bool trans_a, trans_b;
  int64_t m, n, k;
  double alpha, beta;
  const char* a; int64_t lda, stride_a;
  const char* b; int64_t ldb, stride_b;
  char* c; int64_t ldc, stride_c;
  int64_t batch;
  /** [n] vector added to every row of C (cuBLASLt's bias epilogue); needs beta == 0. */
  const char* bias = nullptr;
};
void gemm(const GemmArgs& args);
/** "cuBLASLt 130000 (/usr/local/cuda/lib64/libcublasLt.so.13)", loading the library if needed. */
std::string gemm_library();

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
/** Gathers rows; waits for the id check and returns the first bad position, or −1. */
int64_t embedding(int dtype, const char* table, const int32_t* ids, char* out, int64_t count, int64_t dim, int64_t vocab);
void embedding_grad(int dtype, const int32_t* ids, const char* grad_out, char* grad_table, int64_t count, int64_t dim);
void dropout(int dtype, const char* x, char* out, int64_t count, double p, uint64_t seed);
/** normal: a + b·N(0, 1); else uniform in [a, b). The CPU engine's numbers (native/common/counter_random.h). */
void random_fill(int dtype, char* dst, int64_t count, bool normal, double a, double b, uint64_t seed);

struct AdamWArgs {
  double lr, beta1, beta2, eps, weight_decay, bias_correction1, bias_correction2, grad_scale;
};
/** When `shadow` is given, the updated weights are also stored there in `shadow_dtype` (the bf16
 *  compute copy of float32 masters), saving a separate cast pass over the masters. */
void adamw(float* param, int grad_dtype, const char* grad, float* m, float* v, int64_t count, const AdamWArgs& args,
           int shadow_dtype = 0, char* shadow = nullptr);

// Fused ops (token shift, qk-norm, residual add + norm, bias + GELU, many-tensor AdamW, Σx² over many
// buffers, unchecked embedding gather): see the headers included above.

}  // namespace andromeda::cuda
