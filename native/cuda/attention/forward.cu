// Launches the tiled forward for head dims 32, 64 and 128 on the kernel heuristics.h chooses: the Hopper (wgmma)
// kernel (forward_hopper.h) or the mma.sync kernel below, 4 warps × 32 query rows (128-row tiles, two per
// multiprocessor).
#include <stdexcept>
#include <string>

#include "../runtime.h"
#include "forward_hopper.h"
#include "forward_kernel.cuh"
#include "launch.h"

namespace andromeda::cuda::attention {
namespace {

// 4 warps × 32 query rows; 32-key tiles at head dim 128: O (128 floats) and S must fit 255 registers.
template <int D, bool kTransform>
void launch(const Params& p) {
  constexpr int kWarps = 4, kMTiles = 2, kBlockN = D == 128 ? 32 : 64;
  using Cfg = ForwardConfig<D, kWarps, kMTiles, kBlockN>;
  auto kernel = attention_forward_kernel<D, kWarps, kMTiles, kBlockN, kTransform>;
  // Shared memory grows with the rotary width only as far as it is used (occupancy at small widths).
  constexpr int kMaxSmem = Cfg::kSmemBytes + (kTransform ? Cfg::transform_bytes(D) : 0);
  const int smem = Cfg::kSmemBytes + (kTransform ? Cfg::transform_bytes(p.rotary_dim) : 0);
  static const cudaError_t attr = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kMaxSmem);
  check(attr, "attention forward: raising the shared-memory limit");
  const dim3 grid(unsigned((p.q_len + Cfg::kBlockM - 1) / Cfg::kBlockM), unsigned(p.heads), unsigned(p.batch));
  kernel<<<grid, Cfg::kThreads, smem, stream()>>>(p);
  check_launch("attention forward kernel");
}

}  // namespace

void launch_forward_tiled(const Params& p, int head_dim, bool transform, KernelRequest request) {
  const KernelChoice choice = choose_forward(kernel_problem(p, head_dim, transform), request);
  if (!choice.error.empty()) throw std::invalid_argument("attention: " + choice.error);
  // The split key scale's K'_h is built only by the Hopper kernel; the transform plan asks for it only there.
  if (p.key_split && choice.kernel != Kernel::Hopper)
    throw std::logic_error("attention: the split key scale reached the mma.sync forward");
  if (choice.kernel == Kernel::Hopper) return launch_forward_hopper(p, head_dim);
  switch (head_dim) {
    case 32: transform ? launch<32, true>(p) : launch<32, false>(p); break;
    case 64: transform ? launch<64, true>(p) : launch<64, false>(p); break;
    case 128: transform ? launch<128, true>(p) : launch<128, false>(p); break;
    default: throw std::invalid_argument("attention: head dim " + std::to_string(head_dim) + " (supported: 32, 64, 128)");
  }
}

}  // namespace andromeda::cuda::attention
