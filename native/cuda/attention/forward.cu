// Launches the tiled forward kernel for head dims 32, 64 and 128.
#include <stdexcept>
#include <string>

#include "../runtime.h"
#include "forward_kernel.cuh"
#include "launch.h"

namespace andromeda::cuda::attention {
namespace {

// 8 warps × 16 rows = 128 queries per CTA, 64 keys per tile.
template <int D, bool kTransform>
void launch(const Params& p) {
  constexpr int kWarps = 8, kBlockN = 64;
  using Cfg = ForwardConfig<D, kWarps, kBlockN>;
  auto kernel = attention_forward_kernel<D, kWarps, kBlockN, kTransform>;
  static const cudaError_t attr =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Cfg::kSmemBytes);
  check(attr, "attention forward: raising the shared-memory limit");
  const dim3 grid(unsigned((p.q_len + Cfg::kBlockM - 1) / Cfg::kBlockM), unsigned(p.heads), unsigned(p.batch));
  kernel<<<grid, Cfg::kThreads, Cfg::kSmemBytes, stream()>>>(p);
  check_launch("attention forward kernel");
}

template <int D>
void launch_dim(const Params& p, bool transform) {
  if (transform) launch<D, true>(p);
  else launch<D, false>(p);
}

}  // namespace

void launch_forward_tiled(const Params& p, int head_dim, bool transform) {
  switch (head_dim) {
    case 32: launch_dim<32>(p, transform); break;
    case 64: launch_dim<64>(p, transform); break;
    case 128: launch_dim<128>(p, transform); break;
    default: throw std::invalid_argument("attention: head dim " + std::to_string(head_dim) + " (supported: 32, 64, 128)");
  }
}

}  // namespace andromeda::cuda::attention
