// Host-callable entry points of the CUDA engine. Pointers are device addresses that already include
// the element offset; dtype arguments are codes of andromeda::DType. Every kernel is enqueued on the
// engine's stream and returns without waiting; errors are thrown as std::runtime_error.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "../common/kernel_args.h"

// The fused ops' semantics and argument structs (their kernels: native/abi/generated/kernels.h).
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
/** The most shared memory a block may opt in to on the device (bytes). */
int shared_memory_optin();
void synchronize();
void upload(char* dst, const void* src, size_t bytes);
void download(void* dst, const char* src, size_t bytes);

// ---- Reads collected later (pending_reads.cc) ----
/** Most reads in flight at once, and the most bytes one may take. */
constexpr int kMaxPendingReads = 16;
constexpr size_t kMaxPendingReadBytes = size_t(64) << 20;
/** Enqueues a copy of `bytes` bytes at `src` into pinned memory behind the stream's work; returns its ticket. */
uint64_t download_start(const char* src, size_t bytes);
/** The size of the pending read `ticket` (throws when it is not pending). */
size_t download_bytes(uint64_t ticket);
/** Waits for the read `ticket` and copies its bytes to `dst`; the ticket is spent, whatever happens. */
void download_finish(uint64_t ticket, void* dst);

// ---- CUDA graphs (graph.cc) ----
/** True while a graph capture is open on the engine's stream. */
bool capturing();
/** Opens a capture of the engine's stream (allocations from a private pool until it ends). */
void graph_begin();
/** Ends the capture and instantiates the graph; returns its id. On failure the capture is gone and throws. */
uint32_t graph_end();
/** Ends a capture whose function failed: the partial graph and its pool are released. */
void graph_abort();
void graph_replay(uint32_t id);
/** Waits for the graph's replays, destroys it and returns its pool. Unknown ids are an error. */
void graph_dispose(uint32_t id);

// ---- Profiling marks (timing.cc) ----
/** Records an event on the stream; returns its index in the current round. */
int timing_mark();
/** Waits, returns the milliseconds between consecutive marks of the round, and starts a new round. */
std::vector<double> timing_read();
/** Starts or stops the range an outside profiler records (cudaProfilerStart / cudaProfilerStop). */
void profiler_range(bool on);

// ---- Memory (allocator.cc) ----
struct MemoryStats {
  size_t allocated, peak, reserved, cached_blocks, live_blocks, device_free, device_total;
  size_t graph_pool_idle;  // bytes of graphs' pools that no tensor holds (counted in `allocated`)
};
char* alloc(size_t bytes);
/** Memory kept for the life of the process (library workspaces): never taken from a graph's pool. */
char* alloc_persistent(size_t bytes);
/** Opens a private pool that serves every allocation until end_graph_pool_capture; returns its id. */
int begin_graph_pool();
void end_graph_pool_capture();
/** Returns a graph's pool: idle blocks to the cache; blocks tensors still hold become ordinary blocks. */
void release_graph_pool(int pool);
void free(char* ptr);
MemoryStats memory_stats();
void reset_peak();
/** Returns every cached (unused) block to the driver. */
void empty_cache();
/** Caps the bytes the allocator may reserve (0 = no cap); for tests of the out-of-memory path. */
void set_memory_limit(size_t bytes);

// ---- Argument structs of the kernels (the kernels themselves: native/abi/generated/kernels.h;
// those both engines take: native/common/kernel_args.h) ----

struct GemmArgs : andromeda::GemmArgs {
  /** [n] vector added to every row of C (cuBLASLt's bias epilogue); needs beta == 0. */
  const char* bias = nullptr;
};
/**
 * Products of a few rows (decode) that gemv (gemv.cu) runs instead of cuBLASLt: bf16 / f16, C = alpha·A·Bᵀ
 * (+ bias), one batch, 1–8 rows, beta 0, rows of A and B in whole 16-byte steps. gemm calls it itself.
 */
bool gemv_applies(const GemmArgs& g);
void gemv(const GemmArgs& g);
/** "cuBLASLt 130000 (/usr/local/cuda/lib64/libcublasLt.so.13)", loading the library if needed. */
std::string gemm_library();

using andromeda::AdamWArgs;
}  // namespace andromeda::cuda

// The kernel functions, declared once for both engines (native/abi/kernels.mjs); semantics: the Engine methods
// of src/engine/engine.ts. Each is enqueued on the engine's stream. sum_of_squares(_many) and embedding wait
// for the device (embedding returns the first bad id's position, or −1; embedding_gather does not check and
// gives zero rows for bad ids). adamw with a shadow also stores the updated weights in shadow_dtype (the
// bf16 compute copy of float32 masters); adamw_many does it per tensor in one launch per dtype pair.
// head_norm: y [batch, heads, n, dim] = x [batch, n, heads, dim] / sqrt(‖x‖² + eps²) · g[head], rstd in the
// statistics dtype. token_shift: segments [batch, n] int32 document ids (shifts stop at a change), or null.
#define ANDROMEDA_ENGINE_NS andromeda::cuda
#define ANDROMEDA_ENGINE_CPU 0
#define ANDROMEDA_ENGINE_CUDA 1
#include "../abi/generated/kernels.h"
