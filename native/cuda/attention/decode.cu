// Launches the split-KV decode kernel and the combination of its partial rows.
#include <algorithm>
#include <stdexcept>
#include <string>

#include "../common.cuh"
#include "decode_kernel.cuh"
#include "launch.h"

namespace andromeda::cuda::attention {
namespace {

static_assert(kDecodeMaxRows == kDecodeRowsLimit, "heuristics.h's decode row limit must match the kernel's");

template <int D>
void launch(const Params& p) {
  using Cfg = DecodeConfig<D>;
  const int64_t rows = int64_t(p.batch) * p.heads * p.q_len;
  // Enough chunks for about four CTAs per multiprocessor, each at least 128 keys.
  const int64_t groups = int64_t(p.batch) * p.kv_heads;
  const int64_t max_splits = std::max<int64_t>(1, (p.k_len + 127) / 128);
  const int64_t splits = std::clamp<int64_t>((4 * sm_count() + groups - 1) / groups, 1, max_splits);
  const int64_t chunk = ((p.k_len + splits - 1) / splits + kDecodeKeys - 1) / kDecodeKeys * kDecodeKeys;
  const int64_t used = chunk > 0 ? std::max<int64_t>(1, (p.k_len + chunk - 1) / chunk) : 1;

  Scratch part_out(size_t(rows * used * D) * sizeof(float));
  Scratch part_stats(size_t(rows * used) * sizeof(float2));
  auto kernel = attention_decode_kernel<D>;
  static const cudaError_t attr =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Cfg::kSmemBytes);
  check(attr, "attention decode: raising the shared-memory limit");
  kernel<<<dim3(unsigned(used), unsigned(p.kv_heads), unsigned(p.batch)), Cfg::kThreads, Cfg::kSmemBytes, stream()>>>(
      p, part_out.as<float>(), part_stats.as<float2>(), int(std::max<int64_t>(chunk, 1)));
  check_launch("attention decode kernel");
  attention_decode_combine_kernel<D><<<unsigned(rows), kCombineThreads, 0, stream()>>>(p, part_out.as<float>(),
                                                                        part_stats.as<float2>(), int(used));
  check_launch("attention decode combine kernel");
}

}  // namespace

void launch_decode(const Params& p, int head_dim) {
  if (int64_t(p.heads / p.kv_heads) * p.q_len > kDecodeMaxRows) {
    throw std::invalid_argument("attention decode: (heads / kv_heads) · q_len = " +
                                std::to_string((p.heads / p.kv_heads) * p.q_len) + " rows exceed " +
                                std::to_string(kDecodeMaxRows));
  }
  switch (head_dim) {
    case 32: launch<32>(p); break;
    case 64: launch<64>(p); break;
    case 128: launch<128>(p); break;
    default: throw std::invalid_argument("attention: head dim " + std::to_string(head_dim) + " (supported: 32, 64, 128)");
  }
}

}  // namespace andromeda::cuda::attention
