// Engine.pagedAttention on CUDA: checks the call, sizes the fixed launch from the host bounds (so a captured graph
// replays for any lengths within them), and runs a split-KV kernel — the decode kernel (decode_kernel.cuh) for bfloat16
// steps of one query per sequence whose shape it takes, else the general one (tensor cores for bfloat16, fp32 CUDA
// cores for float32) — and, with several splits, the combine.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "../common.cuh"
#include "attention_kernel.cuh"
#include "decode_kernel.cuh"
#include "heuristics.h"

namespace andromeda::cuda {
namespace {

using paged::AttentionParams;

constexpr int kF32 = 0, kBf16 = 2;  // andromeda::DType codes
static_assert(paged::kLaunchRowsPerBlock == paged::kRows && paged::kLaunchKeysPerTile == paged::kKeys,
              "heuristics.h sizes the grid by the kernel's tiles");
static_assert(paged::kLaunchDecodeSliceKeys == paged::kSliceKeys && paged::kLaunchDecodeWarps == paged::kDecodeWarps,
              "heuristics.h sizes the decode grid by the decode kernel's slices and warps");

void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument("pagedAttention: " + message);
}

using Launch = paged::PagedLaunch;

/** The shared memory the decode kernel needs for this call's shape (bytes). */
size_t decode_bytes(const AttentionParams& p, int64_t head_dim) {
  return paged::decode_layout(int(head_dim), p.rotary_dim, p.key_dim > head_dim).bytes;
}

/**
 * Whether the decode kernel takes the call: bfloat16, one query per sequence (the host bound), a group that fits its
 * 32 rows, q and the key scale on 16 bytes (it stages them by 16-byte copies), and its shared memory within the
 * device's opt-in limit (head dim 128 with a rotary split needs up to 221 KB).
 */
bool decode_kernel_takes(const PagedAttentionArgs& a, const AttentionParams& p, const char* q) {
  const auto aligned = [](const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; };
  return a.dtype == kBf16 && a.max_query_len == 1 && p.group <= paged::kDecodeRows && aligned(q) &&
         (a.key_scale == nullptr || aligned(a.key_scale)) &&
         decode_bytes(p, a.head_dim) <= size_t(shared_memory_optin());
}

template <typename T, int D, bool kDecode>
void launch(const AttentionParams& base, const Launch& l) {
  using Smem = paged::AttentionSmem<T, D>;
  AttentionParams p = base;
  p.splits = int(l.splits);
  p.chunk = int(l.chunk);
  Scratch part_out(l.splits > 1 ? size_t(p.batch.total_queries) * p.heads * l.splits * D * sizeof(float) : 16);
  Scratch part_stats(l.splits > 1 ? size_t(p.batch.total_queries) * p.heads * l.splits * sizeof(float2) : 16);
  p.part_out = l.splits > 1 ? part_out.as<float>() : nullptr;
  p.part_stats = l.splits > 1 ? part_stats.as<float2>() : nullptr;

  if constexpr (kDecode) {
    static_assert(std::is_same_v<T, bf16>, "the decode kernel is bfloat16's");
    auto kernel = paged::paged_decode_kernel<D>;
    // The most this instantiation may take (rotary over the whole head with a key scale), within the device's
    // opt-in limit (decode_kernel_takes refuses calls above it); set once, as below.
    static const cudaError_t attr = [&] {
      RelaxedCaptureMode relaxed;
      const size_t most = paged::decode_layout(D, D, true).bytes;
      return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  int(std::min(most, size_t(shared_memory_optin()))));
    }();
    check(attr, "pagedAttention: raising the decode kernel's shared-memory limit");
    const dim3 grid(unsigned(l.splits), unsigned(p.batch.num_seqs * p.kv_heads));
    kernel<<<grid, paged::kDecodeThreads, decode_bytes(p, D), stream()>>>(p);
    check_launch("pagedAttention decode kernel");
  } else {
    auto kernel = paged::paged_attention_kernel<T, D>;
    // The largest Q̃/K̃ stride this instantiation takes (key_dim ≤ 2D), set on the first call; it records no stream
    // work, so a first call inside a graph capture leaves the capture valid.
    static const cudaError_t attr = [&] {
      RelaxedCaptureMode relaxed;
      return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  int(Smem::bytes(paged::operand_ld<T>(2 * D))));
    }();
    check(attr, "pagedAttention: raising the shared-memory limit");
    const dim3 grid(unsigned(l.splits), unsigned(l.row_blocks), unsigned(p.batch.num_seqs * p.kv_heads));
    p.operand_ld = paged::operand_ld<T>(p.key_dim);
    kernel<<<grid, paged::kAttentionThreads, Smem::bytes(p.operand_ld), stream()>>>(p);
    check_launch("pagedAttention kernel");
  }
  if (l.splits > 1) {
    const dim3 combine_grid(unsigned(p.batch.max_query_len * p.heads), unsigned(p.batch.num_seqs));
    const int round = paged::combine_round(l.splits, D);
    const auto combine = round == 1   ? paged::paged_attention_combine_kernel<T, D, 1>
                         : round == 4 ? paged::paged_attention_combine_kernel<T, D, 4>
                                      : paged::paged_attention_combine_kernel<T, D, 16>;
    combine<<<combine_grid, paged::kCombineThreads, 0, stream()>>>(p);
    check_launch("pagedAttention combine kernel");
  }
}

template <typename T, bool kDecode = false>
void launch_dim(const AttentionParams& p, int64_t head_dim, const Launch& l) {
  switch (head_dim) {
    case 32: launch<T, 32, kDecode>(p, l); break;
    case 64: launch<T, 64, kDecode>(p, l); break;
    case 128: launch<T, 128, kDecode>(p, l); break;
    default: require(false, "head dim " + std::to_string(head_dim) + " (the CUDA kernel takes 32, 64 and 128)");
  }
}

}  // namespace

void paged_attention(const PagedAttentionArgs& a, const char* q, const char* key_pool, const char* value_pool,
                     char* out) {
  require(a.dtype == kF32 || a.dtype == kBf16,
          "the CUDA kernel takes float32 or bfloat16 q, pools and out (dtype code " + std::to_string(a.dtype) + ")");
  require(a.head_dim == 32 || a.head_dim == 64 || a.head_dim == 128,
          "head dim " + std::to_string(a.head_dim) + " (the CUDA kernel takes 32, 64 and 128)");
  require(a.heads > 0 && a.kv_heads > 0 && a.heads % a.kv_heads == 0,
          "heads (" + std::to_string(a.heads) + ") must be a positive multiple of kvHeads (" +
              std::to_string(a.kv_heads) + ")");
  require(a.alibi_slopes == nullptr || a.heads <= paged::kMaxAlibiHeads,
          "ALiBi takes at most " + std::to_string(paged::kMaxAlibiHeads) + " heads, got " + std::to_string(a.heads));
  require(a.rotary_dim >= 0 && a.rotary_dim % 2 == 0 && a.rotary_dim <= a.head_dim,
          "rotaryDim " + std::to_string(a.rotary_dim) + " must be even and at most the head dim");
  require(a.rotary_dim == 0 || a.rotary_inv_freq, "rotaryDim > 0 needs rotaryInvFreq");
  require(a.xpos_scale_base == 0 || a.rotary_dim > 0, "xPos acts on the rotary features: it needs rotaryDim > 0");
  require(a.block_size > 0 && a.block_size < (int64_t(1) << 30),
          "blockSize " + std::to_string(a.block_size) + " must be positive and below 2^30 (positions are)");
  require(a.key_scale == nullptr || a.key_scale_dtype == kF32 || a.key_scale_dtype == kBf16,
          "keyScale must be float32 or bfloat16 (dtype code " + std::to_string(a.key_scale_dtype) + ")");
  require(a.window == 0 && a.soft_cap == 0,
          "the CUDA kernel has no sliding window or logit soft-cap (Engine.fusedAttentionUnsupported says so)");
  require(a.num_seqs * a.kv_heads <= 65535,
          "numSeqs · kvHeads = " + std::to_string(a.num_seqs * a.kv_heads) + " exceeds 65,535 (one grid dimension)");
  require(a.num_seqs <= 65535, "numSeqs " + std::to_string(a.num_seqs) + " exceeds 65,535");
  require(a.max_query_len * a.heads < (int64_t(1) << 31), "maxQueryLen · heads reaches 2^31");
  require(a.max_context_len < (int64_t(1) << 30), "maxContextLen " + std::to_string(a.max_context_len) +
                                                     " reaches 2^30");
  require(a.total_queries * a.heads * a.head_dim < (int64_t(1) << 40), "totalQueries · heads · headDim too large");
  for (const auto& [ptr, name] : {std::pair<const void*, const char*>{key_pool, "keyPool"}, {value_pool, "valuePool"}}) {
    require(ptr != nullptr && reinterpret_cast<uintptr_t>(ptr) % 16 == 0,
            std::string(name) + " must start on a 16-byte boundary (its element offset a multiple of " +
                std::to_string(16 / dtype_bytes(a.dtype)) + ")");
  }
  if (a.total_queries == 0 || a.num_seqs == 0 || a.max_query_len == 0 || a.max_context_len == 0) return;

  const AttentionParams p = paged::attention_params(a, q, key_pool, value_pool, out);

  if (decode_kernel_takes(a, p, q)) {
    const Launch l = paged::decode_launch_shape(a.num_seqs * a.kv_heads, a.max_context_len, a.total_queries, a.heads,
                                                a.head_dim, sm_count());
    launch_dim<bf16, true>(p, a.head_dim, l);
    return;
  }
  const Launch l = paged::paged_launch_shape(a.num_seqs, a.kv_heads, p.group, a.max_query_len, a.max_context_len,
                                             a.total_queries, a.heads, a.head_dim, sm_count());
  if (a.dtype == kBf16)
    launch_dim<bf16>(p, a.head_dim, l);
  else
    launch_dim<float>(p, a.head_dim, l);
}

}  // namespace andromeda::cuda
